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
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::kernel::bindings;
use crate::kernel::error::from_err_ptr;
use crate::kernel::page::PAGE_SHIFT;
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
/// `dma_dev` is a device that lives as long as the module, used to flush uncached pages.
/// Once registered, a heap is never removed: the dma-heap core has no way to, so the shim pins
/// the module and the core keeps a reference to the heap forever.
pub(crate) struct Heap {
    name: &'static CStr,
    caching: Caching,
    pools: Arc<Pools>,
    dma_dev: *mut bindings::device,
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
        dma_dev: *mut bindings::device,
        account: bool,
    ) -> Result<Arc<Self>> {
        // INVARIANT: The caller passes the module's DMA device.
        Arc::new(
            Self {
                name,
                caching,
                pools,
                dma_dev,
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

    /// Registers the heap with the dma-heap core, which keeps a reference for good.
    pub(crate) fn register(heap: &Arc<Self>) -> Result {
        let this = Arc::into_raw(heap.clone());
        // SAFETY: `name` is a static NUL-terminated string, and `this` is a reference to the
        // heap that the C side only hands back to `rsheap_heap_allocate`.
        let result = from_err_ptr(unsafe {
            shim::rsheap_heap_add(heap.name.as_ptr(), this.cast_mut().cast())
        });
        if result.is_err() {
            // SAFETY: Registration failed, so nothing else holds `this`.
            drop(unsafe { Arc::from_raw(this) });
        }
        result.map(drop)
    }

    /// Allocates `len` bytes and exports them as a dma-buf opened with `fd_flags`.
    pub(crate) fn allocate(
        heap: &Arc<Self>,
        len: usize,
        fd_flags: u32,
        heap_flags: u64,
    ) -> Result<*mut DmaBuf> {
        if heap_flags != 0 {
            return Err(EINVAL);
        }
        if len > shim::totalram_pages() << PAGE_SHIFT {
            return Err(ENOMEM);
        }
        let pages = PageSet::alloc(len, &heap.pools, heap.account)?;
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
        let mut table = SgTable::new(pages)?;
        // By the type invariants `dma_dev` outlives the mapping, which `table` drops at once.
        table.map(self.dma_dev, bindings::consts::DMA_BIDIRECTIONAL, 0)?;
        Ok(())
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
