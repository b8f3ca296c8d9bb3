//! The error type of every fallible call in this crate.

use nix::errno::Errno;

use crate::BrokerErrorCode;

/// An rsheap client error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{what}: {errno}")]
    Os {
        /// What was being done, naming the heap or buffer involved.
        what: String,
        /// The error number the kernel returned.
        errno: Errno,
    },
    /// An argument was rejected before reaching the kernel.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The broker refused or failed a request.
    #[error("{message} ({code:?})")]
    Broker {
        /// What kind of failure, from the broker's error codes.
        code: BrokerErrorCode,
        /// The broker's explanation.
        message: String,
    },
    /// The broker cannot be reached: not running, not registered, or it died.
    #[error("broker unreachable: {0}")]
    Unreachable(String),
    /// A binder transaction with the broker failed for another reason than its death
    /// (a reply too large for the buffer, a client-side failure): the broker may be fine.
    #[error("binder call to the broker failed: {0}")]
    Transaction(String),
}

impl Error {
    pub(crate) fn os(what: impl Into<String>, errno: Errno) -> Self {
        Self::Os {
            what: what.into(),
            errno,
        }
    }

    /// A failed file operation, with the errno behind it (`EIO` if it has none).
    pub(crate) fn io(what: impl Into<String>, err: &std::io::Error) -> Self {
        Self::os(what, err.raw_os_error().map_or(Errno::EIO, Errno::from_raw))
    }

    /// The broker's error for a failed binder call.
    pub(crate) fn from_status(status: rsheap_binder::Status) -> Self {
        match rsheap_binder::service_specific(&status) {
            Some(error) => Self::Broker {
                code: BrokerErrorCode::from_code(error.code),
                message: error.message,
            },
            None if rsheap_binder::is_dead_object(&status) => {
                Self::Unreachable(format!("{status:?}"))
            }
            None => Self::Transaction(format!("{status:?}")),
        }
    }

    /// The error number behind the error: the kernel's for system calls, the one matching
    /// the broker's code for broker errors.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Os { errno, .. } => Some(*errno),
            Self::Broker { code, .. } => Some(code.errno()),
            Self::InvalidArgument(_) | Self::Unreachable(_) | Self::Transaction(_) => None,
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
