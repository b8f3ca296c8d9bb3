package vendor.rsheap;

import vendor.rsheap.AllocationRequest;
import vendor.rsheap.Buffer;
import vendor.rsheap.BufferInfo;
import vendor.rsheap.FileSegment;
import vendor.rsheap.HeapInfo;
import vendor.rsheap.IHeapSession;
import vendor.rsheap.ILoadCallback;

/**
 * Allocates dma-buf buffers for camera and NPU clients, names and accounts them per client,
 * loads files into them, and frees what a client leaves behind when it dies.
 *
 * Since version 2 a client opens an IHeapSession and works through it; the calls below that
 * take `client` are version 1's and keep working, each `client` token standing for one
 * implicit session. A version 1 client passes a binder object it creates once and keeps for
 * its lifetime. A client is that binder together with the caller's uid. Its
 * buffers are invisible to every other client, and when the binder dies the broker frees
 * them and cancels their loads. Freeing drops the broker's reference: a buffer's memory
 * returns once every file descriptor and mapping of it is gone.
 *
 * Errors are service-specific, with one of the ERROR_ codes below and a message.
 */
@VintfStability
interface IHeapBroker {
    /** A size, offset, name, file or heap is not acceptable. */
    const int ERROR_INVALID_ARGUMENT = 1;
    /** No configured heap had the memory. */
    const int ERROR_NO_MEMORY = 2;
    /** The caller's uid would exceed its quota of bytes or buffers. */
    const int ERROR_QUOTA_EXCEEDED = 3;
    /** The caller has no buffer with this id. */
    const int ERROR_NOT_FOUND = 4;
    /** Reading the file failed. */
    const int ERROR_IO = 5;
    /** The device does not offer this: a heap it does not have, or none of a usage's heaps. */
    const int ERROR_UNSUPPORTED = 6;
    /** Too many loads are queued or waiting; try again, or load asynchronously. */
    const int ERROR_BUSY = 7;
    /** The load or allocation was cancelled (since version 2). */
    const int ERROR_CANCELLED = 8;
    /** The session has ended (since version 2). */
    const int ERROR_SESSION_CLOSED = 9;

    /** Most requests one allocateBatch() takes. */
    const int MAX_BATCH = 64;

    /** The heaps the broker allocates from, with its accounting for each. */
    HeapInfo[] getHeaps();

    /** Allocates one buffer. */
    Buffer allocate(in IBinder client, in AllocationRequest request);

    /** Allocates several buffers, all or none. */
    Buffer[] allocateBatch(in IBinder client, in AllocationRequest[] requests);

    /**
     * Loads a file segment into a buffer by direct I/O where the file allows, and returns
     * the bytes loaded: fewer than asked when the file ends first.
     */
    long loadFile(in IBinder client, long bufferId, in FileSegment segment);

    /**
     * Queues the same load and returns once its arguments are checked; `callback` hears
     * its progress and completion. Loads run on a small pool of workers, taking turns
     * between clients.
     */
    void loadFileAsync(in IBinder client, long bufferId, in FileSegment segment,
            ILoadCallback callback);

    /** Frees a buffer, cancelling its loads. */
    void free(in IBinder client, long bufferId);

    /** The caller's buffers, oldest first. */
    BufferInfo[] listBuffers(in IBinder client);

    /**
     * Opens a session for the caller (since version 2). `token` is a binder object of the
     * caller's: when its process dies the session ends. A uid may hold a limited number of
     * sessions at once (SessionLimits.maxSessions; version 1 tokens count too), and the
     * next open fails with ERROR_QUOTA_EXCEEDED.
     */
    IHeapSession openSession(in IBinder token);
}
