//! Helpers for the broker suite and its client processes: starting rsheapd with a given
//! configuration, reaching it over binder, and reading its errors.
//!
//! The rig starts `rsb_hub` (the service manager) on the guest's binderfs before the suites,
//! and names the rsheapd binary in `$RSHEAPD`. Each test starts its own rsheapd, so every test
//! begins with an empty broker and may kill it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use rsbinder::{hub, ProcessState, SIBinder, Status, StatusCode, Strong};
use rsheap_binder::BROKER_INSTANCE;
use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest, IHeapBroker::IHeapBroker, Usage::Usage,
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
