package dev.rsheap;

import java.io.FileDescriptor;
import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.util.Objects;

/**
 * A dma-buf the broker allocated for this client: map it, load a file into it, hand its file
 * descriptor to a device or another process, close it to free it.
 *
 * <p>Methods called after {@link #close()} throw {@link IllegalStateException}, except the
 * accessors of what the broker reported at allocation ({@link #id()}, {@link #size()},
 * {@link #name()}, {@link #heap()}, {@link #info()}). A Buffer is safe for use by several
 * threads; {@code close()} cancels the loads running on other threads and waits for them and
 * for every other call.
 *
 * <p>A Buffer that becomes unreachable without being closed is freed at the broker anyway,
 * with a warning in the log ({@code dev.rsheap}, logcat on Android), once no ByteBuffer from
 * {@link #map()} is reachable either: a daemon thread watches for it with a phantom reference.
 * Close buffers when done with them all the same: the collector may take its time.
 */
public final class Buffer implements AutoCloseable {
    private final BufferState state;

    /**
     * Made by the native library when the broker allocated the buffer.
     *
     * @param broker the connection that allocated it
     * @param handle the native buffer, owned from here on
     * @param info what the broker reported
     */
    private Buffer(HeapBroker broker, long handle, BufferInfo info) {
        this.state = new BufferState(broker, handle, info);
        broker.opened(state);
        state.track(this);
    }

    /** What this Buffer holds, for its HeapBroker. */
    BufferState state() {
        return state;
    }

    /**
     * The broker's id of the buffer.
     *
     * @return the id, unique among this client's buffers and never reused
     */
    public long id() {
        return state.info.id();
    }

    /**
     * The size: what was asked for, rounded up to whole pages.
     *
     * @return bytes
     */
    public long size() {
        return state.info.size();
    }

    /**
     * The dma-buf's name, {@code <usage>-<pid>-<id>}.
     *
     * @return the name
     */
    public String name() {
        return state.info.name();
    }

    /**
     * The heap the buffer came from.
     *
     * @return the name under {@code /dev/dma_heap}
     */
    public String heap() {
        return state.info.heap();
    }

    /**
     * Everything the broker reported when it allocated the buffer.
     *
     * @return the buffer's description
     */
    public BufferInfo info() {
        return state.info;
    }

