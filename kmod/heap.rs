// SPDX-License-Identifier: GPL-2.0

//! The heaps rsheap registers with the dma-heap core, and allocation into a new dma-buf.
//!
//! `rsheap` hands out cached memory with CPU-access sync. `rsheap-uncached` follows the
//! Android common kernel's `system-uncached`: write-combined CPU mappings, no CPU-access sync,
//! and pages flushed from the CPU caches once, at allocation.
//!
//! The core has already validated the request by the time [`Heap::allocate`] runs: `fd` is
//! zero, `fd_flags` holds only `O_CLOEXEC` and access modes, `heap_flags` is zero, and the
//! length is page-aligned and non-zero. What is left is a size no machine can satisfy, which
//! fails at once with `ENOMEM` instead of draining memory into the OOM killer.

use core::ffi::CStr;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::kernel::bindings;
use crate::kernel::error::{from_err_ptr, to_result};
use crate::kernel::page::{PAGE_SHIFT, PAGE_SIZE};
use crate::kernel::prelude::*;
use crate::kernel::sync::Arc;

use crate::buffer::Buffer;
use crate::pages::PageSet;
use crate::pool::Pools;
use crate::sgt::SgTable;
use crate::shim::{self, DmaBuf};

/// How a heap's buffers are seen by the CPU.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    /// Cached CPU mappings, kept coherent by CPU-access sync.
    Cached,
    /// Write-combined CPU mappings and no CPU-access sync.
    Uncached,
}

/// Live buffers of one heap.
#[derive(Default)]
pub(crate) struct HeapStats {
    pub(crate) buffers: AtomicUsize,
    pub(crate) bytes: AtomicUsize,
}

/// A dma-buf heap, exposed as `/dev/dma_heap/<name>`.
///
/// # Invariants
///
/// `dma_dev` is null until [`Heap::register`] has found the device the heap flushes uncached
/// pages through (the heap's own, where the kernel has `dma_heap_get_dev()`), with a 64-bit
/// DMA mask; from then on it is that device, which lives as long as the module. Once
/// registered, a heap is never removed: the dma-heap core has no way to, so the shim pins the
/// module and the core keeps a reference to the heap forever.
pub(crate) struct Heap {
    name: &'static CStr,
    caching: Caching,
    pools: Arc<Pools>,
    dma_dev: AtomicPtr<bindings::device>,
    account: bool,
    pub(crate) stats: HeapStats,
}

// SAFETY: `dma_dev` is only passed to the DMA API, which may be called from any thread; the
// rest is immutable or atomic.
unsafe impl Send for Heap {}
// SAFETY: As above, shared references only read or use atomics.
unsafe impl Sync for Heap {}

impl Heap {
    /// A heap named `name`, not yet registered. `account` charges pages to memory cgroups.
    pub(crate) fn new(
        name: &'static CStr,
        caching: Caching,
        pools: Arc<Pools>,
        account: bool,
    ) -> Result<Arc<Self>> {
        // INVARIANT: No device until registration.
        Arc::new(
            Self {
                name,
                caching,
                pools,
                dma_dev: AtomicPtr::new(ptr::null_mut()),
                account,
                stats: HeapStats::default(),
            },
            GFP_KERNEL,
        )
    }

