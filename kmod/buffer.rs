// SPDX-License-Identifier: GPL-2.0

//! One exported dma-buf: its pages, its device attachments and its kernel mapping.
//!
//! Buffers of an uncached heap skip CPU cache maintenance (the pages were flushed at
//! allocation) and are mapped write-combined, for the CPU and in the kernel.
//!
//! # Locking
//!
//! Each buffer has one mutex, [`Buffer::inner`], the innermost lock rsheap takes. The dma-buf
//! core calls `map_dma_buf`/`unmap_dma_buf` with the buffer's reservation lock held, so the
//! order is `dma_resv` -> `Buffer::inner`. All ops run in process context and may sleep.
//! Page faults take no lock: a buffer's pages never change while it lives.
//!
//! File transfers (`/dev/rsheap`) take turns through a second mutex, [`Buffer::transfer`],
//! held for the whole transfer and taken first: `Buffer::transfer` -> `Buffer::inner`. Waiting
//! for it is interruptible, and the mutex hands the buffer to the next waiter itself, so a
//! signalled waiter never leaves the others asleep on an idle buffer.
//!
//! # Teardown
//!
//! The last reference to the dma-buf releases the buffer ([`Buffer::drop`]), after every
//! importer has detached, in this order: attachments left over have their tables unmapped and
//! freed; the kernel mapping is unmapped; the heap, and the account it is charged to, stop
//! counting the buffer; and only then do the pages go back to the pools, when nothing can
//! reach them any more. Pages nothing could have written ([`Buffer::expose`]) go back clean:
//! they still hold the zeroes they were allocated with, and are not zeroed again.

use core::ffi::{c_void, CStr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::kernel::bindings;
use crate::kernel::error::to_result;
use crate::kernel::page::{PAGE_SHIFT, PAGE_SIZE};
use crate::kernel::prelude::*;
use crate::kernel::sync::{Arc, LockClass, Mutex};

use crate::account::Account;
use crate::heap::{Caching, Heap};
use crate::pages::PageSet;
use crate::sgt::SgTable;
use crate::shim;

/// The part of a buffer a VMA maps: user addresses `[start, end)` from buffer page `pgoff`.
#[derive(Clone, Copy)]
pub(crate) struct VmaRange {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) pgoff: usize,
}

/// A buffer's pages during its one running file transfer.
pub(crate) struct TransferTarget<'a> {
    pub(crate) pages: &'a PageSet,
    /// For an uncached buffer, the heap that writes back and invalidates CPU cache lines
    /// ([`Heap::flush_segments`]) of the pages the page cache path touches: it reaches them
    /// through the cached linear mapping, behind the write-combined mappings' back. Direct
    /// I/O needs none: the device's DMA mapping maintains the caches.
    pub(crate) flush_through: Option<&'a Heap>,
}

/// A device attached to a buffer.
struct Attachment {
    /// The attached device; the dma-buf core keeps it alive until detach.
    dev: *mut bindings::device,
    /// This device's own table over the buffer's pages.
    table: SgTable,
}

/// The kernel virtual mapping of a buffer, shared by all `vmap` callers.
///
/// The mapping outlives its last user and stays until the buffer is released: mapping a large
/// buffer costs one page-table entry per page, and importers that map and unmap every frame
/// then pay it once. Its page tables are 0.2% of the buffer.
///
/// # Invariants
///
/// `addr` was returned by `vmap` for all of the buffer's pages; `users` counts the `vmap`
/// calls not yet undone.
struct KernelMapping {
    addr: NonNull<c_void>,
    users: usize,
}

/// The mutable state of a [`Buffer`], guarded by [`Buffer::inner`].
struct BufferInner {
    /// Attachments keyed by the address of the core's `struct dma_buf_attachment`; a buffer
    /// has few.
    attachments: KVec<(usize, Attachment)>,
    vmap: Option<KernelMapping>,
    /// The account the buffer is charged to, set once.
    owner: Option<Arc<Account>>,
}

