package vendor.rsheap;

import vendor.rsheap.BufferInfo;

/** A buffer the broker allocated for the caller: its description and its dma-buf. */
@VintfStability
parcelable Buffer {
    BufferInfo info;
    /** The dma-buf, readable and writable; map it, or pass it to a device. */
    ParcelFileDescriptor fd;
}
