//! The broker's errors: a code clients can act on, the errno behind it, and a message.
//!
//! The codes are the SDK's [`rsheap::BrokerErrorCode`], so broker and clients share one
//! mapping between the AIDL `ERROR_` codes, their meaning and their errnos.

use nix::errno::Errno;
pub use rsheap::BrokerErrorCode;

/// A refused or failed request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BrokerError {
    /// What kind of failure.
    pub kind: BrokerErrorCode,
    /// The errno that best describes it: the kernel's where one failed.
    pub errno: Errno,
    /// What happened, naming the buffer, heap or value concerned.
    pub message: String,
}

impl BrokerError {
    /// An error of `kind` with the errno usual for it.
    pub fn new(kind: BrokerErrorCode, message: impl Into<String>) -> Self {
        Self {
            kind,
            errno: kind.errno(),
            message: message.into(),
        }
    }

    /// A refused argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(BrokerErrorCode::InvalidArgument, message)
    }

    /// An unknown buffer id.
    pub fn not_found(id: i64) -> Self {
        Self::new(
            BrokerErrorCode::NotFound,
            format!("no buffer {id} for this client"),
        )
    }

    /// A load stopped by `cancelLoads`, by freeing its buffer or by the end of its session.
    pub fn cancelled(id: i64) -> Self {
        Self::new(
            BrokerErrorCode::Cancelled,
            format!("the load into buffer {id} was cancelled: by cancelLoads, free or the session's end"),
        )
    }

    /// A call on a session that has ended.
    pub fn closed() -> Self {
        Self::new(BrokerErrorCode::SessionClosed, "the session has ended")
    }

    /// A failure of the kernel, classified by its errno.
    pub fn from_os(errno: Errno, message: impl Into<String>) -> Self {
        let kind = match errno {
            Errno::EINVAL
            | Errno::EBADF
            | Errno::EISDIR
            | Errno::ESPIPE
            | Errno::EOVERFLOW
            | Errno::EFBIG
            | Errno::E2BIG => BrokerErrorCode::InvalidArgument,
            Errno::ENOMEM => BrokerErrorCode::NoMemory,
            Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::ENODEV | Errno::ENOENT => {
                BrokerErrorCode::Unsupported
            }
            _ => BrokerErrorCode::Io,
        };
        Self {
            kind,
            errno,
            message: message.into(),
        }
    }
}

impl From<rsheap::Error> for BrokerError {
    fn from(err: rsheap::Error) -> Self {
        match err.errno() {
            Some(errno) => Self::from_os(errno, err.to_string()),
            None => Self::invalid(err.to_string()),
        }
    }
}

/// The result type of the broker's calls.
pub type Result<T> = std::result::Result<T, BrokerError>;