impl BufferInner {
    fn attachment(&mut self, key: usize) -> Option<&mut Attachment> {
        self.attachments
            .iter_mut()
            .find(|(k, _)| *k == key)
            .map(|(_, attachment)| attachment)
    }
}

// SAFETY: The raw pointers inside are a device kept alive by the dma-buf core and a kernel
// virtual address owned by this buffer; both may be used from any thread.
unsafe impl Send for BufferInner {}

/// A buffer exported as a dma-buf; `dma_buf->priv` points at it.
///
/// # Invariants
///
/// `pages` holds the buffer's memory until the buffer drops, when it goes back to the heap's
/// pools; the heap counts the buffer in its statistics for as long as it lives. While
/// `exposed` is false the pages hold the zeroes they were allocated with: every path that
/// gives anyone access to them (CPU mappings, the kernel mapping, device tables, file
/// transfers) takes them through [`Buffer::expose`].
pub(crate) struct Buffer {
    heap: Arc<Heap>,
    pages: PageSet,
    exposed: AtomicBool,
    inner: Mutex<BufferInner>,
    /// Held by the buffer's one running file transfer.
    transfer: Mutex<()>,
}

impl Buffer {
    /// Wraps freshly allocated pages of `heap` in a new buffer.
    pub(crate) fn new(pages: PageSet, heap: Arc<Heap>) -> Result<KBox<Self>> {
        let size = pages.size();
        let inner = BufferInner {
            attachments: KVec::new(),
            vmap: None,
            owner: None,
        };
        let buffer = KBox::new(
            Self {
                heap: heap.clone(),
                pages,
                exposed: AtomicBool::new(false),
                inner: Mutex::new(inner, LockClass::BUFFER_INNER)?,
                transfer: Mutex::new((), LockClass::BUFFER_TRANSFER)?,
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: Counted from here until drop.
        heap.buffer_created(size);
        Ok(buffer)
    }

    /// The pages, for a path that gives someone access to them: from now on they may be
    /// written, and the buffer's release has them zeroed before they are used again.
    fn expose(&self) -> &PageSet {
        // Read only on release, by the last reference, which the dma-buf's file reference
        // count orders after every use of the buffer.
        self.exposed.store(true, Ordering::Relaxed);
        &self.pages
    }

    fn uncached(&self) -> bool {
        self.heap.caching() == Caching::Uncached
    }

    /// The buffer's size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.pages.size()
    }

    /// The name of the heap the buffer came from.
    pub(crate) fn heap_name(&self) -> &'static CStr {
        self.heap.name()
    }

    /// Charges the buffer to `account` until it is released; `EBUSY` if it was charged before.
    pub(crate) fn charge(&self, account: &Arc<Account>) -> Result {
        let mut inner = self.inner.lock();
        if inner.owner.is_some() {
            return Err(EBUSY);
        }
        account.charge(self.size());
        inner.owner = Some(account.clone());
        Ok(())
    }

    /// Attaches `dev`, giving it a table of its own; `key` identifies the attachment from now on.
    pub(crate) fn attach(&self, key: usize, dev: *mut bindings::device) -> Result {
        let table = SgTable::new(self.expose())?;
        let mut inner = self.inner.lock();
        if inner.attachment(key).is_some() {
            return Err(EEXIST);
        }
        inner
            .attachments
            .push((key, Attachment { dev, table }), GFP_KERNEL)
    }

    /// Drops the attachment `key`, unmapping its table if the importer did not.
    pub(crate) fn detach(&self, key: usize) {
        let mut inner = self.inner.lock();
        let index = inner.attachments.iter().position(|(k, _)| *k == key);
        let attachment = index.and_then(|index| inner.attachments.swap_remove(index));
        drop(inner);
        drop(attachment);
    }

