package dev.rsheap;

import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * A dma-buf the broker allocated for this client: map it, load a file into it, close it to
 * free it.
 *
 * <p>Methods called after {@link #close()} throw {@link IllegalStateException}, except the
 * accessors of what the broker reported at allocation ({@link #id()}, {@link #size()},
 * {@link #name()}, {@link #heap()}, {@link #info()}). A Buffer is safe for use by several
 * threads; {@code close()} waits for calls running on other threads.
 */
public final class Buffer implements AutoCloseable {
    private final HeapBroker broker;
    private final NativeHandle handle;
    private final BufferInfo info;

    /**
     * Made by the native library when the broker allocated the buffer.
     *
     * @param broker the connection that allocated it
     * @param handle the native buffer, owned from here on
     * @param info what the broker reported
     */
    private Buffer(HeapBroker broker, long handle, BufferInfo info) {
        this.broker = broker;
        this.handle = new NativeHandle("Buffer " + info.id(), handle);
        this.info = info;
        broker.opened(this);
    }

    /**
     * The broker's id of the buffer.
     *
     * @return the id, unique among this client's buffers and never reused
     */
    public long id() {
        return info.id();
    }

    /**
     * The size: what was asked for, rounded up to whole pages.
     *
     * @return bytes
     */
    public long size() {
        return info.size();
    }

    /**
     * The dma-buf's name, {@code <usage>-<pid>-<id>}.
     *
     * @return the name
     */
    public String name() {
        return info.name();
    }

    /**
     * The heap the buffer came from.
     *
     * @return the name under {@code /dev/dma_heap}
     */
    public String heap() {
        return info.heap();
    }

    /**
     * Everything the broker reported when it allocated the buffer.
     *
     * @return the buffer's description
     */
    public BufferInfo info() {
        return info;
    }

    /**
     * The buffer's memory as a direct {@link ByteBuffer} of {@link #size()} bytes, read-write,
     * in big-endian order like every new ByteBuffer. The buffer is mapped on the first call
     * and stays mapped until {@link #close()}; each call returns a new ByteBuffer over the same
     * mapping, so positions and limits are not shared.
     *
     * <p><b>A ByteBuffer from here is valid only while the Buffer is open.</b> Closing the
     * Buffer (or its HeapBroker) unmaps the memory, and the JVM does not know: a later access
     * through the ByteBuffer touches unmapped memory and kills the process (HotSpot dies of
     * SIGSEGV in {@code Unsafe_GetByte}). Drop every ByteBuffer before closing.
     *
     * @return the mapped memory
     * @throws RsheapException if the buffer cannot be mapped
     * @throws IllegalStateException if the buffer is closed
     */
    public ByteBuffer map() throws RsheapException {
        long buffer = handle.acquire();
        try {
            return nativeMap(buffer);
        } finally {
            handle.release();
        }
    }

    /**
     * Opens a window of CPU access in {@code direction}; close it when the CPU is done, before
     * a device uses the buffer. See {@link CpuAccess}.
     *
     * @param direction whether the CPU reads, writes or both
     * @return the open access, to close
     * @throws RsheapException if the kernel refuses the sync
     * @throws IllegalStateException if the buffer is closed
     */
    public CpuAccess beginCpuAccess(CpuAccess.Direction direction) throws RsheapException {
        Objects.requireNonNull(direction, "direction");
        long buffer = handle.acquire();
        try {
            nativeSync(buffer, true, direction.flags());
        } finally {
            handle.release();
        }
        return new CpuAccess(this, direction);
    }

    /** Ends an access {@link CpuAccess#close()} ends, unless the buffer is closed. */
    void endCpuAccess(CpuAccess.Direction direction) throws RsheapException {
        long buffer = handle.acquireIfOpen();
        try {
            if (buffer != 0) {
                nativeSync(buffer, false, direction.flags());
            }
        } finally {
            handle.release();
        }
    }

    /**
     * Loads a whole file into the start of the buffer: the file's size or the buffer's,
     * whichever is less.
     *
     * @param path the file
     * @return bytes loaded
     * @throws RsheapException if the file cannot be opened (with its errno, such as
     *     {@code ENOENT}) or read, or the broker refuses the load
     * @throws IllegalStateException if the buffer or its HeapBroker is closed
     */
    public long loadFile(String path) throws RsheapException {
        return loadFile(path, 0, 0, -1, null);
    }

    /**
     * Loads a range of a file into the buffer, through the broker, by direct I/O where the
     * file allows. Blocks until the load ends.
     *
     * @param path the file, opened by this process for reading
     * @param fileOffset where in the file the range starts
     * @param bufferOffset where in the buffer it goes
     * @param length bytes to load, at most what the buffer holds from {@code bufferOffset};
     *     -1 loads up to the end of the file or of the buffer, whichever comes first
     * @param listener hears the progress on this thread, or {@code null}; its last report
     *     counts every byte loaded
     * @return bytes loaded: fewer than {@code length} when the file ends first
     * @throws RsheapException if the file cannot be opened (with its errno, such as
     *     {@code ENOENT}) or read, or the broker refuses the range
     *     ({@link RsheapException#ERROR_INVALID_ARGUMENT}) or no longer knows the buffer
     *     ({@link RsheapException#ERROR_NOT_FOUND}, after a broker restart)
     * @throws IllegalStateException if the buffer or its HeapBroker is closed
     */
    public long loadFile(String path, long fileOffset, long bufferOffset, long length,
            LoadListener listener) throws RsheapException {
        Objects.requireNonNull(path, "path");
        long connection = broker.handle().acquire();
        try {
            long buffer = handle.acquire();
            try {
                return nativeLoadFile(connection, buffer, path, fileOffset, bufferOffset, length,
                        listener);
            } finally {
                handle.release();
            }
        } finally {
            broker.handle().release();
        }
    }

    /**
     * Unmaps the buffer and frees it through the broker. Does nothing if closed already.
     *
     * <p>ByteBuffers from {@link #map()} must not be used afterwards. Closing never fails: a
     * broker that restarted has forgotten the buffer already, and one that cannot be reached
     * frees it when it sees this process die; the memory itself returns once no process and
     * no device holds the dma-buf.
     *
     * @throws IllegalStateException if called from a {@link LoadListener} of this buffer
     */
    @Override
    public void close() {
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
     * here when it is 0 (the HeapBroker is closed).
     */
    void free(long connection) {
        handle.close(buffer -> {
            broker.closed(this);
            nativeFree(connection, buffer);
        });
    }

    @Override
    public String toString() {
        return "Buffer[id=" + info.id() + ", name=" + info.name() + ", size=" + info.size()
                + ", heap=" + info.heap() + "]";
    }

    private static native ByteBuffer nativeMap(long handle) throws RsheapException;

    private static native long nativeLoadFile(long broker, long buffer, String path,
            long fileOffset, long bufferOffset, long length, LoadListener listener)
            throws RsheapException;

    private static native void nativeFree(long broker, long buffer);

    private static native void nativeSync(long buffer, boolean start, int direction)
            throws RsheapException;
}
