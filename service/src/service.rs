//! `IHeapBroker` over binder: turns calls into [`Broker`] calls and back.
//!
//! This is the only module that knows binder. It identifies clients (the token binder they
//! pass, together with the kernel-vouched calling uid), links to each token's death to free
//! what the client held, converts AIDL parcelables to the broker's types, and turns
//! [`BrokerError`]s into service-specific errors with their messages.

use std::sync::{Arc, Mutex, Weak};

use log::warn;
use rsheap_binder::{
    calling_pid, calling_uid, is_remote, link_to_death, service_error, DeathLink, Dump,
    ParcelFileDescriptor, Result as BinderResult, SpIBinder, Status, Strong,
};
use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest, Buffer::Buffer, BufferInfo::BufferInfo,
    FileSegment::FileSegment, HeapInfo::HeapInfo, IHeapBroker::IHeapBroker,
    ILoadCallback::ILoadCallback, Usage::Usage,
};

use crate::broker::{Allocated, AllocationSpec, Broker, BufferDesc, ClientId, SegmentSpec};
use crate::error::{BrokerError, Result};
use crate::loader::LoadObserver;
use crate::sync::lock;
use crate::usage::BufferUsage;

/// Uids allowed to read the dump: root, system and shell, as `dumpsys` callers are.
const DUMP_UIDS: [u32; 3] = [0, 1000, 2000];

/// A client's token, linked to its death.
struct ClientLink {
    token: SpIBinder,
    uid: u32,
    id: ClientId,
    /// Frees the client's buffers when its token dies; dropping it cancels that.
    _death: DeathLink,
}

/// What a client's death does: forget its link and free what it held.
fn client_died(id: ClientId, broker: &Weak<Broker>, links: &Weak<Mutex<Vec<ClientLink>>>) {
    if let Some(links) = links.upgrade() {
        // The link is dropped outside the lock: dropping it unlinks from the binder.
        let gone: Vec<ClientLink> = {
            let mut links = lock(&links);
            let (gone, kept) = links.drain(..).partition(|link| link.id == id);
            *links = kept;
            gone
        };
        drop(gone);
    }
    if let Some(broker) = broker.upgrade() {
        broker.remove_client(id);
    }
}

/// The `IHeapBroker` binder object.
pub struct HeapBrokerService {
    broker: Arc<Broker>,
    links: Arc<Mutex<Vec<ClientLink>>>,
}