    /// Maps attachment `key` for DMA in direction `dir` and returns its table.
    ///
    /// The table stays valid until the attachment is unmapped or detached.
    pub(crate) fn map(
        &self,
        key: usize,
        dir: bindings::dma_data_direction,
    ) -> Result<*mut bindings::sg_table> {
        let mut inner = self.inner.lock();
        let attachment = inner.attachment(key).ok_or(EINVAL)?;
        // Uncached pages have no dirty lines to maintain.
        let attrs = if self.uncached() {
            bindings::consts::DMA_ATTR_SKIP_CPU_SYNC
        } else {
            0
        };
        // The dma-buf core keeps `dev` alive until detach, which unmaps first.
        attachment.table.map(attachment.dev, dir, attrs)
    }

    /// Undoes [`Self::map`] for attachment `key`.
    pub(crate) fn unmap(&self, key: usize) {
        if let Some(attachment) = self.inner.lock().attachment(key) {
            attachment.table.unmap();
        }
    }

    /// Prepares the buffer for CPU access after device access.
    pub(crate) fn begin_cpu_access(&self) {
        if self.uncached() {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(vmap) = &inner.vmap {
            self.for_each_vmap_range(vmap, |addr, len| {
                // SAFETY: The range lies within the buffer's live kernel mapping.
                unsafe { shim::rsheap_invalidate_kernel_vmap_range(addr, len) }
            });
        }
        for (_, attachment) in inner.attachments.iter_mut() {
            attachment.table.sync_for_cpu();
        }
    }

    /// Hands the buffer back to devices after CPU access.
    pub(crate) fn end_cpu_access(&self) {
        if self.uncached() {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(vmap) = &inner.vmap {
            self.for_each_vmap_range(vmap, |addr, len| {
                // SAFETY: The range lies within the buffer's live kernel mapping.
                unsafe { shim::rsheap_flush_kernel_vmap_range(addr, len) }
            });
        }
        for (_, attachment) in inner.attachments.iter_mut() {
            attachment.table.sync_for_device();
        }
    }

    /// Runs `f`, which moves bytes into or out of the buffer's pages, as the buffer's only file
    /// transfer, between [`Self::begin_cpu_access`] and [`Self::end_cpu_access`].
    ///
    /// Transfers of one buffer take turns: this first waits for a running one to end, and fails
    /// with `ERESTARTSYS` if a signal ends the wait.
    pub(crate) fn exclusive_transfer<T>(
        &self,
        f: impl FnOnce(TransferTarget<'_>) -> Result<T>,
    ) -> Result<T> {
        let _turn = self
            .transfer
            .lock_interruptible()
            .map_err(|_| ERESTARTSYS)?;
        let target = TransferTarget {
            pages: self.expose(),
            flush_through: self.uncached().then_some(&*self.heap),
        };
        self.begin_cpu_access();
        let result = f(target);
        self.end_cpu_access();
        result
    }

    /// Calls `f` on the kernel mapping in pieces whose length fits the C `int` the cache
    /// maintenance helpers take.
    fn for_each_vmap_range(&self, vmap: &KernelMapping, f: impl Fn(*mut c_void, i32)) {
        const STEP: usize = 1 << 30;
        let base = vmap.addr.as_ptr().cast::<u8>();
        let mut offset = 0;
        while offset < self.size() {
            let len = core::cmp::min(STEP, self.size() - offset);
            // `offset` is within the mapping, whose size is `self.size()`, and `len <= STEP`.
            f(base.wrapping_add(offset).cast(), len as i32);
            offset += len;
        }
    }

    /// Sets up `vma` to map the buffer from page `range.pgoff` at `[range.start, range.end)`,
    /// and maps at once every chunk no PMD will map, so touching those parts costs no fault.
    ///
    /// A 2 MiB-aligned chunk at a 2 MiB-aligned address, whole in the VMA, is left to the
    /// PMD fault that maps it with one entry when first touched: mapping it now would take
    /// 512 entries, and a mapping that is never touched would pay for them all.
    ///
    /// The dma-buf core has already checked that `vm_pgoff` plus the VMA's length lies within
    /// the buffer. Private writable (copy-on-write) mappings are refused: a buffer shared with
    /// devices has no private copy.
    ///
    /// # Safety
    ///
    /// `vma` must be a VMA being set up by `mmap`, with the mmap lock held for writing, and
    /// `range` its addresses and page offset.
    pub(crate) unsafe fn mmap(
        &self,
        vma: *mut bindings::vm_area_struct,
        range: VmaRange,
    ) -> Result {
        let this: *const Self = self;
        // The VMA holds its file: the buffer's dma-buf, or a read-only export that holds it.
        // SAFETY: The caller guarantees `vma` is being set up under the mmap lock, and the
        // buffer the fault handler finds through `this` outlives the VMA (above).
        to_result(unsafe { shim::rsheap_vma_setup(vma, this.cast(), self.uncached()) })?;
        let offset = range.pgoff.checked_shl(PAGE_SHIFT as u32).ok_or(EINVAL)?;
        let mut addr = range.start;
        for (chunk, skip) in self.expose().chunks_from(offset) {
            if addr >= range.end {
                break;
            }
            let len = core::cmp::min(chunk.len().saturating_sub(skip), range.end - addr);
            if !maps_with_pmds(chunk.pfn(), chunk.order(), addr, skip, len) {
                // SAFETY: As above; `[addr, addr + len)` lies within the VMA and maps pages
                // of a chunk the buffer owns while the VMA exists.
                let ret = unsafe {
                    shim::rsheap_vma_map_pfns(vma, addr, chunk.pfn() + (skip >> PAGE_SHIFT), len)
                };
                to_result(ret)?;
            }
            addr += len;
        }
        Ok(())
    }

    /// Handles a fault at `address` in a VMA set up by [`Self::mmap`] covering `[start, end)`
    /// from buffer page `pgoff`, mapping `1 << order` pages at once.
    ///
    /// Only the chunks [`Self::mmap`] left to PMD faults are unmapped when first touched. A PMD
    /// fault maps such a chunk with one entry; where the core falls back to a base-page fault
    /// (THP disabled, say), that fault maps the whole chunk under it, as far as the VMA
    /// reaches, so the chunk costs one fault either way.
    ///
    /// # Safety
    ///
    /// `vmf` must be the fault being handled, in a VMA set up by [`Self::mmap`] for this buffer.
    pub(crate) unsafe fn fault(
        &self,
        vmf: *mut shim::VmFault,
        address: usize,
        vma: VmaRange,
        order: u32,
    ) -> bindings::vm_fault_t {
        let pages = 1usize << order;
        let span = pages << PAGE_SHIFT;
        let base = address & !(span - 1);
        if base < vma.start || base + span > vma.end {
            // A huge fault may not cover the whole VMA; a base-page fault always lies inside.
            return if order > 0 {
                shim::VM_FAULT_FALLBACK
            } else {
                shim::VM_FAULT_SIGBUS
            };
        }
        let page = vma.pgoff + ((base - vma.start) >> PAGE_SHIFT);
        let Some((chunk, first)) = self.pages.chunk_at(page) else {
            return shim::VM_FAULT_SIGBUS;
        };
        let index = page - first;
        if order > 0 {
            let fits = index + pages <= chunk.page_count() && (chunk.pfn() + index) % pages == 0;
            if !fits || order != shim::pmd_order() {
                return shim::VM_FAULT_FALLBACK;
            }
            // SAFETY: The caller guarantees `vmf` is this buffer's fault; the 2 MiB at `base`
            // lie within the VMA and within a chunk the buffer owns while the VMA exists.
            return unsafe { shim::rsheap_vmf_insert_pfn_pmd(vmf, chunk.pfn() + index) };
        }
        // Map the whole chunk as far as the VMA reaches.
        let chunk_start =
            vma.start as isize + ((first as isize - vma.pgoff as isize) << PAGE_SHIFT);
        for i in 0..chunk.page_count() {
            let addr = chunk_start + (i << PAGE_SHIFT) as isize;
            if addr < vma.start as isize || addr >= vma.end as isize {
                continue;
            }
            // SAFETY: As above; `addr` lies within the VMA and maps page `i` of the chunk.
            let ret = unsafe { shim::rsheap_vmf_insert_pfn(vmf, addr as usize, chunk.pfn() + i) };
            if ret != shim::VM_FAULT_NOPAGE {
                return ret;
            }
        }
        shim::VM_FAULT_NOPAGE
    }

    /// Maps the whole buffer into kernel virtual memory, or takes another reference on the
    /// existing mapping.
    pub(crate) fn vmap(&self) -> Result<*mut c_void> {
        let mut inner = self.inner.lock();
        if let Some(vmap) = &mut inner.vmap {
            vmap.users = vmap.users.checked_add(1).ok_or(EBUSY)?;
            return Ok(vmap.addr.as_ptr());
        }
        let count = self.pages.page_count();
        let mut pages = KVec::with_capacity(count, GFP_KERNEL)?;
        // Fill the page array a chunk at a time.
        let all_pages = self
            .expose()
            .chunks()
            .iter()
            .flat_map(|chunk| (0..chunk.page_count()).filter_map(move |i| chunk.nth_page(i)));
        let mut filled = 0;
        for (slot, page) in pages.spare_capacity_mut().iter_mut().zip(all_pages) {
            slot.write(page);
            filled += 1;
        }
        // SAFETY: The first `filled` slots were initialised just above, within the capacity.
        unsafe { pages.set_len(filled) };
        let count = u32::try_from(filled).map_err(|_| ENOMEM)?;
        // SAFETY: `pages` holds `count` valid pages, all owned by this buffer, which outlives
        // the mapping (it is unmapped when the buffer drops).
        let addr = unsafe { shim::rsheap_vmap(pages.as_mut_ptr(), count, self.uncached()) };
        let addr = NonNull::new(addr).ok_or(ENOMEM)?;
        // INVARIANT: A fresh mapping of all pages with one user.
        inner.vmap = Some(KernelMapping { addr, users: 1 });
        Ok(addr.as_ptr())
    }

    /// Drops one reference on the kernel mapping; the mapping itself stays until release.
    pub(crate) fn vunmap(&self) {
        let mut inner = self.inner.lock();
        match &mut inner.vmap {
            Some(vmap) if vmap.users > 0 => vmap.users -= 1,
            _ => pr_warn!("vunmap of a buffer that is not vmapped\n"),
        }
    }
}

impl Drop for Buffer {
    /// Tears the buffer down in the order the module's docs give.
    fn drop(&mut self) {
        let mut inner = self.inner.lock();
        let attachments = core::mem::take(&mut inner.attachments);
        let vmap = inner.vmap.take();
        let owner = inner.owner.take();
        drop(inner);
        if !attachments.is_empty() {
            pr_warn!(
                "release of a buffer with {} attachments\n",
                attachments.len()
            );
        }
        // Unmaps and frees each attachment's table.
        drop(attachments);
        if let Some(vmap) = vmap {
            // Importers vunmap before the last reference goes, so users left over were leaked.
            if vmap.users > 0 {
                pr_warn!("release of a buffer with {} vmap users\n", vmap.users);
            }
            // SAFETY: By the type invariants `addr` came from `vmap`, and the buffer is going
            // away, so nobody uses the mapping any more.
            unsafe { shim::rsheap_vunmap(vmap.addr.as_ptr()) };
        }
        self.heap.buffer_released(self.pages.size());
        if let Some(owner) = owner {
            owner.release(self.pages.size());
        }
        let written = *self.exposed.get_mut();
        self.heap
            .pools()
            .take_back(self.pages.take_chunks(), written);
    }
}

/// Whether PMD faults will map the `len` bytes from byte `skip` of a chunk of `order` at page
/// frame `pfn`, mapped at user address `addr`: the whole chunk, 2 MiB-aligned in memory and
/// in the VMA.
fn maps_with_pmds(pfn: usize, order: u32, addr: usize, skip: usize, len: usize) -> bool {
    let pmd_order = shim::pmd_order();
    let pmd_size = PAGE_SIZE << pmd_order;
    pmd_order > 0
        && order >= pmd_order
        && skip == 0
        && len == PAGE_SIZE << order
        && pfn % (1 << pmd_order) == 0
        && addr % pmd_size == 0
}
