//! `rsheap_session_*`: a session with the broker, [`RsheapSession`].

use std::ffi::{c_char, c_void};
use std::ops::ControlFlow;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, PoisonError};

use nix::errno::Errno;
use rsheap::{AllocationOptions, Broker, BrokerBuffer, BrokerErrorCode, Error, Usage};

use crate::args::{self, failed, status, Failed, Out};
use crate::buffer::RsheapBuffer;
use crate::errors::LastError;
use crate::types::{
    RsheapAllocationOptions, RsheapBufferInfo, RsheapHeapInfo, RsheapProgressCallback, RsheapSpan,
};

/// A session with the broker, and the last failure of the calls on it.
///
/// Calls clone the [`Broker`] out of `broker` and call it without holding the lock, so a call
/// may run alongside any other (a progress callback may cancel) and `close` never waits on a
/// lock a caller holds: the session ends when the last call under way lets go of it.
pub struct RsheapSession {
    broker: Mutex<Option<Arc<Broker>>>,
    last_error: LastError,
}

impl RsheapSession {
    /// The open session, or `-EPIPE` (`RSHEAP_ERROR_SESSION_CLOSED`) once it was closed.
    fn broker(&self) -> Result<Arc<Broker>, Failed> {
        let broker = self
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        broker.ok_or_else(|| {
            self.last_error.set(
                BrokerErrorCode::SessionClosed.code(),
                "the session was closed".into(),
            );
            failed(Errno::EPIPE)
        })
    }

    /// Runs `call` on the open session, recording its failure.
    fn call<T>(&self, call: impl FnOnce(&Broker) -> rsheap::Result<T>) -> Result<T, Failed> {
        let broker = self.broker()?;
        call(&broker).map_err(|error| self.last_error.record(&error))
    }

    /// The broker buffer behind `buffer`; `-ENOENT` for a buffer of a heap.
    fn brokered<'a>(&self, buffer: &'a RsheapBuffer) -> Result<&'a BrokerBuffer, Failed> {
        buffer.brokered().ok_or_else(|| self.not_brokered())
    }

    /// Records that a buffer of a heap was passed for one of a session.
    fn not_brokered(&self) -> Failed {
        self.last_error.record(&Error::Broker {
            code: BrokerErrorCode::NotFound,
            message: "a buffer of a heap, not of a session".into(),
        })
    }
}

/// Borrows the session behind `session`.
///
/// # Safety
///
/// `session` is NULL or a handle from `rsheap_session_open` not yet destroyed.
unsafe fn session<'a>(session: *const RsheapSession) -> Result<&'a RsheapSession, Failed> {
    // SAFETY: The caller's guarantee is the one `borrow` needs.
    unsafe { args::borrow(session) }
}

/// Runs a C function's body on `session`: 0, or the negative errno with the failure recorded
/// for `rsheap_session_error_*` (the crate's error if the body recorded one, else the errno's
/// description, with code 0). A session that could not be borrowed fails as it failed.
fn on_session(
    session: Result<&RsheapSession, Failed>,
    body: impl FnOnce(&RsheapSession) -> Result<(), Failed>,
) -> i32 {
    let session = match session {
        Ok(session) => session,
        Err(failure) => return failure,
    };
    let recorded = session.last_error.count();
    status(|| {
        body(session).inspect_err(|&failure| {
            if session.last_error.count() == recorded {
                let errno = Errno::from_raw(failure.wrapping_neg());
                session.last_error.set(0, errno.desc().to_owned());
            }
        })
    })
}

/// The crate's options for C's, which may be NULL for the defaults.
///
/// # Safety
///
/// `options` is NULL or points to options whose strings are NULL or NUL-terminated.
unsafe fn allocation_options(
    options: *const RsheapAllocationOptions,
) -> Result<AllocationOptions, Failed> {
    // SAFETY: By the caller's guarantee.
    let Some(options) = (unsafe { options.as_ref() }) else {
        return Ok(AllocationOptions::default());
    };
    // SAFETY: By the caller's guarantee, the strings are NULL or NUL-terminated.
    let (heap, debug_name) = unsafe {
        (
            args::optional_str(options.heap)?,
            args::optional_str(options.debug_name)?,
        )
    };
    Ok(AllocationOptions {
        usage: Usage(options.usage),
        cached: options.cached,
        heap: heap.map(str::to_owned),
        debug_name: debug_name.map(str::to_owned),
    })
}

/// `rsheap_session_open`.
///
/// # Safety
///
/// `out_session` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_open(out_session: *mut *mut RsheapSession) -> i32 {
    status(|| {
        let out = Out::new(out_session)?;
        let broker = Broker::connect().map_err(|error| crate::errors::to_failed(&error))?;
        let session = RsheapSession {
            broker: Mutex::new(Some(Arc::new(broker))),
            last_error: LastError::default(),
        };
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee.
        unsafe { out.write(Box::into_raw(Box::new(session))) };
        Ok(())
    })
}

