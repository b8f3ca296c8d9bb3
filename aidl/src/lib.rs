//! The stable AIDL interface of rsheap's broker, `vendor.rsheap.IHeapBroker`, as Rust binder
//! code for its clients and for rsheapd.
//!
//! The code is generated at build time from the newest frozen version under `aidl_api/`, so
//! what a client speaks is exactly what that version froze. The module path mirrors AOSP's
//! Rust AIDL backend (`vendor_rsheap::aidl::vendor::rsheap::...`), so code written against
//! it builds unchanged in a platform tree, where Soong's `vendor.rsheap-V2-rust` takes this
//! crate's place. Everything else binder needs is in `rsheap-binder`.

/// The generated types, one module per AIDL file.
#[allow(missing_docs, clippy::all, clippy::undocumented_unsafe_blocks)]
pub mod aidl {
    include!(concat!(env!("OUT_DIR"), "/vendor_rsheap.rs"));
}
