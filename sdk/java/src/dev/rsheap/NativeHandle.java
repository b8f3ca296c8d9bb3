package dev.rsheap;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.LongConsumer;

/**
 * The handle of a native object, guarded so that it is never freed while a call uses it.
 *
 * <p>Calls hold the read lock from {@link #acquire()} to {@link #release()}, so any number of
 * threads call at once; {@link #close(LongConsumer)} takes the write lock, waits for the calls
 * running, frees the handle and leaves 0 behind, which later calls see as closed. Where two
 * handles are held, the broker's is taken before a buffer's.
 */
final class NativeHandle {
    /** How often {@link #close(LongConsumer, LongConsumer)} nudges the calls it waits for. */
    private static final long NUDGE_MS = 50;

    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** What the handle belongs to, for messages. */
    private final String owner;
    /** The handle, or 0 once closed; written under the write lock. */
    private long handle;

    NativeHandle(String owner, long handle) {
        this.owner = owner;
        this.handle = handle;
    }

    /**
     * Holds the handle open for a call; pair with {@link #release()} in a {@code finally}.
     *
     * @return the handle
     * @throws IllegalStateException if it is closed
     */
    long acquire() {
        lock.readLock().lock();
        if (handle == 0) {
            lock.readLock().unlock();
            throw new IllegalStateException(owner + " is closed");
        }
        return handle;
    }

    /**
     * Holds the handle as {@link #acquire()} does, but returns 0 if it is closed; pair with
     * {@link #release()} either way.
     *
     * @return the handle, or 0
     */
    long acquireIfOpen() {
        lock.readLock().lock();
        return handle;
    }

    /**
     * Holds the handle as {@link #acquire()} does if that needs no waiting: returns 0, and
     * holds nothing, if it is closed or being closed; pair a non-zero result with
     * {@link #release()}.
     *
     * @return the handle, or 0
     */
    long tryAcquire() {
        if (!lock.readLock().tryLock()) {
            return 0;
        }
        if (handle == 0) {
            lock.readLock().unlock();
        }
        return handle;
    }

    /** Ends a call's hold. */
    void release() {
        lock.readLock().unlock();
    }

    /**
     * Closes the handle, once: waits for the calls holding it, passes it to {@code free} and
     * leaves 0 behind. Does nothing if it is closed already.
     *
     * @param free frees the native object
     * @throws IllegalStateException if this thread is inside a call holding the handle (a
     *     {@link LoadListener}), where waiting for the calls would wait for itself
     */
    void close(LongConsumer free) {
        close(free, handle -> { });
    }

    /**
     * Closes the handle as {@link #close(LongConsumer)} does, and while calls hold it, passes
     * it to {@code nudge} (holding it as a call would) at once and then every 50 ms, so that
     * long calls (loads) can be told to end early.
     *
     * @param free frees the native object
     * @param nudge asks the running calls to end; must not throw
     * @throws IllegalStateException if this thread is inside a call holding the handle
     */
    void close(LongConsumer free, LongConsumer nudge) {
        if (lock.getReadHoldCount() > 0) {
            throw new IllegalStateException(
                    "cannot close the " + owner + " from inside one of its own calls");
        }
        boolean interrupted = false;
        boolean locked = lock.writeLock().tryLock();
        while (!locked) {
            long held = tryAcquire();
            if (held != 0) {
                try {
                    nudge.accept(held);
                } finally {
                    release();
                }
            }
            try {
                locked = lock.writeLock().tryLock(NUDGE_MS, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                // Closing must finish: keep waiting, and keep the interrupt for the caller.
                interrupted = true;
            }
        }
        try {
            if (handle != 0) {
                try {
                    free.accept(handle);
                } finally {
                    handle = 0;
                }
            }
        } finally {
            lock.writeLock().unlock();
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
