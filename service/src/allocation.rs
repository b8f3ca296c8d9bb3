//! Allocations: requests checked and planned, quota and file descriptors reserved, buffers
//! made (on the allocation workers when large), and the segments of allocate-and-load
//! requests loaded before the buffers are handed over.
//!
//! A batch is all or nothing at every step: a request that cannot be planned, a heap out of
//! memory or a load that fails leaves nothing of the batch behind. A [`Reservation`] holds
//! the batch's quota and descriptors until its buffers count on their own, and gives them
//! back when dropped unused, whichever way the batch failed.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::broker::{Broker, DEBUG_NAME_MAX, MAX_BATCH};
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::loader::LoadObserver;
use crate::quota::{mib, UidLedger};
use crate::segment::{CheckedSegment, SegmentSpec};
use crate::session::{BufferDesc, Record, Session};
use crate::sync::lock;
use crate::usage::BufferUsage;

/// The kernel's limit on a dma-buf name, without its terminating NUL.
const DMA_BUF_NAME_MAX: usize = 31;
/// Requests from this size on are checked against the memory available.
const LARGE: u64 = 64 << 20;
/// Batches up to this many bytes are made on the caller's thread: zeroing them takes less
/// than a binder round trip.
const INLINE_BYTES: u64 = 2 << 20;

/// One buffer to allocate.
#[derive(Clone, Debug)]
pub struct AllocationSpec {
    /// Bytes, rounded up to pages.
    pub size: i64,
    /// What the buffer is for.
    pub usage: BufferUsage,
    /// A heap to use instead of the usage's.
    pub heap: Option<String>,
    /// Whether CPU access is cached.
    pub cached: bool,
    /// Free text for listings.
    pub debug_name: Option<String>,
}

/// One buffer to allocate, and a segment to load into it before it is handed over.
#[derive(Debug)]
pub struct Request {
    /// What to allocate.
    pub allocation: AllocationSpec,
    /// What to load into it, if anything.
    pub load: Option<SegmentSpec>,
}

impl From<AllocationSpec> for Request {
    fn from(allocation: AllocationSpec) -> Self {
        Self {
            allocation,
            load: None,
        }
    }
}

/// A new buffer: its description and a file descriptor for the client.
#[derive(Debug)]
pub struct Allocated {
    /// The description.
    pub desc: BufferDesc,
    /// The client's own dma-buf file descriptor.
    pub fd: OwnedFd,
}

/// Hears how an asynchronous allocation ends.
pub trait AllocationObserver: Send {
    /// The batch was allocated (and loaded), in request order.
    fn allocated(self: Box<Self>, buffers: Vec<Allocated>);
    /// The batch failed, and nothing of it is kept.
    fn failed(self: Box<Self>, err: &BrokerError);
}

/// A checked allocation request.
struct Plan {
    size: u64,
    usage: BufferUsage,
    cached: bool,
    debug_name: String,
    heaps: Vec<usize>,
    load: Option<CheckedSegment>,
}

/// A planned batch with its quota and file descriptors reserved. Dropped unused, it gives
/// them back.
struct Reservation {
    broker: Arc<Broker>,
    ledger: Arc<UidLedger>,
    plans: Vec<Plan>,
    total: u64,
    count: u32,
    /// Whether the quota and descriptors are still held here.
    held: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held {
            self.ledger.unreserve(self.total, self.count);
            self.broker.return_descriptors(self.count);
        }
    }
}

/// A buffer made, and what to load into it.
type Made = (Allocated, Option<CheckedSegment>);

impl Broker {
    /// Allocates every buffer of `requests` for `session`, loads their segments, or fails
    /// with nothing kept.
    pub fn allocate_batch(
        self: &Arc<Self>,
        session: &Arc<Session>,
        requests: Vec<Request>,
    ) -> Result<Vec<Allocated>> {
        session.check_open()?;
        let reservation = self.reserve(session, requests)?;
        let made = if reservation.total <= INLINE_BYTES {
            self.make(session, reservation)?
        } else {
            let (broker, owner) = (self.clone(), session.clone());
            self.workers.run(move || broker.make(&owner, reservation))?
        };
        let mut made = made;
        for index in 0..made.len() {
            let Some((buffer, load)) = made.get_mut(index) else {
                continue;
            };
            let Some(segment) = load.take() else {
                continue;
            };
            let loaded = self
                .load_into(session, buffer.desc.id, segment)
                .and_then(|job| self.loader.load(job));
            if let Err(err) = loaded {
                let ids: Vec<i64> = made.iter().map(|(a, _)| a.desc.id).collect();
                self.discard(session, &ids);
                return Err(in_batch(ids.len(), index, err));
            }
        }
        Ok(made.into_iter().map(|(buffer, _)| buffer).collect())
    }

