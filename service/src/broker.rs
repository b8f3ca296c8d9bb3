//! The broker's logic, free of binder: clients, their buffers, quotas, loads and the dump.
//!
//! A client is whatever the binder layer says it is (a token binder and a uid); here it is a
//! [`ClientId`]. Buffer ids are unique for the broker's lifetime, and every lookup goes through
//! the calling client's own table, so another client's id is simply not found.
//!
//! Quotas follow the memory. Each uid has a kernel account (`rsheap::Account`, an open file
//! of `/dev/rsheap`) that every buffer of rsheap's heaps made for it is charged to; the
//! account counts a buffer until the kernel releases it, after the last copy of its fd,
//! mapping or device attachment is gone, so freeing a buffer to the broker while keeping a
//! copy of its fd does not give its quota back. Buffers the kernel cannot count (other
//! exporters' heaps, or kernels without accounts) count until they are freed to the broker.
//!
//! Locking: `state` guards the client tables and the per-uid totals. It is never held across
//! an allocation, a load, a binder call or a wait (reading an account is one non-blocking
//! ioctl); quota is reserved under it first and returned if the allocation then fails.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use log::info;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::{fstat, SFlag};

use crate::config::Config;
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::heaps::{HeapStats, Heaps};
use crate::loader::{LoadJob, LoadObserver, Loader};
use crate::sync::lock;
use crate::usage::BufferUsage;

/// Identifies a client for the broker's lifetime.
pub type ClientId = u64;

/// The kernel's limit on a dma-buf name, without its terminating NUL.
const DMA_BUF_NAME_MAX: usize = 31;
/// The longest debug name a request may give.
pub const DEBUG_NAME_MAX: usize = 63;
/// Requests from this size on are checked against the memory available.
const LARGE: u64 = 64 << 20;
/// Most requests in one batch (the AIDL `MAX_BATCH`).
pub const MAX_BATCH: usize = 64;
/// File descriptors kept free of buffers, for binder, clients' files in flight, loads and
/// logs: the broker holds one descriptor per live buffer, and at most its limit less these.
const FD_RESERVE: u64 = 64;

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

/// What a client is told of one of its buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferDesc {
    /// Its id.
    pub id: i64,
    /// Bytes.
    pub size: u64,
    /// The heap it came from.
    pub heap: String,
    /// What it is for.
    pub usage: BufferUsage,
    /// Whether CPU access is cached.
    pub cached: bool,
    /// Its dma-buf name.
    pub name: String,
    /// The requester's debug name, or empty.
    pub debug_name: String,
}

/// A new buffer: its description and a file descriptor for the client.
#[derive(Debug)]
pub struct Allocated {
    /// The description.
    pub desc: BufferDesc,
    /// The client's own dma-buf file descriptor.
    pub fd: OwnedFd,
}

/// A file range to load, as the client gave it.
#[derive(Debug)]
pub struct SegmentSpec {
    /// The file.
    pub file: OwnedFd,
    /// Where in the file.
    pub file_offset: i64,
    /// Bytes, or -1 for up to the end of the file or the buffer.
    pub length: i64,
    /// Where in the buffer.
    pub buffer_offset: i64,
}

/// A heap as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapReport {
    /// The heap and the broker's accounting in it.
    pub stats: HeapStats,
    /// The usages that pick it first.
    pub usages: Vec<BufferUsage>,
}

struct Record {
    desc: BufferDesc,
    heap: usize,
    buffer: Arc<rsheap::Buffer>,
    /// Whether the uid's kernel account counts the buffer (else the broker does, until the
    /// buffer is freed).
    charged: bool,
}

struct Client {
    uid: u32,
    pid: i32,
    buffers: BTreeMap<i64, Record>,
}

/// Bytes in buffers.
#[derive(Clone, Copy, Default)]
struct Held {
    bytes: u64,
    buffers: u32,
}

