//! Native objects held by Java objects as `long` handles.
//!
//! A handle is the address of a boxed Rust value. Java keeps it in a private field and passes
//! it back to the native methods, and its own lock guarantees the contract of [`borrow`] and
//! [`take`]: a handle is taken once, by `close()`, and never while a native call borrows it.
//! Values must be `Send + Sync`, because any Java thread may call with the handle.

use jni::sys::jlong;

use crate::errors::{Failure, Result};

/// Moves `value` to the heap and returns its handle.
pub fn into_handle<T: Send + Sync>(value: T) -> jlong {
    Box::into_raw(Box::new(value)) as jlong
}

/// The value behind `handle`.
///
/// # Safety
///
/// `handle` is 0 or came from [`into_handle::<T>`], and is not passed to [`take`] while the
/// returned reference lives.
pub unsafe fn borrow<'a, T: Send + Sync>(handle: jlong) -> Result<&'a T> {
    // SAFETY: A non-zero handle points to a live `T` that nothing frees meanwhile, by the
    // function's contract; `as_ref` turns 0 into `None`.
    unsafe { (handle as *const T).as_ref() }
        .ok_or_else(|| Failure::Argument("a closed object's handle".into()))
}

/// Takes back the value behind `handle`; `None` for 0.
///
/// # Safety
///
/// `handle` is 0 or came from [`into_handle::<T>`] and was not taken before, and nothing
/// borrows it now.
pub unsafe fn take<T: Send + Sync>(handle: jlong) -> Option<Box<T>> {
    let pointer = handle as *mut T;
    if pointer.is_null() {
        return None;
    }
    // SAFETY: By the function's contract the pointer came from `Box::into_raw` in
    // `into_handle`, is taken only this once, and is not borrowed.
    Some(unsafe { Box::from_raw(pointer) })
}
