//! The broker's errors: a code clients can act on, the errno behind it, and a message.

use nix::errno::Errno;

/// What kind of failure a client sees; each maps to one of the AIDL `ERROR_` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A size, offset, name, file or heap is not acceptable.
    InvalidArgument,
    /// No heap had the memory.
    NoMemory,
    /// The uid's quota would be exceeded.
    QuotaExceeded,
    /// The client has no buffer with this id (or it was freed during the call).
    NotFound,
    /// Reading a file failed.
    Io,
    /// The device does not offer what was asked for.
    Unsupported,
    /// Too many loads are queued or waiting.
    Busy,
}

/// A refused or failed request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BrokerError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The errno that best describes it: the kernel's where one failed.
    pub errno: Errno,
    /// What happened, naming the buffer, heap or value concerned.
    pub message: String,
}

impl BrokerError {
    /// An error of `kind` with the errno usual for it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let errno = match kind {
            ErrorKind::InvalidArgument => Errno::EINVAL,
            ErrorKind::NoMemory => Errno::ENOMEM,
            ErrorKind::QuotaExceeded => Errno::EDQUOT,
            ErrorKind::NotFound => Errno::ENOENT,
            ErrorKind::Io => Errno::EIO,
            ErrorKind::Unsupported => Errno::EOPNOTSUPP,
            ErrorKind::Busy => Errno::EBUSY,
        };
        Self {
            kind,
            errno,
            message: message.into(),
        }
    }

    /// A refused argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// An unknown buffer id.
    pub fn not_found(id: i64) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("no buffer {id} for this client"),
        )
    }

    /// A load stopped because its buffer was freed or its client died.
    pub fn cancelled(id: i64) -> Self {
        Self {
            errno: Errno::ECANCELED,
            ..Self::new(
                ErrorKind::NotFound,
                format!("buffer {id} was freed during the load"),
            )
        }
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
            | Errno::E2BIG => ErrorKind::InvalidArgument,
            Errno::ENOMEM => ErrorKind::NoMemory,
            Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::ENODEV | Errno::ENOENT => {
                ErrorKind::Unsupported
            }
            _ => ErrorKind::Io,
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
