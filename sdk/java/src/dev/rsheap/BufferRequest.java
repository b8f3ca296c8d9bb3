package dev.rsheap;

import java.io.FileDescriptor;
import java.util.Objects;

/**
 * One buffer to allocate with {@link HeapBroker#allocate(BufferRequest)} or
 * {@link HeapBroker#allocateBatch}: its size, its {@link AllocationOptions}, and optionally a
 * range of a file the broker loads into it before handing it over. Immutable.
 *
 * <pre>{@code
 * try (AssetFileDescriptor asset = assets.openFd("model.bin")) {
 *     Buffer weights = broker.allocate(BufferRequest.of(asset.getLength(),
 *                     AllocationOptions.forUsage(Usage.MODEL_WEIGHTS))
 *             .withLoad(asset.getFileDescriptor(), asset.getStartOffset(), 0,
 *                     asset.getLength()));
 * }
 * }</pre>
 */
public final class BufferRequest {
    private final long size;
    private final AllocationOptions options;
    private final FileDescriptor file;
    private final long fileOffset;
    private final long bufferOffset;
    private final long length;

    private BufferRequest(long size, AllocationOptions options, FileDescriptor file,
            long fileOffset, long bufferOffset, long length) {
        this.size = size;
        this.options = Objects.requireNonNull(options, "options");
        this.file = file;
        this.fileOffset = fileOffset;
        this.bufferOffset = bufferOffset;
        this.length = length;
    }

    /**
     * A request for {@code size} bytes as {@code options} say, not loaded.
     *
     * @param size bytes; rounded up to whole pages
     * @param options usage, caching, heap and debug name
     * @return the request
     */
    public static BufferRequest of(long size, AllocationOptions options) {
        return new BufferRequest(size, options, null, 0, 0, -1);
    }

    /**
     * This request, loaded from {@code file}: the buffer comes back with the range loaded, or
     * the allocation fails and the broker keeps nothing of it. The file must stay open until
     * the allocation returns; the broker reads its own duplicate, with the file's position
     * untouched.
     *
     * @param file the file, open for reading
     * @param fileOffset where in the file the range starts
     * @param bufferOffset where in the buffer it goes
     * @param length bytes to load; -1 loads up to the end of the file or of the buffer,
     *     whichever comes first
     * @return the changed request
     */
    public BufferRequest withLoad(FileDescriptor file, long fileOffset, long bufferOffset,
            long length) {
        return new BufferRequest(size, options, Objects.requireNonNull(file, "file"),
                fileOffset, bufferOffset, length);
    }

    /**
     * The size asked for.
     *
     * @return bytes
     */
    public long size() {
        return size;
    }

    /**
     * How to allocate.
     *
     * @return the options
     */
    public AllocationOptions options() {
        return options;
    }

    /**
     * The file to load from.
     *
     * @return the file, or {@code null} for a request without a load
     */
    public FileDescriptor file() {
        return file;
    }

    /**
     * Where in the file the range starts.
     *
     * @return bytes
     */
    public long fileOffset() {
        return fileOffset;
    }

    /**
     * Where in the buffer the range goes.
     *
     * @return bytes
     */
    public long bufferOffset() {
        return bufferOffset;
    }

    /**
     * Bytes to load.
     *
     * @return bytes, or -1 for up to the end of the file or of the buffer
     */
    public long length() {
        return length;
    }

    @Override
    public String toString() {
        return "BufferRequest[size=" + size + ", options=" + options
                + (file == null ? "" : ", load " + length + " bytes at file offset "
                        + fileOffset + " to buffer offset " + bufferOffset)
                + "]";
    }
}
