package dev.rsheap;

import java.io.FileDescriptor;
import java.lang.ref.WeakReference;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What a {@link Buffer} holds, kept apart from the Buffer itself so that a Buffer nobody
 * closed can be collected and then freed from here (see {@link Reclaimer}).
 *
 * <p>Lock order: the HeapBroker's handle, this buffer's handle, this object's monitor, a
 * {@link Region}'s monitor.
 */
final class BufferState {
    /** How many bytes one ByteBuffer can hold. */
    static final long MAX_VIEW = Integer.MAX_VALUE;

    final HeapBroker broker;
    final NativeHandle handle;
    final BufferInfo info;
    /** Loads running now, which closing cancels. */
    private final AtomicInteger loads = new AtomicInteger();
    /** Mappings whose ByteBuffer has not been collected yet; guarded by this. */
    private final Set<Region> regions = new HashSet<>();
    /** The ByteBuffer over the whole buffer while any view of it lives; guarded by this. */
    private WeakReference<ByteBuffer> whole;
    /** Whether the Buffer was collected unclosed; guarded by this. */
    private boolean forgotten;
    /** Frees this state if the Buffer is collected unclosed. */
    private Reclaimer.Tracked<Buffer> tracker;

    BufferState(HeapBroker broker, long handle, BufferInfo info) {
        this.broker = broker;
        this.handle = new NativeHandle("Buffer " + info.id(), handle);
        this.info = info;
    }

    /** Starts watching {@code buffer}, which owns this state, for being forgotten. */
    void track(Buffer buffer) {
        tracker = new Reclaimer.Tracked<Buffer>(buffer) {
            @Override
            void reclaim() {
                forgotten();
            }
        };
    }

    /** The whole buffer as a new view of one mapping; see {@link Buffer#map()}. */
    ByteBuffer mapWhole() throws RsheapException {
        if (info.size() > MAX_VIEW) {
            throw new UnsupportedOperationException("Buffer " + info.id() + " holds "
                    + info.size() + " bytes, more than a ByteBuffer can (" + MAX_VIEW
                    + "): map it in ranges with map(offset, length)");
        }
        long buffer = handle.acquire();
        try {
            ByteBuffer root;
            synchronized (this) {
                root = whole == null ? null : whole.get();
            }
            if (root == null) {
                root = mapRange(buffer, 0, (int) info.size());
                synchronized (this) {
                    whole = new WeakReference<>(root);
                }
            }
            return root.duplicate();
        } finally {
            handle.release();
        }
    }

    /** {@code length} bytes from {@code offset} in a mapping of their own. */
    ByteBuffer map(long offset, int length) throws RsheapException {
        if (offset < 0 || length <= 0 || offset > info.size() - length) {
            throw new IndexOutOfBoundsException(length + " bytes at offset " + offset
                    + " are not inside Buffer " + info.id() + " of " + info.size() + " bytes");
        }
        long buffer = handle.acquire();
        try {
            return mapRange(buffer, offset, length);
        } finally {
            handle.release();
        }
    }

    /** Maps a range while holding the handle {@code buffer}. */
    private ByteBuffer mapRange(long buffer, long offset, int length) throws RsheapException {
        long region = nativeMap(buffer, offset, length);
        ByteBuffer view;
        Region tracked;
        try {
            view = Region.nativeView(region, offset, length);
            tracked = new Region(view, region, this);
        } catch (RsheapException | RuntimeException | Error e) {
            Region.release(region);
            throw e;
        }
        // Under the buffer's handle: a close waits, and retires this region with the others.
        synchronized (this) {
            regions.add(tracked);
        }
        return view;
    }

    /** A Region's ByteBuffer was collected and its mapping released. */
    void regionGone(Region region) {
        boolean last;
        synchronized (this) {
            regions.remove(region);
            last = forgotten && regions.isEmpty();
        }
        if (last) {
            freeForgotten();
        }
    }

    /** The Buffer was collected unclosed: free it once no ByteBuffer of it is left. */
    private void forgotten() {
        boolean now;
        synchronized (this) {
            forgotten = true;
            now = regions.isEmpty();
        }
        if (now) {
            freeForgotten();
        }
    }

    private void freeForgotten() {
        if (handle.tryAcquire() == 0) {
            // Closed already, with its HeapBroker.
            return;
        }
        handle.release();
        Reclaimer.LOG.warning("rsheap: Buffer " + info.id() + " (" + info.name()
                + ") was not closed; freeing it");
        close();
    }

