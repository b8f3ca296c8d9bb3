package vendor.rsheap;

import vendor.rsheap.Usage;

/** A heap the broker allocates from, with what it holds there for all clients. */
@VintfStability
@RustDerive(Clone=true, PartialEq=true)
parcelable HeapInfo {
    /** The name under /dev/dma_heap. */
    String name;
    /** Whether CPU access to its buffers is cached. */
    boolean cached;
    /** The usages that pick this heap first. */
    Usage[] usages;
    /** Buffers the broker holds in this heap now. */
    int buffers;
    /** Bytes of those buffers. */
    long bytes;
    /** Allocations this heap served since the broker started. */
    long allocations;
    /** Allocations this heap could not serve (and that fell back or failed). */
    long failures;
}
