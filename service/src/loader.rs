//! File loads into buffers, on a small pool of worker threads.
//!
//! Loads can move gigabytes, so they never run on binder threads: a synchronous load waits for
//! a worker (and only so many may wait, see [`Limits::sync_loads`]), an asynchronous one
//! returns at once and reports through a [`LoadObserver`]. Workers take queued loads from one
//! client after another, so a client queueing many large loads does not hold back the others.
//!
//! A load moves in chunks sized to take about [`CHUNK_TARGET`] milliseconds each, so
//! cancelling (the buffer freed, the client dead) takes effect within one chunk and progress
//! comes at that pace. A chunk of a buffer from one of rsheap's heaps moves by the `/dev/rsheap` LOAD ioctl (direct
//! I/O where the file allows); other heaps' buffers are read into through a mapping.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use log::{error, info};
use nix::errno::Errno;
use rsheap::{FileIo, IoPath, Span, SyncDirection};

use crate::config::Limits;
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::session::SessionId as ClientId;
use crate::sync::lock;

/// How long one chunk of a load should take, in milliseconds.
const CHUNK_TARGET: u64 = 100;
/// Chunks quicker than this (half the target) double.
const CHUNK_FAST: Duration = Duration::from_millis(CHUNK_TARGET / 2);
/// Chunks slower than this (four times the target) halve.
const CHUNK_SLOW: Duration = Duration::from_millis(CHUNK_TARGET * 4);
/// The first chunk of a load.
const FIRST_CHUNK: u64 = 32 << 20;
/// The largest chunk.
const MAX_CHUNK: u64 = 1 << 30;

/// Hears how an asynchronous load goes.
pub trait LoadObserver: Send {
    /// `done` of `total` bytes are loaded.
    fn progress(&self, buffer_id: i64, done: u64, total: u64);
    /// The load ended with the bytes loaded, or why it failed; `loaded` bytes arrived
    /// either way.
    fn complete(&self, buffer_id: i64, result: &Result<u64>, loaded: u64);
}

/// What a load moves: a checked range of a file and of a buffer.
pub struct LoadJob {
    /// The client the load is for.
    pub client: ClientId,
    /// The buffer's id.
    pub buffer_id: i64,
    /// The buffer; holding it keeps the memory alive while the load runs.
    pub buffer: Arc<rsheap::Buffer>,
    /// The file.
    pub file: OwnedFd,
    /// Where in the file to start.
    pub file_offset: u64,
    /// Where in the buffer to start.
    pub buffer_offset: u64,
    /// Bytes to load at most; the file may end first.
    pub len: u64,
    /// What progress reports count up to: `len`, clamped to the file's end when known.
    pub expected: u64,
}

/// How a load's end reaches its caller.
enum Reply {
    /// A synchronous caller waits on the other end.
    Wait(mpsc::SyncSender<Result<u64>>),
    /// An asynchronous caller is told.
    Notify(Box<dyn LoadObserver>),
}

struct Queued {
    job: LoadJob,
    reply: Reply,
    cancelled: Arc<AtomicBool>,
}

/// A load a worker is running.
struct Running {
    client: ClientId,
    buffer_id: i64,
    cancelled: Arc<AtomicBool>,
}

#[derive(Default)]
struct Queue {
    /// Queued loads per client, oldest first.
    pending: BTreeMap<ClientId, VecDeque<Queued>>,
    /// The client a worker last took a load from.
    last: ClientId,
    running: Vec<Running>,
    /// Queued and running loads per client.
    per_client: BTreeMap<ClientId, usize>,
    /// Synchronous callers waiting.
    sync_waiting: usize,
}

impl Queue {
    /// The next load in turn: from the first client after `last` that has one.
    fn take(&mut self) -> Option<Queued> {
        let client = self
            .pending
            .range(self.last.saturating_add(1)..)
            .chain(self.pending.range(..=self.last))
            .map(|(&client, _)| client)
            .next()?;
        let loads = self.pending.get_mut(&client)?;
        let queued = loads.pop_front();
        if loads.is_empty() {
            self.pending.remove(&client);
        }
        self.last = client;
        queued
    }

    fn finished(&mut self, client: ClientId) {
        if let Some(count) = self.per_client.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_client.remove(&client);
            }
        }
    }
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a load is queued.
    work: Condvar,
    limits: Limits,
    /// The control device, opened on first use and again by each load until it exists:
    /// rsheap.ko may load after the broker starts.
    control: Mutex<Option<Arc<FileIo>>>,
}

impl Shared {
    /// The control device, opening it if it has appeared since the last try.
    fn control(&self) -> Option<Arc<FileIo>> {
        let mut control = lock(&self.control);
        if control.is_none() {
            *control = FileIo::open().ok().map(Arc::new);
            if control.is_some() {
                info!(
                    "{} appeared: loads go direct from now on",
                    rsheap::CONTROL_DEVICE
                );
            }
        }
        control.clone()
    }
}

/// The pool of load workers.
pub struct Loader {
    shared: Arc<Shared>,
}