    /// Queues the same batch and returns once its requests are checked and its quota is
    /// reserved; `observer` hears how it ends.
    pub fn allocate_async(
        self: &Arc<Self>,
        session: &Arc<Session>,
        requests: Vec<Request>,
        observer: Box<dyn AllocationObserver>,
    ) -> Result<()> {
        session.check_open()?;
        session.start_async_allocation()?;
        let reservation = match self.reserve(session, requests) {
            Ok(reservation) => reservation,
            Err(err) => {
                session.end_async_allocation();
                return Err(err);
            }
        };
        let (broker, owner) = (self.clone(), session.clone());
        let queued = self.workers.submit(move || {
            let made = broker.make(&owner, reservation);
            broker.finish_async(&owner, made, observer);
        });
        // A job the queue refused was dropped with its reservation, which gave it back.
        queued.inspect_err(|_| session.end_async_allocation())
    }

    /// Plans `requests` and reserves their quota and descriptors.
    fn reserve(self: &Arc<Self>, session: &Session, requests: Vec<Request>) -> Result<Reservation> {
        let len = requests.len();
        if len == 0 || len > MAX_BATCH {
            return Err(BrokerError::invalid(format!(
                "a batch holds 1 to {MAX_BATCH} requests, not {len}"
            )));
        }
        let plans = requests
            .into_iter()
            .enumerate()
            .map(|(index, request)| self.plan(request).map_err(|err| in_batch(len, index, err)))
            .collect::<Result<Vec<_>>>()?;
        let total: u64 = plans.iter().map(|plan| plan.size).sum();
        let count = u32::try_from(plans.len()).unwrap_or(u32::MAX);
        self.take_descriptors(count)?;
        let ledger = session.ledger().clone();
        if let Err(err) = ledger.reserve(total, count) {
            self.return_descriptors(count);
            return Err(err);
        }
        Ok(Reservation {
            broker: self.clone(),
            ledger,
            plans,
            total,
            count,
            held: true,
        })
    }

    /// Makes the buffers of `reservation` and adds them to `session`.
    fn make(&self, session: &Session, mut reservation: Reservation) -> Result<Vec<Made>> {
        let requests = reservation.plans.len();
        let mut buffers: Vec<(usize, rsheap::Buffer)> = Vec::with_capacity(requests);
        for (index, plan) in reservation.plans.iter().enumerate() {
            match self.heaps.allocate(&plan.heaps, plan.size) {
                Ok(made) => buffers.push(made),
                Err(err) => {
                    self.release_heaps(&reservation.plans, &buffers);
                    return Err(in_batch(requests, index, err));
                }
            }
        }
        let mut records = Vec::with_capacity(requests);
        let mut made = Vec::with_capacity(requests);
        let plans = std::mem::take(&mut reservation.plans);
        for (plan, (heap, buffer)) in plans.iter().zip(&buffers) {
            let id = self.next_buffer_id();
            let name = buffer_name(plan.usage, session.pid(), id);
            let fd = buffer.set_name(&name).and_then(|()| {
                buffer.as_fd().try_clone_to_owned().map_err(|err| {
                    rsheap::Error::InvalidArgument(format!("duplicate the buffer: {err}"))
                })
            });
            let fd = match fd {
                Ok(fd) => fd,
                Err(err) => {
                    self.release_heaps(&plans, &buffers);
                    return Err(err.into());
                }
            };
            let desc = BufferDesc {
                id,
                size: plan.size,
                heap: self.heaps.name(*heap).to_owned(),
                usage: plan.usage,
                cached: plan.cached,
                name,
                debug_name: plan.debug_name.clone(),
            };
            made.push(Allocated { desc, fd });
        }
        for ((heap, buffer), allocated) in buffers.into_iter().zip(&made) {
            let size = allocated.desc.size;
            // Charged to the uid's account from now on, or counted by its ledger.
            let charged = reservation.ledger.charge(&buffer, size);
            records.push(Record {
                desc: allocated.desc.clone(),
                heap,
                buffer: Arc::new(buffer),
                charged,
            });
        }
        // The buffers count on their own now; the reservation ends.
        reservation
            .ledger
            .unreserve(reservation.total, reservation.count);
        reservation.held = false;
        if let Err(records) = session.insert(records) {
            // The session ended while its buffers were being made.
            for record in records {
                self.release(session.ledger(), record);
            }
            return Err(BrokerError::closed());
        }
        Ok(made
            .into_iter()
            .zip(plans)
            .map(|(allocated, plan)| (allocated, plan.load))
            .collect())
    }

