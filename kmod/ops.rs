// SPDX-License-Identifier: GPL-2.0

//! Entry points the C shim's `dma_heap_ops`, `dma_buf_ops` (of buffers and of read-only
//! exports), shrinker, zeroing thread, debugfs file and control device call.
//!
//! Each rebuilds the typed object from the opaque pointer it was handed, calls one method on
//! it, and turns the result into the errno convention of the op.

use crate::kernel::bindings::{self, c_int, c_void};
use crate::kernel::prelude::*;
use crate::kernel::sync::Arc;

use crate::account::{self, Account};
use crate::buffer::{Buffer, VmaRange};
use crate::heap::Heap;
use crate::pool::Pools;
use crate::readonly::{self, ReadOnly};
use crate::shim::{self, DmaBuf};
use crate::stats::Inventory;
use crate::transfer::{self, Direction, Request};

/// Borrows the buffer behind `dma_buf->priv`.
///
/// # Safety
///
/// `buffer` must be the `priv` of a live rsheap dma-buf, and the borrow must end before the
/// dma-buf is released.
pub(crate) unsafe fn borrow<'a>(buffer: *mut c_void) -> &'a Buffer {
    // SAFETY: The caller guarantees `buffer` came from `KBox::into_raw` and is not yet
    // released.
    unsafe { &*buffer.cast::<Buffer>() }
}

/// Borrows the read-only export behind `dma_buf->priv`.
///
/// # Safety
///
/// `readonly` must be the `priv` of a live read-only export, and the borrow must end before
/// the export is released.
pub(crate) unsafe fn borrow_readonly<'a>(readonly: *mut c_void) -> &'a ReadOnly {
    // SAFETY: The caller guarantees `readonly` came from `KBox::into_raw` and is not yet
    // released.
    unsafe { &*readonly.cast::<ReadOnly>() }
}

fn to_errno(result: Result) -> c_int {
    match result {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

/// `dma_heap_ops.allocate`.
///
/// # Safety
///
/// `heap` must be the private data this module passed to `dma_heap_add`.
#[no_mangle]
unsafe extern "C" fn rsheap_heap_allocate(
    heap: *mut c_void,
    len: usize,
    fd_flags: u32,
    heap_flags: u64,
) -> *mut DmaBuf {
    // SAFETY: The caller guarantees `heap` is the reference `Heap::register` gave the core,
    // which keeps it for good.
    let heap = unsafe { Arc::<Heap>::clone_from_raw(heap.cast()) };
    Heap::allocate(&heap, len, fd_flags, heap_flags).unwrap_or_else(Error::to_ptr)
}

/// `dma_heap_ops.get_pool_size`, where the kernel has it: bytes the heap reports as pooled.
///
/// # Safety
///
/// `heap` must be the private data this module passed to `dma_heap_add`.
#[no_mangle]
unsafe extern "C" fn rsheap_heap_pool_bytes(heap: *mut c_void) -> core::ffi::c_long {
    // SAFETY: The caller guarantees `heap` is the reference `Heap::register` gave the core,
    // which keeps it for good.
    let heap = unsafe { Arc::<Heap>::borrow(heap.cast()) };
    core::ffi::c_long::try_from(heap.pool_bytes()).unwrap_or(core::ffi::c_long::MAX)
}

/// `dma_buf_ops.attach`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer, `key` the core's attachment and `dev` its device.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_attach(
    buffer: *mut c_void,
    key: *const c_void,
    dev: *mut bindings::device,
) -> c_int {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    to_errno(unsafe { borrow(buffer) }.attach(key as usize, dev))
}

/// `dma_buf_ops.detach`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer and `key` an attachment of it.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_detach(buffer: *mut c_void, key: *const c_void) {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }.detach(key as usize)
}

/// `dma_buf_ops.map_dma_buf`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer and `key` an attachment of it.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_map(
    buffer: *mut c_void,
    key: *const c_void,
    dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }
        .map(key as usize, dir)
        .unwrap_or_else(Error::to_ptr)
}

