package vendor.rsheap;

/** What a session may allocate (since version 2). */
@VintfStability
@RustDerive(Clone=true, PartialEq=true)
parcelable SessionLimits {
    /** The largest single buffer, in bytes. */
    long maxBufferSize;
    /** The most requests one batch takes. */
    int maxBatch;
    /** The page size: sizes are rounded up to it. */
    int pageSize;
    /** The caller's uid's quota, in bytes and in buffers, shared by its sessions. */
    long quotaBytes;
    int quotaBuffers;
    /**
     * What the uid holds now against that quota: every live buffer, freed to the broker or
     * not, until its last file descriptor and mapping are gone.
     */
    long usedBytes;
    int usedBuffers;
    /** Sessions the uid has open now (this one included), and the most it may. */
    int sessions;
    int maxSessions;
    /** Whether loads can bypass the page cache (rsheap's control device is present). */
    boolean directLoads;
    /** Whether shareReadOnly() works for buffers of rsheap's heaps. */
    boolean readOnlySharing;
}
