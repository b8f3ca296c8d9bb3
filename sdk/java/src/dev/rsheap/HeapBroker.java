package dev.rsheap;

import java.io.FileDescriptor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
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

    /** Most requests one {@link #allocateBatch} or {@link #freeBatch} takes. */
    public static final int MAX_BATCH = 64;

    /** The numbers of one request in {@code nativeAllocateBatch}'s {@code numbers}. */
    private static final int REQUEST_NUMBERS = 6;

    private final NativeHandle handle;
    /**
     * Buffers allocated here and not closed yet, by what they hold (so that a forgotten Buffer
     * can still be collected); guarded by itself.
     */
    private final Set<BufferState> open = Collections.newSetFromMap(new IdentityHashMap<>());

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
     * Allocates a buffer as {@code request} says, loaded from its file if it has one: the
     * buffer comes back loaded, or the call fails and the broker keeps nothing of it.
     *
     * @param request size, options and the file range to load
     * @return the buffer; close it to free it
     * @throws RsheapException as {@link #allocate(long, AllocationOptions)} does, and as
     *     {@link Buffer#loadFile(FileDescriptor, long, long, long, LoadListener)} does for the
     *     load
     */
    public Buffer allocate(BufferRequest request) throws RsheapException {
        Objects.requireNonNull(request, "request");
        return allocateBatch(List.of(request)).get(0);
    }

    /**
     * Allocates {@code size} bytes and loads a range of {@code file} into the start of the new
     * buffer, in one call: for an {@code AssetFileDescriptor}, {@code
     * allocateAndLoad(asset.getLength(), options, asset.getFileDescriptor(),
     * asset.getStartOffset(), asset.getLength())}.
     *
     * @param size bytes; rounded up to whole pages
     * @param options usage, caching, heap and debug name
     * @param file the file, open for reading until the call returns
     * @param fileOffset where in the file the range starts
     * @param length bytes to load; -1 loads up to the end of the file or of the buffer
     * @return the loaded buffer; close it to free it
     * @throws RsheapException as {@link #allocate(BufferRequest)} does
     */
    public Buffer allocateAndLoad(long size, AllocationOptions options, FileDescriptor file,
            long fileOffset, long length) throws RsheapException {
        return allocate(BufferRequest.of(size, options).withLoad(file, fileOffset, 0, length));
    }

    /**
     * Allocates up to {@link #MAX_BATCH} buffers in one call, each loaded from its file if its
     * request has one: all of them, or none.
     *
     * @param requests what to allocate
     * @return the buffers, in the order asked
     * @throws RsheapException as {@link #allocate(BufferRequest)} does, for the first request
     *     that fails; {@link RsheapException#ERROR_INVALID_ARGUMENT} for no requests or more
     *     than {@link #MAX_BATCH}
     */
    public List<Buffer> allocateBatch(List<BufferRequest> requests) throws RsheapException {
        Objects.requireNonNull(requests, "requests");
        int count = requests.size();
        long[] numbers = new long[count * REQUEST_NUMBERS];
        String[] heaps = new String[count];
        String[] debugNames = new String[count];
        FileDescriptor[] files = new FileDescriptor[count];
        for (int i = 0; i < count; i++) {
            BufferRequest request = Objects.requireNonNull(requests.get(i), "request");
            AllocationOptions options = request.options();
            int at = i * REQUEST_NUMBERS;
            numbers[at] = request.size();
            numbers[at + 1] = options.usage().value();
            numbers[at + 2] = options.cached() ? 1 : 0;
            numbers[at + 3] = request.fileOffset();
            numbers[at + 4] = request.length();
            numbers[at + 5] = request.bufferOffset();
            heaps[i] = options.heap();
            debugNames[i] = options.debugName();
            files[i] = request.file();
        }
        long broker = handle.acquire();
        try {
            return List.of(nativeAllocateBatch(this, broker, numbers, heaps, debugNames, files));
        } finally {
            handle.release();
        }
    }

    /**
     * Closes up to {@link #MAX_BATCH} buffers of this connection, as {@link Buffer#close()}
     * does, and frees them at the broker in one call. Buffers closed already are skipped.
     * Never fails at the broker: if it refuses the batch (a buffer of a broker that has since
     * restarted), each buffer is freed alone.
     *
     * @param buffers the buffers
     * @throws IllegalArgumentException for more than {@link #MAX_BATCH} buffers, or a buffer
     *     of another HeapBroker; then nothing is closed
     * @throws IllegalStateException if called from a {@link LoadListener} of one of them
     */
    public void freeBatch(Collection<Buffer> buffers) {
        Objects.requireNonNull(buffers, "buffers");
        List<BufferState> states = new ArrayList<>(buffers.size());
        for (Buffer buffer : buffers) {
            BufferState state = Objects.requireNonNull(buffer, "buffer").state();
            if (state.broker != this) {
                throw new IllegalArgumentException(buffer + " is not of this HeapBroker");
            }
            states.add(state);
        }
        if (states.size() > MAX_BATCH) {
            throw new IllegalArgumentException(
                    "a batch frees at most " + MAX_BATCH + " buffers, not " + states.size());
        }
        long connection = handle.acquireIfOpen();
        try {
            long[] taken = new long[states.size()];
            int count = 0;
            try {
                for (BufferState state : states) {
                    long buffer = state.take(connection);
                    if (buffer != 0) {
                        taken[count++] = buffer;
                    }
                }
            } finally {
                nativeFreeBatch(connection, Arrays.copyOf(taken, count));
            }
        } finally {
            handle.release();
        }
    }

    /**
     * What this connection's session may allocate now: the largest buffer, the batch size,
     * the page size, this app's quota and what counts against it, its sessions, and whether
     * direct loads and read-only sharing work.
     *
     * @return a snapshot
     * @throws RsheapException if the broker cannot be reached
     */
    public SessionLimits limits() throws RsheapException {
        long broker = handle.acquire();
        try {
            return nativeLimits(broker);
        } finally {
            handle.release();
        }
    }

    /**
     * Closes every buffer of this connection that is still open (see {@link Buffer#close()}),
     * then the connection. Cancels the loads running on other threads and waits for them and
     * every other call; does nothing if closed already.
     *
     * @throws IllegalStateException if called from a {@link LoadListener} of this connection
     */
    @Override
    public void close() {
        handle.close(broker -> {
            try {
                for (BufferState buffer : takeOpen()) {
                    buffer.free(broker);
                }
            } finally {
                nativeClose(broker);
            }
        }, broker -> {
            for (BufferState buffer : openNow()) {
                buffer.cancelRunning(broker);
            }
        });
    }

    /** The connection's handle, for its buffers' calls. */
    NativeHandle handle() {
        return handle;
    }

    /** Notes a buffer allocated here; its constructor calls this. */
    void opened(BufferState buffer) {
        synchronized (open) {
            open.add(buffer);
        }
    }

    /** Notes a buffer closed. */
    void closed(BufferState buffer) {
        synchronized (open) {
            open.remove(buffer);
        }
    }

    private List<BufferState> takeOpen() {
        synchronized (open) {
            List<BufferState> buffers = new ArrayList<>(open);
            open.clear();
            return buffers;
        }
    }

    private List<BufferState> openNow() {
        synchronized (open) {
            return new ArrayList<>(open);
        }
    }

    private static native long nativeConnect() throws RsheapException;

    private static native void nativeClose(long handle);

    private static native Buffer nativeAllocate(HeapBroker owner, long handle, long size,
            int usage, boolean cached, String heap, String debugName) throws RsheapException;

    private static native Buffer[] nativeAllocateBatch(HeapBroker owner, long handle,
            long[] numbers, String[] heaps, String[] debugNames, FileDescriptor[] files)
            throws RsheapException;

    private static native void nativeFreeBatch(long handle, long[] buffers);

    private static native SessionLimits nativeLimits(long handle) throws RsheapException;

    private static native HeapInfo[] nativeHeaps(long handle) throws RsheapException;

    private static native BufferInfo[] nativeBuffers(long handle) throws RsheapException;
}
