// SPDX-License-Identifier: GPL-2.0

//! The C shim's functions, declared by hand, with safe wrappers where the call has no
//! precondition.
//!
//! This is the only place that names a function the generated bindings do not have. The C side
//! is `rsheap_shim.c`; `rsheap_shim.h` lists both directions of the boundary.

use kernel::bindings;
use kernel::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

/// `struct dma_heap`, opaque to Rust.
#[repr(C)]
pub(crate) struct DmaHeap {
    _private: [u8; 0],
}

/// `struct dma_buf`, opaque to Rust.
#[repr(C)]
pub(crate) struct DmaBuf {
    _private: [u8; 0],
}

// `struct page` contains a zero-sized lockdep map, which the `improper_ctypes` lint rejects even
// though only pointers to it cross the boundary.
#[allow(improper_ctypes)]
extern "C" {
    pub(crate) fn rsheap_heap_add(name: *const c_char, heap: *mut c_void) -> *mut DmaHeap;
    pub(crate) fn rsheap_dmabuf_export(
        buffer: *mut c_void,
        size: usize,
        fd_flags: u32,
        exp_name: *const c_char,
    ) -> *mut DmaBuf;
    fn rsheap_gfp_high_order() -> bindings::gfp_t;
    fn rsheap_gfp_low_order() -> bindings::gfp_t;
    fn rsheap_totalram_pages() -> c_ulong;
    fn rsheap_fatal_signal_pending() -> bool;
    fn rsheap_cond_resched();
    pub(crate) fn rsheap_sg_set_page(
        sg: *mut bindings::scatterlist,
        page: *mut bindings::page,
        len: c_uint,
    );
    pub(crate) fn rsheap_page_to_pfn(page: *mut bindings::page) -> c_ulong;
    pub(crate) fn rsheap_dma_unmap_sgtable(
        dev: *mut bindings::device,
        sgt: *mut bindings::sg_table,
        dir: bindings::dma_data_direction,
    );
    pub(crate) fn rsheap_dma_sync_sgtable_for_cpu(
        dev: *mut bindings::device,
        sgt: *mut bindings::sg_table,
        dir: bindings::dma_data_direction,
    );
    pub(crate) fn rsheap_dma_sync_sgtable_for_device(
        dev: *mut bindings::device,
        sgt: *mut bindings::sg_table,
        dir: bindings::dma_data_direction,
    );
    pub(crate) fn rsheap_vmap(pages: *mut *mut bindings::page, count: c_uint) -> *mut c_void;
    pub(crate) fn rsheap_vunmap(addr: *const c_void);
    pub(crate) fn rsheap_invalidate_kernel_vmap_range(addr: *mut c_void, size: c_int);
    pub(crate) fn rsheap_flush_kernel_vmap_range(addr: *mut c_void, size: c_int);
}

/// GFP mask for high-order chunks: zeroed, no reclaim, no warning, no retry, compound.
pub(crate) fn gfp_high_order() -> bindings::gfp_t {
    // SAFETY: Returns a constant; no preconditions.
    unsafe { rsheap_gfp_high_order() }
}

/// GFP mask for base pages: zeroed, may reclaim.
pub(crate) fn gfp_low_order() -> bindings::gfp_t {
    // SAFETY: Returns a constant; no preconditions.
    unsafe { rsheap_gfp_low_order() }
}

/// Pages of RAM the page allocator manages.
pub(crate) fn totalram_pages() -> usize {
    // SAFETY: Reads an atomic counter; no preconditions.
    unsafe { rsheap_totalram_pages() as usize }
}

/// Whether the current task has been sent a fatal signal.
pub(crate) fn fatal_signal_pending() -> bool {
    // SAFETY: `current` is always valid in process context, where all of rsheap runs.
    unsafe { rsheap_fatal_signal_pending() }
}

/// Yields the CPU if the scheduler wants it. Must not be called from atomic context.
pub(crate) fn cond_resched() {
    // SAFETY: Callers run in process context without spinlocks held.
    unsafe { rsheap_cond_resched() }
}
