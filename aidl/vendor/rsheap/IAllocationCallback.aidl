package vendor.rsheap;

import vendor.rsheap.Buffer;

/** How an asynchronous allocation reports to its caller (since version 2). */
@VintfStability
oneway interface IAllocationCallback {
    /** The batch `cookie` names was allocated (and loaded), in the order it was asked. */
    void onAllocated(long cookie, in Buffer[] buffers);
    /**
     * The batch failed and nothing of it is kept: `error` is an IHeapBroker.ERROR_ code, as
     * the synchronous call would have returned, and `message` says why.
     */
    void onFailed(long cookie, int error, String message);
}
