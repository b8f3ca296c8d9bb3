package dev.rsheap;

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
        if (lock.getReadHoldCount() > 0) {
            throw new IllegalStateException(
                    "cannot close the " + owner + " from inside one of its own calls");
        }
        lock.writeLock().lock();
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
        }
    }
}
