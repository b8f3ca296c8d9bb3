package vendor.rsheap;

/** How an asynchronous load reports to its caller. */
@VintfStability
oneway interface ILoadCallback {
    /** Bytes loaded so far, out of the segment's length (clamped to the file's end). */
    void onProgress(long bufferId, long bytesDone, long bytesTotal);
    /**
     * The load ended. `errno` is 0 on success; on failure it says why (ECANCELED if the
     * buffer was freed first), `message` explains, and `bytes` counts what arrived before.
     */
    void onComplete(long bufferId, long bytes, int errno, @nullable String message);
}
