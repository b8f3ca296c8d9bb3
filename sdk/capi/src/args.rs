//! The raw arguments of the C functions, checked at the boundary: handles, strings, file
//! descriptors and out-parameters. A failed check is `-EINVAL` (`-EBADF` for a descriptor).

use std::ffi::{c_char, CStr};
use std::os::fd::{BorrowedFd, RawFd};

use nix::errno::Errno;

/// A negative errno, what every fallible C function returns on failure.
pub type Failed = i32;

/// `-errno`.
pub fn failed(errno: Errno) -> Failed {
    (errno as i32).wrapping_neg()
}

/// The value behind a handle or input pointer; `-EINVAL` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or points to a live `T` that nothing frees while the reference lives.
pub unsafe fn borrow<'a, T>(ptr: *const T) -> Result<&'a T, Failed> {
    // SAFETY: The caller guarantees a non-null `ptr` points to a live `T`.
    unsafe { ptr.as_ref() }.ok_or(failed(Errno::EINVAL))
}

/// A NUL-terminated UTF-8 string; `None` for NULL.
///
/// # Safety
///
/// `ptr` is NULL or a NUL-terminated string that outlives the returned reference.
pub unsafe fn optional_str<'a>(ptr: *const c_char) -> Result<Option<&'a str>, Failed> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: The caller guarantees a non-null `ptr` is NUL-terminated and outlives `'a`.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map(Some).map_err(|_| failed(Errno::EINVAL))
}

/// A NUL-terminated UTF-8 string that must be there.
///
/// # Safety
///
/// As for [`optional_str`].
pub unsafe fn required_str<'a>(ptr: *const c_char) -> Result<&'a str, Failed> {
    // SAFETY: The caller's guarantee is the one `optional_str` needs.
    unsafe { optional_str(ptr) }?.ok_or(failed(Errno::EINVAL))
}

/// A file descriptor the caller keeps open for the call; `-EBADF` if negative. One that is
/// not open fails where it is used, with `EBADF` too.
///
/// # Safety
///
/// A non-negative `fd` is not closed during the call.
pub unsafe fn file<'a>(fd: RawFd) -> Result<BorrowedFd<'a>, Failed> {
    if fd < 0 {
        return Err(failed(Errno::EBADF));
    }
    // SAFETY: `fd` is not -1, and the caller keeps it from being closed during the call; a
    // number that is not open makes the calls on it fail with EBADF, nothing worse.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// An out-parameter, checked before any work so that nothing made is lost to a NULL one.
pub struct Out<T>(*mut T);

impl<T> Out<T> {
    /// `-EINVAL` for NULL.
    pub fn new(ptr: *mut T) -> Result<Self, Failed> {
        if ptr.is_null() {
            return Err(failed(Errno::EINVAL));
        }
        Ok(Self(ptr))
    }

    /// Stores `value`.
    ///
    /// # Safety
    ///
    /// The pointer given to [`Out::new`] is valid for a write of a `T`.
    pub unsafe fn write(self, value: T) {
        // SAFETY: Non-null by `new`, and valid for a write by the caller's guarantee; `write`
        // does not drop whatever was there, which C left uninitialised.
        unsafe { self.0.write(value) };
    }
}

/// Runs a C function's body: 0 on success, the negative errno on failure.
pub fn status(body: impl FnOnce() -> Result<(), Failed>) -> i32 {
    match body() {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}
