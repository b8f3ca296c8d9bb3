//! Buffers from rsheapd, the broker, instead of from the heap nodes.
//!
//! HALs and apps that may not open vendor heaps themselves ask the broker: it picks the heap
//! for a usage, names and accounts the buffer, loads files into it, and frees what the client
//! held when the client dies. [`Broker`] is one such client: it creates the token binder the
//! broker knows it by, and when the broker has died and restarted it reconnects and retries the
//! call once (buffers of the old broker are gone by then, so their ids are not found).
//!
//! This file holds the session and its connection; `request` the allocations and frees,
//! single and batched, `load` the loads and their cancellation, and `limits` the limits query
//! and read-only sharing.

use std::io::Read;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rsheap_binder::{Result as BinderResult, SpIBinder, Strong, BROKER_INSTANCE};
pub use vendor_rsheap::aidl::vendor::rsheap::{
    BufferInfo::BufferInfo, HeapInfo::HeapInfo, Usage::Usage,
};
use vendor_rsheap::aidl::vendor::rsheap::{
    IHeapBroker, IHeapBroker::IHeapBroker as Service, IHeapSession::IHeapSession,
};

use crate::{Buffer, Error, Result};

mod limits;
mod load;
mod request;

pub use limits::SessionLimits;
pub use request::{BufferSpec, FileLoad, FreeBatchError, MAX_BATCH};

/// How long [`Broker::connect`] and a reconnection wait for the broker to be registered.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the broker said went wrong, from the AIDL `ERROR_` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerErrorCode {
    /// A size, offset, name, file or heap is not acceptable.
    InvalidArgument,
    /// No heap had the memory.
    NoMemory,
    /// The caller's uid would exceed its quota.
    QuotaExceeded,
    /// The client has no buffer with this id.
    NotFound,
    /// Reading the file failed.
    Io,
    /// The device does not offer what was asked for.
    Unsupported,
    /// Too many loads or allocations are queued or waiting.
    Busy,
    /// The load or allocation was cancelled.
    Cancelled,
    /// The session has ended.
    SessionClosed,
    /// A code this client does not know (a newer broker).
    Other(i32),
}

impl BrokerErrorCode {
    pub(crate) fn from_code(code: i32) -> Self {
        match code {
            IHeapBroker::ERROR_INVALID_ARGUMENT => Self::InvalidArgument,
            IHeapBroker::ERROR_NO_MEMORY => Self::NoMemory,
            IHeapBroker::ERROR_QUOTA_EXCEEDED => Self::QuotaExceeded,
            IHeapBroker::ERROR_NOT_FOUND => Self::NotFound,
            IHeapBroker::ERROR_IO => Self::Io,
            IHeapBroker::ERROR_UNSUPPORTED => Self::Unsupported,
            IHeapBroker::ERROR_BUSY => Self::Busy,
            IHeapBroker::ERROR_CANCELLED => Self::Cancelled,
            IHeapBroker::ERROR_SESSION_CLOSED => Self::SessionClosed,
            other => Self::Other(other),
        }
    }

    /// The AIDL `ERROR_` code.
    pub fn code(self) -> i32 {
        match self {
            Self::InvalidArgument => IHeapBroker::ERROR_INVALID_ARGUMENT,
            Self::NoMemory => IHeapBroker::ERROR_NO_MEMORY,
            Self::QuotaExceeded => IHeapBroker::ERROR_QUOTA_EXCEEDED,
            Self::NotFound => IHeapBroker::ERROR_NOT_FOUND,
            Self::Io => IHeapBroker::ERROR_IO,
            Self::Unsupported => IHeapBroker::ERROR_UNSUPPORTED,
            Self::Busy => IHeapBroker::ERROR_BUSY,
            Self::Cancelled => IHeapBroker::ERROR_CANCELLED,
            Self::SessionClosed => IHeapBroker::ERROR_SESSION_CLOSED,
            Self::Other(code) => code,
        }
    }