impl Held {
    fn add(&mut self, bytes: u64, buffers: u32) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.buffers = self.buffers.saturating_add(buffers);
    }

    fn sub(&mut self, bytes: u64, buffers: u32) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.buffers = self.buffers.saturating_sub(buffers);
    }
}

/// What counts against one uid's quota.
#[derive(Default)]
struct UidHold {
    /// The uid's kernel account, opened at its first allocation (and retried at each
    /// allocation until `/dev/rsheap` exists).
    account: Option<rsheap::Account>,
    /// Buffers the account does not count, until they are freed to the broker.
    uncharged: Held,
    /// Reserved for allocations in progress.
    pending: Held,
}

impl UidHold {
    /// Everything that counts against the quota now.
    fn held(&self) -> Held {
        let mut held = self.uncharged;
        held.add(self.pending.bytes, self.pending.buffers);
        if let Some(usage) = self.account.as_ref().and_then(|a| a.usage().ok()) {
            held.add(
                usage.bytes,
                u32::try_from(usage.buffers).unwrap_or(u32::MAX),
            );
        }
        held
    }
}

#[derive(Default)]
struct State {
    clients: BTreeMap<ClientId, Client>,
    held: HashMap<u32, UidHold>,
}

impl State {
    /// Reserves `bytes` in `count` buffers of `uid`'s quota, for an allocation in progress.
    fn reserve(&mut self, config: &Config, uid: u32, bytes: u64, count: u32) -> Result<()> {
        let quota = config.quota(uid);
        let hold = self.held.entry(uid).or_default();
        if hold.account.is_none() {
            hold.account = rsheap::Account::open().ok();
        }
        let held = hold.held();
        if held.bytes.saturating_add(bytes) > quota.bytes
            || held.buffers.saturating_add(count) > quota.buffers
        {
            return Err(BrokerError::new(
                BrokerErrorCode::QuotaExceeded,
                format!(
                    "uid {uid} holds {} in {} buffers of its quota of {} in {}; {} in {count} more would exceed it",
                    mib(held.bytes),
                    held.buffers,
                    mib(quota.bytes),
                    quota.buffers,
                    mib(bytes)
                ),
            ));
        }
        hold.pending.add(bytes, count);
        Ok(())
    }

    /// Ends a reservation of [`Self::reserve`]: the allocation failed, or its buffers are
    /// counted now.
    fn unreserve(&mut self, uid: u32, bytes: u64, count: u32) {
        if let Some(hold) = self.held.get_mut(&uid) {
            hold.pending.sub(bytes, count);
        }
    }

    /// Charges a new buffer of `uid` to its kernel account, or else counts it here; returns
    /// whether the account counts it.
    fn charge(&mut self, uid: u32, buffer: &rsheap::Buffer, bytes: u64) -> bool {
        let hold = self.held.entry(uid).or_default();
        let charged = hold
            .account
            .as_ref()
            .is_some_and(|account| account.charge(buffer).is_ok());
        if !charged {
            hold.uncharged.add(bytes, 1);
        }
        charged
    }

    /// Stops counting a buffer of `uid` freed to the broker, unless its account counts it.
    fn uncharge(&mut self, uid: u32, record: &Record) {
        if record.charged {
            return;
        }
        if let Some(hold) = self.held.get_mut(&uid) {
            hold.uncharged.sub(record.desc.size, 1);
        }
    }
}

/// The broker.
pub struct Broker {
    config: Config,
    heaps: Heaps,
    loader: Loader,
    state: Mutex<State>,
    next_buffer: AtomicI64,
    next_client: AtomicU64,
    page_size: u64,
    /// Buffers the broker holds now (one file descriptor each), and the most it may.
    live_buffers: AtomicU64,
    max_buffers: u64,
}