/// `dma_buf_ops.unmap_dma_buf`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer and `key` an attachment of it.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_unmap(
    buffer: *mut c_void,
    key: *const c_void,
    _dir: bindings::dma_data_direction,
) {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }.unmap(key as usize)
}

/// `dma_buf_ops.begin_cpu_access`. The CPU's direction does not matter: devices are synced in
/// the direction they mapped the buffer.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_begin_cpu_access(
    buffer: *mut c_void,
    _dir: bindings::dma_data_direction,
) -> c_int {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }.begin_cpu_access();
    0
}

/// `dma_buf_ops.end_cpu_access`. As for begin, devices are synced in their mapping's direction.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_end_cpu_access(
    buffer: *mut c_void,
    _dir: bindings::dma_data_direction,
) -> c_int {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }.end_cpu_access();
    0
}

/// `dma_buf_ops.mmap`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer and `vma` a VMA being set up by `mmap`, which covers
/// `[start, end)` from buffer page `pgoff`.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_mmap(
    buffer: *mut c_void,
    vma: *mut bindings::vm_area_struct,
    start: usize,
    end: usize,
    pgoff: usize,
) -> c_int {
    // SAFETY: The caller guarantees `buffer` is live and `vma` is being set up under the mmap
    // lock, covering `[start, end)` from page `pgoff`.
    to_errno(unsafe { borrow(buffer).mmap(vma, VmaRange { start, end, pgoff }) })
}

/// `vm_operations_struct.fault` and `.huge_fault` of the VMAs `rsheap_buffer_mmap` sets up.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer and `vmf` a fault in a VMA it set up, which covers
/// `[start, end)` from buffer page `pgoff`.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_fault(
    buffer: *mut c_void,
    vmf: *mut shim::VmFault,
    address: usize,
    start: usize,
    end: usize,
    pgoff: usize,
    order: u32,
) -> bindings::vm_fault_t {
    // SAFETY: The VMA holds a reference on the dma-buf, so the buffer is live.
    let buffer = unsafe { borrow(buffer) };
    // SAFETY: The caller guarantees `vmf` is a fault in a VMA this buffer set up.
    unsafe { buffer.fault(vmf, address, VmaRange { start, end, pgoff }, order) }
}

/// `dma_buf_ops.vmap`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_vmap(buffer: *mut c_void) -> *mut c_void {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }
        .vmap()
        .unwrap_or_else(Error::to_ptr)
}

/// `dma_buf_ops.vunmap`.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_vunmap(buffer: *mut c_void) {
    // SAFETY: The caller guarantees `buffer` is live for the duration of the call.
    unsafe { borrow(buffer) }.vunmap()
}

/// `dma_buf_ops.release`: frees the buffer.
///
/// # Safety
///
/// `buffer` must be a live rsheap buffer that nothing uses any more.
#[no_mangle]
unsafe extern "C" fn rsheap_buffer_release(buffer: *mut c_void) {
    // SAFETY: The core calls release once, after the last reference to the dma-buf is gone,
    // so ownership of the `KBox::into_raw` pointer comes back here.
    drop(unsafe { KBox::<Buffer>::from_raw(buffer.cast()) });
}

/// The buffer behind a read-only export, for the export's ops that are the buffer's own.
///
/// # Safety
///
/// `readonly` must be a live read-only export; the buffer lives at least as long.
#[no_mangle]
unsafe extern "C" fn rsheap_readonly_buffer(readonly: *mut c_void) -> *mut c_void {
    // SAFETY: The caller guarantees `readonly` is live for the duration of the call.
    let buffer: *const Buffer = unsafe { borrow_readonly(readonly) }.buffer();
    buffer.cast_mut().cast()
}