impl Loader {
    /// Starts `limits.load_workers` workers.
    pub fn start(limits: Limits) -> std::io::Result<Self> {
        let control = FileIo::open()
            .inspect_err(|err| {
                info!("no direct loads yet ({err}); loads read through mappings until there are")
            })
            .ok()
            .map(Arc::new);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            limits,
            control: Mutex::new(control),
        });
        for index in 0..limits.load_workers {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("rsheapd-load-{index}"))
                .spawn(move || worker(&shared))?;
        }
        Ok(Self { shared })
    }

    /// Runs `job` on a worker and waits for it.
    pub fn load(&self, job: LoadJob) -> Result<u64> {
        let (sender, receiver) = mpsc::sync_channel(1);
        {
            let mut queue = lock(&self.shared.queue);
            if queue.sync_waiting >= self.shared.limits.sync_loads {
                return Err(BrokerError::new(
                    BrokerErrorCode::Busy,
                    format!(
                        "{} synchronous loads are waiting already; load asynchronously",
                        queue.sync_waiting
                    ),
                ));
            }
            self.enqueue(&mut queue, job, Reply::Wait(sender))?;
            queue.sync_waiting = queue.sync_waiting.saturating_add(1);
        }
        let result = receiver
            .recv()
            .unwrap_or_else(|_| Err(BrokerError::new(BrokerErrorCode::Io, "the load was lost")));
        let mut queue = lock(&self.shared.queue);
        queue.sync_waiting = queue.sync_waiting.saturating_sub(1);
        drop(queue);
        result
    }

    /// Queues `job`; `observer` hears how it goes.
    pub fn load_async(&self, job: LoadJob, observer: Box<dyn LoadObserver>) -> Result<()> {
        let mut queue = lock(&self.shared.queue);
        self.enqueue(&mut queue, job, Reply::Notify(observer))
    }

    fn enqueue(&self, queue: &mut Queue, job: LoadJob, reply: Reply) -> Result<()> {
        let count = queue.per_client.entry(job.client).or_default();
        if *count >= self.shared.limits.loads_per_client {
            return Err(BrokerError::new(
                BrokerErrorCode::Busy,
                format!("this client has {count} loads queued or running already"),
            ));
        }
        *count = count.saturating_add(1);
        let client = job.client;
        queue.pending.entry(client).or_default().push_back(Queued {
            job,
            reply,
            cancelled: Arc::new(AtomicBool::new(false)),
        });
        self.shared.work.notify_one();
        Ok(())
    }

    /// Cancels `client`'s loads into buffer `buffer_id`, or into any buffer if `None`: queued
    /// ones end now, running ones at their next chunk. All end with a cancellation error.
    pub fn cancel(&self, client: ClientId, buffer_id: Option<i64>) {
        let matches = |id: i64| buffer_id.is_none_or(|wanted| wanted == id);
        let mut dropped = VecDeque::new();
        {
            let mut queue = lock(&self.shared.queue);
            for running in &queue.running {
                if running.client == client && matches(running.buffer_id) {
                    running.cancelled.store(true, Ordering::Relaxed);
                }
            }
            if let Some(loads) = queue.pending.get_mut(&client) {
                let (gone, kept) = loads.drain(..).partition(|q| matches(q.job.buffer_id));
                *loads = kept;
                dropped = gone;
                if loads.is_empty() {
                    queue.pending.remove(&client);
                }
            }
            for _ in &dropped {
                queue.finished(client);
            }
        }
        for queued in dropped {
            let id = queued.job.buffer_id;
            reply(queued.reply, id, Err(BrokerError::cancelled(id)), 0);
        }
    }

    /// Whether loads go direct: the control device is open, or opens now.
    pub fn direct(&self) -> bool {
        self.shared.control().is_some()
    }

    /// Loads queued and running, for the dump.
    pub fn activity(&self) -> (usize, usize) {
        let queue = lock(&self.shared.queue);
        let queued = queue.pending.values().map(VecDeque::len).sum();
        (queued, queue.running.len())
    }
}

