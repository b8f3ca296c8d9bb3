// SPDX-License-Identifier: GPL-2.0

//! The physical memory of one buffer: physically contiguous chunks, largest first.
//!
//! Chunks are 2 MiB (a PMD on x86-64 and 4K-page arm64, so CPU mappings can use one entry for
//! it), 1 MiB, 64 KiB or one base page, whatever the base page size, as the sizes IOMMUs map
//! cheaply. Each chunk is a clean one from its order's pool if it has one, else fresh pages
//! from the page allocator with `__GFP_ZERO` or a dirty chunk from the pool, zeroed here (see
//! [`crate::pool`] for which comes first). High orders are tried without reclaim, retries
//! or warnings, so a fragmented system falls back to smaller chunks instead of stalling; only
//! base pages may reclaim.

use crate::kernel::bindings;
use crate::kernel::page::{PAGE_SHIFT, PAGE_SIZE};
use crate::kernel::prelude::*;
use core::ptr::NonNull;

use crate::pool::Pools;
use crate::shim;

/// Order of a 2 MiB chunk.
const ORDER_2M: u32 = 21 - PAGE_SHIFT as u32;
/// Order of a 1 MiB chunk.
const ORDER_1M: u32 = 20 - PAGE_SHIFT as u32;
/// Order of a 64 KiB chunk.
const ORDER_64K: u32 = 16 - PAGE_SHIFT as u32;
/// The chunk orders, largest first.
pub(crate) const ORDERS: [u32; 4] = [ORDER_2M, ORDER_1M, ORDER_64K, 0];

/// A block of `1 << order` physically contiguous pages.
///
/// # Invariants
///
/// `page` is the first page of a block returned by `alloc_pages` for `order`, owned by this
/// chunk and freed only when it drops.
pub(crate) struct Chunk {
    page: NonNull<bindings::page>,
    order: u32,
}

// SAFETY: A chunk is plain memory that it owns exclusively; any thread may use or free it.
unsafe impl Send for Chunk {}
// SAFETY: Shared references only read `page` and `order`.
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Allocates a chunk of `order` with `gfp`, or `None` if the page allocator has none.
    fn alloc(order: u32, gfp: bindings::gfp_t) -> Option<Self> {
        // SAFETY: Any order up to `MAX_PAGE_ORDER` and any GFP mask may be passed.
        let page = unsafe { bindings::rsheap_alloc_pages(gfp, order) };
        // INVARIANT: A non-null result is a block of `order` that nobody else owns.
        NonNull::new(page).map(|page| Self { page, order })
    }

    /// Rebuilds a chunk given up by [`Chunk::into_raw`].
    ///
    /// # Safety
    ///
    /// `page` and `order` must come from one call to `into_raw`, and ownership of the block
    /// moves to the new chunk.
    pub(crate) unsafe fn from_raw(page: *mut bindings::page, order: u32) -> Self {
        // SAFETY: The caller guarantees `page` came from a chunk, which is never null.
        let page = unsafe { NonNull::new_unchecked(page) };
        // INVARIANT: The caller hands over a block of `order` that `into_raw` gave up.
        Self { page, order }
    }

    /// Gives up ownership of the block without freeing it; see [`Chunk::from_raw`].
    pub(crate) fn into_raw(self) -> *mut bindings::page {
        let page = self.page.as_ptr();
        core::mem::forget(self);
        page
    }

    /// The first page of the chunk.
    pub(crate) fn page(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    /// Page `n` of the chunk, or `None` past its end.
    pub(crate) fn nth_page(&self, n: usize) -> Option<*mut bindings::page> {
        let index = bindings::c_ulong::try_from(n).ok()?;
        // SAFETY: By the type invariants `page` heads a block of `page_count()` pages, and
        // `n` lies within it.
        (n < self.page_count()).then(|| unsafe { bindings::rsheap_nth_page(self.page(), index) })
    }

    /// The chunk's order.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// The number of base pages in the chunk.
    pub(crate) fn page_count(&self) -> usize {
        1 << self.order
    }

    /// The size of the chunk in bytes.
    pub(crate) fn len(&self) -> usize {
        PAGE_SIZE << self.order
    }

    /// The page frame number of the chunk's first page.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: By the type invariants `page` is a valid page.
        unsafe { shim::rsheap_page_to_pfn(self.page.as_ptr()) }
    }

    /// Fills the chunk with zeroes. May sleep.
    pub(crate) fn zero(&self) {
        for page in (0..self.page_count()).filter_map(|i| self.nth_page(i)) {
            // SAFETY: The page is one of the chunk's, which it owns.
            unsafe { shim::rsheap_clear_page(page) };
        }
    }

    /// Counts the chunk as reclaimable kernel memory while it sits in a pool (`true`), or
    /// stops counting it (`false`), so `MemAvailable` includes pooled pages.
    pub(crate) fn account_reclaimable(&self, pooled: bool) {
        let pages = self.page_count() as isize;
        // SAFETY: By the type invariants `page` is a valid page.
        unsafe {
            shim::rsheap_account_reclaimable(
                self.page.as_ptr(),
                if pooled { pages } else { -pages },
            )
        };
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the block was allocated with this order and is owned
        // by this chunk, which is going away.
        unsafe { bindings::__free_pages(self.page.as_ptr(), self.order) };
    }
}

