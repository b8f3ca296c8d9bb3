package vendor.rsheap;

/** How an asynchronous load of a session reports to its caller (since version 2). */
@VintfStability
oneway interface ILoadObserver {
    /** Bytes loaded so far, out of the segment's length (clamped to the file's end). */
    void onProgress(long bufferId, long bytesDone, long bytesTotal);
    /**
     * The load ended. `error` is 0 on success, else the IHeapBroker.ERROR_ code the
     * synchronous load would have returned (ERROR_CANCELLED once cancelled, freed or closed),
     * with `message`; `bytes` counts what arrived.
     */
    void onComplete(long bufferId, long bytes, int error, @nullable String message);
}