fn worker(shared: &Shared) {
    loop {
        let queued = {
            let mut queue = lock(&shared.queue);
            loop {
                if let Some(queued) = queue.take() {
                    queue.running.push(Running {
                        client: queued.job.client,
                        buffer_id: queued.job.buffer_id,
                        cancelled: queued.cancelled.clone(),
                    });
                    break queued;
                }
                queue = shared.work.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Queued {
            job,
            reply: how,
            cancelled,
        } = queued;
        let observer = match &how {
            Reply::Notify(observer) => Some(observer.as_ref()),
            Reply::Wait(_) => None,
        };
        let mut loaded = 0;
        let result = run(shared, &job, &cancelled, observer, &mut loaded);
        if let Err(err) = &result {
            if err.errno != Errno::ECANCELED {
                error!("load into buffer {}: {err}", job.buffer_id);
            }
        }
        {
            let mut queue = lock(&shared.queue);
            queue
                .running
                .retain(|running| !Arc::ptr_eq(&running.cancelled, &cancelled));
            queue.finished(job.client);
        }
        reply(how, job.buffer_id, result, loaded);
    }
}

fn reply(how: Reply, buffer_id: i64, result: Result<u64>, loaded: u64) {
    match how {
        // The caller may have gone; nobody is left to tell.
        Reply::Wait(sender) => drop(sender.send(result)),
        Reply::Notify(observer) => observer.complete(buffer_id, &result, loaded),
    }
}

/// Moves `job` chunk by chunk; returns the bytes loaded, and counts them in `done` as they
/// arrive.
fn run(
    shared: &Shared,
    job: &LoadJob,
    cancelled: &AtomicBool,
    observer: Option<&dyn LoadObserver>,
    done: &mut u64,
) -> Result<u64> {
    let mut chunk = FIRST_CHUNK;
    while *done < job.len {
        if cancelled.load(Ordering::Relaxed) {
            return Err(BrokerError::cancelled(job.buffer_id));
        }
        // `load_job` checked both ranges: they end within a buffer and below `i64::MAX`.
        let len = chunk.min(job.len.saturating_sub(*done));
        let span = Span {
            file_offset: job.file_offset.saturating_add(*done),
            buffer_offset: job.buffer_offset.saturating_add(*done),
            len,
        };
        let start = Instant::now();
        let moved = load_chunk(shared.control().as_deref(), job, span)?;
        let took = start.elapsed();
        *done = done.saturating_add(moved);
        if moved < len {
            break;
        }
        if let Some(observer) = observer {
            observer.progress(job.buffer_id, *done, job.expected.max(*done));
        }
        if took < CHUNK_FAST {
            chunk = chunk.saturating_mul(2).min(MAX_CHUNK);
        } else if took > CHUNK_SLOW {
            chunk = (chunk / 2).max(FIRST_CHUNK);
        }
    }
    Ok(*done)
}

/// Loads one chunk: by the LOAD ioctl, or through a mapping for buffers it does not take.
fn load_chunk(control: Option<&FileIo>, job: &LoadJob, span: Span) -> Result<u64> {
    if let Some(control) = control {
        match control.load(&job.file, &job.buffer, span, IoPath::Auto) {
            Ok(moved) => return Ok(moved.bytes),
            // Not a buffer of rsheap's heaps.
            Err(err) if err.errno() == Some(Errno::EXDEV) => {}
            Err(err) => return Err(io_error(job, err.errno().unwrap_or(Errno::EIO))),
        }
    }
    read_into_mapping(job, span)
}

fn read_into_mapping(job: &LoadJob, span: Span) -> Result<u64> {
    let start = usize::try_from(span.buffer_offset).map_err(|_| io_error(job, Errno::EFBIG))?;
    let len = usize::try_from(span.len).map_err(|_| io_error(job, Errno::EFBIG))?;
    let mut mapping = job.buffer.map()?;
    let _access = job.buffer.cpu_access(SyncDirection::Write)?;
    if start.checked_add(len).is_none_or(|end| end > mapping.len()) {
        return Err(BrokerError::invalid("the range is outside the buffer"));
    }
    // The client may have the buffer mapped too: the kernel reads straight into the mapping,
    // which this process never views as a slice.
    let mut done: usize = 0;
    while done < len {
        let offset = span.file_offset.saturating_add(done as u64);
        match mapping.read_file_at(
            start.saturating_add(done),
            len.saturating_sub(done),
            job.file.as_fd(),
            offset,
        ) {
            Ok(0) => break,
            Ok(n) => done = done.saturating_add(n),
            Err(err) if err.errno() == Some(Errno::EINTR) => {}
            Err(err) => return Err(io_error(job, err.errno().unwrap_or(Errno::EOVERFLOW))),
        }
    }
    Ok(done as u64)
}

fn io_error(job: &LoadJob, errno: Errno) -> BrokerError {
    BrokerError::from_os(
        errno,
        format!(
            "loading into buffer {} failed: {}",
            job.buffer_id,
            errno.desc()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(client: ClientId, buffer_id: i64) -> Queued {
        let (sender, _) = mpsc::sync_channel(1);
        let file = std::fs::File::open("/proc/self/exe").expect("a file");
        // Any dma-buf stand-in will do: the queue never touches the buffer.
        let buffer = rsheap::Buffer::from_fd(file.try_clone().expect("dup").into());
        Queued {
            job: LoadJob {
                client,
                buffer_id,
                buffer: Arc::new(buffer.expect("a buffer")),
                file: file.into(),
                file_offset: 0,
                buffer_offset: 0,
                len: 0,
                expected: 0,
            },
            reply: Reply::Wait(sender),
            cancelled: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Clients take turns: one with many loads queued does not hold back the others.
    #[test]
    fn loads_are_taken_round_robin_between_clients() {
        let mut queue = Queue::default();
        for (client, id) in [(1, 10), (1, 11), (1, 12), (2, 20), (3, 30), (3, 31)] {
            queue
                .pending
                .entry(client)
                .or_default()
                .push_back(queued(client, id));
        }
        let order: Vec<i64> =
            std::iter::from_fn(|| queue.take().map(|q| q.job.buffer_id)).collect();
        assert_eq!(order, [10, 20, 30, 11, 31, 12]);
        assert!(queue.pending.is_empty());
    }
}
