//! Helpers for the broker suite and its client processes: starting rsheapd with a given
//! configuration, reaching it over binder, and reading its errors.
//!
//! The rig starts `rsb_hub` (the service manager) on the guest's binderfs before the suites,
//! and names the rsheapd binary in `$RSHEAPD`. Each test starts its own rsheapd, so every test
//! begins with an empty broker and may kill it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use rsbinder::{hub, ParcelFileDescriptor, ProcessState, SIBinder, Status, StatusCode, Strong};
use rsheap::Buffer;
use rsheap_binder::BROKER_INSTANCE;
use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest, BufferRequest::BufferRequest, FileSegment::FileSegment,
    IHeapBroker::IHeapBroker, IHeapSession::IHeapSession, Usage::Usage,
};

/// The configuration the tree ships.
pub const SHIPPED_CONFIG: &str = include_str!("../../../service/rsheapd.toml");

/// Opens this process's binder connection and starts its thread pool (for callbacks and death
/// notices), once.
pub fn binder_init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        ProcessState::init_default().expect("open /dev/binderfs/binder");
        ProcessState::start_thread_pool();
    });
}

/// The broker as registered now, if it answers.
pub fn connect() -> Option<Strong<dyn IHeapBroker>> {
    binder_init();
    let broker = hub::check_interface::<dyn IHeapBroker>(BROKER_INSTANCE).ok()?;
    broker.getHeaps().ok()?;
    Some(broker)
}

/// Waits up to 20 s for a broker that answers.
pub fn wait_for_broker() -> Strong<dyn IHeapBroker> {
    let start = Instant::now();
    loop {
        if let Some(broker) = connect() {
            return broker;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "rsheapd did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new client token.
pub fn token() -> SIBinder {
    binder_init();
    rsheap_binder::client_token()
}

/// A request for `size` bytes for `usage`, cached, on the usage's heap.
pub fn request(size: i64, usage: Usage) -> AllocationRequest {
    AllocationRequest {
        size,
        usage,
        heap: None,
        cached: true,
        debugName: None,
    }
}

/// A version 2 request for the same, loading nothing.
pub fn buffer_request(size: i64, usage: Usage) -> BufferRequest {
    BufferRequest {
        allocation: request(size, usage),
        load: None,
    }
}

/// A new session with `broker`, and the token that ends it when this process dies.
pub fn open_session(broker: &Strong<dyn IHeapBroker>) -> (SIBinder, Strong<dyn IHeapSession>) {
    let token = token();
    let session = broker.openSession(&token).expect("open a session");
    (token, session)
}

/// The service-specific error code of a failed call, or a description of another failure.
pub fn error_code(status: &Status) -> Result<i32, String> {
    match status.service_specific_error() {
        0 => Err(format!("{status:?}")),
        code => Ok(code),
    }
}

/// Whether a failed call failed because the broker's process is gone.
pub fn is_dead_object(status: &Status) -> bool {
    status.transaction_error() == StatusCode::DeadObject
}

/// An rsheapd process the test started.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts rsheapd with `config` and waits until it serves.
    pub fn start(config: &str) -> (Self, Strong<dyn IHeapBroker>) {
        binder_init();
        let dir = std::env::temp_dir();
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let stamp = format!(
            "{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(format!("rsheapd-{stamp}.toml"));
        std::fs::write(&path, config).expect("write the configuration");
        let log = dir.join(format!("rsheapd-{stamp}.log"));
        let child = Self::spawn(&path, &log).spawn().expect("start rsheapd");
        let daemon = Self {
            child: Some(child),
            log,
        };
        let broker = wait_for_broker();
        (daemon, broker)
    }

    /// The command that runs rsheapd with the configuration at `config`, logging to `log`.
    pub fn spawn(config: &std::path::Path, log: &std::path::Path) -> Command {
        let binary = std::env::var_os("RSHEAPD").expect("$RSHEAPD names the rsheapd binary");
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create the log"));
        command
    }

    /// What rsheapd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills rsheapd with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill rsheapd");
            child.wait().expect("reap rsheapd");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let log = self.log();
        if !std::thread::panicking() {
            assert!(!log.contains("panicked"), "rsheapd panicked:\n{log}");
        }
    }
}

/// The shipped configuration with `from` replaced by `to`, each pair in turn.
pub fn config(changes: &[(&str, &str)]) -> String {
    let mut text = SHIPPED_CONFIG.to_owned();
    for (from, to) in changes {
        assert!(text.contains(from), "the configuration has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// The shipped configuration with a quota of `mib` MiB in `buffers` buffers for uid 0, the
/// uid the tests run as.
pub fn root_quota(mib: u32, buffers: u32) -> String {
    let quota = format!("[quota.uid.0]\nmib = {mib}\nbuffers = {buffers}\n\n# Per-uid overrides");
    config(&[("# Per-uid overrides", &quota)])
}

/// The error code of a call that must fail with a service-specific error.
pub fn code<T: std::fmt::Debug>(result: rsbinder::BinderResult<T>) -> i32 {
    let status = result.expect_err("the call must fail");
    error_code(&status).unwrap_or_else(|other| panic!("not a service error: {other}"))
}

/// The dma-buf a reply carried.
pub fn into_buffer(fd: Option<ParcelFileDescriptor>) -> Buffer {
    let fd: OwnedFd = fd.expect("a file descriptor").into();
    Buffer::from_fd(fd).expect("a dma-buf")
}

/// A segment of `file` to load, with the file descriptor duplicated.
pub fn segment(file: &File, file_offset: i64, length: i64, buffer_offset: i64) -> FileSegment {
    FileSegment {
        file: Some(ParcelFileDescriptor::new(file.try_clone().expect("dup"))),
        fileOffset: file_offset,
        length,
        bufferOffset: buffer_offset,
    }
}

/// The buffers and bytes the broker holds in heap `name`.
pub fn heap_buffers(broker: &Strong<dyn IHeapBroker>, name: &str) -> (i32, i64) {
    let heaps = broker.getHeaps().expect("heaps");
    let heap = heaps
        .iter()
        .find(|h| h.name == name)
        .expect("the heap is listed");
    (heap.buffers, heap.bytes)
}

/// Waits up to `seconds` for `done`, polling.
pub fn eventually(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(seconds),
            "{what}: timed out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `broker_client` process, started by a test to be a client of its own.
pub struct ClientProcess {
    /// The process.
    pub child: Child,
    out: BufReader<ChildStdout>,
}

impl ClientProcess {
    /// Starts `broker_client` with `args`: the one the rig copied to the guest
    /// (`$RSHEAP_BROKER_CLIENT`), or the one built beside the running test.
    pub fn spawn(args: &[&str]) -> Self {
        let binary = std::env::var_os("RSHEAP_BROKER_CLIENT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let test = std::env::current_exe().expect("the test's path");
                // Tests run from target/<profile>/deps; binaries sit in target/<profile>.
                test.ancestors()
                    .nth(2)
                    .expect("a target folder")
                    .join("broker_client")
            });
        let mut child = Command::new(binary)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start broker_client");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Self { child, out }
    }

    /// The next line it says.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read the client");
        line.trim().to_owned()
    }

    /// Its pid.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }
}
