//! What going through rsheapd costs: allocations through the broker against the heap ioctl a
//! client could make itself, the allocation rate of one and of eight clients, and a file load
//! through the broker against a direct LOAD. `cargo xtask bench` starts rsheapd (release
//! build, the shipped configuration) before these run.
//!
//! The direct variants do what a HAL without the broker would: allocate from the heap node and
//! name the buffer (`DMA_BUF_SET_NAME`), then close it. The broker does both for its client
//! and also accounts the buffer, so the difference is the binder round trips and the
//! bookkeeping.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rsbinder::{ParcelFileDescriptor, SIBinder, Strong};
use rsheap::{FileIo, Heap, IoPath, Span};
use rsheap_suites::broker::{
    buffer_request, error_code, open_session, request, token, wait_for_broker,
};
use rsheap_suites::{drain_pools, scratch_path, wait_for_pool_worker, write_random_file};
use vendor_rsheap::aidl::vendor::rsheap::{
    FileSegment::FileSegment,
    IHeapBroker::{IHeapBroker, ERROR_BUSY},
    IHeapSession::IHeapSession,
    Usage::Usage,
};

use crate::file_load::{cold, FILE_LEN};
use crate::{Report, MIB};

/// The floor of every broker call: a call that touches no buffer (`getHeaps`), 400 per run.
pub const ROUND_TRIP: &str = "binder round trip (getHeaps) x 400";
/// Allocate, name and free one 8 MiB buffer, 50 times per run.
pub const ALLOC_FREE: &str = "alloc+name+free 8 MiB x 50, warm pool";
/// 1 MiB allocations (each freed), 400 per run, by one client.
pub const RATE_ONE: &str = "1 MiB allocations x 400, 1 client";
/// The same, 50 by each of 8 clients at once.
pub const RATE_EIGHT: &str = "1 MiB allocations x 400, 8 clients";
/// A 1 GiB file into a 1 GiB buffer, cold cache.
pub const LOAD: &str = "load a 1 GiB file into a buffer, cold cache";
/// Another client's small calls while 16 clients allocate and free 128 MiB buffers.
pub const LIVENESS: &str = "getHeaps + page alloc + free while 16 clients churn 128 MiB";

/// Clients churning large buffers in [`LIVENESS`], and the rounds each makes.
const CHURNING: usize = 16;
const CHURN_ROUNDS: usize = 4;

const DIRECT: &str = "limit: direct heap ioctl";
const BROKER: &str = "rsheapd broker";
const IN_PROCESS: &str = "rsheapd logic, in process (no binder)";
const SYSTEM: &str = "system heap";

/// A client of the broker: its token over binder, its session in process.
struct Client {
    token: SIBinder,
    local: Option<std::sync::Arc<rsheap_broker::session::Session>>,
}