impl HeapBrokerService {
    /// Serves `broker`.
    pub fn new(broker: Arc<Broker>) -> Self {
        Self {
            broker,
            links: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The binder to register.
    pub fn into_binder(self) -> Strong<dyn IHeapBroker> {
        rsheap_binder::new_broker_binder(self)
    }

    /// The client the caller is with `token`, registered and linked on first sight.
    fn client(&self, token: &SpIBinder) -> Result<ClientId> {
        let uid = calling_uid();
        if let Some(id) = self.find(token, uid) {
            return Ok(id);
        }
        if !is_remote(token) {
            return Err(BrokerError::invalid(
                "the client token must be a binder of the caller",
            ));
        }
        let id = self.broker.add_client(uid, calling_pid());
        let (broker, links) = (Arc::downgrade(&self.broker), Arc::downgrade(&self.links));
        let death = match link_to_death(token, move || client_died(id, &broker, &links)) {
            Ok(death) => death,
            Err(err) => {
                self.broker.remove_client(id);
                return Err(BrokerError::invalid(format!(
                    "cannot watch the client token: {err}"
                )));
            }
        };
        let mut links = lock(&self.links);
        // Another call with the same token may have got there first.
        if let Some(link) = links.iter().find(|l| l.token == *token && l.uid == uid) {
            let winner = link.id;
            drop(links);
            drop(death);
            self.broker.remove_client(id);
            return Ok(winner);
        }
        links.push(ClientLink {
            token: token.clone(),
            uid,
            id,
            _death: death,
        });
        Ok(id)
    }

    fn find(&self, token: &SpIBinder, uid: u32) -> Option<ClientId> {
        lock(&self.links)
            .iter()
            .find(|link| link.token == *token && link.uid == uid)
            .map(|link| link.id)
    }
}

/// Runs a call, turning broker errors into binder statuses. A panic aborts the broker, as on
/// a device (`panic = "abort"`); the crate's lints keep input from reaching one.
fn serve<T>(call: impl FnOnce() -> Result<T>) -> BinderResult<T> {
    call().map_err(|err| status(&err))
}

fn status(err: &BrokerError) -> Status {
    service_error(err.kind.code(), &err.message)
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

fn spec(request: &AllocationRequest) -> Result<AllocationSpec> {
    Ok(AllocationSpec {
        size: request.size,
        usage: usage_from_aidl(request.usage)?,
        heap: request.heap.clone(),
        cached: request.cached,
        debug_name: request.debugName.clone(),
    })
}

fn info(desc: BufferDesc) -> BufferInfo {
    BufferInfo {
        id: desc.id,
        size: i64::try_from(desc.size).unwrap_or(i64::MAX),
        heap: desc.heap,
        usage: usage_to_aidl(desc.usage),
        cached: desc.cached,
        name: desc.name,
        debugName: desc.debug_name,
    }
}

fn buffer(allocated: Allocated) -> Buffer {
    Buffer {
        info: info(allocated.desc),
        fd: Some(ParcelFileDescriptor::new(allocated.fd)),
    }
}

fn segment(segment: &FileSegment) -> Result<SegmentSpec> {
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

/// Reports an asynchronous load to the client's callback.
struct CallbackObserver(Strong<dyn ILoadCallback>);

impl LoadObserver for CallbackObserver {
    fn progress(&self, buffer_id: i64, done: u64, total: u64) {
        let (done, total) = (clamp(done), clamp(total));
        if let Err(err) = self.0.onProgress(buffer_id, done, total) {
            warn!("load progress for buffer {buffer_id} not delivered: {err:?}");
        }
    }

    fn complete(&self, buffer_id: i64, result: &Result<u64>) {
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

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Dump for HeapBrokerService {
    fn dump(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let text = if DUMP_UIDS.contains(&calling_uid()) {
            self.broker.dump()
        } else {
            "permission denied: only root, system and shell may dump rsheapd\n".to_owned()
        };
        out.write_all(text.as_bytes())
    }
}

rsheap_binder::impl_interface_with_dump!(HeapBrokerService);

impl IHeapBroker for HeapBrokerService {
    fn r#getHeaps(&self) -> BinderResult<Vec<HeapInfo>> {
        serve(|| {
            Ok(self
                .broker
                .heaps()
                .into_iter()
                .map(|heap| HeapInfo {
                    name: heap.stats.name,
                    cached: heap.stats.cached,
                    usages: heap.usages.into_iter().map(usage_to_aidl).collect(),
                    buffers: i32::try_from(heap.stats.buffers).unwrap_or(i32::MAX),
                    bytes: clamp(heap.stats.bytes),
                    allocations: clamp(heap.stats.allocations),
                    failures: clamp(heap.stats.failures),
                })
                .collect())
        })
    }

    fn r#allocate(&self, client: &SpIBinder, request: &AllocationRequest) -> BinderResult<Buffer> {
        serve(|| {
            let client = self.client(client)?;
            self.broker.allocate(client, &spec(request)?).map(buffer)
        })
    }

    fn r#allocateBatch(
        &self,
        client: &SpIBinder,
        requests: &[AllocationRequest],
    ) -> BinderResult<Vec<Buffer>> {
        serve(|| {
            let client = self.client(client)?;
            let specs = requests.iter().map(spec).collect::<Result<Vec<_>>>()?;
            let made = self.broker.allocate_batch(client, &specs)?;
            Ok(made.into_iter().map(buffer).collect())
        })
    }

    fn r#loadFile(
        &self,
        client: &SpIBinder,
        buffer_id: i64,
        seg: &FileSegment,
    ) -> BinderResult<i64> {
        serve(|| {
            let client = self.client(client)?;
            self.broker
                .load(client, buffer_id, segment(seg)?)
                .map(clamp)
        })
    }

    fn r#loadFileAsync(
        &self,
        client: &SpIBinder,
        buffer_id: i64,
        seg: &FileSegment,
        callback: &Strong<dyn ILoadCallback>,
    ) -> BinderResult<()> {
        serve(|| {
            let client = self.client(client)?;
            let observer = Box::new(CallbackObserver(callback.clone()));
            self.broker
                .load_async(client, buffer_id, segment(seg)?, observer)
        })
    }

    fn r#free(&self, client: &SpIBinder, buffer_id: i64) -> BinderResult<()> {
        serve(|| {
            let client = self.client(client)?;
            self.broker.free(client, buffer_id)
        })
    }

    fn r#listBuffers(&self, client: &SpIBinder) -> BinderResult<Vec<BufferInfo>> {
        serve(|| {
            let client = self.client(client)?;
            Ok(self.broker.list(client).into_iter().map(info).collect())
        })
    }
}
