//! The backend over AOSP's `binder` crate (`libbinder_rs`), for Soong builds: Android 15 or
//! later, which has `check_interface` and `ParcelFileDescriptor`'s `OwnedFd` conversions.

use std::os::fd::OwnedFd;

use binder::binder_impl::{Binder, IBinderInternal, Stability};
use binder::{BinderFeatures, ExceptionCode, IBinder as _, ProcessState, StatusCode, ThreadState};
use vendor_rsheap::aidl::vendor::rsheap::{
    IAllocationCallback::{BnAllocationCallback, IAllocationCallback},
    IHeapBroker::{BnHeapBroker, IHeapBroker},
    IHeapSession::{BnHeapSession, IHeapSession},
    ILoadCallback::{BnLoadCallback, ILoadCallback},
    ILoadObserver::{BnLoadObserver, ILoadObserver},
};

pub use binder::{Interface, ParcelFileDescriptor, SpIBinder, Status, Strong};

/// The binder crate itself, for the expansions of this crate's macros.
#[doc(hidden)]
pub use binder as __binder;

use crate::ServiceError;

/// The result of a binder call.
pub type Result<T> = binder::Result<T>;

/// The native object serving `service`.
pub fn new_broker_binder<T>(service: T) -> Strong<dyn IHeapBroker>
where
    T: IHeapBroker + Sync + 'static,
{
    BnHeapBroker::new_binder(service, BinderFeatures::default())
}

/// The native object of a session.
pub fn new_session_binder<T>(session: T) -> Strong<dyn IHeapSession>
where
    T: IHeapSession + Sync + 'static,
{
    BnHeapSession::new_binder(session, BinderFeatures::default())
}

/// The native object of a session's load observer.
pub fn new_load_observer<T>(observer: T) -> Strong<dyn ILoadObserver>
where
    T: ILoadObserver + Sync + 'static,
{
    BnLoadObserver::new_binder(observer, BinderFeatures::default())
}

/// The native object of an asynchronous allocation's callback.
pub fn new_allocation_callback<T>(callback: T) -> Strong<dyn IAllocationCallback>
where
    T: IAllocationCallback + Sync + 'static,
{
    BnAllocationCallback::new_binder(callback, BinderFeatures::default())
}

/// The native object of a load callback.
pub fn new_load_callback<T>(callback: T) -> Strong<dyn ILoadCallback>
where
    T: ILoadCallback + Sync + 'static,
{
    BnLoadCallback::new_binder(callback, BinderFeatures::default())
}

/// A binder object of the caller's own, which the broker only compares and watches: the
/// `client` token of `IHeapBroker`'s calls. It is VINTF-stable, as the rsbinder backend's is.
pub fn client_token() -> SpIBinder {
    Binder::new_with_stability((), Stability::Vintf).as_binder()
}

/// Sizes the binder thread pool to `threads`, registers `binder` as `instance` and serves
/// until the pool fails.
pub fn serve(instance: &str, binder: SpIBinder, threads: u32) -> std::result::Result<(), String> {
    ProcessState::set_thread_pool_max_thread_count(threads);
    ProcessState::start_thread_pool();
    binder::add_service(instance, binder)
        .map_err(|err| format!("cannot register {instance}: {err:?}"))?;
    ProcessState::join_thread_pool();
    Err("the binder thread pool exited".to_owned())
}

/// Starts this process's binder thread pool, on which death notices and callbacks arrive.
/// Call it once, before any other call.
pub fn init_client() -> std::result::Result<(), String> {
    ProcessState::start_thread_pool();
    Ok(())
}

/// The registered broker, if the service manager knows it.
pub fn check_broker(instance: &str) -> Option<Strong<dyn IHeapBroker>> {
    binder::check_interface::<dyn IHeapBroker>(instance).ok()
}

/// The uid of the process that made the call being served.
pub fn calling_uid() -> u32 {
    ThreadState::get_calling_uid()
}

/// The pid of the process that made the call being served.
pub fn calling_pid() -> i32 {
    ThreadState::get_calling_pid()
}

/// Whether `binder` lives in another process.
pub fn is_remote(binder: &SpIBinder) -> bool {
    binder.is_remote()
}

/// Asks the process behind `binder` to write the dump `args` ask for to `out`.
pub fn dump(binder: &SpIBinder, out: OwnedFd, args: &[&str]) -> std::result::Result<(), String> {
    IBinderInternal::dump(&mut binder.clone(), &out, args).map_err(|err| format!("{err:?}"))
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
    /// Dropping the recipient unlinks it.
    _recipient: binder::DeathRecipient,
    /// The binder stays referenced: libbinder drops a proxy's links with its last reference.
    _binder: SpIBinder,
}

/// Calls `on_death` when the process behind `binder` dies, for as long as the link lives.
pub fn link_to_death(
    binder: &SpIBinder,
    on_death: impl Fn() + Send + Sync + 'static,
) -> std::result::Result<DeathLink, String> {
    let mut recipient = binder::DeathRecipient::new(on_death);
    let mut linked = binder.clone();
    linked
        .link_to_death(&mut recipient)
        .map_err(|err| format!("{err:?}"))?;
    Ok(DeathLink {
        _recipient: recipient,
        _binder: linked,
    })
}

/// A service-specific error with its code and message.
pub fn service_error(code: i32, message: &str) -> Status {
    Status::new_service_specific_error_str(code, Some(message))
}

/// The service-specific error `status` carries, if it is one.
///
/// The crate reads no message on its own: it comes from the description libbinder writes,
/// `Status(-8, EX_SERVICE_SPECIFIC): '<code>: <message>'`.
pub fn service_specific(status: &Status) -> Option<ServiceError> {
    if status.exception_code() != ExceptionCode::SERVICE_SPECIFIC {
        return None;
    }
    let code = status.service_specific_error();
    let description = status.get_description();
    let message = description
        .split_once(": '")
        .map(|(_, quoted)| quoted.strip_suffix('\'').unwrap_or(quoted))
        .map(|text| {
            text.strip_prefix(&format!("{code}: "))
                .unwrap_or(text)
                .to_owned()
        })
        .unwrap_or_default();
    Some(ServiceError { code, message })
}

/// Whether a call failed because the process serving it died.
pub fn is_dead_object(status: &Status) -> bool {
    status.transaction_error() == StatusCode::DEAD_OBJECT
}

/// Implements [`Interface`] for a type whose `dump` is its [`crate::Dump`] report.
#[macro_export]
macro_rules! impl_interface_with_dump {
    ($service:ty) => {
        impl $crate::Interface for $service {
            fn dump(
                &self,
                writer: &mut dyn ::std::io::Write,
                args: &[&::std::ffi::CStr],
            ) -> ::std::result::Result<(), $crate::__binder::StatusCode> {
                let args: ::std::vec::Vec<::std::string::String> = args
                    .iter()
                    .map(|arg| arg.to_string_lossy().into_owned())
                    .collect();
                $crate::Dump::dump(self, writer, &args)
                    .map_err(|_| $crate::__binder::StatusCode::UNKNOWN_ERROR)
            }
        }
    };
}
