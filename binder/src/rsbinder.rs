//! The backend over rsbinder, for cargo builds: binder on any Linux kernel with binderfs.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use rsbinder::{hub, ExceptionCode, ProcessState, StatusCode, WIBinder};
use vendor_rsheap::aidl::vendor::rsheap::{
    IAllocationCallback::{BnAllocationCallback, IAllocationCallback},
    IHeapBroker::{BnHeapBroker, IHeapBroker},
    IHeapSession::{BnHeapSession, IHeapSession},
    ILoadCallback::{BnLoadCallback, ILoadCallback},
    ILoadObserver::{BnLoadObserver, ILoadObserver},
};

pub use rsbinder::{Interface, ParcelFileDescriptor, Status, Strong};

/// The binder crate itself, for the expansions of this crate's macros.
#[doc(hidden)]
pub use rsbinder as __binder;

use crate::ServiceError;

/// A strong reference to a binder object, local or remote (AOSP's name for it).
pub type SpIBinder = rsbinder::SIBinder;

/// The result of a binder call.
pub type Result<T> = rsbinder::BinderResult<T>;

/// The native object serving `service`.
pub fn new_broker_binder<T>(service: T) -> Strong<dyn IHeapBroker>
where
    T: IHeapBroker + Sync + 'static,
{
    BnHeapBroker::new_binder(service)
}

/// The native object of a session.
pub fn new_session_binder<T>(session: T) -> Strong<dyn IHeapSession>
where
    T: IHeapSession + Sync + 'static,
{
    BnHeapSession::new_binder(session)
}

/// The native object of a session's load observer.
pub fn new_load_observer<T>(observer: T) -> Strong<dyn ILoadObserver>
where
    T: ILoadObserver + Sync + 'static,
{
    BnLoadObserver::new_binder(observer)
}

/// The native object of an asynchronous allocation's callback.
pub fn new_allocation_callback<T>(callback: T) -> Strong<dyn IAllocationCallback>
where
    T: IAllocationCallback + Sync + 'static,
{
    BnAllocationCallback::new_binder(callback)
}

/// The native object of a load callback.
pub fn new_load_callback<T>(callback: T) -> Strong<dyn ILoadCallback>
where
    T: ILoadCallback + Sync + 'static,
{
    BnLoadCallback::new_binder(callback)
}

/// A binder object of the caller's own that answers no transactions: the `client` token of
/// `IHeapBroker`'s calls. It is VINTF-stable, as objects passed to a VINTF interface must be.
pub fn client_token() -> SpIBinder {
    rsbinder::Binder::new_with_stability(ClientToken, rsbinder::Stability::Vintf).as_binder()
}

struct ClientToken;

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
        Err(StatusCode::UnknownTransaction)
    }

    fn on_dump(&self, _writer: &mut dyn std::io::Write, _args: &[String]) -> rsbinder::Result<()> {
        Ok(())
    }
}

/// Opens the binder driver with a pool of up to `threads` binder threads, registers
/// `binder` as `instance` and serves until the pool fails.
pub fn serve(instance: &str, binder: SpIBinder, threads: u32) -> std::result::Result<(), String> {
    let driver = if std::path::Path::new(rsbinder::DEFAULT_BINDER_PATH).exists() {
        rsbinder::DEFAULT_BINDER_PATH
    } else {
        rsbinder::LEGACY_BINDER_PATH
    };
    ProcessState::init(driver, threads)
        .map_err(|err| format!("cannot open the binder driver {driver}: {err}"))?;
    ProcessState::start_thread_pool();
    hub::add_service(instance, binder)
        .map_err(|err| format!("cannot register {instance}: {err:?}"))?;
    ProcessState::join_thread_pool().map_err(|err| format!("binder thread pool: {err:?}"))
}

