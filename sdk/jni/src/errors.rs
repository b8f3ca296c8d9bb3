//! The one place where failures of the native methods become Java exceptions.
//!
//! Every native method returns `Result<_, Failure>`, and its `native_method!` wrapper resolves
//! an `Err` through [`ThrowRsheapException`]: SDK errors and rejected arguments become a
//! `dev.rsheap.RsheapException` carrying an errno and the broker's `ERROR_` code, JNI failures
//! a `RuntimeException`, and a Java exception already on its way (a progress listener's) is
//! left to propagate. Panics are caught by the wrapper and thrown as `RuntimeException`, so
//! nothing unwinds into the JVM.

use std::any::Any;

use jni::errors::ErrorPolicy;
use jni::objects::JThrowable;
use jni::strings::JNIString;
use jni::{jni_sig, jni_str, Env, JValue};
use nix::errno::Errno;
use rsheap::BrokerErrorCode;

use crate::classes;

/// Why a native method failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The SDK or the broker failed.
    #[error("{0}")]
    Rsheap(#[from] rsheap::Error),
    /// An argument from Java is out of range; rejected before the broker sees it.
    #[error("invalid argument: {0}")]
    Argument(String),
    /// A JNI call failed. If it threw, the exception is pending.
    #[error("JNI: {0}")]
    Jni(#[from] jni::errors::Error),
}

impl Failure {
    /// The errno and the broker's `ERROR_` code (0 when the broker did not answer with one)
    /// that the `RsheapException` carries, or `None` for failures of JNI itself.
    fn errno_and_code(&self) -> Option<(i32, i32)> {
        let invalid = BrokerErrorCode::InvalidArgument;
        Some(match self {
            Self::Rsheap(rsheap::Error::Broker { code, .. }) => (code.errno() as i32, code.code()),
            Self::Rsheap(rsheap::Error::Os { errno, .. }) => (*errno as i32, 0),
            // Arguments the SDK or these bindings refuse are what the broker would have
            // refused: report them the same way.
            Self::Rsheap(rsheap::Error::InvalidArgument(_)) | Self::Argument(_) => {
                (invalid.errno() as i32, invalid.code())
            }
            // Binder reports a dead or missing service as DEAD_OBJECT, which is -EPIPE.
            Self::Rsheap(rsheap::Error::Unreachable(_)) => (Errno::EPIPE as i32, 0),
            // Any other binder failure: the transaction did not complete.
            Self::Rsheap(rsheap::Error::Transaction(_)) => (Errno::EIO as i32, 0),
            Self::Jni(_) => return None,
        })
    }
}

/// The result type of the native methods.
pub type Result<T> = std::result::Result<T, Failure>;

/// The error policy of every native method: throws `RsheapException` for rsheap failures and
/// `RuntimeException` for JNI failures and panics, and returns the type's default (0, false or
/// null), which Java never sees because the exception is pending.
#[derive(Debug)]
pub struct ThrowRsheapException;

impl<T: Default> ErrorPolicy<T, Failure> for ThrowRsheapException {
    type Captures<'unowned_env_local: 'native_method, 'native_method> = ();

    fn on_error<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        err: Failure,
    ) -> jni::errors::Result<T> {
        // A Java exception (thrown by a listener, or raised by a failed JNI call) is already
        // on its way: it says more than anything built from it here.
        if env.exception_check() {
            return Ok(T::default());
        }
        match err.errno_and_code() {
            Some((errno, code)) => throw_rsheap_exception(env, &err.to_string(), errno, code),
            None => throw_runtime_exception(env, &format!("rsheap_jni: {err}")),
        }
        Ok(T::default())
    }

    fn on_panic<'unowned_env_local: 'native_method, 'native_method>(
        env: &mut Env<'unowned_env_local>,
        _captures: &mut (),
        payload: Box<dyn Any + Send + 'static>,
    ) -> jni::errors::Result<T> {
        let message = if let Some(text) = payload.downcast_ref::<&str>() {
            (*text).to_owned()
        } else if let Some(text) = payload.downcast_ref::<String>() {
            text.clone()
        } else {
            "a panic without a message".to_owned()
        };
        // The panic is the news: whatever was pending is dropped in its favour.
        env.exception_clear();
        throw_runtime_exception(env, &format!("rsheap_jni panicked: {message}"));
        Ok(T::default())
    }
}

/// Throws `new RsheapException(message, errno, code)`, or a `RuntimeException` with the same
/// text if that cannot be built.
fn throw_rsheap_exception(env: &mut Env<'_>, message: &str, errno: i32, code: i32) {
    let built = env.with_local_frame(4, |env| -> jni::errors::Result<()> {
        let text = env.new_string(message)?;
        let exception = env.new_object(
            &classes::get()?.rsheap_exception,
            jni_sig!((message: java.lang.String, errno: jint, code: jint) -> void),
            &[JValue::Object(&text), JValue::Int(errno), JValue::Int(code)],
        )?;
        let exception = env.cast_local::<JThrowable>(exception)?;
        // `throw` reports the exception it made pending as an error: that is its success.
        match env.throw(exception) {
            Err(jni::errors::Error::JavaException) | Ok(()) => Ok(()),
            Err(err) => Err(err),
        }
    });
    if built.is_err() && !env.exception_check() {
        throw_runtime_exception(env, &format!("{message} (errno {errno}, code {code})"));
    }
}

/// Throws a `RuntimeException`; if even that fails, the JVM already has an exception (an
/// `OutOfMemoryError`) pending that says why.
fn throw_runtime_exception(env: &mut Env<'_>, message: &str) {
    let _ = env.throw_new(
        jni_str!("java/lang/RuntimeException"),
        JNIString::from(message),
    );
}
