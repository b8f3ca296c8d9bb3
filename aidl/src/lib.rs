//! The stable AIDL interface of rsheap's broker, `vendor.rsheap.IHeapBroker`, as Rust binder
//! code for its clients and for rsheapd.
//!
//! The code is generated at build time from the newest frozen version under `aidl_api/`, so
//! what a client speaks is exactly what that version froze. The module path mirrors AOSP's
//! Rust AIDL backend (`vendor_rsheap::aidl::vendor::rsheap::...`), so code written against
//! it builds unchanged in a platform tree.

/// The generated types, one module per AIDL file.
#[allow(missing_docs, clippy::all, clippy::undocumented_unsafe_blocks)]
pub mod aidl {
    include!(concat!(env!("OUT_DIR"), "/vendor_rsheap.rs"));
}

/// The instance rsheapd registers: `vendor.rsheap.IHeapBroker/default`.
pub const BROKER_INSTANCE: &str = "vendor.rsheap.IHeapBroker/default";

/// The `client` binder every broker call takes: a binder object of the client's own, which
/// the broker links to so that it learns when the client dies. It answers no transactions.
pub struct ClientToken;

impl ClientToken {
    /// A new token; create one per client and pass it to every call.
    pub fn new_binder() -> rsbinder::SIBinder {
        use rsbinder::Interface as _;
        rsbinder::Binder::new_with_stability(ClientToken, rsbinder::Stability::Vintf).as_binder()
    }
}

impl rsbinder::Remotable for ClientToken {
    fn descriptor() -> &'static str {
        "vendor.rsheap.ClientToken"
    }

    fn on_transact(
        &self,
        _code: rsbinder::TransactionCode,
        _reader: &mut rsbinder::Parcel,
        _reply: &mut rsbinder::Parcel,
    ) -> rsbinder::Result<()> {
        Err(rsbinder::StatusCode::UnknownTransaction)
    }

    fn on_dump(&self, _writer: &mut dyn std::io::Write, _args: &[String]) -> rsbinder::Result<()> {
        Ok(())
    }
}
