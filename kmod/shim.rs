// SPDX-License-Identifier: GPL-2.0

//! The C shim's functions, declared by hand, with safe wrappers where the call has no
//! precondition.
//!
//! This is the only place that names a function the generated bindings do not have. The C side
//! is `rsheap_shim.c`; `rsheap_shim.h` lists both directions of the boundary.

use core::ptr::NonNull;

use crate::kernel::bindings::{self, c_char, c_int, c_uint, c_ulong, c_void, consts, opaque_types};
use crate::kernel::error::to_result;
use crate::kernel::prelude::*;

opaque_types! {
    /// `struct dma_heap`.
    DmaHeap;
    /// `struct dma_buf`.
    DmaBuf;
    /// `struct vm_fault`.
    VmFault;
    /// `struct shrinker`.
    Shrinker;
    /// `struct rsheap_pool_worker`: the kthread that zeroes freed chunks.
    RawPoolWorker;
}

/// The fault is outside the buffer.
pub(crate) const VM_FAULT_SIGBUS: bindings::vm_fault_t = consts::VM_FAULT_SIGBUS;
/// The handler installed the mapping itself.
pub(crate) const VM_FAULT_NOPAGE: bindings::vm_fault_t = consts::VM_FAULT_NOPAGE;
/// Retry with base pages.
pub(crate) const VM_FAULT_FALLBACK: bindings::vm_fault_t = consts::VM_FAULT_FALLBACK;

