//! rsheapd: serves `vendor.rsheap.IHeapBroker/default` over binder.
//!
//! `rsheapd [--config PATH]` reads its configuration (default `/vendor/etc/rsheapd.toml`),
//! refuses to start if it is invalid, registers with the service manager and serves until
//! killed.

// Devices build Rust with `-C panic=abort`, and so does this workspace: a panic ends the
// process. No input may reach one, so the operations that can panic are refused here.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used
    )
)]

use std::path::PathBuf;
use std::process::ExitCode;

use log::{error, info};
use rsheap_binder::{Interface as _, BROKER_INSTANCE};
use rsheap_broker::config::BINDER_THREADS;
use rsheap_broker::{Broker, Config, HeapBrokerService};

fn main() -> ExitCode {
    init_logging();
    std::panic::set_hook(Box::new(|info| error!("{info}")));
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let path = config_path()?;
    raise_fd_limit();
    let config = Config::load(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    let broker = Broker::new(config).map_err(|err| format!("cannot start workers: {err}"))?;
    let service = HeapBrokerService::new(broker).into_binder();
    info!(
        "registering {BROKER_INSTANCE}, configured by {}",
        path.display()
    );
    // Loads and large allocations wait on at most `config::WAITING_BINDER_THREADS` of these.
    let threads = u32::try_from(BINDER_THREADS).unwrap_or(u32::MAX);
    rsheap_binder::serve(BROKER_INSTANCE, service.as_binder(), threads)
}

/// Raises the soft limit on file descriptors to the hard one (the `.rc` file sets both): the
/// broker holds one per live buffer.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(errno) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                error!("cannot raise the file descriptor limit from {soft} to {hard}: {errno}");
            }
        }
        Ok(_) => {}
        Err(errno) => error!("cannot read the file descriptor limit: {errno}"),
    }
}

fn config_path() -> Result<PathBuf, String> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (None, ..) => Ok(PathBuf::from(rsheap_broker::config::DEFAULT_PATH)),
        (Some("--config"), Some(path), None) => Ok(PathBuf::from(path)),
        _ => Err("usage: rsheapd [--config PATH]".to_owned()),
    }
}

#[cfg(target_os = "android")]
fn init_logging() {
    android_logger::init_once(
        android_logger::Config::default()
            .with_tag("rsheapd")
            .with_max_level(log::LevelFilter::Info),
    );
}

#[cfg(not(target_os = "android"))]
fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}
