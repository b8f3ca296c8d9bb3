// SPDX-License-Identifier: GPL-2.0

//! Kernel errors: a negative errno, and the conversions to and from the C conventions (a
//! negative `int`, or an error pointer).

use core::fmt;

use super::bindings::{c_int, consts};

/// A kernel error code.
///
/// # Invariants
///
/// The value is a negative errno in `-MAX_ERRNO..0`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Error(c_int);

/// A result whose error is a kernel [`Error`].
pub(crate) type Result<T = (), E = Error> = core::result::Result<T, E>;

impl Error {
    /// The error of positive errno `errno`, or `EINVAL` if `errno` is not one.
    const fn from_positive(errno: c_int) -> Self {
        if errno > 0 && errno <= consts::MAX_ERRNO {
            // INVARIANT: Checked just above.
            Self(-errno)
        } else {
            Self(-consts::EINVAL)
        }
    }

    /// The error of negative errno `errno`, as C functions return it; `EINVAL` if `errno` is
    /// not one (a caller's bug, reported rather than trusted).
    pub(crate) fn from_errno(errno: c_int) -> Self {
        Self::from_positive(errno.wrapping_neg())
    }

    /// The negative errno, as C returns it.
    pub(crate) fn to_errno(self) -> c_int {
        self.0
    }

    /// The error as an error pointer (`ERR_PTR`).
    pub(crate) fn to_ptr<T>(self) -> *mut T {
        self.0 as isize as *mut T
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

/// Converts a C return value (zero, or a negative errno) into a [`Result`].
pub(crate) fn to_result(ret: c_int) -> Result {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(())
    }
}

/// Converts a pointer that may be an error pointer (`IS_ERR`) into a [`Result`].
pub(crate) fn from_err_ptr<T>(ptr: *mut T) -> Result<*mut T> {
    let value = ptr as isize;
    if value < 0 && value >= -(consts::MAX_ERRNO as isize) {
        // The range check makes the value fit a `c_int`.
        return Err(Error::from_errno(value as c_int));
    }
    Ok(ptr)
}

/// The error codes rsheap returns.
pub(crate) mod code {
    use super::{consts, Error};

    macro_rules! errors {
        ($($name:ident),* $(,)?) => {
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub(crate) const $name: Error = Error::from_positive(consts::$name);
            )*
        };
    }

    errors!(
        EINTR,
        EBADF,
        ENOMEM,
        ENOTBLK,
        EACCES,
        EBUSY,
        EEXIST,
        EISDIR,
        EINVAL,
        ESPIPE,
        EOVERFLOW,
        EOPNOTSUPP,
        ERESTARTSYS,
        EXDEV,
        ENODEV,
    );
}