    /**
     * The buffer's memory as a direct {@link ByteBuffer} of {@link #size()} bytes, read-write,
     * in big-endian order like every new ByteBuffer. Each call returns a new ByteBuffer, with
     * its own position and limit, over one mapping of the whole buffer that lasts while any of
     * them is reachable.
     *
     * <p>A ByteBuffer holds at most 2 GiB - 1 bytes: map larger buffers in ranges with
     * {@link #map(long, int)}.
     *
     * <p><b>After {@link #close()}</b> (of the Buffer or its HeapBroker) the ByteBuffers no
     * longer reach the buffer, and using them does not crash the process: the mapping is
     * replaced in place by zeroed memory private to this process, so reads return zeros (or
     * what later writes put there) and writes go nowhere near the freed buffer. That memory is
     * given back once the ByteBuffers are collected. The desktop JVM and ART behave the same:
     * neither has a public way to make a ByteBuffer throw once its memory is gone (Android's
     * {@code SharedMemory.unmap} uses a hidden API for that), so a stale access is not
     * reported, only made harmless.
     *
     * @return the mapped memory
     * @throws RsheapException if the buffer cannot be mapped
     * @throws UnsupportedOperationException if the buffer holds 2 GiB or more
     * @throws IllegalStateException if the buffer is closed
     */
    public ByteBuffer map() throws RsheapException {
        try {
            return state.mapWhole();
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * {@code length} bytes of the buffer from {@code offset}, as a direct {@link ByteBuffer}
     * of their own, read-write and big-endian. {@code offset} need not be page-aligned: the
     * mapping covers the whole pages around the range, and the ByteBuffer starts at {@code
     * offset} exactly. Each call makes a new mapping, which lasts while the ByteBuffer (or a
     * slice or view of it) is reachable; after {@link #close()} it behaves as {@link #map()}'s
     * do.
     *
     * @param offset where in the buffer the range starts; any value up to 2^63 - 1
     * @param length bytes, at least 1
     * @return the mapped range
     * @throws RsheapException if the range cannot be mapped
     * @throws IndexOutOfBoundsException if the range is not inside the buffer
     * @throws IllegalStateException if the buffer is closed
     */
    public ByteBuffer map(long offset, int length) throws RsheapException {
        try {
            return state.map(offset, length);
        } finally {
            Reference.reachabilityFence(this);
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
        state.sync(true, direction.flags());
        return new CpuAccess(this, direction);
    }

    /** Ends an access {@link CpuAccess#close()} ends, unless the buffer is closed. */
    void endCpuAccess(CpuAccess.Direction direction) throws RsheapException {
        state.sync(false, direction.flags());
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
     * file allows. Blocks until the load ends; {@link #close()} or {@link #cancelLoads()} on
     * another thread ends it early.
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
     *     ({@link RsheapException#ERROR_NOT_FOUND}, after a broker restart), or the load was
     *     cancelled ({@link RsheapException#ERROR_CANCELLED}); a cancelled load keeps what it
     *     loaded
     * @throws IllegalStateException if the buffer or its HeapBroker is closed
     */
    public long loadFile(String path, long fileOffset, long bufferOffset, long length,
            LoadListener listener) throws RsheapException {
        Objects.requireNonNull(path, "path");
        try {
            return state.load(path, null, fileOffset, bufferOffset, length, listener);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Loads a range of an open file into the buffer, as {@link #loadFile(String, long, long,
     * long, LoadListener)} loads a path: for a file this process cannot name, such as an app
     * asset ({@code AssetFileDescriptor}: its {@code getFileDescriptor()}, {@code
     * getStartOffset()} and {@code getLength()}) or a {@code ParcelFileDescriptor} from
     * another process ({@code getFileDescriptor()}). The broker reads its own duplicate of the
     * descriptor at the given offsets, so the file's position stays as it was; the
     * descriptor must stay open until the call returns.
     *
     * @param file the file, open for reading
     * @param fileOffset where in the file the range starts
     * @param bufferOffset where in the buffer it goes
     * @param length bytes to load; -1 loads up to the end of the file or of the buffer
     * @param listener hears the progress on this thread, or {@code null}
     * @return bytes loaded: fewer than {@code length} when the file ends first
     * @throws RsheapException as the path form does; {@link RsheapException#ERROR_INVALID_ARGUMENT}
     *     if {@code file} is not open
     * @throws IllegalStateException if the buffer or its HeapBroker is closed
     */
    public long loadFile(FileDescriptor file, long fileOffset, long bufferOffset, long length,
            LoadListener listener) throws RsheapException {
        Objects.requireNonNull(file, "file");
        try {
            return state.load(null, file, fileOffset, bufferOffset, length, listener);
        } finally {
            Reference.reachabilityFence(this);
        }
    }

    /**
     * Cancels the loads into this buffer that other threads wait for: each ends with {@link
     * RsheapException#ERROR_CANCELLED} at the broker's next chunk (about 100 ms) and keeps what
     * it loaded so far. The buffer stays open.
     *
     * @throws RsheapException if the broker cannot be reached or no longer knows the buffer
     * @throws IllegalStateException if the buffer or its HeapBroker is closed
     */
    public void cancelLoads() throws RsheapException {
        state.cancelLoads();
    }

    /**
     * A new file descriptor of the dma-buf, close-on-exec, owned by the caller: to pass the
     * buffer to a device API or to another process, whatever becomes of this Buffer. The
     * memory lives, and counts against this app's quota, until every descriptor of it is
     * closed.
     *
     * <p>On Android, wrap it for Binder, MediaCodec or NNAPI with {@code
     * ParcelFileDescriptor.dup(fd)} and close this one with {@code android.system.Os.close(fd)}
     * (both public API). On the desktop JVM, closing a {@code new FileInputStream(fd)} closes
     * it.
     *
     * @return the descriptor
     * @throws RsheapException if the process is out of file descriptors
     * @throws IllegalStateException if the buffer is closed
     */
    public FileDescriptor dupFileDescriptor() throws RsheapException {
        return state.dupFileDescriptor();
    }

    /**
     * A read-only dma-buf over this buffer's memory, from the broker, owned by the caller: for
     * a process that may read the buffer but must not write it. The kernel enforces it: the
     * descriptor maps only readable, cannot be loaded into or reopened for writing, and
     * devices may only read through it. It keeps the memory alive, counted against this app's
     * quota, after the buffer is closed too, until it is closed. Pass it on as {@link
     * #dupFileDescriptor()} says.
     *
     * @return the read-only descriptor
     * @throws RsheapException {@link RsheapException#ERROR_UNSUPPORTED} for a buffer of
     *     another heap than rsheap's, or where the kernel cannot share read-only
     * @throws IllegalStateException if the buffer or its HeapBroker is closed
     */
    public FileDescriptor shareReadOnly() throws RsheapException {
        return state.shareReadOnly();
    }

    /**
     * Frees the buffer through the broker, after cancelling its running loads, and makes the
     * ByteBuffers from {@link #map()} harmless (see there). Does nothing if closed already.
     *
     * <p>A load running on another thread ends with {@link RsheapException#ERROR_CANCELLED}
     * within about 100 ms instead of running to its end. Closing never fails: a broker that
     * restarted has forgotten the buffer already, and one that cannot be reached frees it when
     * it sees this process die; the memory itself returns once no process and no device holds
     * the dma-buf.
     *
     * @throws IllegalStateException if called from a {@link LoadListener} of this buffer
     */
    @Override
    public void close() {
        state.close();
    }

    @Override
    public String toString() {
        BufferInfo info = state.info;
        return "Buffer[id=" + info.id() + ", name=" + info.name() + ", size=" + info.size()
                + ", heap=" + info.heap() + "]";
    }
}