impl Broker {
    /// A broker serving `config`, with its load workers started.
    pub fn new(config: Config) -> std::io::Result<Self> {
        let heaps = Heaps::new(&config);
        let loader = Loader::start(config.limits)?;
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(4096);
        let fd_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let max_buffers = fd_limit.saturating_sub(FD_RESERVE);
        info!("holding at most {max_buffers} buffers: {fd_limit} file descriptors");
        Ok(Self {
            config,
            heaps,
            loader,
            state: Mutex::new(State::default()),
            next_buffer: AtomicI64::new(first_buffer_id()),
            next_client: AtomicU64::new(1),
            page_size,
            live_buffers: AtomicU64::new(0),
            max_buffers,
        })
    }

    /// Starts tracking a client of `uid`; `pid` goes into its buffers' names.
    pub fn add_client(&self, uid: u32, pid: i32) -> ClientId {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        lock(&self.state).clients.insert(
            id,
            Client {
                uid,
                pid,
                buffers: BTreeMap::new(),
            },
        );
        id
    }

    /// Frees everything `client` holds and cancels its loads: it is gone.
    pub fn remove_client(&self, client: ClientId) {
        let removed = lock(&self.state).clients.remove(&client);
        self.loader.cancel(client, None);
        if let Some(gone) = removed {
            let bytes: u64 = gone.buffers.values().map(|r| r.desc.size).sum();
            info!(
                "client {client} (uid {}, pid {}) is gone: freeing {} buffers, {}",
                gone.uid,
                gone.pid,
                gone.buffers.len(),
                mib(bytes)
            );
            let mut state = lock(&self.state);
            for record in gone.buffers.values() {
                state.uncharge(gone.uid, record);
            }
            drop(state);
            self.live_buffers
                .fetch_sub(gone.buffers.len() as u64, Ordering::Relaxed);
            for record in gone.buffers.values() {
                self.heaps.release(record.heap, record.desc.size);
            }
        }
    }

    /// The heaps present, with the broker's accounting.
    pub fn heaps(&self) -> Vec<HeapReport> {
        self.heaps
            .stats()
            .into_iter()
            .map(|stats| {
                let usages = BufferUsage::ALL
                    .into_iter()
                    .filter(|usage| {
                        self.config.heaps.get(usage).is_some_and(|choice| {
                            choice.cached.first() == Some(&stats.name)
                                || choice.uncached.first() == Some(&stats.name)
                        })
                    })
                    .collect();
                HeapReport { stats, usages }
            })
            .collect()
    }

    /// Allocates one buffer for `client`.
    pub fn allocate(&self, client: ClientId, spec: &AllocationSpec) -> Result<Allocated> {
        let mut buffers = self.allocate_batch(client, std::slice::from_ref(spec))?;
        buffers
            .pop()
            .ok_or_else(|| BrokerError::new(BrokerErrorCode::Io, "no buffer allocated"))
    }

    /// Allocates every buffer of `specs` for `client`, or none.
    pub fn allocate_batch(
        &self,
        client: ClientId,
        specs: &[AllocationSpec],
    ) -> Result<Vec<Allocated>> {
        if specs.is_empty() || specs.len() > MAX_BATCH {
            return Err(BrokerError::invalid(format!(
                "a batch holds 1 to {MAX_BATCH} requests, not {}",
                specs.len()
            )));
        }
        let plans = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                self.plan(spec).map_err(|err| BrokerError {
                    message: batch_message(specs.len(), index, &err.message),
                    ..err
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let total: u64 = plans.iter().map(|plan| plan.size).sum();
        let count = u32::try_from(plans.len()).unwrap_or(u32::MAX);
        self.take_descriptors(count)?;
        let result = self.allocate_reserved(client, specs.len(), plans, total, count);
        if result.is_err() {
            self.live_buffers
                .fetch_sub(u64::from(count), Ordering::Relaxed);
        }
        result
    }

    /// Counts `count` more buffers against the broker's file descriptors: `BUSY` if they do
    /// not fit.
    fn take_descriptors(&self, count: u32) -> Result<()> {
        let max = self.max_buffers;
        self.live_buffers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
                live.checked_add(u64::from(count))
                    .filter(|&total| total <= max)
            })
            .map(drop)
            .map_err(|live| {
                BrokerError::new(
                    BrokerErrorCode::Busy,
                    format!(
                        "the broker holds {live} buffers, the most its file descriptor limit \
                         allows ({max}); free some first"
                    ),
                )
            })
    }

