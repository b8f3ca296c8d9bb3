package dev.rsheap;

/**
 * What this client's session with the broker may allocate, from {@link HeapBroker#limits()}:
 * enough to size pools at start. Immutable.
 */
public final class SessionLimits {
    private final long maxBufferSize;
    private final int maxBatch;
    private final int pageSize;
    private final long quotaBytes;
    private final int quotaBuffers;
    private final long usedBytes;
    private final int usedBuffers;
    private final int sessions;
    private final int maxSessions;
    private final boolean directLoads;
    private final boolean readOnlySharing;

    /** Made by the native library from the broker's {@code vendor.rsheap.SessionLimits}. */
    SessionLimits(long maxBufferSize, int maxBatch, int pageSize, long quotaBytes,
            int quotaBuffers, long usedBytes, int usedBuffers, int sessions, int maxSessions,
            boolean directLoads, boolean readOnlySharing) {
        this.maxBufferSize = maxBufferSize;
        this.maxBatch = maxBatch;
        this.pageSize = pageSize;
        this.quotaBytes = quotaBytes;
        this.quotaBuffers = quotaBuffers;
        this.usedBytes = usedBytes;
        this.usedBuffers = usedBuffers;
        this.sessions = sessions;
        this.maxSessions = maxSessions;
        this.directLoads = directLoads;
        this.readOnlySharing = readOnlySharing;
    }

    /**
     * The largest single buffer.
     *
     * @return bytes
     */
    public long maxBufferSize() {
        return maxBufferSize;
    }

    /**
     * The most requests one {@link HeapBroker#allocateBatch} or {@link HeapBroker#freeBatch}
     * takes.
     *
     * @return a count
     */
    public int maxBatch() {
        return maxBatch;
    }

    /**
     * The page size the broker rounds sizes up to.
     *
     * @return bytes
     */
    public int pageSize() {
        return pageSize;
    }

    /**
     * This app's uid's quota of bytes, shared by all its sessions.
     *
     * @return bytes
     */
    public long quotaBytes() {
        return quotaBytes;
    }

    /**
     * The uid's quota of buffers.
     *
     * @return a count
     */
    public int quotaBuffers() {
        return quotaBuffers;
    }

    /**
     * Bytes the uid holds against its quota now: every live buffer, closed or not, until its
     * last file descriptor and mapping are gone.
     *
     * @return bytes
     */
    public long usedBytes() {
        return usedBytes;
    }

    /**
     * Buffers the uid holds against its quota now.
     *
     * @return a count
     */
    public int usedBuffers() {
        return usedBuffers;
    }

    /**
     * Sessions the uid has open now, this one included.
     *
     * @return a count
     */
    public int sessions() {
        return sessions;
    }

    /**
     * The most sessions the uid may have open.
     *
     * @return a count
     */
    public int maxSessions() {
        return maxSessions;
    }

    /**
     * Whether loads can bypass the page cache (rsheap's control device is there).
     *
     * @return {@code true} if they can
     */
    public boolean directLoads() {
        return directLoads;
    }

    /**
     * Whether {@link Buffer#shareReadOnly()} works for buffers of rsheap's heaps.
     *
     * @return {@code true} if it does
     */
    public boolean readOnlySharing() {
        return readOnlySharing;
    }

    @Override
    public String toString() {
        return "SessionLimits[maxBufferSize=" + maxBufferSize + ", maxBatch=" + maxBatch
                + ", pageSize=" + pageSize + ", quotaBytes=" + quotaBytes + ", quotaBuffers="
                + quotaBuffers + ", usedBytes=" + usedBytes + ", usedBuffers=" + usedBuffers
                + ", sessions=" + sessions + ", maxSessions=" + maxSessions + ", directLoads="
                + directLoads + ", readOnlySharing=" + readOnlySharing + "]";
    }
}
