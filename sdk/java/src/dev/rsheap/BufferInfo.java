package dev.rsheap;

import java.util.Objects;

/** What the broker knows of one of this client's buffers. Immutable. */
public final class BufferInfo {
    private final long id;
    private final long size;
    private final String heap;
    private final Usage usage;
    private final boolean cached;
    private final String name;
    private final String debugName;

    /**
     * Made by the native library from the broker's {@code vendor.rsheap.BufferInfo}.
     *
     * @param id the broker's id of the buffer
     * @param size bytes
     * @param heap the heap it came from
     * @param usage the AIDL value of its usage
     * @param cached whether CPU access is cached
     * @param name its dma-buf name
     * @param debugName the debug name it was allocated with, or empty
     */
    BufferInfo(long id, long size, String heap, int usage, boolean cached, String name,
            String debugName) {
        this.id = id;
        this.size = size;
        this.heap = heap;
        this.usage = Usage.fromValue(usage);
        this.cached = cached;
        this.name = name;
        this.debugName = debugName;
    }

    /**
     * The broker's id of the buffer. Ids are never reused, not even across broker restarts.
     *
     * @return the id
     */
    public long id() {
        return id;
    }

    /**
     * The size: the size asked for, rounded up to whole pages.
     *
     * @return bytes
     */
    public long size() {
        return size;
    }

    /**
     * The heap the buffer came from.
     *
     * @return the name under {@code /dev/dma_heap}
     */
    public String heap() {
        return heap;
    }

    /**
     * What the buffer is for.
     *
     * @return the usage, or {@code null} if the broker reported one newer than this library
     */
    public Usage usage() {
        return usage;
    }

    /**
     * Whether CPU access to the buffer is cached.
     *
     * @return {@code true} for a cached buffer
     */
    public boolean cached() {
        return cached;
    }

    /**
     * The dma-buf's name, {@code <usage>-<pid>-<id>}, as {@code /proc/<pid>/fdinfo} and
     * {@code dmabuf_dump} show it.
     *
     * @return the name
     */
    public String name() {
        return name;
    }

    /**
     * The debug name the buffer was allocated with.
     *
     * @return the debug name, or an empty string
     */
    public String debugName() {
        return debugName;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof BufferInfo)) {
            return false;
        }
        BufferInfo that = (BufferInfo) other;
        return id == that.id
                && size == that.size
                && heap.equals(that.heap)
                && usage == that.usage
                && cached == that.cached
                && name.equals(that.name)
                && debugName.equals(that.debugName);
    }

    @Override
    public int hashCode() {
        return Objects.hash(id, size, heap, usage, cached, name, debugName);
    }

    @Override
    public String toString() {
        return "BufferInfo[id=" + id + ", size=" + size + ", heap=" + heap + ", usage=" + usage
                + ", cached=" + cached + ", name=" + name + ", debugName=" + debugName + "]";
    }
}