    /// The errno that best describes the code.
    pub fn errno(self) -> nix::errno::Errno {
        use nix::errno::Errno;
        match self {
            Self::InvalidArgument => Errno::EINVAL,
            Self::NoMemory => Errno::ENOMEM,
            Self::QuotaExceeded => Errno::EDQUOT,
            Self::NotFound => Errno::ENOENT,
            Self::Io | Self::Other(_) => Errno::EIO,
            Self::Unsupported => Errno::EOPNOTSUPP,
            Self::Busy => Errno::EBUSY,
            Self::Cancelled => Errno::ECANCELED,
            Self::SessionClosed => Errno::EPIPE,
        }
    }
}

/// How to allocate a buffer through the broker.
#[derive(Clone, Debug)]
pub struct AllocationOptions {
    /// What the buffer is for; decides the heap unless `heap` names one.
    pub usage: Usage,
    /// Whether CPU access goes through the caches.
    pub cached: bool,
    /// A heap of the broker's to use instead of the usage's.
    pub heap: Option<String>,
    /// Free text for the broker's listings, up to 63 bytes.
    pub debug_name: Option<String>,
}

impl Default for AllocationOptions {
    fn default() -> Self {
        Self {
            usage: Usage::SCRATCH,
            cached: true,
            heap: None,
            debug_name: None,
        }
    }
}

impl AllocationOptions {
    /// Options for `usage`, cached, on the usage's heap.
    pub fn usage(usage: Usage) -> Self {
        Self {
            usage,
            ..Self::default()
        }
    }
}

/// A buffer the broker allocated: the dma-buf and what the broker knows of it.
#[derive(Debug)]
pub struct BrokerBuffer {
    buffer: Buffer,
    info: BufferInfo,
    /// The [`Broker::generation`] that allocated it.
    generation: u64,
}

impl BrokerBuffer {
    /// The dma-buf: map it, sync it, or hand its fd to a device.
    pub fn buffer(&self) -> &Buffer {
        &self.buffer
    }

    /// The broker's id of the buffer.
    pub fn id(&self) -> i64 {
        self.info.id
    }

    /// Its dma-buf name, `<usage>-<pid>-<id>`.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The heap it came from.
    pub fn heap(&self) -> &str {
        &self.info.heap
    }

    /// Everything the broker reported.
    pub fn info(&self) -> &BufferInfo {
        &self.info
    }

    /// The dma-buf alone; the broker keeps accounting it until it is freed.
    pub fn into_buffer(self) -> Buffer {
        self.buffer
    }
}

/// A connection to rsheapd: a session, ended when the `Broker` is dropped, which frees every
/// buffer it still holds.
pub struct Broker {
    connection: Mutex<Connection>,
    /// Ends the session if this process dies.
    token: SpIBinder,
}

/// The broker, this client's session with it, and how many times it was reconnected to.
#[derive(Clone)]
struct Connection {
    service: Strong<dyn Service>,
    session: Strong<dyn IHeapSession>,
    generation: u64,
}