    /// Allocates the buffers `plans` describes, `total` bytes in `count` buffers, whose file
    /// descriptors are counted already.
    fn allocate_reserved(
        &self,
        client: ClientId,
        requests: usize,
        plans: Vec<Plan>,
        total: u64,
        count: u32,
    ) -> Result<Vec<Allocated>> {
        let (uid, pid) = {
            let mut state = lock(&self.state);
            let (uid, pid) = match state.clients.get(&client) {
                Some(c) => (c.uid, c.pid),
                None => return Err(BrokerError::invalid("unknown client")),
            };
            state.reserve(&self.config, uid, total, count)?;
            (uid, pid)
        };

        let mut made: Vec<(Plan, usize, rsheap::Buffer)> = Vec::with_capacity(plans.len());
        for (index, plan) in plans.into_iter().enumerate() {
            match self.heaps.allocate(&plan.heaps, plan.size) {
                Ok((heap, buffer)) => made.push((plan, heap, buffer)),
                Err(err) => {
                    self.undo(uid, total, count, &made);
                    return Err(BrokerError {
                        message: batch_message(requests, index, &err.message),
                        ..err
                    });
                }
            }
        }

        let mut records = Vec::with_capacity(made.len());
        let mut allocated = Vec::with_capacity(made.len());
        for (plan, heap, buffer) in &made {
            let id = self.next_buffer.fetch_add(1, Ordering::Relaxed);
            let name = buffer_name(plan.usage, pid, id);
            let fd = buffer.set_name(&name).and_then(|()| {
                buffer.as_fd().try_clone_to_owned().map_err(|err| {
                    rsheap::Error::InvalidArgument(format!("duplicate the buffer: {err}"))
                })
            });
            let fd = match fd {
                Ok(fd) => fd,
                Err(err) => {
                    self.undo(uid, total, count, &made);
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
            records.push((id, desc.clone(), *heap));
            allocated.push(Allocated { desc, fd });
        }

        let mut state = lock(&self.state);
        if !state.clients.contains_key(&client) {
            // The client died while its buffers were being made.
            drop(state);
            self.undo(uid, total, count, &made);
            return Err(BrokerError::invalid("the client is gone"));
        }
        // The buffers count from now on, charged or not; the reservation ends.
        state.unreserve(uid, total, count);
        let mut new_records = Vec::with_capacity(made.len());
        for ((id, desc, heap), (_, _, buffer)) in records.into_iter().zip(made) {
            let charged = state.charge(uid, &buffer, desc.size);
            new_records.push((
                id,
                Record {
                    desc,
                    heap,
                    buffer: Arc::new(buffer),
                    charged,
                },
            ));
        }
        if let Some(owner) = state.clients.get_mut(&client) {
            owner.buffers.extend(new_records);
        }
        Ok(allocated)
    }

    /// Returns the quota and heap accounting of buffers made before a batch failed.
    fn undo(&self, uid: u32, total: u64, count: u32, made: &[(Plan, usize, rsheap::Buffer)]) {
        lock(&self.state).unreserve(uid, total, count);
        for (plan, heap, _) in made {
            self.heaps.release(*heap, plan.size);
        }
    }

    /// Checks `spec` and decides its size and candidate heaps.
    fn plan(&self, spec: &AllocationSpec) -> Result<Plan> {
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
        Ok(Plan {
            size,
            usage: spec.usage,
            cached: spec.cached,
            debug_name,
            heaps,
        })
    }

    /// Frees `client`'s buffer `id`, cancelling its loads.
    pub fn free(&self, client: ClientId, id: i64) -> Result<()> {
        let record = {
            let mut state = lock(&self.state);
            let owner = state
                .clients
                .get_mut(&client)
                .ok_or_else(|| BrokerError::not_found(id))?;
            let uid = owner.uid;
            let record = owner
                .buffers
                .remove(&id)
                .ok_or_else(|| BrokerError::not_found(id))?;
            state.uncharge(uid, &record);
            record
        };
        self.live_buffers.fetch_sub(1, Ordering::Relaxed);
        self.loader.cancel(client, Some(id));
        self.heaps.release(record.heap, record.desc.size);
        Ok(())
    }

    /// `client`'s buffers, oldest first.
    pub fn list(&self, client: ClientId) -> Vec<BufferDesc> {
        lock(&self.state)
            .clients
            .get(&client)
            .map(|c| c.buffers.values().map(|r| r.desc.clone()).collect())
            .unwrap_or_default()
    }

    /// Loads a file segment into `client`'s buffer `id` and returns the bytes loaded.
    pub fn load(&self, client: ClientId, id: i64, segment: SegmentSpec) -> Result<u64> {
        let job = self.load_job(client, id, segment)?;
        self.loader.load(job)
    }

    /// Queues the same load; `observer` hears how it goes.
    pub fn load_async(
        &self,
        client: ClientId,
        id: i64,
        segment: SegmentSpec,
        observer: Box<dyn LoadObserver>,
    ) -> Result<()> {
        let job = self.load_job(client, id, segment)?;
        self.loader.load_async(job, observer)
    }

    /// Checks a load's arguments against the buffer and the file.
    fn load_job(&self, client: ClientId, id: i64, segment: SegmentSpec) -> Result<LoadJob> {
        let (buffer, size) = {
            let state = lock(&self.state);
            let record = state
                .clients
                .get(&client)
                .and_then(|c| c.buffers.get(&id))
                .ok_or_else(|| BrokerError::not_found(id))?;
            (record.buffer.clone(), record.desc.size)
        };
        let (file_offset, buffer_offset) = match (
            u64::try_from(segment.file_offset),
            u64::try_from(segment.buffer_offset),
        ) {
            (Ok(file), Ok(buffer)) => (file, buffer),
            _ => return Err(BrokerError::invalid("offsets must not be negative")),
        };
        if buffer_offset > size {
            return Err(BrokerError::invalid(format!(
                "buffer offset {buffer_offset} is past the end of buffer {id} ({size} bytes)"
            )));
        }
        let room = size.saturating_sub(buffer_offset);
        let len = match segment.length {
            -1 => room,
            length => u64::try_from(length)
                .ok()
                .filter(|&length| length <= room)
                .ok_or_else(|| {
                    BrokerError::invalid(format!(
                        "length {length} does not fit buffer {id} ({room} bytes from offset {buffer_offset})"
                    ))
                })?,
        };
        if file_offset
            .checked_add(len)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(BrokerError::invalid("the file range overflows"));
        }
        let stat = fstat(segment.file.as_raw_fd())
            .map_err(|errno| BrokerError::from_os(errno, "cannot stat the file"))?;
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        let expected = match kind {
            SFlag::S_IFREG => {
                let file_size = u64::try_from(stat.st_size).unwrap_or(0);
                len.min(file_size.saturating_sub(file_offset))
            }
            SFlag::S_IFBLK => len,
            _ => {
                return Err(BrokerError::invalid(
                    "the file must be a regular file or a block device",
                ))
            }
        };
        let flags = fcntl(segment.file.as_raw_fd(), FcntlArg::F_GETFL)
            .map_err(|errno| BrokerError::from_os(errno, "cannot read the file's flags"))?;
        if OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_WRONLY {
            return Err(BrokerError::invalid("the file is not open for reading"));
        }
        Ok(LoadJob {
            client,
            buffer_id: id,
            buffer,
            file: segment.file,
            file_offset,
            buffer_offset,
            len,
            expected,
        })
    }

    /// A readable account of everything the broker holds, client by client.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let (queued, running) = self.loader.activity();
        let _ = writeln!(out, "rsheapd: loads queued {queued}, running {running}\n");
        let _ = writeln!(out, "heaps:");
        let _ = writeln!(
            out,
            "  {:<20} {:>7} {:>8} {:>12} {:>12} {:>9}",
            "heap", "cached", "buffers", "MiB", "allocations", "failures"
        );
        for heap in self.heaps.stats() {
            let _ = writeln!(
                out,
                "  {:<20} {:>7} {:>8} {:>12.1} {:>12} {:>9}",
                heap.name,
                heap.cached,
                heap.buffers,
                heap.bytes as f64 / (1 << 20) as f64,
                heap.allocations,
                heap.failures
            );
        }
        let state = lock(&self.state);
        let _ = writeln!(out, "\nclients:");
        let _ = writeln!(
            out,
            "  {:>6} {:>6} {:>8} {:>8} {:>12}   quota",
            "client", "uid", "pid", "buffers", "MiB"
        );
        for (id, client) in &state.clients {
            let bytes: u64 = client.buffers.values().map(|r| r.desc.size).sum();
            let quota = self.config.quota(client.uid);
            let _ = writeln!(
                out,
                "  {id:>6} {:>6} {:>8} {:>8} {:>12.1}   {} in {} buffers per uid",
                client.uid,
                client.pid,
                client.buffers.len(),
                bytes as f64 / (1 << 20) as f64,
                mib(quota.bytes),
                quota.buffers
            );
        }
        let _ = writeln!(
            out,
            "\nuids (quota use: live buffers, freed or not, until released):"
        );
        let _ = writeln!(out, "  {:>6} {:>8} {:>12}   quota", "uid", "buffers", "MiB");
        for (uid, hold) in &state.held {
            let held = hold.held();
            let quota = self.config.quota(*uid);
            let _ = writeln!(
                out,
                "  {uid:>6} {:>8} {:>12.1}   {} in {} buffers{}",
                held.buffers,
                held.bytes as f64 / (1 << 20) as f64,
                mib(quota.bytes),
                quota.buffers,
                if hold.account.is_some() {
                    ""
                } else {
                    " (no kernel account: counted until freed)"
                }
            );
        }
        let _ = writeln!(out, "\nbuffers:");
        let _ = writeln!(
            out,
            "  {:>6} {:>8} {:>12} {:<18} {:<17} {:<31} debug name",
            "client", "id", "bytes", "heap", "usage", "name"
        );
        for (client_id, client) in &state.clients {
            for record in client.buffers.values() {
                let desc = &record.desc;
                let _ = writeln!(
                    out,
                    "  {client_id:>6} {:>8} {:>12} {:<18} {:<17} {:<31} {}",
                    desc.id,
                    desc.size,
                    desc.heap,
                    desc.usage.config_key(),
                    desc.name,
                    desc.debug_name
                );
            }
        }
        out
    }
}

