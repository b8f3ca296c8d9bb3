//! rsheapd, rsheap's Binder broker: it allocates dma-buf buffers for camera and NPU clients
//! from the heap their usage calls for, names them `<usage>-<pid>-<id>`, holds each uid to its
//! quota, loads file segments into buffers on a pool of workers, and frees everything a client
//! held when the client dies.
//!
//! The logic lives in [`broker`] and the modules beside it ([`session`], [`allocation`]) and
//! knows nothing of binder; [`service`] puts it behind the stable AIDL interface
//! `vendor.rsheap.IHeapBroker` and its sessions, `IHeapSession`, and the `rsheapd` binary
//! only wires that to the binder driver and the service manager.

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

pub mod allocation;
pub mod broker;
pub mod config;
mod convert;
pub mod error;
mod heaps;
mod loader;
mod quota;
mod report;
pub mod segment;
pub mod service;
pub mod session;
mod session_service;
mod sync;
pub mod usage;
mod workers;

pub use broker::Broker;
pub use config::Config;
pub use error::{BrokerError, BrokerErrorCode};
pub use heaps::HeapStats;
pub use loader::LoadObserver;
pub use service::HeapBrokerService;