    /// Gives back the heap accounting of buffers made before a batch failed.
    fn release_heaps(&self, plans: &[Plan], made: &[(usize, rsheap::Buffer)]) {
        for (plan, (heap, _)) in plans.iter().zip(made) {
            self.heaps.release(*heap, plan.size);
        }
    }

    /// Ends an asynchronous allocation: loads its segments, then tells `observer`.
    fn finish_async(
        self: &Arc<Self>,
        session: &Arc<Session>,
        made: Result<Vec<Made>>,
        observer: Box<dyn AllocationObserver>,
    ) {
        let mut made = match made {
            Ok(made) => made,
            Err(err) => {
                session.end_async_allocation();
                observer.failed(&err);
                return;
            }
        };
        let loads: Vec<(usize, i64, CheckedSegment)> = made
            .iter_mut()
            .enumerate()
            .filter_map(|(index, (buffer, load))| Some((index, buffer.desc.id, load.take()?)))
            .collect();
        let buffers: Vec<Allocated> = made.into_iter().map(|(buffer, _)| buffer).collect();
        if loads.is_empty() {
            session.end_async_allocation();
            observer.allocated(buffers);
            return;
        }
        let batch = Arc::new(BatchLoads {
            broker: self.clone(),
            session: session.clone(),
            requests: buffers.len(),
            remaining: AtomicUsize::new(loads.len()),
            outcome: Mutex::new(Outcome {
                buffers,
                error: None,
                observer: Some(observer),
            }),
        });
        for (index, id, segment) in loads {
            let part = Box::new(BatchLoad {
                batch: batch.clone(),
                index,
            });
            let queued = self
                .load_into(session, id, segment)
                .and_then(|job| self.loader.load_async(job, part));
            if let Err(err) = queued {
                batch.done(index, Err(err));
            }
        }
    }

    /// The load of `segment` into buffer `id` of `session`.
    pub(crate) fn load_into(
        &self,
        session: &Session,
        id: i64,
        segment: CheckedSegment,
    ) -> Result<crate::loader::LoadJob> {
        let buffer = session.with(id, |record| record.buffer.clone())?;
        Ok(segment.into_job(session.id(), id, buffer))
    }

    /// Checks `request` and decides its size and candidate heaps.
    fn plan(&self, request: Request) -> Result<Plan> {
        let spec = &request.allocation;
        let max = self.config.limits.max_buffer_bytes;
        let size = u64::try_from(spec.size)
            .ok()
            .filter(|&size| size > 0)
            .ok_or_else(|| BrokerError::invalid(format!("size {} is not positive", spec.size)))?;
        if size > max {
            return Err(BrokerError::invalid(format!(
                "size {size} exceeds the largest buffer, {}",
                mib(max)
            )));
        }
        // At most `max`, so rounding up to a page cannot overflow.
        let size = size.div_ceil(self.page_size).saturating_mul(self.page_size);
        let debug_name = spec.debug_name.clone().unwrap_or_default();
        if debug_name.len() > DEBUG_NAME_MAX || debug_name.chars().any(char::is_control) {
            return Err(BrokerError::invalid(format!(
                "the debug name must be at most {DEBUG_NAME_MAX} bytes of printable text"
            )));
        }
        let heaps = match &spec.heap {
            Some(name) => {
                let index = self.heaps.index(name).ok_or_else(|| {
                    BrokerError::new(
                        BrokerErrorCode::Unsupported,
                        format!("heap {name:?} is not one the broker offers"),
                    )
                })?;
                if !self.heaps.is_present(index) {
                    return Err(BrokerError::new(
                        BrokerErrorCode::Unsupported,
                        format!("heap {name:?} is not present on this device"),
                    ));
                }
                vec![index]
            }
            None => self
                .config
                .heaps
                .get(&spec.usage)
                .map(|choice| {
                    choice
                        .for_caching(spec.cached)
                        .iter()
                        .filter_map(|name| self.heaps.index(name))
                        .collect()
                })
                .unwrap_or_default(),
        };
        // A heap may take memory until the OOM killer stops it (the in-tree system heap
        // does), which could take the broker with it: large requests are held against what
        // the kernel says is available.
        if let Some(available) = (size >= LARGE).then(available_memory).flatten() {
            if size > available {
                return Err(BrokerError::new(
                    BrokerErrorCode::NoMemory,
                    format!(
                        "size {} exceeds the {} of memory available",
                        mib(size),
                        mib(available)
                    ),
                ));
            }
        }
        let load = request
            .load
            .map(|segment| CheckedSegment::new(segment, size, "the new buffer"))
            .transpose()?;
        Ok(Plan {
            size,
            usage: spec.usage,
            cached: spec.cached,
            debug_name,
            heaps,
            load,
        })
    }
}

