//! The broker's logic, free of binder: sessions, their buffers, quotas and loads.
//!
//! A client works through a [`Session`]: the binder layer opens one per `openSession` call
//! (and one per version 1 client token) and holds it, so no call looks a session up in a
//! table. Buffer ids are unique for the broker's lifetime and are looked up in the calling
//! session's own table, so another session's id is simply not found.
//!
//! Sessions end by [`Broker::close_session`]: asked for, or on the death of their token or
//! their binder object. A death is only noted on the binder thread that hears it
//! ([`Broker::close_later`]); a reaper thread frees what the session held, so binder threads
//! never free gigabytes.
//!
//! Locking: `sessions` and `uids` are held only to open, end or list sessions, never on a
//! call's way to its buffers; each session and each uid's ledger has its own lock (see
//! [`crate::session`] and [`crate::quota`]).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};

use log::{error, info};
use nix::errno::Errno;

use crate::allocation::first_buffer_id;
use crate::config::{Config, Quota};
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::heaps::{HeapStats, Heaps};
use crate::loader::{LoadObserver, Loader};
use crate::quota::{mib, Held, UidLedger};
use crate::segment::{CheckedSegment, SegmentSpec};
use crate::session::{BufferDesc, Record, Session, SessionId};
use crate::sync::lock;
use crate::usage::BufferUsage;
use crate::workers::Workers;

/// The longest debug name a request may give.
pub const DEBUG_NAME_MAX: usize = 63;
/// Most requests in one batch (the AIDL `MAX_BATCH`).
pub const MAX_BATCH: usize = 64;
/// File descriptors kept free of buffers, for binder, clients' files in flight, loads and
/// logs: the broker holds one descriptor per live buffer, and at most its limit less these.
const FD_RESERVE: u64 = 64;

/// A heap as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapReport {
    /// The heap and the broker's accounting in it.
    pub stats: HeapStats,
    /// The usages that pick it first.
    pub usages: Vec<BufferUsage>,
}

/// What a session may allocate, and what its uid holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// The largest single buffer, in bytes.
    pub max_buffer_bytes: u64,
    /// The most requests in a batch.
    pub max_batch: usize,
    /// The page size sizes are rounded to.
    pub page_size: u64,
    /// The uid's quota.
    pub quota: Quota,
    /// What counts against it now.
    pub held: Held,
    /// Sessions the uid has open, and the most it may.
    pub sessions: usize,
    /// The most sessions a uid may have open.
    pub max_sessions: usize,
    /// Whether loads go direct.
    pub direct_loads: bool,
    /// Whether buffers of rsheap's heaps can be shared read-only.
    pub read_only_sharing: bool,
}

/// The broker.
pub struct Broker {
    pub(crate) config: Config,
    pub(crate) heaps: Heaps,
    pub(crate) loader: Loader,
    pub(crate) workers: Workers,
    sessions: Mutex<BTreeMap<SessionId, Arc<Session>>>,
    uids: Mutex<HashMap<u32, Arc<UidLedger>>>,
    /// Sessions whose token or binder object died, for the reaper to end.
    reaper: mpsc::Sender<Weak<Session>>,
    next_buffer: AtomicI64,
    next_session: AtomicU64,
    pub(crate) page_size: u64,
    /// Buffers the broker holds now (one file descriptor each), and the most it may.
    live_buffers: AtomicU64,
    max_buffers: u64,
}

impl Broker {
    /// A broker serving `config`, with its load and allocation workers and its reaper
    /// started.
    pub fn new(config: Config) -> std::io::Result<Arc<Self>> {
        let heaps = Heaps::new(&config);
        let loader = Loader::start(config.limits)?;
        let workers = Workers::start(config.limits)?;
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(4096);
        let fd_limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let max_buffers = fd_limit.saturating_sub(FD_RESERVE);
        info!("holding at most {max_buffers} buffers: {fd_limit} file descriptors");
        let (reaper, dead) = mpsc::channel::<Weak<Session>>();
        let broker = Arc::new(Self {
            config,
            heaps,
            loader,
            workers,
            sessions: Mutex::new(BTreeMap::new()),
            uids: Mutex::new(HashMap::new()),
            reaper,
            next_buffer: AtomicI64::new(first_buffer_id()),
            next_session: AtomicU64::new(1),
            page_size,
            live_buffers: AtomicU64::new(0),
            max_buffers,
        });
        let weak = Arc::downgrade(&broker);
        std::thread::Builder::new()
            .name("rsheapd-reaper".into())
            .spawn(move || {
                for session in dead {
                    let (Some(broker), Some(session)) = (weak.upgrade(), session.upgrade()) else {
                        continue;
                    };
                    broker.close_session(&session);
                }
            })?;
        Ok(broker)
    }

