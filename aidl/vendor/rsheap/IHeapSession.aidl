package vendor.rsheap;

import vendor.rsheap.Buffer;
import vendor.rsheap.BufferInfo;
import vendor.rsheap.BufferRequest;
import vendor.rsheap.FileSegment;
import vendor.rsheap.IAllocationCallback;
import vendor.rsheap.ILoadObserver;
import vendor.rsheap.SessionLimits;

/**
 * One client's session with the broker (since version 2), from IHeapBroker.openSession().
 *
 * A session owns the buffers allocated through it. It ends when close() is called, when the
 * client drops its last reference to it, or when the token it was opened with dies; the
 * broker then frees its buffers and cancels its loads. Calls on an ended session fail with
 * ERROR_SESSION_CLOSED.
 *
 * Errors are service-specific with an IHeapBroker.ERROR_ code and a message, and the
 * asynchronous calls report the same codes to their callbacks.
 */
@VintfStability
interface IHeapSession {
    /**
     * Allocates one buffer, and loads the request's segment into it if it has one. Large
     * allocations run on the broker's allocation workers; when too many callers wait for them
     * already the call fails with ERROR_BUSY: allocate asynchronously instead.
     */
    Buffer allocate(in BufferRequest request);

    /** Allocates up to IHeapBroker.MAX_BATCH buffers, all or none. */
    Buffer[] allocateBatch(in BufferRequest[] requests);

    /**
     * Queues the same batch and returns at once, once the requests are checked;
     * `callback` gets the buffers (or the error) under `cookie`, a number of the caller's.
     * Fails with ERROR_BUSY when the allocation queue is full.
     */
    void allocateAsync(in BufferRequest[] requests, long cookie,
            IAllocationCallback callback);

    /**
     * Loads a file segment into a buffer by direct I/O where the file allows, and returns
     * the bytes loaded: fewer than asked when the file ends first.
     */
    long loadFile(long bufferId, in FileSegment segment);

    /** Queues the same load and returns once its arguments are checked. */
    void loadFileAsync(long bufferId, in FileSegment segment, ILoadObserver observer);

    /**
     * Cancels the loads into a buffer, queued and running: each ends with ERROR_CANCELLED
     * and keeps what it loaded so far. The buffer stays allocated.
     */
    void cancelLoads(long bufferId);

    /** Frees a buffer, cancelling its loads. */
    void free(long bufferId);

    /** Frees several buffers: all of them, or none if one is not found. */
    void freeBatch(in long[] bufferIds);

    /** The session's buffers, oldest first. */
    BufferInfo[] listBuffers();

    /**
     * A read-only dma-buf over the same memory as one of the session's buffers, to hand to
     * a process that may read but must not write it. The kernel enforces it: the new file
     * descriptor cannot be mapped writable, loaded into or reopened for writing, and devices
     * may only read through it. The buffer counts against the session's uid for as long as
     * any descriptor of it lives. ERROR_UNSUPPORTED where the heap or the kernel cannot.
     */
    ParcelFileDescriptor shareReadOnly(long bufferId);

    /** What the session may allocate, so a client can size its pools at start. */
    SessionLimits getLimits();

    /** Ends the session: frees its buffers and cancels its loads. */
    void close();
}
