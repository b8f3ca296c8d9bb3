//! rsheapd: serves `vendor.rsheap.IHeapBroker/default` over binder.
//!
//! `rsheapd [--config PATH]` reads its configuration (default `/vendor/etc/rsheapd.toml`),
//! refuses to start if it is invalid, registers with the service manager and serves until
//! killed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use log::{error, info};
use rsbinder::{hub, ProcessState};
use rsheap_broker::{Broker, Config, HeapBrokerService};
use vendor_rsheap::BROKER_INSTANCE;

/// Binder threads: loads wait on at most `limits.sync_loads` of them, the rest keep serving.
const BINDER_THREADS: u32 = 16;

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
    let config = Config::load(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    let broker = Broker::new(config).map_err(|err| format!("cannot start load workers: {err}"))?;
    let driver = if std::path::Path::new(rsbinder::DEFAULT_BINDER_PATH).exists() {
        rsbinder::DEFAULT_BINDER_PATH
    } else {
        rsbinder::LEGACY_BINDER_PATH
    };
    ProcessState::init(driver, BINDER_THREADS)
        .map_err(|err| format!("cannot open the binder driver: {err:?}"))?;
    ProcessState::start_thread_pool();
    let service = HeapBrokerService::new(Arc::new(broker)).into_binder();
    hub::add_service(BROKER_INSTANCE, service.as_binder())
        .map_err(|err| format!("cannot register {BROKER_INSTANCE}: {err:?}"))?;
    info!(
        "serving {BROKER_INSTANCE} with the configuration {}",
        path.display()
    );
    ProcessState::join_thread_pool().map_err(|err| format!("binder thread pool: {err:?}"))
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