/// `rsheap_session_close`.
///
/// # Safety
///
/// `session` is NULL or a handle from `rsheap_session_open` not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_close(session: *mut RsheapSession) {
    // SAFETY: By the caller's guarantee.
    if let Ok(session) = unsafe { self::session(session) } {
        // Dropping the last reference ends the session; calls under way hold theirs.
        let broker = session
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(broker);
    }
}

/// `rsheap_session_destroy`.
///
/// # Safety
///
/// `session` is NULL or a handle from `rsheap_session_open` not yet destroyed, which no other
/// call uses now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_destroy(session: *mut RsheapSession) {
    if !session.is_null() {
        // SAFETY: By the caller's guarantee the handle came from `Box::into_raw` in
        // `rsheap_session_open`, is destroyed only now, and nothing else uses it.
        drop(unsafe { Box::from_raw(session) });
    }
}

/// `rsheap_session_error_code`.
///
/// # Safety
///
/// `session` is NULL or a handle from `rsheap_session_open` not yet destroyed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_error_code(session: *const RsheapSession) -> i32 {
    // SAFETY: By the caller's guarantee.
    unsafe { self::session(session) }.map_or(0, |session| session.last_error.code())
}

/// `rsheap_session_error_message`.
///
/// # Safety
///
/// `session` is NULL or a handle from `rsheap_session_open` not yet destroyed; `message` is
/// valid for writes of `size` bytes, or `size` is 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_error_message(
    session: *const RsheapSession,
    message: *mut c_char,
    size: usize,
) -> usize {
    // SAFETY: By the caller's guarantee.
    let Ok(session) = (unsafe { self::session(session) }) else {
        return 0;
    };
    if message.is_null() || size == 0 {
        return session.last_error.copy_message(&mut []);
    }
    // SAFETY: The caller guarantees `size` writable bytes at `message`, which nothing else
    // reaches during the call.
    let dst = unsafe { std::slice::from_raw_parts_mut(message.cast::<u8>(), size) };
    session.last_error.copy_message(dst)
}

/// `rsheap_session_allocate`.
///
/// # Safety
///
/// `session` is NULL or a live handle; `options` NULL or valid options; `out_buffer` NULL or
/// valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_allocate(
    session: *mut RsheapSession,
    size: usize,
    options: *const RsheapAllocationOptions,
    out_buffer: *mut *mut RsheapBuffer,
) -> i32 {
    // SAFETY: By the caller's guarantee for `session`.
    on_session(unsafe { self::session(session) }, |session| {
        // SAFETY: By the caller's guarantee for `options`.
        let options = unsafe { allocation_options(options) }?;
        let out = Out::new(out_buffer)?;
        let buffer = session.call(|broker| broker.allocate(size, &options))?;
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee.
        unsafe { out.write(RsheapBuffer::brokered_handle(buffer)) };
        Ok(())
    })
}

/// `rsheap_session_allocate_and_load`.
///
/// # Safety
///
/// As for [`rsheap_session_allocate`]; `file_fd` stays open during the call and `span` is
/// NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_allocate_and_load(
    session: *mut RsheapSession,
    size: usize,
    options: *const RsheapAllocationOptions,
    file_fd: RawFd,
    span: *const RsheapSpan,
    out_buffer: *mut *mut RsheapBuffer,
) -> i32 {
    // SAFETY: By the caller's guarantee for `session`.
    on_session(unsafe { self::session(session) }, |session| {
        // SAFETY: By the caller's guarantees for the other arguments.
        let (options, file, span) = unsafe {
            (
                allocation_options(options)?,
                args::file(file_fd)?,
                *args::borrow(span)?,
            )
        };
        let out = Out::new(out_buffer)?;
        let buffer =
            session.call(|broker| broker.allocate_and_load(size, &options, &file, span.into()))?;
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee.
        unsafe { out.write(RsheapBuffer::brokered_handle(buffer)) };
        Ok(())
    })
}

/// `rsheap_session_load`.
///
/// # Safety
///
/// `session` and `buffer` are NULL or live handles; `file_fd` stays open during the call;
/// `span` is NULL or valid; `progress`, if set, may be called with `context` on this thread
/// during the call; `out_loaded` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_load(
    session: *mut RsheapSession,
    buffer: *const RsheapBuffer,
    file_fd: RawFd,
    span: *const RsheapSpan,
    progress: RsheapProgressCallback,
    context: *mut c_void,
    out_loaded: *mut u64,
) -> i32 {
    // SAFETY: By the caller's guarantee for `session`.
    on_session(unsafe { self::session(session) }, |session| {
        // SAFETY: By the caller's guarantees for the other arguments.
        let (buffer, file, span) = unsafe {
            (
                args::borrow(buffer)?,
                args::file(file_fd)?,
                *args::borrow(span)?,
            )
        };
        let out = Out::new(out_loaded)?;
        let buffer = session.brokered(buffer)?;
        let mut report = |done, total| match progress {
            // SAFETY: The caller lets `progress` be called with `context` during the call.
            Some(progress) if !unsafe { progress(context, done, total) } => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        };
        let loaded = session.call(|broker| {
            broker.load_file_with_control(buffer, &file, span.into(), &mut report)
        })?;
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee.
        unsafe { out.write(loaded) };
        Ok(())
    })
}

