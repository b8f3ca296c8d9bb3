//! Version 1 of `vendor.rsheap.IHeapBroker`, generated from its frozen API: what a client
//! built before version 2 speaks. The suites use it to hold the broker to that contract.

/// The generated types, one module per AIDL file.
#[allow(missing_docs, clippy::all, clippy::undocumented_unsafe_blocks)]
pub mod aidl {
    include!(concat!(env!("OUT_DIR"), "/vendor_rsheap.rs"));
}
