package vendor.rsheap;

import vendor.rsheap.Usage;

/** One buffer to allocate. */
@VintfStability
@RustDerive(Clone=true, PartialEq=true)
parcelable AllocationRequest {
    /** Bytes; the broker rounds up to whole pages. Must be positive. */
    long size;
    /** Decides the heap, unless `heap` names one, and the buffer's name. */
    Usage usage = Usage.SCRATCH;
    /**
     * A heap from getHeaps() to allocate from, or null to let the usage decide (with
     * fallback to the next heap the configuration lists for it).
     */
    @nullable String heap;
    /**
     * Whether CPU access goes through the CPU caches. Uncached buffers suit memory a device
     * writes and the CPU reads once; they cost nothing to hand between devices.
     */
    boolean cached = true;
    /** Free text shown in listBuffers() and in the broker's dump, up to 63 bytes. */
    @nullable String debugName;
}
