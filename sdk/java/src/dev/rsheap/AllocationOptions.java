package dev.rsheap;

import java.util.Objects;

/**
 * How to allocate a buffer: its usage, whether CPU access is cached, a heap to use instead of
 * the usage's, and a debug name. Immutable; each {@code with} method returns a changed copy.
 *
 * <pre>{@code
 * AllocationOptions options = AllocationOptions.forUsage(Usage.CAMERA_FRAME)
 *         .withCached(false)
 *         .withDebugName("preview");
 * }</pre>
 */
public final class AllocationOptions {
    private final Usage usage;
    private final boolean cached;
    private final String heap;
    private final String debugName;

    private AllocationOptions(Usage usage, boolean cached, String heap, String debugName) {
        this.usage = Objects.requireNonNull(usage, "usage");
        this.cached = cached;
        this.heap = heap;
        this.debugName = debugName;
    }

    /**
     * Options for {@code usage}: cached, on the heap the broker's configuration gives the
     * usage, without a debug name.
     *
     * @param usage what the buffer is for
     * @return the options
     */
    public static AllocationOptions forUsage(Usage usage) {
        return new AllocationOptions(usage, true, null, null);
    }

    /**
     * These options with CPU access through the caches or not. Uncached buffers suit memory a
     * device writes and the CPU reads once.
     *
     * @param cached whether CPU access goes through the CPU caches
     * @return the changed options
     */
    public AllocationOptions withCached(boolean cached) {
        return new AllocationOptions(usage, cached, heap, debugName);
    }

    /**
     * These options with a heap of the broker's (see {@link HeapBroker#heaps()}) to allocate
     * from instead of the usage's.
     *
     * @param heap a heap name, or {@code null} to let the usage decide
     * @return the changed options
     */
    public AllocationOptions withHeap(String heap) {
        return new AllocationOptions(usage, cached, heap, debugName);
    }

    /**
     * These options with free text for the broker's listings.
     *
     * @param debugName up to 63 bytes of UTF-8, or {@code null} for none
     * @return the changed options
     */
    public AllocationOptions withDebugName(String debugName) {
        return new AllocationOptions(usage, cached, heap, debugName);
    }

    /**
     * What the buffer is for.
     *
     * @return the usage
     */
    public Usage usage() {
        return usage;
    }

    /**
     * Whether CPU access goes through the CPU caches.
     *
     * @return {@code true} for a cached buffer
     */
    public boolean cached() {
        return cached;
    }

    /**
     * The heap to allocate from instead of the usage's.
     *
     * @return a heap name, or {@code null}
     */
    public String heap() {
        return heap;
    }

    /**
     * The debug name.
     *
     * @return the debug name, or {@code null}
     */
    public String debugName() {
        return debugName;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof AllocationOptions)) {
            return false;
        }
        AllocationOptions that = (AllocationOptions) other;
        return usage == that.usage
                && cached == that.cached
                && Objects.equals(heap, that.heap)
                && Objects.equals(debugName, that.debugName);
    }

    @Override
    public int hashCode() {
        return Objects.hash(usage, cached, heap, debugName);
    }

    @Override
    public String toString() {
        return "AllocationOptions[usage=" + usage + ", cached=" + cached + ", heap=" + heap
                + ", debugName=" + debugName + "]";
    }
}
