package dev.rsheap;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * A connection to rsheapd, the broker: allocates {@link Buffer}s and reports the broker's
 * heaps and this client's buffers.
 *
 * <p>The broker knows each connection as one client. When the broker restarts, the connection
 * reconnects by itself on its next call, so the same object serves again; buffers of the old
 * broker are unknown to the new one ({@link RsheapException#ERROR_NOT_FOUND}). When the client's
 * process dies, the broker frees everything the client held.
 *
 * <p>Closing the connection closes every buffer it allocated that is still open. Methods
 * called after {@link #close()} throw {@link IllegalStateException}. A HeapBroker is safe for
 * use by several threads; calls run concurrently, and {@code close()} waits for them.
 */
public final class HeapBroker implements AutoCloseable {
    static {
        // Registers the natives of this class and of Buffer.
        System.loadLibrary("rsheap_jni");
    }

    private final NativeHandle handle;
    /** Buffers allocated here and not closed yet; guarded by itself. */
    private final Set<Buffer> open = Collections.newSetFromMap(new IdentityHashMap<>());

    private HeapBroker(long handle) {
        this.handle = new NativeHandle("HeapBroker", handle);
    }

    /**
     * Connects to {@code vendor.rsheap.IHeapBroker/default}, waiting up to 5 seconds for it to
     * be registered.
     *
     * @return the connection
     * @throws RsheapException if the broker is not registered or does not answer
     */
    public static HeapBroker connect() throws RsheapException {
        return new HeapBroker(nativeConnect());
    }

    /**
     * Allocates a cached buffer for {@code usage} on the usage's heap.
     *
     * @param size bytes; rounded up to whole pages
     * @param usage what the buffer is for
     * @return the buffer; close it to free it
     * @throws RsheapException if the broker refuses or fails: {@code size} not positive
     *     ({@link RsheapException#ERROR_INVALID_ARGUMENT}), over the quota, out of memory
     */
    public Buffer allocate(long size, Usage usage) throws RsheapException {
        return allocate(size, AllocationOptions.forUsage(usage));
    }

    /**
     * Allocates a buffer as {@code options} say.
     *
     * @param size bytes; rounded up to whole pages
     * @param options usage, caching, heap and debug name
     * @return the buffer; close it to free it
     * @throws RsheapException if the broker refuses or fails: {@code size} not positive
     *     ({@link RsheapException#ERROR_INVALID_ARGUMENT}), a heap the device does not have
     *     ({@link RsheapException#ERROR_UNSUPPORTED}), over the quota, out of memory
     */
    public Buffer allocate(long size, AllocationOptions options) throws RsheapException {
        Objects.requireNonNull(options, "options");
        long broker = handle.acquire();
        try {
            return nativeAllocate(this, broker, size, options.usage().value(),
                    options.cached(), options.heap(), options.debugName());
        } finally {
            handle.release();
        }
    }

    /**
     * The heaps the broker allocates from, with its accounting of each for all its clients.
     *
     * @return a snapshot, in the broker's order
     * @throws RsheapException if the broker cannot be reached
     */
    public List<HeapInfo> heaps() throws RsheapException {
        long broker = handle.acquire();
        try {
            return List.of(nativeHeaps(broker));
        } finally {
            handle.release();
        }
    }

    /**
     * This client's buffers as the broker lists them.
     *
     * @return a snapshot, oldest first
     * @throws RsheapException if the broker cannot be reached
     */
    public List<BufferInfo> buffers() throws RsheapException {
        long broker = handle.acquire();
        try {
            return List.of(nativeBuffers(broker));
        } finally {
            handle.release();
        }
    }

    /**
     * Closes every buffer of this connection that is still open (see {@link Buffer#close()}),
     * then the connection. Waits for calls running on other threads; does nothing if closed
     * already.
     *
     * @throws IllegalStateException if called from a {@link LoadListener} of this connection
     */
    @Override
    public void close() {
        handle.close(broker -> {
            try {
                for (Buffer buffer : takeOpen()) {
                    buffer.free(broker);
                }
            } finally {
                nativeClose(broker);
            }
        });
    }

    /** The connection's handle, for its buffers' calls. */
    NativeHandle handle() {
        return handle;
    }

    /** Notes a buffer allocated here; its constructor calls this. */
    void opened(Buffer buffer) {
        synchronized (open) {
            open.add(buffer);
        }
    }

    /** Notes a buffer closed. */
    void closed(Buffer buffer) {
        synchronized (open) {
            open.remove(buffer);
        }
    }

    private List<Buffer> takeOpen() {
        synchronized (open) {
            List<Buffer> buffers = new ArrayList<>(open);
            open.clear();
            return buffers;
        }
    }

    private static native long nativeConnect() throws RsheapException;

    private static native void nativeClose(long handle);

    private static native Buffer nativeAllocate(HeapBroker owner, long handle, long size,
            int usage, boolean cached, String heap, String debugName) throws RsheapException;

    private static native HeapInfo[] nativeHeaps(long handle) throws RsheapException;

    private static native BufferInfo[] nativeBuffers(long handle) throws RsheapException;
}
