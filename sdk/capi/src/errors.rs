//! The crate's errors as the C API reports them: a negative errno for the return value, and
//! for a session the broker's `ERROR_*` code and message of its last failure.

use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use rsheap::Error;

use crate::args::{failed, Failed};

/// The errno the header documents for `error`.
pub fn errno(error: &Error) -> Errno {
    match error {
        Error::Unreachable(_) => Errno::ECONNREFUSED,
        Error::InvalidArgument(_) => Errno::EINVAL,
        Error::Transaction(_) => Errno::EIO,
        Error::Os { .. } | Error::Broker { .. } => error.errno().unwrap_or(Errno::EIO),
    }
}

/// The negative errno for `error`.
pub fn to_failed(error: &Error) -> Failed {
    failed(errno(error))
}

/// The last failure of the calls on one session.
#[derive(Default)]
pub struct LastError(Mutex<Recorded>);

#[derive(Default)]
struct Recorded {
    /// The broker's `ERROR_*` code, 0 for a failure that did not come from it.
    code: i32,
    message: String,
    /// Failures recorded so far, so that a caller can tell whether a call recorded one.
    count: u64,
}

impl LastError {
    /// Records `error` and returns its negative errno.
    pub fn record(&self, error: &Error) -> Failed {
        let code = match error {
            Error::Broker { code, .. } => code.code(),
            _ => 0,
        };
        self.set(code, error.to_string());
        to_failed(error)
    }

    /// Records a failure found before reaching the broker.
    pub fn set(&self, code: i32, message: String) {
        let mut recorded = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.count = recorded.count.wrapping_add(1);
        recorded.code = code;
        recorded.message = message;
    }

    /// How many failures were recorded so far.
    pub fn count(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).count
    }

    /// The broker's code of the last failure.
    pub fn code(&self) -> i32 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).code
    }

    /// Copies the last failure's message into `dst` as C wants it, NUL-terminated and cut to
    /// fit (nothing if `dst` is empty), and returns its full length.
    pub fn copy_message(&self, dst: &mut [u8]) -> usize {
        let recorded = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let message = recorded.message.as_bytes();
        if let Some(room) = dst.len().checked_sub(1) {
            let len = room.min(message.len());
            for (slot, &byte) in dst.iter_mut().zip(message.iter().take(len)) {
                *slot = byte;
            }
            if let Some(end) = dst.get_mut(len) {
                *end = 0;
            }
        }
        message.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsheap::BrokerErrorCode;

    #[test]
    fn errors_map_to_the_documented_errnos() {
        let broker = |code| Error::Broker {
            code,
            message: "no".into(),
        };
        assert_eq!(
            errno(&broker(BrokerErrorCode::Unsupported)),
            Errno::EOPNOTSUPP
        );
        assert_eq!(errno(&broker(BrokerErrorCode::Cancelled)), Errno::ECANCELED);
        assert_eq!(errno(&broker(BrokerErrorCode::SessionClosed)), Errno::EPIPE);
        assert_eq!(errno(&broker(BrokerErrorCode::Other(77))), Errno::EIO);
        assert_eq!(
            errno(&Error::Unreachable("gone".into())),
            Errno::ECONNREFUSED
        );
        assert_eq!(errno(&Error::InvalidArgument("bad".into())), Errno::EINVAL);
    }

    #[test]
    fn the_message_is_cut_to_fit_and_its_length_returned() {
        let last = LastError::default();
        assert_eq!(last.copy_message(&mut []), 0);
        let failed = last.record(&Error::Broker {
            code: BrokerErrorCode::NotFound,
            message: "no buffer 7".into(),
        });
        assert_eq!(failed, -(Errno::ENOENT as i32));
        assert_eq!(last.code(), 4);
        let mut small = [0xffu8; 5];
        let len = last.copy_message(&mut small);
        assert_eq!(len, "no buffer 7 (NotFound)".len());
        assert_eq!(&small, b"no b\0");
        let mut none = [0xffu8; 0];
        assert_eq!(last.copy_message(&mut none), len);
    }
}