extern "C" {
    fn rsheap_param_mem_accounting() -> bool;
    fn rsheap_param_pool_limit_mb() -> c_int;
    pub(crate) fn rsheap_heap_add(name: *const c_char, heap: *mut c_void) -> *mut DmaHeap;
    pub(crate) fn rsheap_dmabuf_export(
        buffer: *mut c_void,
        size: usize,
        fd_flags: u32,
        exp_name: *const c_char,
    ) -> *mut DmaBuf;
    pub(crate) fn rsheap_readonly_export(
        readonly: *mut c_void,
        size: usize,
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
        attrs: c_ulong,
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
    pub(crate) fn rsheap_vmap(
        pages: *mut *mut bindings::page,
        count: c_uint,
        writecombine: bool,
    ) -> *mut c_void;
    pub(crate) fn rsheap_vunmap(addr: *const c_void);
    pub(crate) fn rsheap_invalidate_kernel_vmap_range(addr: *mut c_void, size: c_int);
    pub(crate) fn rsheap_flush_kernel_vmap_range(addr: *mut c_void, size: c_int);
    pub(crate) fn rsheap_clear_page(page: *mut bindings::page);
    pub(crate) fn rsheap_account_reclaimable(page: *mut bindings::page, nr_pages: isize);
    pub(crate) fn rsheap_shrinker_register(pools: *mut c_void) -> *mut Shrinker;
    pub(crate) fn rsheap_heap_dma_device(heap: *mut DmaHeap) -> *mut bindings::device;
    pub(crate) fn rsheap_flush_bvecs(
        dev: *mut bindings::device,
        bvec: *const bindings::bio_vec,
        nr_segs: usize,
    ) -> c_int;
    pub(crate) fn rsheap_page_list_new() -> *mut bindings::list_head;
    pub(crate) fn rsheap_page_list_free(list: *mut bindings::list_head);
    pub(crate) fn rsheap_page_list_add(list: *mut bindings::list_head, page: *mut bindings::page);
    pub(crate) fn rsheap_page_list_take(list: *mut bindings::list_head) -> *mut bindings::page;
    pub(crate) fn rsheap_sysfs_create(inventory: *mut c_void, uncached: bool) -> c_int;
    pub(crate) fn rsheap_debugfs_create(inventory: *mut c_void);
    pub(crate) fn rsheap_vma_setup(
        vma: *mut bindings::vm_area_struct,
        buffer: *const c_void,
        writecombine: bool,
    ) -> c_int;
    pub(crate) fn rsheap_vma_writable(vma: *const bindings::vm_area_struct) -> bool;
    pub(crate) fn rsheap_vma_clear_maywrite(vma: *mut bindings::vm_area_struct);
    pub(crate) fn rsheap_vma_map_pfns(
        vma: *mut bindings::vm_area_struct,
        addr: usize,
        pfn: usize,
        size: usize,
    ) -> c_int;
    pub(crate) fn rsheap_vmf_insert_pfn(
        vmf: *mut VmFault,
        addr: usize,
        pfn: usize,
    ) -> bindings::vm_fault_t;
    pub(crate) fn rsheap_vmf_insert_pfn_pmd(vmf: *mut VmFault, pfn: usize) -> bindings::vm_fault_t;
    fn rsheap_pmd_order() -> c_uint;
    pub(crate) fn rsheap_dmabuf_get(
        fd: c_int,
        dmabuf: *mut *mut DmaBuf,
        read_only: *mut bool,
    ) -> *mut c_void;
    pub(crate) fn rsheap_dmabuf_put(dmabuf: *mut DmaBuf);
    pub(crate) fn rsheap_dmabuf_access(dmabuf: *mut DmaBuf) -> c_uint;
    pub(crate) fn rsheap_file_access(file: *mut bindings::file) -> c_uint;
    pub(crate) fn rsheap_file_type(file: *mut bindings::file) -> c_uint;
    pub(crate) fn rsheap_file_size(file: *mut bindings::file) -> u64;
    pub(crate) fn rsheap_file_dio_align(
        file: *mut bindings::file,
        offset_align: *mut u32,
        mem_align: *mut u32,
    );
    pub(crate) fn rsheap_file_rw(
        file: *mut bindings::file,
        write: bool,
        direct: bool,
        pos: u64,
        bvec: *const bindings::bio_vec,
        nr_segs: usize,
        count: usize,
    ) -> isize;
    fn rsheap_ctl_register() -> c_int;
    fn rsheap_ctl_deregister();
    fn rsheap_pool_worker_start(out: *mut *mut RawPoolWorker) -> c_int;
    fn rsheap_pool_worker_wake(worker: *mut RawPoolWorker, pools: *const c_void);
    fn rsheap_pool_worker_stop(worker: *mut RawPoolWorker);
}

/// `rsheap_file_access()`: open for reading.
pub(crate) const ACCESS_READ: c_uint = 1 << 0;
/// `rsheap_file_access()`: open for writing.
pub(crate) const ACCESS_WRITE: c_uint = 1 << 1;
/// `rsheap_file_access()`: opened with `O_APPEND`.
pub(crate) const ACCESS_APPEND: c_uint = 1 << 2;
/// `rsheap_file_access()`: supports direct I/O.
pub(crate) const ACCESS_DIRECT: c_uint = 1 << 3;

/// The order of a PMD mapping, or 0 if this kernel cannot map PFNs with PMDs.
pub(crate) fn pmd_order() -> u32 {
    // SAFETY: Returns a constant; no preconditions.
    unsafe { rsheap_pmd_order() }
}

/// The `mem_accounting` module parameter.
pub(crate) fn mem_accounting() -> bool {
    // SAFETY: Reads a parameter that is read-only after load; no preconditions.
    unsafe { rsheap_param_mem_accounting() }
}

/// The `pool_limit_mb` module parameter, `None` when left at its default.
pub(crate) fn pool_limit_mb() -> Option<usize> {
    // SAFETY: Reads a parameter that is read-only after load; no preconditions.
    let mb = unsafe { rsheap_param_pool_limit_mb() };
    usize::try_from(mb).ok()
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
    unsafe { rsheap_totalram_pages() }
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

/// The control device `/dev/rsheap`, registered while this lives.
pub(crate) struct ControlDevice(());

impl ControlDevice {
    /// Registers `/dev/rsheap`.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: Registers a static misc device; called once, at module init.
        to_result(unsafe { rsheap_ctl_register() })?;
        Ok(Self(()))
    }

    /// Keeps the device registered for the rest of the module's life.
    pub(crate) fn leak(self) {
        core::mem::forget(self);
    }
}

impl Drop for ControlDevice {
    fn drop(&mut self) {
        // SAFETY: The device was registered by `register`, and only this value undoes it.
        unsafe { rsheap_ctl_deregister() };
    }
}

/// The kthread, at nice 19, that zeroes the pools' freed chunks: each wake makes it call
/// `rsheap_pools_zero_pending` (`ops.rs`) with the pools it was woken for.
///
/// # Invariants
///
/// `worker` is a running worker from `rsheap_pool_worker_start`, owned by this value; dropping
/// it stops the thread, waiting for a pass under way to finish.
pub(crate) struct PoolWorker {
    worker: NonNull<RawPoolWorker>,
}

// SAFETY: The worker may be woken, and stopped on drop, from any thread.
unsafe impl Send for PoolWorker {}
// SAFETY: Waking through a shared reference is what the worker is for.
unsafe impl Sync for PoolWorker {}

impl PoolWorker {
    /// Starts a worker, asleep until woken.
    pub(crate) fn start() -> Result<Self> {
        let mut worker = core::ptr::null_mut();
        // SAFETY: `worker` is valid for a write; on success it holds a running worker.
        to_result(unsafe { rsheap_pool_worker_start(&mut worker) })?;
        let worker = NonNull::new(worker).ok_or(ENOMEM)?;
        // INVARIANT: Just started.
        Ok(Self { worker })
    }

    /// Wakes the worker, at the next tick, for a pass over `pools`, unless a wake is pending
    /// already. Never sleeps.
    ///
    /// # Safety
    ///
    /// `pools` must be the `Pools` that own this worker, always the same one: a pass borrows
    /// them, which holds because dropping the worker waits for the pass.
    pub(crate) unsafe fn wake(&self, pools: *const c_void) {
        // SAFETY: By the type invariants the worker is running; the caller guarantees `pools`
        // outlives any pass.
        unsafe { rsheap_pool_worker_wake(self.worker.as_ptr(), pools) };
    }
}

impl Drop for PoolWorker {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the worker is ours and running; the C side stops the
        // thread, after a pass under way, before freeing it.
        unsafe { rsheap_pool_worker_stop(self.worker.as_ptr()) };
    }
}