/// The loads of one asynchronous allocate-and-load batch.
struct BatchLoads {
    broker: Arc<Broker>,
    session: Arc<Session>,
    requests: usize,
    /// Loads not ended yet.
    remaining: AtomicUsize,
    outcome: Mutex<Outcome>,
}

struct Outcome {
    buffers: Vec<Allocated>,
    /// The first load that failed, with its request's index.
    error: Option<BrokerError>,
    /// Taken by the last load to end.
    observer: Option<Box<dyn AllocationObserver>>,
}

impl BatchLoads {
    /// Load `index` ended; the last one to end tells the observer.
    fn done(&self, index: usize, result: Result<u64>) {
        let mut outcome = lock(&self.outcome);
        if let Err(err) = result {
            outcome
                .error
                .get_or_insert_with(|| in_batch(self.requests, index, err));
        }
        let left = self
            .remaining
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if left > 0 {
            return;
        }
        let Some(observer) = outcome.observer.take() else {
            return;
        };
        let buffers = std::mem::take(&mut outcome.buffers);
        let error = outcome.error.take();
        drop(outcome);
        self.session.end_async_allocation();
        match error {
            None => observer.allocated(buffers),
            Some(err) => {
                let ids: Vec<i64> = buffers.iter().map(|buffer| buffer.desc.id).collect();
                drop(buffers);
                self.broker.discard(&self.session, &ids);
                observer.failed(&err);
            }
        }
    }
}

/// One load of a [`BatchLoads`].
struct BatchLoad {
    batch: Arc<BatchLoads>,
    index: usize,
}

impl LoadObserver for BatchLoad {
    fn progress(&self, _buffer_id: i64, _done: u64, _total: u64) {}

    fn complete(&self, _buffer_id: i64, result: &Result<u64>, _loaded: u64) {
        self.batch.done(self.index, result.clone());
    }
}

/// `err` of request `index` of a batch of `len`: the message names the request.
fn in_batch(len: usize, index: usize, err: BrokerError) -> BrokerError {
    if len == 1 {
        return err;
    }
    BrokerError {
        message: format!("request {index}: {}", err.message),
        ..err
    }
}

/// The first buffer id of this broker: the milliseconds since the epoch (modulo about 115
/// days) times 10 000, 15 digits at most. A restarted broker starts past the ids of the one
/// before, so an id a client kept from before the restart is not found instead of naming one
/// of its new buffers.
pub(crate) fn first_buffer_id() -> i64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    // Below 10^10 ms, so the id stays far below `i64::MAX` however many follow.
    i64::try_from(millis % 10_000_000_000)
        .unwrap_or(0)
        .saturating_mul(10_000)
        .saturating_add(1)
}

/// `<usage>-<pid>-<id>`, cut to the kernel's limit.
fn buffer_name(usage: BufferUsage, pid: i32, id: i64) -> String {
    let mut name = format!("{}-{pid}-{id}", usage.name_tag());
    name.truncate(DMA_BUF_NAME_MAX);
    name
}

/// The kernel's estimate of memory available for new allocations, from /proc/meminfo.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernel_limit() {
        assert_eq!(
            buffer_name(BufferUsage::ModelWeights, 1234, 7),
            "weights-1234-7"
        );
        let longest = buffer_name(BufferUsage::Scratch, 4_194_304, i64::MAX);
        assert_eq!(longest.len(), DMA_BUF_NAME_MAX);
        // Ids stay below 10^15, and whole in every name.
        let id = first_buffer_id() + 1_000_000;
        assert!(id < 1_000_000_000_000_000);
        for usage in BufferUsage::ALL {
            let name = buffer_name(usage, 4_194_304, 999_999_999_999_999);
            assert!(name.len() <= DMA_BUF_NAME_MAX, "{name}");
            assert!(name.ends_with("-999999999999999"), "{name}");
        }
    }
}
