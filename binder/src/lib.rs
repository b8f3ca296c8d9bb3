//! The binder API rsheap's service and SDK are written against, over either of two binder
//! crates.
//!
//! With cargo, rsheap speaks binder through rsbinder, which runs on any Linux kernel with
//! binderfs. In an Android tree, Soong builds the same service and SDK sources against AOSP's
//! `binder` crate (`libbinder_rs`) and the code `aidl_interface` generates
//! (`vendor.rsheap-V2-rust`), passing `--cfg aosp_binder` to this crate only.
//!
//! The two agree on the generated code: the module paths (`vendor_rsheap::aidl::...`), the
//! trait and method names, parcelables and enums. They differ in the runtime around it: how a
//! native object is made, how a process serves, calling identity, death notifications, the
//! names of status codes and the signature of `dump`. Those differences live here and nowhere
//! else, one backend per crate with the same items:
//!
//! - types: [`SpIBinder`], [`Strong`], [`Status`], [`Result`], [`ParcelFileDescriptor`] and
//!   the [`Interface`] trait;
//! - native objects: [`new_broker_binder`], [`new_session_binder`], [`new_load_callback`],
//!   [`new_load_observer`], [`new_allocation_callback`], [`client_token`];
//! - serving and finding: [`serve`], [`init_client`], [`check_broker`];
//! - calls: [`calling_uid`], [`calling_pid`], [`is_remote`], [`link_to_death`] and
//!   [`DeathLink`], [`dump`];
//! - statuses: [`service_error`], [`service_specific`], [`is_dead_object`];
//! - [`impl_interface_with_dump!`], since `Interface::dump` differs in its arguments.

#[cfg_attr(aosp_binder, path = "aosp.rs")]
#[cfg_attr(not(aosp_binder), path = "rsbinder.rs")]
mod backend;

pub use backend::*;

/// The instance rsheapd registers: `vendor.rsheap.IHeapBroker/default`.
pub const BROKER_INSTANCE: &str = "vendor.rsheap.IHeapBroker/default";

/// What a service writes for `dumpsys`: [`impl_interface_with_dump!`] makes it the object's
/// `Interface::dump`.
pub trait Dump {
    /// Writes the report `args` ask for (`dumpsys <instance> <args>...`).
    fn dump(&self, out: &mut dyn std::io::Write, args: &[String]) -> std::io::Result<()>;
}

/// A service-specific error a call failed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    /// The interface's `ERROR_` code.
    pub code: i32,
    /// The service's message, empty if it sent none.
    pub message: String,
}
