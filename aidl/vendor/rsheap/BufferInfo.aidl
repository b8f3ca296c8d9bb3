package vendor.rsheap;

import vendor.rsheap.Usage;

/** What the broker knows of one of the caller's buffers. */
@VintfStability
@RustDerive(Clone=true, PartialEq=true)
parcelable BufferInfo {
    /** The caller's handle for the buffer in load, free and list calls. Never reused. */
    long id;
    /** Bytes, a whole number of pages. */
    long size;
    /** The heap the buffer came from. */
    String heap;
    Usage usage = Usage.SCRATCH;
    boolean cached = true;
    /** The dma-buf's name, `<usage>-<pid>-<id>`, as fdinfo and dmabuf_dump show it. */
    String name;
    /** The debug name the allocation request gave, or empty. */
    String debugName;
}