impl Connection {
    fn open(token: &SpIBinder, generation: u64) -> Result<Self> {
        let service = lookup()?;
        let session = service.openSession(token).map_err(Error::from_status)?;
        Ok(Self {
            service,
            session,
            generation,
        })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // A broker that has died has nothing left to close.
        let _ = self.current().session.close();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

impl Broker {
    /// Connects to `vendor.rsheap.IHeapBroker/default`, waiting up to [`CONNECT_TIMEOUT`] for
    /// it to be registered.
    pub fn connect() -> Result<Self> {
        binder_init()?;
        let token = rsheap_binder::client_token();
        Ok(Self {
            connection: Mutex::new(Connection::open(&token, 0)?),
            token,
        })
    }

    /// Frees `buffer`: the broker stops accounting it, and its memory returns once every
    /// file descriptor and mapping of it is gone (this one is closed here).
    pub fn free(&self, buffer: BrokerBuffer) -> Result<()> {
        self.check_generation(&buffer)?;
        let id = buffer.id();
        drop(buffer);
        self.call(|session| session.free(id)).map(drop)
    }

    /// This client's buffers, oldest first.
    pub fn buffers(&self) -> Result<Vec<BufferInfo>> {
        Ok(self.call(|session| session.listBuffers())?.0)
    }

    /// The heaps the broker allocates from, with its accounting.
    pub fn heaps(&self) -> Result<Vec<HeapInfo>> {
        let service = self.current().service;
        match service.getHeaps() {
            Err(status) if rsheap_binder::is_dead_object(&status) => Ok(self
                .reconnect(&self.current())?
                .service
                .getHeaps()
                .map_err(Error::from_status)?),
            result => result.map_err(Error::from_status),
        }
    }

    /// The broker's report of its heaps, clients and buffers, as `dumpsys` shows it; only
    /// root, system and shell may read it.
    pub fn dump(&self) -> Result<String> {
        self.dump_with(&[])
    }

    /// The same report as [`Broker::dump`], as one JSON object with the fields
    /// `loads_queued`, `loads_running`, `allocations_queued`, `allocations_running`, and the
    /// lists `heaps`, `sessions`, `uids` and `buffers`.
    pub fn dump_json(&self) -> Result<String> {
        self.dump_with(&["--json"])
    }

    fn dump_with(&self, args: &[&str]) -> Result<String> {
        let service = self.current().service;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|errno| Error::os("make a pipe for the dump", errno))?;
        // The broker writes while the call runs: read alongside it, so that a long report
        // cannot fill the pipe and stall both.
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::from(read)
                .read_to_string(&mut text)
                .map(|_| text)
        });
        let sent = rsheap_binder::dump(&service.as_binder(), write, args);
        let text = reader
            .join()
            .map_err(|_| Error::Unreachable("the dump reader failed".into()))?
            .map_err(|err| Error::io("read the dump", &err))?;
        sent.map_err(|err| Error::Unreachable(format!("dump: {err}")))?;
        Ok(text)
    }

    /// Fails with `NotFound` for a buffer of a broker that has since died: the restarted one
    /// does not know it (its memory stays usable while the buffer is held).
    fn check_generation(&self, buffer: &BrokerBuffer) -> Result<()> {
        if buffer.generation == self.current().generation {
            return Ok(());
        }
        Err(Error::Broker {
            code: BrokerErrorCode::NotFound,
            message: format!(
                "buffer {} belongs to a broker that has since restarted",
                buffer.id()
            ),
        })
    }

    /// Runs `call` on the session and returns its result with the generation it ran on; if
    /// the broker has died, reconnects (with a new session) and runs it once more.
    fn call<T>(&self, call: impl Fn(&dyn IHeapSession) -> BinderResult<T>) -> Result<(T, u64)> {
        let current = self.current();
        match call(&*current.session) {
            Err(status) if rsheap_binder::is_dead_object(&status) => {
                let fresh = self.reconnect(&current)?;
                let value = call(&*fresh.session).map_err(Error::from_status)?;
                Ok((value, fresh.generation))
            }
            result => Ok((result.map_err(Error::from_status)?, current.generation)),
        }
    }

    /// A new connection and session in place of `dead`, unless another thread made one.
    fn reconnect(&self, dead: &Connection) -> Result<Connection> {
        let fresh = Connection::open(&self.token, dead.generation.wrapping_add(1))?;
        let mut current = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.generation == dead.generation {
            *current = fresh;
        }
        Ok(current.clone())
    }

    fn current(&self) -> Connection {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Opens this process's binder connection and starts its thread pool (death notices and
/// callbacks arrive on it), once.
fn binder_init() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INIT.get_or_init(rsheap_binder::init_client)
        .clone()
        .map_err(Error::Unreachable)
}

/// The registered broker, once it answers, waiting up to [`CONNECT_TIMEOUT`].
fn lookup() -> Result<Strong<dyn Service>> {
    let start = Instant::now();
    loop {
        if let Some(service) = rsheap_binder::check_broker(BROKER_INSTANCE) {
            if service.getHeaps().is_ok() {
                return Ok(service);
            }
        }
        if start.elapsed() > CONNECT_TIMEOUT {
            return Err(Error::Unreachable(format!(
                "{BROKER_INSTANCE} is not registered or does not answer"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