/// Who makes the buffers.
#[derive(Clone, Copy)]
enum Maker<'a> {
    /// The client itself, from the heap node.
    Direct(&'a Heap),
    /// rsheapd, over binder.
    Broker(&'a Strong<dyn IHeapBroker>),
    /// rsheapd's logic called in this process: the broker's own work without binder.
    InProcess(&'a std::sync::Arc<rsheap_broker::Broker>),
}

impl Maker<'_> {
    /// A new client of this maker.
    fn client(self) -> Result<Client> {
        Ok(Client {
            token: token(),
            local: match self {
                Self::InProcess(broker) => Some(broker.open_session(0, std::process::id() as i32)?),
                Self::Direct(_) | Self::Broker(_) => None,
            },
        })
    }

    /// Allocates and names a `len`-byte buffer and frees it, `count` times, for `client`.
    fn churn(self, client: &Client, len: usize, count: usize) -> Result<()> {
        for index in 0..count {
            match self {
                Self::Direct(heap) => {
                    let buffer = heap.allocate(len)?;
                    buffer.set_name(&format!("scratch-{}-{index}", std::process::id()))?;
                }
                Self::Broker(broker) => {
                    let made = broker
                        .allocate(&client.token, &request(len as i64, Usage::SCRATCH))
                        .map_err(|status| anyhow::anyhow!("allocate: {status:?}"))?;
                    drop(made.fd);
                    broker
                        .free(&client.token, made.info.id)
                        .map_err(|status| anyhow::anyhow!("free: {status:?}"))?;
                }
                Self::InProcess(broker) => {
                    let session = client.local.as_ref().context("no session")?;
                    let made = broker.allocate_batch(session, vec![in_process_request(len)])?;
                    for buffer in made {
                        drop(buffer.fd);
                        broker.free(session, buffer.desc.id)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn in_process_request(len: usize) -> rsheap_broker::allocation::Request {
    rsheap_broker::allocation::Request::from(rsheap_broker::allocation::AllocationSpec {
        size: len as i64,
        usage: rsheap_broker::usage::BufferUsage::Scratch,
        heap: None,
        cached: true,
        debug_name: None,
    })
}

/// `runs` timings of `count` allocations of `len` bytes spread over `clients` threads, each a
/// client of its own, each after an untimed run that warms the pool. The clients last for all
/// runs: a version 1 client's token keeps its session open for as long as the process holds
/// it, and each counts against the uid's session limit.
fn timed_churns(
    maker: Maker,
    clients: usize,
    len: usize,
    count: usize,
    runs: usize,
) -> Result<Vec<Duration>> {
    let tokens = (0..clients)
        .map(|_| maker.client())
        .collect::<Result<Vec<Client>>>()?;
    let timings = (0..runs)
        .map(|_| {
            maker.churn(&tokens[0], len, count / clients)?;
            wait_for_pool_worker();
            let start = Instant::now();
            std::thread::scope(|scope| {
                let workers: Vec<_> = tokens
                    .iter()
                    .map(|client| scope.spawn(move || maker.churn(client, len, count / clients)))
                    .collect();
                workers
                    .into_iter()
                    .try_for_each(|worker| worker.join().expect("a churn thread"))
            })?;
            Ok(start.elapsed())
        })
        .collect();
    if let Maker::InProcess(broker) = maker {
        for session in tokens.iter().filter_map(|client| client.local.as_ref()) {
            broker.close_session(session);
        }
    }
    timings
}

/// Runs the broker workloads the arguments ask for.
pub fn workloads(args: &crate::Args, report: &mut Report<impl std::io::Write>) -> Result<()> {
    if ![ROUND_TRIP, ALLOC_FREE, RATE_ONE, RATE_EIGHT, LOAD, LIVENESS]
        .iter()
        .any(|name| args.wants(name))
    {
        return Ok(());
    }
    let broker = wait_for_broker();
    let config = rsheap_broker::Config::parse(rsheap_suites::broker::SHIPPED_CONFIG)?;
    let in_process = rsheap_broker::Broker::new(config)?;
    let rsheap = Heap::open("rsheap")?;
    let system = Heap::open("system")?;
    let runs = args.runs;

    if args.wants(ROUND_TRIP) {
        let samples = (0..runs)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..400 {
                    broker
                        .getHeaps()
                        .map_err(|status| anyhow::anyhow!("getHeaps: {status:?}"))?;
                }
                Ok(start.elapsed())
            })
            .collect::<Result<_>>()?;
        report.rate(ROUND_TRIP, BROKER, samples, 400)?;
    }
    if args.wants(ALLOC_FREE) {
        for (variant, maker) in [
            (DIRECT, Maker::Direct(&rsheap)),
            (IN_PROCESS, Maker::InProcess(&in_process)),
            (BROKER, Maker::Broker(&broker)),
            (SYSTEM, Maker::Direct(&system)),
        ] {
            let samples = timed_churns(maker, 1, 8 * MIB, 50, runs)?;
            report.times(ALLOC_FREE, variant, samples)?;
        }
    }
    for (workload, clients) in [(RATE_ONE, 1), (RATE_EIGHT, 8)] {
        if !args.wants(workload) {
            continue;
        }
        for (variant, maker) in [
            (DIRECT, Maker::Direct(&rsheap)),
            (IN_PROCESS, Maker::InProcess(&in_process)),
            (BROKER, Maker::Broker(&broker)),
        ] {
            let samples = timed_churns(maker, clients, MIB, 400, runs)?;
            report.rate(workload, variant, samples, 400)?;
        }
    }
    if args.wants(LOAD) {
        let load = FileLoad::new(&broker)?;
        let mut direct = Vec::with_capacity(runs);
        let mut brokered = Vec::with_capacity(runs);
        // Alternating, so drift in the emulator's speed affects both alike.
        for _ in 0..runs {
            direct.push(load.direct(&rsheap)?);
            brokered.push(load.brokered()?);
        }
        let bytes = FILE_LEN as u64;
        report.throughput(LOAD, "limit: direct LOAD", direct, bytes)?;
        report.throughput(LOAD, BROKER, brokered, bytes)?;
        std::fs::remove_file(&load.path)?;
    }
    if args.wants(LIVENESS) {
        let (_token, session) = open_session(&broker);
        let mut idle = Vec::with_capacity(runs);
        let (mut p50, mut p99, mut max) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            idle.push(percentile(
                &small_calls(&broker, &session, &|| false, 100)?,
                0.99,
            ));
            let latencies = small_calls_while_churning(&broker, &session)?;
            p50.push(percentile(&latencies, 0.5));
            p99.push(percentile(&latencies, 0.99));
            max.push(percentile(&latencies, 1.0));
        }
        report.times(LIVENESS, "limit: idle broker, p99", idle)?;
        report.times(LIVENESS, "rsheapd, p50", p50)?;
        report.times(LIVENESS, "rsheapd, p99", p99)?;
        report.times(LIVENESS, "rsheapd, max", max)?;
    }
    Ok(())
}

/// The `q` quantile of `latencies` (0 for none).
fn percentile(latencies: &[Duration], q: f64) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let index = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Times `getHeaps` and a page allocated and freed through `session`, `count` times or until
/// `done`, whichever is first (`count` 0: until `done`).
fn small_calls(
    broker: &Strong<dyn IHeapBroker>,
    session: &Strong<dyn IHeapSession>,
    done: &dyn Fn() -> bool,
    count: usize,
) -> Result<Vec<Duration>> {
    let page = rsheap::page_size() as i64;
    let mut latencies = Vec::new();
    while (count == 0 || latencies.len() < count) && !(count == 0 && done()) {
        let start = Instant::now();
        broker
            .getHeaps()
            .map_err(|status| anyhow::anyhow!("getHeaps: {status:?}"))?;
        let made = session
            .allocate(&buffer_request(page, Usage::SCRATCH))
            .map_err(|status| anyhow::anyhow!("allocate: {status:?}"))?;
        session
            .free(made.info.id)
            .map_err(|status| anyhow::anyhow!("free: {status:?}"))?;
        latencies.push(start.elapsed());
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(latencies)
}

/// [`small_calls`] while [`CHURNING`] sessions, one per thread, each allocate and free a
/// 128 MiB buffer [`CHURN_ROUNDS`] times from a drained pool, retrying on `ERROR_BUSY`.
fn small_calls_while_churning(
    broker: &Strong<dyn IHeapBroker>,
    session: &Strong<dyn IHeapSession>,
) -> Result<Vec<Duration>> {
    drain_pools();
    let left = std::sync::atomic::AtomicUsize::new(CHURNING);
    std::thread::scope(|scope| {
        let churners: Vec<_> = (0..CHURNING)
            .map(|_| {
                let left = &left;
                scope.spawn(move || -> Result<()> {
                    let result = churn_large(broker);
                    left.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    result
                })
            })
            .collect();
        let done = || left.load(std::sync::atomic::Ordering::Relaxed) == 0;
        let latencies = small_calls(broker, session, &done, 0);
        for churner in churners {
            churner
                .join()
                .map_err(|_| anyhow::anyhow!("a churning client panicked"))??;
        }
        latencies
    })
}

fn churn_large(broker: &Strong<dyn IHeapBroker>) -> Result<()> {
    let (_token, session) = open_session(broker);
    let mut round = 0;
    while round < CHURN_ROUNDS {
        match session.allocate(&buffer_request(128 * MIB as i64, Usage::SCRATCH)) {
            Ok(made) => {
                session
                    .free(made.info.id)
                    .map_err(|status| anyhow::anyhow!("free: {status:?}"))?;
                round += 1;
            }
            Err(status) if error_code(&status) == Ok(ERROR_BUSY) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(status) => anyhow::bail!("allocate: {status:?}"),
        }
    }
    Ok(())
}

/// A 1 GiB file of random content on the scratch disk.
struct FileLoad<'a> {
    broker: &'a Strong<dyn IHeapBroker>,
    path: std::path::PathBuf,
}

impl<'a> FileLoad<'a> {
    fn new(broker: &'a Strong<dyn IHeapBroker>) -> Result<Self> {
        let path = scratch_path("bench-broker-1gib.bin");
        write_random_file(&path, FILE_LEN as u64, 0xb0c4);
        Ok(Self { broker, path })
    }

    fn file(&self) -> Result<File> {
        File::open(&self.path).with_context(|| format!("open {}", self.path.display()))
    }

    /// LOAD by the client itself into a buffer of its own.
    fn direct(&self, heap: &Heap) -> Result<Duration> {
        let buffer = heap.allocate(FILE_LEN)?;
        let io = FileIo::open()?;
        let file = self.file()?;
        cold();
        let start = Instant::now();
        let moved = io.load(&file, &buffer, Span::start(FILE_LEN as u64), IoPath::Auto)?;
        let took = start.elapsed();
        anyhow::ensure!(moved.bytes == FILE_LEN as u64, "a short load");
        Ok(took)
    }

    /// `loadFile` through the broker into a buffer it allocated.
    fn brokered(&self) -> Result<Duration> {
        let client = token();
        let made = self
            .broker
            .allocate(&client, &request(FILE_LEN as i64, Usage::MODEL_WEIGHTS))
            .map_err(|status| anyhow::anyhow!("allocate: {status:?}"))?;
        let segment = FileSegment {
            file: Some(ParcelFileDescriptor::new(OwnedFd::from(self.file()?))),
            fileOffset: 0,
            length: -1,
            bufferOffset: 0,
        };
        cold();
        let start = Instant::now();
        let loaded = self
            .broker
            .loadFile(&client, made.info.id, &segment)
            .map_err(|status| anyhow::anyhow!("load: {status:?}"))?;
        let took = start.elapsed();
        anyhow::ensure!(loaded == FILE_LEN as i64, "a short load");
        self.broker
            .free(&client, made.info.id)
            .map_err(|status| anyhow::anyhow!("free: {status:?}"))?;
        Ok(took)
    }
}
