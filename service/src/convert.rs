//! Conversions between the AIDL types and the broker's, and the observers that report
//! asynchronous work to clients' callbacks.

use log::warn;
use rsheap_binder::{service_error, ParcelFileDescriptor, Status, Strong};
use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest, Buffer::Buffer, BufferInfo::BufferInfo,
    BufferRequest::BufferRequest, FileSegment::FileSegment, HeapInfo::HeapInfo,
    IAllocationCallback::IAllocationCallback, ILoadCallback::ILoadCallback,
    ILoadObserver::ILoadObserver, SessionLimits::SessionLimits, Usage::Usage,
};

use crate::allocation::{Allocated, AllocationObserver, AllocationSpec, Request};
use crate::broker::{HeapReport, SessionLimits as Limits};
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::loader::LoadObserver;
use crate::segment::SegmentSpec;
use crate::session::BufferDesc;
use crate::usage::BufferUsage;

/// The status of a failed version 2 call.
pub fn status(err: &BrokerError) -> Status {
    service_error(err.kind.code(), &err.message)
}

/// The status of a failed version 1 call: only the codes version 1 has.
pub fn status_v1(err: &BrokerError) -> Status {
    let code = match err.kind {
        BrokerErrorCode::Cancelled | BrokerErrorCode::SessionClosed => BrokerErrorCode::NotFound,
        kind => kind,
    };
    service_error(code.code(), &err.message)
}

fn usage_from_aidl(usage: Usage) -> Result<BufferUsage> {
    match usage {
        Usage::CAMERA_FRAME => Ok(BufferUsage::CameraFrame),
        Usage::MODEL_WEIGHTS => Ok(BufferUsage::ModelWeights),
        Usage::MODEL_EXECUTABLE => Ok(BufferUsage::ModelExecutable),
        Usage::SCRATCH => Ok(BufferUsage::Scratch),
        other => Err(BrokerError::invalid(format!("unknown usage {}", other.0))),
    }
}

fn usage_to_aidl(usage: BufferUsage) -> Usage {
    match usage {
        BufferUsage::CameraFrame => Usage::CAMERA_FRAME,
        BufferUsage::ModelWeights => Usage::MODEL_WEIGHTS,
        BufferUsage::ModelExecutable => Usage::MODEL_EXECUTABLE,
        BufferUsage::Scratch => Usage::SCRATCH,
    }
}

/// A version 1 request.
pub fn spec(request: &AllocationRequest) -> Result<Request> {
    Ok(Request::from(AllocationSpec {
        size: request.size,
        usage: usage_from_aidl(request.usage)?,
        heap: request.heap.clone(),
        cached: request.cached,
        debug_name: request.debugName.clone(),
    }))
}

/// A version 2 request, with its segment.
pub fn request(request: &BufferRequest) -> Result<Request> {
    let mut made = spec(&request.allocation)?;
    made.load = request.load.as_ref().map(segment).transpose()?;
    Ok(made)
}

pub fn info(desc: BufferDesc) -> BufferInfo {
    BufferInfo {
        id: desc.id,
        size: clamp(desc.size),
        heap: desc.heap,
        usage: usage_to_aidl(desc.usage),
        cached: desc.cached,
        name: desc.name,
        debugName: desc.debug_name,
    }
}

pub fn buffer(allocated: Allocated) -> Buffer {
    Buffer {
        info: info(allocated.desc),
        fd: Some(ParcelFileDescriptor::new(allocated.fd)),
    }
}

pub fn segment(segment: &FileSegment) -> Result<SegmentSpec> {
    let file = segment
        .file
        .as_ref()
        .ok_or_else(|| BrokerError::invalid("the segment has no file"))?;
    let file = rsheap_binder::dup_fd(file)
        .map_err(|err| BrokerError::invalid(format!("cannot duplicate the file: {err}")))?;
    Ok(SegmentSpec {
        file,
        file_offset: segment.fileOffset,
        length: segment.length,
        buffer_offset: segment.bufferOffset,
    })
}

