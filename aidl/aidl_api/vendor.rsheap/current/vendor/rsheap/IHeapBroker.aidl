///////////////////////////////////////////////////////////////////////////////
// THIS FILE IS IMMUTABLE. DO NOT EDIT IN ANY CASE.                          //
///////////////////////////////////////////////////////////////////////////////

// This file is a snapshot of an AIDL file. Do not edit it manually. There are
// two cases:
// 1). this is a frozen version file - do not edit this in any case.
// 2). this is a 'current' file. If you make a backwards compatible change to
//     the interface (from the latest frozen version), the build system will
//     prompt you to update this file with `m <name>-update-api`.
//
// You must not make a backward incompatible change to any AIDL file built
// with the aidl_interface module type with versions property set. The module
// type is used to build AIDL files in a way that they can be used across
// independently updatable components of the system. If a device is shipped
// with such a backward incompatible change, it has a high risk of breaking
// later when a module using the interface is updated, e.g., Mainline modules.

package vendor.rsheap;

import vendor.rsheap.AllocationRequest;
import vendor.rsheap.Buffer;
import vendor.rsheap.BufferInfo;
import vendor.rsheap.FileSegment;
import vendor.rsheap.HeapInfo;
import vendor.rsheap.IHeapSession;
import vendor.rsheap.ILoadCallback;

@VintfStability
interface IHeapBroker {
    const int ERROR_INVALID_ARGUMENT = 1;
    const int ERROR_NO_MEMORY = 2;
    const int ERROR_QUOTA_EXCEEDED = 3;
    const int ERROR_NOT_FOUND = 4;
    const int ERROR_IO = 5;
    const int ERROR_UNSUPPORTED = 6;
    const int ERROR_BUSY = 7;
    const int ERROR_CANCELLED = 8;
    const int ERROR_SESSION_CLOSED = 9;

    const int MAX_BATCH = 64;

    HeapInfo[] getHeaps();

    Buffer allocate(in IBinder client, in AllocationRequest request);

    Buffer[] allocateBatch(in IBinder client, in AllocationRequest[] requests);

    long loadFile(in IBinder client, long bufferId, in FileSegment segment);

    void loadFileAsync(in IBinder client, long bufferId, in FileSegment segment,
            ILoadCallback callback);

    void free(in IBinder client, long bufferId);

    BufferInfo[] listBuffers(in IBinder client);

    IHeapSession openSession(in IBinder token);
}