/// `rsheap_session_cancel_loads`.
///
/// # Safety
///
/// `session` and `buffer` are NULL or live handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_cancel_loads(
    session: *mut RsheapSession,
    buffer: *const RsheapBuffer,
) -> i32 {
    // SAFETY: By the caller's guarantee for `session`.
    on_session(unsafe { self::session(session) }, |session| {
        // SAFETY: By the caller's guarantee for `buffer`.
        let buffer = session.brokered(unsafe { args::borrow(buffer) }?)?;
        session.call(|broker| broker.cancel_loads(buffer))
    })
}

/// `rsheap_session_free`.
///
/// # Safety
///
/// `session` is NULL or a live handle; `buffer` is NULL or a live handle that no other call
/// uses now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_free(
    session: *mut RsheapSession,
    buffer: *mut RsheapBuffer,
) -> i32 {
    // SAFETY: By the caller's guarantee, taken once, here.
    let Some(buffer) = (unsafe { RsheapBuffer::take(buffer) }) else {
        return failed(Errno::EINVAL);
    };
    // SAFETY: By the caller's guarantee for `session`.
    on_session(
        unsafe { self::session(session) },
        |session| match (*buffer).into_brokered() {
            Some(buffer) => session.call(|broker| broker.free(buffer)),
            None => Err(session.not_brokered()),
        },
    )
}

/// `rsheap_session_list`.
///
/// # Safety
///
/// `session` is NULL or a live handle; `infos` is valid for writes of `capacity` entries, or
/// `capacity` is 0; `out_count` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_list(
    session: *mut RsheapSession,
    infos: *mut RsheapBufferInfo,
    capacity: usize,
    out_count: *mut usize,
) -> i32 {
    // SAFETY: The caller's guarantees are `list_into`'s.
    unsafe { list_into(session, Broker::buffers, infos, capacity, out_count) }
}

/// `rsheap_session_heaps`.
///
/// # Safety
///
/// As for [`rsheap_session_list`], with `heaps` for `infos`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_session_heaps(
    session: *mut RsheapSession,
    heaps: *mut RsheapHeapInfo,
    capacity: usize,
    out_count: *mut usize,
) -> i32 {
    // SAFETY: The caller's guarantees are `list_into`'s.
    unsafe { list_into(session, Broker::heaps, heaps, capacity, out_count) }
}

/// Fetches a list from the broker with `fetch` and copies it out as C's `T`s.
///
/// # Safety
///
/// `session` is NULL or a live handle; `dst` is valid for writes of `capacity` entries, or
/// `capacity` is 0; `out_count` is NULL or valid for a write.
unsafe fn list_into<I, T: for<'a> From<&'a I>>(
    session: *mut RsheapSession,
    fetch: fn(&Broker) -> rsheap::Result<Vec<I>>,
    dst: *mut T,
    capacity: usize,
    out_count: *mut usize,
) -> i32 {
    // SAFETY: By the caller's guarantee for `session`.
    on_session(unsafe { self::session(session) }, |session| {
        let out = Out::new(out_count)?;
        let listed = session.call(fetch)?;
        // SAFETY: By the caller's guarantees for `dst`, `capacity` and `out_count`.
        unsafe { copy_out(listed.iter().map(T::from), dst, capacity, out) }
    })
}

/// Writes up to `capacity` of `items` to `dst` and their number to `count`; `-ENOBUFS` if
/// there were more.
///
/// # Safety
///
/// `dst` is valid for writes of `capacity` entries, or `capacity` is 0; `count` is valid for
/// a write.
unsafe fn copy_out<T>(
    items: impl ExactSizeIterator<Item = T>,
    dst: *mut T,
    capacity: usize,
    count: Out<usize>,
) -> Result<(), Failed> {
    let total = items.len();
    if capacity > 0 && dst.is_null() {
        return Err(failed(Errno::EINVAL));
    }
    for (index, item) in items.take(capacity).enumerate() {
        // SAFETY: `index < capacity`, and the caller guarantees `capacity` writable entries.
        unsafe { dst.add(index).write(item) };
    }
    // SAFETY: By the caller's guarantee.
    unsafe { count.write(total) };
    if total > capacity {
        return Err(failed(Errno::ENOBUFS));
    }
    Ok(())
}