/// A checked allocation request.
struct Plan {
    size: u64,
    usage: BufferUsage,
    cached: bool,
    debug_name: String,
    heaps: Vec<usize>,
}

/// The first buffer id of this broker: the milliseconds since the epoch (modulo about 115
/// days) times 10 000, 15 digits at most. A restarted broker starts past the ids of the one
/// before, so an id a client kept from before the restart is not found instead of naming one
/// of its new buffers.
fn first_buffer_id() -> i64 {
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

fn batch_message(len: usize, index: usize, message: &str) -> String {
    if len == 1 {
        message.to_owned()
    } else {
        format!("request {index}: {message}")
    }
}

/// `bytes` as MiB for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
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

    fn broker() -> Broker {
        Broker::new(Config::parse(include_str!("../rsheapd.toml")).expect("config"))
            .expect("broker")
    }

    fn spec(size: i64) -> AllocationSpec {
        AllocationSpec {
            size,
            usage: BufferUsage::Scratch,
            heap: None,
            cached: true,
            debug_name: None,
        }
    }

    /// Requests are checked before any heap is touched (this host has none).
    #[test]
    fn bad_requests_are_refused_before_allocating() {
        let broker = broker();
        let client = broker.add_client(1000, 42);
        let kind = |spec: AllocationSpec| broker.allocate(client, &spec).expect_err("refused").kind;
        assert_eq!(kind(spec(0)), BrokerErrorCode::InvalidArgument);
        assert_eq!(kind(spec(-1)), BrokerErrorCode::InvalidArgument);
        assert_eq!(kind(spec(i64::MAX)), BrokerErrorCode::InvalidArgument);
        assert_eq!(
            kind(spec((4096 << 20) + 1)),
            BrokerErrorCode::InvalidArgument
        );
        let named = |name: &str| AllocationSpec {
            debug_name: Some(name.to_owned()),
            ..spec(4096)
        };
        assert_eq!(
            kind(named(&"x".repeat(64))),
            BrokerErrorCode::InvalidArgument
        );
        assert_eq!(kind(named("tab\there")), BrokerErrorCode::InvalidArgument);
        let on = |heap: &str| AllocationSpec {
            heap: Some(heap.to_owned()),
            ..spec(4096)
        };
        assert_eq!(kind(on("carveout")), BrokerErrorCode::Unsupported);
        // A configured heap this machine lacks, and a usage none of whose heaps exist.
        assert_eq!(kind(on("rsheap")), BrokerErrorCode::Unsupported);
        assert_eq!(kind(spec(4096)), BrokerErrorCode::Unsupported);
        let batch = vec![spec(4096); MAX_BATCH + 1];
        assert_eq!(
            broker
                .allocate_batch(client, &batch)
                .expect_err("too many")
                .kind,
            BrokerErrorCode::InvalidArgument
        );
        let err = broker
            .allocate_batch(client, &[spec(4096), spec(0)])
            .expect_err("one bad request");
        assert!(err.message.starts_with("request 1: "), "{}", err.message);
        assert!(broker.list(client).is_empty());
    }

    /// Ids are looked up in the caller's table only.
    #[test]
    fn unknown_ids_are_not_found() {
        let broker = broker();
        let client = broker.add_client(1000, 42);
        assert_eq!(
            broker.free(client, 1).expect_err("no buffer").kind,
            BrokerErrorCode::NotFound
        );
        let file = std::fs::File::open("/proc/self/exe").expect("a file");
        let segment = SegmentSpec {
            file: file.into(),
            file_offset: 0,
            length: -1,
            buffer_offset: 0,
        };
        assert_eq!(
            broker.load(client, 1, segment).expect_err("no buffer").kind,
            BrokerErrorCode::NotFound
        );
        broker.remove_client(client);
        assert_eq!(
            broker.free(client, 1).expect_err("gone").kind,
            BrokerErrorCode::NotFound
        );
    }

    #[test]
    fn quotas_reserve_and_return() {
        let config = Config::parse(&format!(
            "{}\n[quota.uid.7]\nmib = 2\nbuffers = 2\n",
            include_str!("../rsheapd.toml")
        ))
        .expect("config");
        let mut state = State::default();
        state.reserve(&config, 7, 1 << 20, 1).expect("first MiB");
        state.reserve(&config, 7, 1 << 20, 1).expect("second MiB");
        let err = state.reserve(&config, 7, 4096, 1).expect_err("over quota");
        assert_eq!(err.kind, BrokerErrorCode::QuotaExceeded);
        assert!(
            err.message.contains("uid 7 holds 2.0 MiB in 2 buffers"),
            "{}",
            err.message
        );
        state.unreserve(7, 1 << 20, 1);
        state.reserve(&config, 7, 4096, 1).expect("room again");
        state.unreserve(7, 4096, 1);
        state.unreserve(7, 1 << 20, 1);
        // Another uid has the default quota.
        state
            .reserve(&config, 8, 1 << 30, 100)
            .expect("default quota");
    }
}