    /// The heap's name.
    pub(crate) fn name(&self) -> &'static CStr {
        self.name
    }

    /// How the CPU sees this heap's buffers.
    pub(crate) fn caching(&self) -> Caching {
        self.caching
    }

    /// The pools this heap's pages come from and return to.
    pub(crate) fn pools(&self) -> &Arc<Pools> {
        &self.pools
    }

    /// The bytes this heap reports as pooled, for the dma-heap core's `total_pools_kb`. Both
    /// heaps draw on one set of pools, which the cached heap reports, so that the core's sum
    /// over heaps counts them once.
    pub(crate) fn pool_bytes(&self) -> usize {
        match self.caching {
            Caching::Cached => self.pools.pool_pages().saturating_mul(PAGE_SIZE),
            Caching::Uncached => 0,
        }
    }

    /// Registers the heap with the dma-heap core, which keeps a reference for good, and sets
    /// up the device its uncached pages are flushed through.
    ///
    /// An error after the core accepted the heap leaves it registered, without a device: its
    /// uncached allocations then fail with `ENODEV`.
    pub(crate) fn register(heap: &Arc<Self>) -> Result {
        let this = Arc::into_raw(heap.clone());
        // SAFETY: `name` is a static NUL-terminated string, and `this` is a reference to the
        // heap that the C side only hands back to the heap's ops.
        let result = from_err_ptr(unsafe {
            shim::rsheap_heap_add(heap.name.as_ptr(), this.cast_mut().cast())
        });
        let dma_heap = result.inspect_err(|_| {
            // SAFETY: Registration failed, so nothing else holds `this`.
            drop(unsafe { Arc::from_raw(this) });
        })?;
        // SAFETY: `dma_heap` is the heap just registered, which is never removed.
        let dev = from_err_ptr(unsafe { shim::rsheap_heap_dma_device(dma_heap) })?;
        // INVARIANT: The device lives as long as the heap, and has its DMA mask.
        heap.dma_dev.store(dev, Ordering::Release);
        Ok(())
    }

    /// The device uncached pages are flushed through: `ENODEV` while the heap is still being
    /// registered (an allocation through its node that races with the registration), or if it
    /// could not get one.
    fn dma_dev(&self) -> Result<*mut bindings::device> {
        let dev = self.dma_dev.load(Ordering::Acquire);
        if dev.is_null() {
            pr_info_ratelimited!(
                "{}: no device to flush uncached pages through (the heap is being set up, or \
                 has none)\n",
                self.name.to_str().unwrap_or("?")
            );
            return Err(ENODEV);
        }
        Ok(dev)
    }

    /// Allocates `len` bytes and exports them as a dma-buf opened with `fd_flags`.
    pub(crate) fn allocate(
        heap: &Arc<Self>,
        len: usize,
        fd_flags: u32,
        heap_flags: u64,
    ) -> Result<*mut DmaBuf> {
        let name = heap.name.to_str().unwrap_or("?");
        if heap_flags != 0 {
            pr_info_ratelimited!("{}: refused unknown heap flags {:#x}\n", name, heap_flags);
            return Err(EINVAL);
        }
        let ram = shim::totalram_pages() << PAGE_SHIFT;
        if len > ram {
            pr_info_ratelimited!(
                "{}: refused {} bytes, more than the {} bytes of RAM\n",
                name,
                len,
                ram
            );
            return Err(ENOMEM);
        }
        let pages = PageSet::alloc(len, &heap.pools, heap.account).inspect_err(|&err| {
            if err == ENOMEM {
                pr_warn_ratelimited!("{}: out of memory for {} bytes\n", name, len);
            }
        })?;
        if heap.caching == Caching::Uncached {
            heap.flush(&pages)?;
        }
        let size = pages.size();
        let buffer = KBox::into_raw(Buffer::new(pages, heap.clone())?);
        let name = heap.name.as_ptr();
        // SAFETY: `buffer` is a live buffer whose ownership moves to the dma-buf on success;
        // `name` is static.
        let dmabuf = unsafe { shim::rsheap_dmabuf_export(buffer.cast(), size, fd_flags, name) };
        from_err_ptr(dmabuf).inspect_err(|_| {
            // SAFETY: The export failed, so `buffer` is still ours and nobody else has seen it.
            drop(unsafe { KBox::from_raw(buffer) });
        })
    }

    /// Writes `pages` back from the CPU caches and invalidates them there, so a write-combined
    /// mapping sees no stale lines, by mapping them for DMA once.
    pub(crate) fn flush(&self, pages: &PageSet) -> Result {
        let dev = self.dma_dev()?;
        let mut table = SgTable::new(pages)?;
        // By the type invariants `dev` outlives the mapping, which `table` drops at once.
        table.map(dev, bindings::consts::DMA_BIDIRECTIONAL, 0)?;
        Ok(())
    }

    /// Writes back and invalidates the CPU cache lines of the memory `segments` name, as
    /// [`Self::flush`] does for a whole buffer, without allocating.
    ///
    /// # Safety
    ///
    /// The pages `segments` name must stay allocated for the call.
    pub(crate) unsafe fn flush_segments(&self, segments: &[bindings::bio_vec]) -> Result {
        let dev = self.dma_dev()?;
        // SAFETY: By the type invariants `dev` is a live device with a DMA mask; the caller
        // guarantees the pages stay allocated while they are mapped and unmapped.
        to_result(unsafe { shim::rsheap_flush_bvecs(dev, segments.as_ptr(), segments.len()) })
    }

    /// Counts a new buffer of `size` bytes.
    pub(crate) fn buffer_created(&self, size: usize) {
        self.stats.buffers.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// Counts a released buffer of `size` bytes.
    pub(crate) fn buffer_released(&self, size: usize) {
        self.stats.buffers.fetch_sub(1, Ordering::Relaxed);
        self.stats.bytes.fetch_sub(size, Ordering::Relaxed);
    }
}