    /** Frees the buffer through its HeapBroker, if that is open; see {@link Buffer#close()}. */
    void close() {
        // The broker's handle first, as everywhere: it stays open (or closed) until this ends.
        long connection = broker.handle().acquireIfOpen();
        try {
            free(connection);
        } finally {
            broker.handle().release();
        }
    }

    /**
     * Closes the buffer, freeing it through the broker's handle {@code connection}, or only
     * here when it is 0 (the HeapBroker is closed). Loads running meanwhile are cancelled.
     */
    void free(long connection) {
        handle.close(buffer -> {
            closing();
            nativeFree(connection, buffer);
        }, buffer -> cancelRunning(connection, buffer));
    }

    /**
     * Closes the buffer as {@link #free(long)} does, but hands its native handle to the caller,
     * to free in a batch.
     *
     * @return the handle, or 0 if the buffer was closed already
     */
    long take(long connection) {
        long[] taken = {0};
        handle.close(buffer -> {
            closing();
            taken[0] = buffer;
        }, buffer -> cancelRunning(connection, buffer));
        return taken[0];
    }

    /** What closing does before the native buffer goes, under its handle's write lock. */
    private void closing() {
        broker.closed(this);
        if (tracker != null) {
            tracker.untrack();
        }
        List<Region> live;
        synchronized (this) {
            live = new ArrayList<>(regions);
            whole = null;
        }
        for (Region region : live) {
            region.retire();
        }
    }

    /** Cancels the buffer's running loads, while a close waits for them. */
    void cancelRunning(long connection, long buffer) {
        if (connection == 0 || loads.get() == 0) {
            return;
        }
        try {
            nativeCancelLoads(connection, buffer);
        } catch (RsheapException e) {
            // The loads end anyway: the broker forgot the buffer, or cannot be reached.
        }
    }

    /** Cancels the running loads if the handle is free to use now; for a closing HeapBroker. */
    void cancelRunning(long connection) {
        long buffer = handle.tryAcquire();
        if (buffer != 0) {
            try {
                cancelRunning(connection, buffer);
            } finally {
                handle.release();
            }
        }
    }

    /** See {@link Buffer#cancelLoads()}. */
    void cancelLoads() throws RsheapException {
        long connection = broker.handle().acquire();
        try {
            long buffer = handle.acquire();
            try {
                nativeCancelLoads(connection, buffer);
            } finally {
                handle.release();
            }
        } finally {
            broker.handle().release();
        }
    }

    /** Loads {@code path} or else {@code file}; see {@link Buffer#loadFile}. */
    long load(String path, FileDescriptor file, long fileOffset, long bufferOffset,
            long length, LoadListener listener) throws RsheapException {
        long connection = broker.handle().acquire();
        try {
            long buffer = handle.acquire();
            loads.incrementAndGet();
            try {
                return nativeLoad(connection, buffer, path, file, fileOffset, bufferOffset,
                        length, listener);
            } finally {
                loads.decrementAndGet();
                handle.release();
            }
        } finally {
            broker.handle().release();
        }
    }

    /** See {@link Buffer#beginCpuAccess}. */
    void sync(boolean start, int direction) throws RsheapException {
        // Ending an access of a closed buffer does nothing: unmapping ended it.
        long buffer = start ? handle.acquire() : handle.acquireIfOpen();
        try {
            if (buffer != 0) {
                nativeSync(buffer, start, direction);
            }
        } finally {
            handle.release();
        }
    }

    /** See {@link Buffer#dupFileDescriptor()}. */
    FileDescriptor dupFileDescriptor() throws RsheapException {
        long buffer = handle.acquire();
        try {
            return nativeDupFd(buffer);
        } finally {
            handle.release();
        }
    }

    /** See {@link Buffer#shareReadOnly()}. */
    FileDescriptor shareReadOnly() throws RsheapException {
        long connection = broker.handle().acquire();
        try {
            long buffer = handle.acquire();
            try {
                return nativeShareReadOnly(connection, buffer);
            } finally {
                handle.release();
            }
        } finally {
            broker.handle().release();
        }
    }

    private static native long nativeMap(long buffer, long offset, long length)
            throws RsheapException;

    private static native long nativeLoad(long broker, long buffer, String path,
            FileDescriptor file, long fileOffset, long bufferOffset, long length,
            LoadListener listener) throws RsheapException;

    private static native void nativeCancelLoads(long broker, long buffer)
            throws RsheapException;

    private static native void nativeFree(long broker, long buffer);

    private static native void nativeSync(long buffer, boolean start, int direction)
            throws RsheapException;

    private static native FileDescriptor nativeDupFd(long buffer) throws RsheapException;

    private static native FileDescriptor nativeShareReadOnly(long broker, long buffer)
            throws RsheapException;
}
