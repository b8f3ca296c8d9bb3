//! The error type of every fallible call in this crate.

use nix::errno::Errno;

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
}

impl Error {
    pub(crate) fn os(what: impl Into<String>, errno: Errno) -> Self {
        Self::Os {
            what: what.into(),
            errno,
        }
    }

    /// The kernel's error number, for errors that came from a system call.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Os { errno, .. } => Some(*errno),
            Self::InvalidArgument(_) => None,
        }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