pub fn heap_info(heap: HeapReport) -> HeapInfo {
    HeapInfo {
        name: heap.stats.name,
        cached: heap.stats.cached,
        usages: heap.usages.into_iter().map(usage_to_aidl).collect(),
        buffers: clamp32(heap.stats.buffers),
        bytes: clamp(heap.stats.bytes),
        allocations: clamp(heap.stats.allocations),
        failures: clamp(heap.stats.failures),
    }
}

pub fn limits(limits: Limits) -> SessionLimits {
    SessionLimits {
        maxBufferSize: clamp(limits.max_buffer_bytes),
        maxBatch: clamp32(limits.max_batch),
        pageSize: clamp32(limits.page_size),
        quotaBytes: clamp(limits.quota.bytes),
        quotaBuffers: clamp32(limits.quota.buffers),
        usedBytes: clamp(limits.held.bytes),
        usedBuffers: clamp32(limits.held.buffers),
        sessions: clamp32(limits.sessions),
        maxSessions: clamp32(limits.max_sessions),
        directLoads: limits.direct_loads,
        readOnlySharing: limits.read_only_sharing,
    }
}

pub fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn clamp32<T: TryInto<i32>>(value: T) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

/// Reports an asynchronous load of a version 1 client, with errnos.
pub struct CallbackObserver(pub Strong<dyn ILoadCallback>);

impl LoadObserver for CallbackObserver {
    fn progress(&self, buffer_id: i64, done: u64, total: u64) {
        if let Err(err) = self.0.onProgress(buffer_id, clamp(done), clamp(total)) {
            warn!("load progress for buffer {buffer_id} not delivered: {err:?}");
        }
    }

    fn complete(&self, buffer_id: i64, result: &Result<u64>, _loaded: u64) {
        // Version 1 reports no bytes for a failed load.
        let delivered = match result {
            Ok(bytes) => self.0.onComplete(buffer_id, clamp(*bytes), 0, None),
            Err(err) => {
                self.0
                    .onComplete(buffer_id, 0, err.errno as i32, Some(err.message.as_str()))
            }
        };
        if let Err(err) = delivered {
            warn!("load completion for buffer {buffer_id} not delivered: {err:?}");
        }
    }
}

/// Reports an asynchronous load of a session, with the `ERROR_` codes the synchronous call
/// returns.
pub struct SessionLoadObserver(pub Strong<dyn ILoadObserver>);

impl LoadObserver for SessionLoadObserver {
    fn progress(&self, buffer_id: i64, done: u64, total: u64) {
        if let Err(err) = self.0.onProgress(buffer_id, clamp(done), clamp(total)) {
            warn!("load progress for buffer {buffer_id} not delivered: {err:?}");
        }
    }

    fn complete(&self, buffer_id: i64, result: &Result<u64>, loaded: u64) {
        let delivered = match result {
            Ok(bytes) => self.0.onComplete(buffer_id, clamp(*bytes), 0, None),
            Err(err) => self.0.onComplete(
                buffer_id,
                clamp(loaded),
                err.kind.code(),
                Some(err.message.as_str()),
            ),
        };
        if let Err(err) = delivered {
            warn!("load completion for buffer {buffer_id} not delivered: {err:?}");
        }
    }
}

/// Reports an asynchronous allocation to its callback.
pub struct AllocationReply {
    pub callback: Strong<dyn IAllocationCallback>,
    pub cookie: i64,
}

impl AllocationObserver for AllocationReply {
    fn allocated(self: Box<Self>, buffers: Vec<Allocated>) {
        let buffers: Vec<Buffer> = buffers.into_iter().map(buffer).collect();
        if let Err(err) = self.callback.onAllocated(self.cookie, &buffers) {
            warn!("allocation {} not delivered: {err:?}", self.cookie);
        }
    }

    fn failed(self: Box<Self>, err: &BrokerError) {
        if let Err(sent) = self
            .callback
            .onFailed(self.cookie, err.kind.code(), &err.message)
        {
            warn!("failed allocation {} not delivered: {sent:?}", self.cookie);
        }
    }
}