/// All the chunks of one buffer, in allocation order.
///
/// # Invariants
///
/// Until [`PageSet::take_chunks`], the chunks' lengths add up to `size`, a non-zero multiple of
/// the page size, and `firsts[i]` is the buffer page at which `chunks[i]` starts.
pub(crate) struct PageSet {
    chunks: KVec<Chunk>,
    firsts: KVec<usize>,
    size: usize,
}

impl PageSet {
    /// Allocates `size` bytes (a non-zero multiple of the page size) of zeroed memory, taking
    /// chunks from `pools` first. `account` charges new pages to the caller's memory cgroup.
    ///
    /// Fails with `EINTR` if the caller gets a fatal signal and `ENOMEM` when memory runs out;
    /// everything allocated so far is freed on both paths.
    pub(crate) fn alloc(size: usize, pools: &Pools, account: bool) -> Result<Self> {
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let account = if account {
            bindings::consts::GFP_ACCOUNT
        } else {
            0
        };
        let mut chunks = KVec::new();
        let mut firsts = KVec::new();
        let mut remaining = size;
        let mut max_order = ORDERS[0];
        let leave_dirty = pools.leaves_dirty_chunks(size >> PAGE_SHIFT);
        while remaining > 0 {
            if shim::fatal_signal_pending() {
                return Err(EINTR);
            }
            let chunk = Self::alloc_largest(remaining, max_order, pools, leave_dirty, account)
                .ok_or(ENOMEM)?;
            // Orders only go down: if a larger order failed once, it will fail again.
            max_order = chunk.order;
            firsts.push((size - remaining) >> PAGE_SHIFT, GFP_KERNEL)?;
            remaining -= chunk.len();
            chunks.push(chunk, GFP_KERNEL)?;
            shim::cond_resched();
        }
        // INVARIANT: The loop ran until the chunks covered exactly `size`: each chunk is at most
        // `remaining`, which is always a multiple of the page size; each chunk's first page was
        // recorded as it was added.
        Ok(Self {
            chunks,
            firsts,
            size,
        })
    }

    /// The largest chunk that fits in `remaining` with an order of at most `max_order`: a clean
    /// one from its pool, else fresh pages or a dirty chunk, in the order `leave_dirty` says
    /// ([`Pools::leaves_dirty_chunks`]).
    fn alloc_largest(
        remaining: usize,
        max_order: u32,
        pools: &Pools,
        leave_dirty: bool,
        account: bindings::gfp_t,
    ) -> Option<Chunk> {
        let fresh = |order: u32| {
            let gfp = if order > 0 {
                shim::gfp_high_order()
            } else {
                shim::gfp_low_order()
            };
            Chunk::alloc(order, gfp | account)
        };
        ORDERS
            .iter()
            .filter(|&&order| order <= max_order && PAGE_SIZE << order <= remaining)
            .find_map(|&order| {
                pools.take_clean(order).or_else(|| {
                    if leave_dirty {
                        fresh(order).or_else(|| pools.take_dirty(order))
                    } else {
                        pools.take_dirty(order).or_else(|| fresh(order))
                    }
                })
            })
    }

    /// The chunks, in the order they back the buffer.
    pub(crate) fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The chunk holding buffer page `page`, and the buffer page at which that chunk starts.
    pub(crate) fn chunk_at(&self, page: usize) -> Option<(&Chunk, usize)> {
        let index = self
            .firsts
            .partition_point(|&first| first <= page)
            .checked_sub(1)?;
        let chunk = self.chunks.get(index)?;
        let first = *self.firsts.get(index)?;
        (page < first + chunk.page_count()).then_some((chunk, first))
    }

    /// The chunks from the one holding byte `offset` to the last, each with the offset into it
    /// at which they are reached from `offset` (non-zero only for the first). Empty if `offset`
    /// is past the end.
    pub(crate) fn chunks_from(&self, offset: usize) -> impl Iterator<Item = (&Chunk, usize)> {
        let page = offset >> PAGE_SHIFT;
        let index = self
            .firsts
            .partition_point(|&first| first <= page)
            .saturating_sub(1);
        let first = self.firsts.get(index).copied().unwrap_or(0);
        let skip = offset.saturating_sub(first << PAGE_SHIFT);
        let chunks = if offset < self.size {
            self.chunks.get(index..).unwrap_or(&[])
        } else {
            &[]
        };
        chunks
            .iter()
            .enumerate()
            .map(move |(i, chunk)| (chunk, if i == 0 { skip } else { 0 }))
    }

    /// Takes the chunks out, to free or pool them; the set is left empty. Only for the
    /// owner's teardown.
    pub(crate) fn take_chunks(&mut self) -> KVec<Chunk> {
        self.firsts = KVec::new();
        core::mem::take(&mut self.chunks)
    }

    /// The total size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The total number of base pages.
    pub(crate) fn page_count(&self) -> usize {
        self.size >> PAGE_SHIFT
    }
}