/// Opens this process's binder connection and starts its thread pool, on which death
/// notices and callbacks arrive. Call it once, before any other call.
pub fn init_client() -> std::result::Result<(), String> {
    ProcessState::init_default()
        .map(|_| ProcessState::start_thread_pool())
        .map_err(|err| {
            format!(
                "cannot open the binder driver: {}",
                err.to_string().trim_end()
            )
        })
}

/// The registered broker, if the service manager knows it.
pub fn check_broker(instance: &str) -> Option<Strong<dyn IHeapBroker>> {
    hub::check_interface::<dyn IHeapBroker>(instance).ok()
}

/// The uid of the process that made the call being served.
pub fn calling_uid() -> u32 {
    rsbinder::get_calling_uid()
}

/// The pid of the process that made the call being served.
pub fn calling_pid() -> i32 {
    rsbinder::get_calling_pid()
}

/// Whether `binder` lives in another process.
pub fn is_remote(binder: &SpIBinder) -> bool {
    binder.is_remote()
}

/// Asks the process behind `binder` to write the dump `args` ask for to `out`.
pub fn dump(binder: &SpIBinder, out: OwnedFd, args: &[&str]) -> std::result::Result<(), String> {
    let proxy = binder
        .as_proxy()
        .ok_or_else(|| "the object is not remote".to_owned())?;
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    proxy.dump(out, &args).map_err(|err| format!("{err:?}"))
}

/// The descriptor a parcel carried, to own.
pub fn into_owned_fd(fd: ParcelFileDescriptor) -> OwnedFd {
    fd.into()
}

/// A duplicate of the descriptor a parcel carried.
pub fn dup_fd(fd: &ParcelFileDescriptor) -> std::io::Result<OwnedFd> {
    fd.as_ref().try_clone()
}

/// A death notification on a binder: the callback runs, on a binder thread, when the
/// process behind it dies. Dropping the link cancels it.
pub struct DeathLink {
    binder: SpIBinder,
    recipient: Arc<Recipient>,
}

struct Recipient(Box<dyn Fn() + Send + Sync>);

impl rsbinder::DeathRecipient for Recipient {
    fn binder_died(&self, _who: &WIBinder) {
        (self.0)();
    }
}

/// Calls `on_death` when the process behind `binder` dies, for as long as the link lives.
pub fn link_to_death(
    binder: &SpIBinder,
    on_death: impl Fn() + Send + Sync + 'static,
) -> std::result::Result<DeathLink, String> {
    let recipient = Arc::new(Recipient(Box::new(on_death)));
    binder
        .link_to_death_arc(&recipient)
        .map_err(|err| format!("{err:?}"))?;
    Ok(DeathLink {
        binder: binder.clone(),
        recipient,
    })
}

impl Drop for DeathLink {
    fn drop(&mut self) {
        // A binder that has died already has no link left to remove.
        let _ = self.binder.unlink_to_death_arc(&self.recipient);
    }
}

/// A service-specific error with its code and message.
pub fn service_error(code: i32, message: &str) -> Status {
    Status::new_service_specific_error(code, Some(message.to_owned()))
}

/// The service-specific error `status` carries, if it is one.
pub fn service_specific(status: &Status) -> Option<ServiceError> {
    (status.exception_code() == ExceptionCode::ServiceSpecific).then(|| ServiceError {
        code: status.service_specific_error(),
        message: status.message().unwrap_or_default().to_owned(),
    })
}

/// Whether a call failed because the process serving it died.
pub fn is_dead_object(status: &Status) -> bool {
    status.transaction_error() == StatusCode::DeadObject
}

/// Implements [`Interface`] for a type whose `dump` is its [`crate::Dump`] report.
#[macro_export]
macro_rules! impl_interface_with_dump {
    ($service:ty) => {
        impl $crate::Interface for $service {
            fn dump(
                &self,
                writer: &mut dyn ::std::io::Write,
                args: &[::std::string::String],
            ) -> $crate::__binder::Result<()> {
                $crate::Dump::dump(self, writer, args)
                    .map_err(|_| $crate::__binder::StatusCode::FailedTransaction)
            }
        }
    };
}
