//! `rsheap_buffer_*`: a buffer of a session or of a heap, [`RsheapBuffer`], its mappings and
//! its CPU-access brackets.

use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use rsheap::{BrokerBuffer, Buffer, SyncDirection};

use crate::args::{self, failed, status, Failed, Out};
use crate::errors::to_failed;
use crate::types::{MAP_READ, MAP_READ_WRITE, SYNC_READ, SYNC_READ_WRITE, SYNC_WRITE};

/// A buffer C holds: one the broker allocated for a session, or one of a heap.
pub struct RsheapBuffer(Owner);

enum Owner {
    Session(BrokerBuffer),
    Heap(Buffer),
}

impl RsheapBuffer {
    /// A new handle for a buffer of a session.
    pub(crate) fn brokered_handle(buffer: BrokerBuffer) -> *mut Self {
        Box::into_raw(Box::new(Self(Owner::Session(buffer))))
    }

    /// A new handle for a buffer of a heap.
    pub(crate) fn heap_handle(buffer: Buffer) -> *mut Self {
        Box::into_raw(Box::new(Self(Owner::Heap(buffer))))
    }

    /// Takes back the value behind a handle; `None` for NULL.
    ///
    /// # Safety
    ///
    /// `handle` is NULL or came from one of the `*_handle` functions, was not taken before,
    /// and no other call uses it now or later.
    pub(crate) unsafe fn take(handle: *mut Self) -> Option<Box<Self>> {
        // SAFETY: By the caller's guarantee a non-null handle came from `Box::into_raw` and
        // is taken only this once.
        (!handle.is_null()).then(|| unsafe { Box::from_raw(handle) })
    }

    /// The dma-buf.
    fn buffer(&self) -> &Buffer {
        match &self.0 {
            Owner::Session(buffer) => buffer.buffer(),
            Owner::Heap(buffer) => buffer,
        }
    }

    /// The broker's buffer, for a buffer of a session.
    pub(crate) fn brokered(&self) -> Option<&BrokerBuffer> {
        match &self.0 {
            Owner::Session(buffer) => Some(buffer),
            Owner::Heap(_) => None,
        }
    }

    /// The broker's buffer, for a buffer of a session; a buffer of a heap is closed.
    pub(crate) fn into_brokered(self) -> Option<BrokerBuffer> {
        match self.0 {
            Owner::Session(buffer) => Some(buffer),
            Owner::Heap(_) => None,
        }
    }
}

/// Borrows the buffer behind `buffer`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
unsafe fn buffer<'a>(buffer: *const RsheapBuffer) -> Result<&'a Buffer, Failed> {
    // SAFETY: The caller's guarantee is the one `borrow` needs.
    unsafe { args::borrow(buffer) }.map(RsheapBuffer::buffer)
}

fn direction(direction: i32) -> Result<SyncDirection, Failed> {
    match direction {
        SYNC_READ => Ok(SyncDirection::Read),
        SYNC_WRITE => Ok(SyncDirection::Write),
        SYNC_READ_WRITE => Ok(SyncDirection::ReadWrite),
        _ => Err(failed(Errno::EINVAL)),
    }
}

/// `rsheap_buffer_fd`: -1 for NULL.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_fd(buffer: *const RsheapBuffer) -> RawFd {
    // SAFETY: By the caller's guarantee.
    unsafe { self::buffer(buffer) }.map_or(-1, |buffer| buffer.as_fd().as_raw_fd())
}

/// `rsheap_buffer_size`: 0 for NULL.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_size(buffer: *const RsheapBuffer) -> usize {
    // SAFETY: By the caller's guarantee.
    unsafe { self::buffer(buffer) }.map_or(0, Buffer::len)
}

/// `rsheap_buffer_id`: -1 for a buffer of a heap, or NULL.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_id(buffer: *const RsheapBuffer) -> i64 {
    // SAFETY: By the caller's guarantee.
    let handle = unsafe { args::borrow(buffer) };
    handle
        .ok()
        .and_then(RsheapBuffer::brokered)
        .map_or(-1, BrokerBuffer::id)
}

/// `rsheap_buffer_map`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle; `out_address` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_map(
    buffer: *const RsheapBuffer,
    access: i32,
    out_address: *mut *mut c_void,
) -> i32 {
    status(|| {
        // SAFETY: By the caller's guarantee.
        let buffer = unsafe { self::buffer(buffer) }?;
        let out = Out::new(out_address)?;
        let (address, _) = match access {
            MAP_READ => buffer.map_read_only().map(|mapping| mapping.into_raw()),
            MAP_READ_WRITE => buffer.map().map(|mapping| mapping.into_raw()),
            _ => return Err(failed(Errno::EINVAL)),
        }
        .map_err(|error| to_failed(&error))?;
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee. The
        // mapping is C's from now on, to unmap with `rsheap_buffer_unmap`.
        unsafe { out.write(address.as_ptr().cast()) };
        Ok(())
    })
}

/// `rsheap_buffer_unmap`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle; `address` is NULL or a mapping `rsheap_buffer_map`
/// made of it, which nothing uses any more.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_unmap(
    buffer: *const RsheapBuffer,
    address: *mut c_void,
) -> i32 {
    status(|| {
        // SAFETY: By the caller's guarantee.
        let buffer = unsafe { self::buffer(buffer) }?;
        let address = NonNull::new(address)
            .filter(|address| {
                (address.as_ptr() as usize).checked_rem(rsheap::page_size()) == Some(0)
            })
            .ok_or(failed(Errno::EINVAL))?;
        // SAFETY: The caller guarantees the buffer's whole size is mapped at `address` by
        // `rsheap_buffer_map` and unused from now on.
        unsafe { nix::sys::mman::munmap(address, buffer.len()) }.map_err(failed)
    })
}

/// Runs `sync` (begin or end) on the buffer behind `buffer` in the C `direction`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
unsafe fn cpu_access(
    buffer: *const RsheapBuffer,
    direction: i32,
    sync: fn(&Buffer, SyncDirection) -> rsheap::Result<()>,
) -> i32 {
    status(|| {
        // SAFETY: By the caller's guarantee.
        let buffer = unsafe { self::buffer(buffer) }?;
        sync(buffer, self::direction(direction)?).map_err(|error| to_failed(&error))
    })
}

/// `rsheap_buffer_begin_cpu_access`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_begin_cpu_access(
    buffer: *const RsheapBuffer,
    direction: i32,
) -> i32 {
    // SAFETY: The caller's guarantee is `cpu_access`'s.
    unsafe { cpu_access(buffer, direction, Buffer::begin_cpu_access) }
}

/// `rsheap_buffer_end_cpu_access`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_end_cpu_access(
    buffer: *const RsheapBuffer,
    direction: i32,
) -> i32 {
    // SAFETY: The caller's guarantee is `cpu_access`'s.
    unsafe { cpu_access(buffer, direction, Buffer::end_cpu_access) }
}

/// `rsheap_buffer_close`.
///
/// # Safety
///
/// `buffer` is NULL or a live handle that no other call uses now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_buffer_close(buffer: *mut RsheapBuffer) {
    // SAFETY: By the caller's guarantee, taken once, here.
    drop(unsafe { RsheapBuffer::take(buffer) });
}
