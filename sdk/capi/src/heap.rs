//! `rsheap_heap_*`: a dma-buf heap opened directly, without the broker, [`RsheapHeap`].

use std::ffi::{c_char, CString};

use rsheap::Heap;

use crate::args::{self, status, Failed, Out};
use crate::buffer::RsheapBuffer;
use crate::errors::to_failed;

/// An open heap, and its name as C reads it.
pub struct RsheapHeap {
    heap: Heap,
    name: CString,
}

/// Opens the heap `open` finds for the name at `name`.
///
/// # Safety
///
/// `name` is NULL or NUL-terminated; `out_heap` is NULL or valid for a write.
unsafe fn open_with(
    name: *const c_char,
    out_heap: *mut *mut RsheapHeap,
    open: fn(&str) -> rsheap::Result<Heap>,
) -> i32 {
    status(|| {
        // SAFETY: By the caller's guarantee.
        let name = unsafe { args::required_str(name) }?;
        let out = Out::new(out_heap)?;
        let heap = open(name).map_err(|error| to_failed(&error))?;
        // Heap names hold no NUL: they are file names.
        let name =
            CString::new(heap.name()).map_err(|_| args::failed(nix::errno::Errno::EINVAL))?;
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee.
        unsafe { out.write(Box::into_raw(Box::new(RsheapHeap { heap, name }))) };
        Ok(())
    })
}

/// Borrows the heap behind `heap`.
///
/// # Safety
///
/// `heap` is NULL or a live handle.
unsafe fn heap<'a>(heap: *const RsheapHeap) -> Result<&'a RsheapHeap, Failed> {
    // SAFETY: The caller's guarantee is the one `borrow` needs.
    unsafe { args::borrow(heap) }
}

/// `rsheap_heap_open`.
///
/// # Safety
///
/// `name` is NULL or NUL-terminated; `out_heap` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_heap_open(
    name: *const c_char,
    out_heap: *mut *mut RsheapHeap,
) -> i32 {
    // SAFETY: The caller's guarantees are `open_with`'s.
    unsafe { open_with(name, out_heap, Heap::open) }
}

/// `rsheap_heap_open_uncached`.
///
/// # Safety
///
/// As for [`rsheap_heap_open`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_heap_open_uncached(
    name: *const c_char,
    out_heap: *mut *mut RsheapHeap,
) -> i32 {
    // SAFETY: The caller's guarantees are `open_with`'s.
    unsafe { open_with(name, out_heap, Heap::open_uncached) }
}

/// `rsheap_heap_name`: NULL for NULL.
///
/// # Safety
///
/// `heap` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_heap_name(heap: *const RsheapHeap) -> *const c_char {
    // SAFETY: By the caller's guarantee.
    unsafe { self::heap(heap) }.map_or(std::ptr::null(), |heap| heap.name.as_ptr())
}

/// `rsheap_heap_is_cached`: false for NULL.
///
/// # Safety
///
/// `heap` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_heap_is_cached(heap: *const RsheapHeap) -> bool {
    // SAFETY: By the caller's guarantee.
    unsafe { self::heap(heap) }.is_ok_and(|heap| heap.heap.is_cached())
}

/// `rsheap_heap_allocate`.
///
/// # Safety
///
/// `heap` is NULL or a live handle; `out_buffer` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_heap_allocate(
    heap: *const RsheapHeap,
    size: usize,
    out_buffer: *mut *mut RsheapBuffer,
) -> i32 {
    status(|| {
        // SAFETY: By the caller's guarantee.
        let heap = unsafe { self::heap(heap) }?;
        let out = Out::new(out_buffer)?;
        let buffer = heap
            .heap
            .allocate(size)
            .map_err(|error| to_failed(&error))?;
        // SAFETY: Checked by `Out::new`; valid for a write by the caller's guarantee.
        unsafe { out.write(RsheapBuffer::heap_handle(buffer)) };
        Ok(())
    })
}

/// `rsheap_heap_close`.
///
/// # Safety
///
/// `heap` is NULL or a live handle that no other call uses now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rsheap_heap_close(heap: *mut RsheapHeap) {
    if !heap.is_null() {
        // SAFETY: By the caller's guarantee the handle came from `Box::into_raw` in
        // `open_with` and is closed only now.
        drop(unsafe { Box::from_raw(heap) });
    }
}