/// `dma_buf_ops.map_dma_buf` of read-only exports.
///
/// # Safety
///
/// `readonly` must be a live read-only export and `key` an attachment of it.
#[no_mangle]
unsafe extern "C" fn rsheap_readonly_map(
    readonly: *mut c_void,
    key: *const c_void,
    dir: bindings::dma_data_direction,
) -> *mut bindings::sg_table {
    // SAFETY: The caller guarantees `readonly` is live for the duration of the call.
    unsafe { borrow_readonly(readonly) }
        .map(key as usize, dir)
        .unwrap_or_else(Error::to_ptr)
}

/// `dma_buf_ops.mmap` of read-only exports.
///
/// # Safety
///
/// `readonly` must be a live read-only export and `vma` a VMA being set up by `mmap`, which
/// covers `[start, end)` from buffer page `pgoff`.
#[no_mangle]
unsafe extern "C" fn rsheap_readonly_mmap(
    readonly: *mut c_void,
    vma: *mut bindings::vm_area_struct,
    start: usize,
    end: usize,
    pgoff: usize,
) -> c_int {
    // SAFETY: The caller guarantees `readonly` is live and `vma` is being set up under the
    // mmap lock, covering `[start, end)` from page `pgoff`.
    to_errno(unsafe { borrow_readonly(readonly).mmap(vma, VmaRange { start, end, pgoff }) })
}

/// `dma_buf_ops.release` of read-only exports: frees the export, dropping its reference on
/// the dma-buf it was made from.
///
/// # Safety
///
/// `readonly` must be a live read-only export that nothing uses any more.
#[no_mangle]
unsafe extern "C" fn rsheap_readonly_release(readonly: *mut c_void) {
    // SAFETY: The core calls release once, after the last reference to the dma-buf is gone,
    // so ownership of the `KBox::into_raw` pointer comes back here.
    drop(unsafe { KBox::<ReadOnly>::from_raw(readonly.cast()) });
}

/// Shrinker `count_objects`.
///
/// # Safety
///
/// `pools` must be the private data this module gave the shrinker.
#[no_mangle]
unsafe extern "C" fn rsheap_pools_count(pools: *mut c_void) -> usize {
    // SAFETY: The caller guarantees `pools` is the `Arc<Pools>` the shrinker was given, which
    // is never released.
    unsafe { Arc::<Pools>::borrow(pools.cast()) }.shrink_count()
}

/// Shrinker `scan_objects`.
///
/// # Safety
///
/// `pools` must be the private data this module gave the shrinker.
#[no_mangle]
unsafe extern "C" fn rsheap_pools_scan(pools: *mut c_void, nr_to_scan: usize) -> usize {
    // SAFETY: As for `rsheap_pools_count`.
    unsafe { Arc::<Pools>::borrow(pools.cast()) }.shrink_scan(nr_to_scan)
}

/// A pass of the pools' worker: zeroes and pools freed chunks.
///
/// # Safety
///
/// `pools` must be the pools that own the worker, which wait for this pass before they go.
#[no_mangle]
unsafe extern "C" fn rsheap_pools_zero_pending(pools: *mut c_void) {
    // SAFETY: The caller guarantees the pools outlive this call.
    unsafe { &*pools.cast::<Pools>() }.zero_pending()
}

/// The debugfs stats file's `show`.
///
/// # Safety
///
/// `inventory` must be the private data this module gave the file, and `seq` the seq_file
/// being shown.
#[no_mangle]
unsafe extern "C" fn rsheap_stats_show(
    inventory: *mut c_void,
    seq: *mut bindings::seq_file,
) -> c_int {
    // SAFETY: The caller guarantees `inventory` is the leaked `KBox<Inventory>` given to
    // debugfs, which lives for good.
    let inventory = unsafe { &*inventory.cast::<Inventory>() };
    // SAFETY: The caller guarantees `seq` is in a `show` call.
    to_errno(unsafe { inventory.show(seq) })
}

