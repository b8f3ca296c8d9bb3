package vendor.rsheap;

import vendor.rsheap.AllocationRequest;
import vendor.rsheap.FileSegment;

/** One buffer a session asks for (since version 2): what to allocate, and what to load. */
@VintfStability
parcelable BufferRequest {
    AllocationRequest allocation;
    /**
     * A file segment to load into the new buffer before it is handed over: the buffer comes
     * back loaded, or the request fails and nothing of it is kept. Its `bufferOffset` and
     * `length` are checked against the allocation's size.
     */
    @nullable FileSegment load;
}