    /// Opens a session for `uid`; `pid` goes into its buffers' names.
    pub fn open_session(&self, uid: u32, pid: i32) -> Result<Arc<Session>> {
        let ledger = lock(&self.uids)
            .entry(uid)
            .or_insert_with(|| Arc::new(UidLedger::new(uid, self.config.quota(uid))))
            .clone();
        ledger.open_session(self.config.limits.sessions_per_uid)?;
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session::new(id, pid, ledger));
        lock(&self.sessions).insert(id, session.clone());
        Ok(session)
    }

    /// Ends `session`: frees everything it holds and cancels its loads. Ending it again
    /// does nothing.
    pub fn close_session(&self, session: &Session) {
        let Some(records) = session.close() else {
            return;
        };
        lock(&self.sessions).remove(&session.id());
        session.ledger().close_session();
        self.loader.cancel(session.id(), None);
        let bytes: u64 = records.iter().map(|r| r.desc.size).sum();
        info!(
            "session {} (uid {}, pid {}) ended: freeing {} buffers, {}",
            session.id(),
            session.uid(),
            session.pid(),
            records.len(),
            mib(bytes)
        );
        for record in records {
            self.release(session.ledger(), record);
        }
    }

    /// Has the reaper end `session` soon, off the calling thread: for death notices.
    pub fn close_later(&self, session: &Arc<Session>) {
        if self.reaper.send(Arc::downgrade(session)).is_err() {
            error!(
                "the reaper has stopped; ending session {} here",
                session.id()
            );
            self.close_session(session);
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

    /// What `session` may allocate.
    pub fn limits(&self, session: &Session) -> Result<SessionLimits> {
        session.check_open()?;
        let ledger = session.ledger();
        let direct_loads = self.loader.direct();
        Ok(SessionLimits {
            max_buffer_bytes: self.config.limits.max_buffer_bytes,
            max_batch: MAX_BATCH,
            page_size: self.page_size,
            quota: ledger.quota(),
            held: ledger.held(),
            sessions: ledger.sessions(),
            max_sessions: self.config.limits.sessions_per_uid,
            direct_loads,
            read_only_sharing: direct_loads,
        })
    }

    /// Frees `session`'s buffer `id`, cancelling its loads.
    pub fn free(&self, session: &Session, id: i64) -> Result<()> {
        let record = session.remove(id)?;
        self.loader.cancel(session.id(), Some(id));
        self.release(session.ledger(), record);
        Ok(())
    }

    /// Frees every buffer of `ids`, or none if one is not `session`'s.
    pub fn free_batch(&self, session: &Session, ids: &[i64]) -> Result<()> {
        if ids.len() > MAX_BATCH {
            return Err(BrokerError::invalid(format!(
                "a batch frees at most {MAX_BATCH} buffers, not {}",
                ids.len()
            )));
        }
        for record in session.remove_all(ids)? {
            self.loader.cancel(session.id(), Some(record.desc.id));
            self.release(session.ledger(), record);
        }
        Ok(())
    }

    /// Frees what is left of `ids` in `session`: a failed batch's buffers.
    pub(crate) fn discard(&self, session: &Session, ids: &[i64]) {
        for &id in ids {
            if let Ok(record) = session.remove(id) {
                self.loader.cancel(session.id(), Some(id));
                self.release(session.ledger(), record);
            }
        }
    }

    /// `session`'s buffers, oldest first.
    pub fn list(&self, session: &Session) -> Result<Vec<BufferDesc>> {
        session.check_open()?;
        Ok(session.list())
    }

    /// Loads a file segment into `session`'s buffer `id` and returns the bytes loaded.
    pub fn load(&self, session: &Session, id: i64, segment: SegmentSpec) -> Result<u64> {
        let job = self.load_job(session, id, segment)?;
        self.loader.load(job)
    }

    /// Queues the same load; `observer` hears how it goes.
    pub fn load_async(
        &self,
        session: &Session,
        id: i64,
        segment: SegmentSpec,
        observer: Box<dyn LoadObserver>,
    ) -> Result<()> {
        let job = self.load_job(session, id, segment)?;
        self.loader.load_async(job, observer)
    }

    /// Cancels the loads into `session`'s buffer `id`; the buffer stays.
    pub fn cancel_loads(&self, session: &Session, id: i64) -> Result<()> {
        session.with(id, |_| ())?;
        self.loader.cancel(session.id(), Some(id));
        Ok(())
    }

    /// A read-only dma-buf over the memory of `session`'s buffer `id`.
    pub fn share_read_only(&self, session: &Session, id: i64) -> Result<OwnedFd> {
        let buffer = session.with(id, |record| record.buffer.clone())?;
        let shared = buffer.share_read_only().map_err(|err| match err.errno() {
            Some(Errno::EXDEV) => BrokerError::new(
                BrokerErrorCode::Unsupported,
                format!(
                    "buffer {id} is not of one of rsheap's heaps: it cannot be shared read-only"
                ),
            ),
            Some(Errno::ENOENT | Errno::ENOTTY) => BrokerError::new(
                BrokerErrorCode::Unsupported,
                format!("this kernel cannot share buffers read-only: {err}"),
            ),
            _ => err.into(),
        })?;
        Ok(shared.into_fd())
    }

    /// Checks a load's arguments against `session`'s buffer `id` and the file.
    fn load_job(
        &self,
        session: &Session,
        id: i64,
        segment: SegmentSpec,
    ) -> Result<crate::loader::LoadJob> {
        let size = session.with(id, |record| record.desc.size)?;
        let segment = CheckedSegment::new(segment, size, &format!("buffer {id}"))?;
        self.load_into(session, id, segment)
    }

    /// Stops counting a buffer that left its session.
    pub(crate) fn release(&self, ledger: &UidLedger, record: Record) {
        if !record.charged {
            ledger.uncharge(record.desc.size);
        }
        self.return_descriptors(1);
        self.heaps.release(record.heap, record.desc.size);
    }

    /// A new buffer id.
    pub(crate) fn next_buffer_id(&self) -> i64 {
        self.next_buffer.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts `count` more buffers against the broker's file descriptors: `BUSY` if they do
    /// not fit.
    pub(crate) fn take_descriptors(&self, count: u32) -> Result<()> {
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

    /// Gives back what [`Self::take_descriptors`] took.
    pub(crate) fn return_descriptors(&self, count: u32) {
        let _ = self
            .live_buffers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
                Some(live.saturating_sub(u64::from(count)))
            });
    }

    /// The sessions open now, oldest first.
    pub(crate) fn open_sessions(&self) -> Vec<Arc<Session>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// The uids' ledgers, by uid.
    pub(crate) fn ledgers(&self) -> BTreeMap<u32, Arc<UidLedger>> {
        lock(&self.uids)
            .iter()
            .map(|(uid, ledger)| (*uid, ledger.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::{AllocationSpec, Request};

    fn broker() -> Arc<Broker> {
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
        let session = broker.open_session(1000, 42).expect("session");
        let kind = |spec: AllocationSpec| {
            broker
                .allocate_batch(&session, vec![Request::from(spec)])
                .expect_err("refused")
                .kind
        };
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
        let batch = (0..=MAX_BATCH).map(|_| Request::from(spec(4096))).collect();
        assert_eq!(
            broker
                .allocate_batch(&session, batch)
                .expect_err("too many")
                .kind,
            BrokerErrorCode::InvalidArgument
        );
        let err = broker
            .allocate_batch(&session, vec![spec(4096).into(), spec(0).into()])
            .expect_err("one bad request");
        assert!(err.message.starts_with("request 1: "), "{}", err.message);
        assert!(session.list().is_empty());
        // Nothing of the failed requests stays counted.
        assert_eq!(session.ledger().held(), Held::default());
    }

    /// Ids are looked up in the caller's table only, and an ended session answers nothing.
    #[test]
    fn unknown_ids_are_not_found_and_ended_sessions_are_closed() {
        let broker = broker();
        let session = broker.open_session(1000, 42).expect("session");
        assert_eq!(
            broker.free(&session, 1).expect_err("no buffer").kind,
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
            broker
                .load(&session, 1, segment)
                .expect_err("no buffer")
                .kind,
            BrokerErrorCode::NotFound
        );
        assert_eq!(
            broker.free_batch(&session, &[1, 2]).expect_err("none").kind,
            BrokerErrorCode::NotFound
        );
        broker.close_session(&session);
        broker.close_session(&session);
        for kind in [
            broker.free(&session, 1).expect_err("ended").kind,
            broker.list(&session).expect_err("ended").kind,
            broker.limits(&session).expect_err("ended").kind,
            broker
                .allocate_batch(&session, vec![spec(4096).into()])
                .expect_err("ended")
                .kind,
        ] {
            assert_eq!(kind, BrokerErrorCode::SessionClosed);
        }
    }

    /// Sessions per uid are bounded, and an ended session makes room.
    #[test]
    fn sessions_per_uid_are_bounded() {
        let broker = broker();
        let most = broker.config.limits.sessions_per_uid;
        let sessions: Vec<_> = (0..most)
            .map(|_| broker.open_session(1000, 42).expect("within the bound"))
            .collect();
        let err = broker.open_session(1000, 42).expect_err("one too many");
        assert_eq!(err.kind, BrokerErrorCode::QuotaExceeded);
        broker.open_session(1001, 42).expect("another uid");
        if let Some(first) = sessions.first() {
            broker.close_session(first);
        }
        broker.open_session(1000, 42).expect("room again");
        let limits = broker.limits(&sessions[1]).expect("limits");
        assert_eq!(limits.sessions, most);
        assert_eq!(limits.max_sessions, most);
        assert_eq!(limits.max_batch, MAX_BATCH);
    }
}