/// One counter for a sysfs file: `stat` is an `enum rsheap_stat_id`, `index` a heap or a
/// pool order's place.
///
/// # Safety
///
/// `inventory` must be the leaked `KBox<Inventory>` given to `rsheap_sysfs_create`.
#[no_mangle]
unsafe extern "C" fn rsheap_stat(inventory: *mut c_void, stat: u32, index: u32) -> u64 {
    // SAFETY: The caller guarantees `inventory` is the leaked inventory, which lives for good.
    let inventory = unsafe { &*inventory.cast::<Inventory>() };
    inventory.stat(stat, index)
}

/// A new account for an open file of the control device, or null without memory.
#[no_mangle]
extern "C" fn rsheap_account_new() -> *mut c_void {
    match Arc::new(Account::default(), GFP_KERNEL) {
        Ok(account) => Arc::into_raw(account).cast_mut().cast(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Drops the open file's reference to its account; buffers charged to it keep it.
///
/// # Safety
///
/// `account` must come from `rsheap_account_new`, and is not used again.
#[no_mangle]
unsafe extern "C" fn rsheap_account_put(account: *mut c_void) {
    // SAFETY: The caller hands back the reference `rsheap_account_new` gave up.
    drop(unsafe { Arc::<Account>::from_raw(account.cast()) });
}

/// The control device's `RSHEAP_IOC_CHARGE`: charges the buffer open as `buf_fd` to the open
/// file's account.
///
/// # Safety
///
/// `account` must be the open file's account, from `rsheap_account_new`.
#[no_mangle]
unsafe extern "C" fn rsheap_ctl_charge(account: *mut c_void, buf_fd: c_int) -> c_int {
    // SAFETY: The caller guarantees `account` is live for the call.
    let account = unsafe { Arc::<Account>::clone_from_raw(account.cast()) };
    to_errno(account::charge(&account, buf_fd))
}

/// The control device's `RSHEAP_IOC_ACCOUNT`: what the open file's account holds.
///
/// # Safety
///
/// `account` must be the open file's account; `buffers` and `bytes` must be valid for writes.
#[no_mangle]
unsafe extern "C" fn rsheap_ctl_account(account: *mut c_void, buffers: *mut u64, bytes: *mut u64) {
    // SAFETY: The caller guarantees `account` is live for the call.
    let account = unsafe { Arc::<Account>::borrow(account.cast()) };
    let (live, held) = account.usage();
    // SAFETY: The caller guarantees both are valid for writes.
    unsafe {
        *buffers = live as u64;
        *bytes = held as u64;
    }
}

/// The control device's `RSHEAP_IOC_SHARE_READONLY`: a new read-only export of the buffer open
/// as `buf_fd`, holding the one reference the caller gets, or an error pointer.
#[no_mangle]
extern "C" fn rsheap_ctl_share_readonly(buf_fd: c_int, fd_flags: u32) -> *mut DmaBuf {
    readonly::share(buf_fd, fd_flags).unwrap_or_else(Error::to_ptr)
}

/// The control device's `RSHEAP_IOC_LOAD` (`store` false) and `RSHEAP_IOC_STORE`, with the
/// fields the shim decoded from `struct rsheap_transfer`.
///
/// # Safety
///
/// `bytes` and `direct_bytes` must be valid for writes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn rsheap_ctl_transfer(
    store: bool,
    flags: u32,
    file_fd: c_int,
    buf_fd: c_int,
    file_offset: u64,
    buf_offset: u64,
    length: u64,
    bytes: *mut u64,
    direct_bytes: *mut u64,
) -> c_int {
    let request = Request {
        direction: if store {
            Direction::Store
        } else {
            Direction::Load
        },
        flags,
        file_fd,
        buf_fd,
        file_offset,
        buf_offset,
        length,
    };
    match transfer::transfer(&request) {
        Ok(moved) => {
            // SAFETY: The caller guarantees both outputs are valid for writes.
            unsafe {
                bytes.write(moved.bytes);
                direct_bytes.write(moved.direct);
            }
            0
        }
        Err(err) => err.to_errno(),
    }
}
