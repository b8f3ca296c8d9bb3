// SPDX-License-Identifier: GPL-2.0

//! Page pools: freed chunks, zeroed off the allocating thread, kept per order for reuse.
//!
//! A buffer's release hands its chunks to [`Pools::defer_free`]; a worker on the unbound
//! workqueue zeroes them and files them into the pool of their order, so a later allocation
//! takes pages that are already zeroed. A chunk enters a pool only after it was zeroed, so a
//! pool never hands out stale data. The pools are bounded by [`Pools::limit_pages`] (the
//! `pool_limit_mb` parameter, a quarter of RAM by default), counted as reclaimable kernel
//! memory, and drained by a shrinker under memory pressure.
//!
//! With `mem_accounting` on, pages are charged to the allocating memory cgroup and are not
//! pooled, since a pooled page would stay charged to its first owner.
//!
//! # Locking
//!
//! - [`PagePool::inner`] (spinlock): one pool's chunks. Never held while allocating,
//!   freeing or zeroing; taken from the shrinker, which may run in reclaim on any thread.
//! - [`Pools::pending`] (mutex): chunks waiting to be zeroed. Taken only in process context,
//!   never together with a pool lock.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::kernel::bindings;
use crate::kernel::page::PAGE_SHIFT;
use crate::kernel::prelude::*;
use crate::kernel::sync::{Arc, LockClass, Mutex, SpinLock};
use crate::pages::{Chunk, ORDERS};
use crate::shim::{self, PoolWork};

/// The free chunks of one pool.
///
/// # Invariants
///
/// `slots[..count]` are the first pages of zeroed chunks of the pool's order, owned by the
/// pool; `slots[count..]` are null.
struct PoolInner {
    slots: KVec<*mut bindings::page>,
    count: usize,
}

// SAFETY: The pages are plain memory owned by the pool; any thread may take or free them.
unsafe impl Send for PoolInner {}

/// Zeroed chunks of one order.
pub(crate) struct PagePool {
    order: u32,
    inner: SpinLock<PoolInner>,
}

impl PagePool {
    fn new(order: u32, limit_pages: usize) -> Result<Self> {
        let slots = KVec::from_elem(ptr::null_mut(), limit_pages >> order, GFP_KERNEL)?;
        Ok(Self {
            order,
            inner: SpinLock::new(PoolInner { slots, count: 0 }, LockClass::PAGE_POOL)?,
        })
    }

    /// Takes a zeroed chunk, if the pool has one.
    fn take(&self) -> Option<Chunk> {
        let page = {
            let mut inner = self.inner.lock();
            if inner.count == 0 {
                return None;
            }
            inner.count -= 1;
            let count = inner.count;
            let slot = inner.slots.get_mut(count)?;
            core::mem::replace(slot, ptr::null_mut())
        };
        // SAFETY: By the type invariants the slot held a zeroed chunk of this order owned by
        // the pool; it was just removed, so ownership moves to the new chunk.
        Some(unsafe { Chunk::from_raw(page, self.order) })
    }

    /// Files a zeroed chunk of this pool's order, or gives it back if the pool is full.
    fn put(&self, chunk: Chunk) -> Result<(), Chunk> {
        let mut inner = self.inner.lock();
        let count = inner.count;
        let Some(slot) = inner.slots.get_mut(count) else {
            return Err(chunk);
        };
        // INVARIANT: The caller zeroed the chunk; the pool now owns it.
        *slot = chunk.into_raw();
        inner.count += 1;
        Ok(())
    }

    /// Chunks in the pool now.
    fn len(&self) -> usize {
        self.inner.lock().count
    }
}

/// Counters of the pools' activity, for debugfs.
#[derive(Default)]
pub(crate) struct PoolStats {
    /// Chunks zeroed by the worker and filed into a pool.
    pub(crate) zeroed: AtomicUsize,
    /// Chunks freed to the page allocator because the pools were full or pooling is off.
    pub(crate) freed: AtomicUsize,
    /// Allocations of a chunk served from a pool.
    pub(crate) hits: AtomicUsize,
    /// Shrinker `count` calls.
    pub(crate) shrink_counts: AtomicUsize,
    /// Shrinker `scan` calls.
    pub(crate) shrink_scans: AtomicUsize,
    /// Pages the shrinker gave back to the page allocator.
    pub(crate) shrink_freed_pages: AtomicUsize,
}

/// The pools of every order, their deferred-free worker and their shrinker's state.
///
/// # Invariants
///
/// `pool_pages` is the number of base pages in all pools together, and never exceeds
/// `limit_pages`.
pub(crate) struct Pools {
    /// Runs [`Pools::zero_pending`]. Declared first, so that it is dropped, and a queued run
    /// waited for, before anything the run uses.
    work: PoolWork,
    pools: [PagePool; ORDERS.len()],
    limit_pages: usize,
    pool_pages: AtomicUsize,
    /// Whether pages are pooled at all (not with memcg accounting).
    enabled: bool,
    pending: Mutex<KVec<Chunk>>,
    pub(crate) stats: PoolStats,
}

impl Pools {
    /// Creates empty pools bounded by `limit_pages` base pages in all.
    pub(crate) fn new(limit_pages: usize, enabled: bool) -> Result<Arc<Self>> {
        let limit_pages = if enabled { limit_pages } else { 0 };
        let pools = [
            PagePool::new(ORDERS[0], limit_pages)?,
            PagePool::new(ORDERS[1], limit_pages)?,
            PagePool::new(ORDERS[2], limit_pages)?,
            PagePool::new(ORDERS[3], limit_pages)?,
        ];
        Arc::new(
            Self {
                work: PoolWork::new()?,
                pools,
                limit_pages,
                pool_pages: AtomicUsize::new(0),
                enabled,
                pending: Mutex::new(KVec::new(), LockClass::POOLS_PENDING)?,
                stats: PoolStats::default(),
            },
            GFP_KERNEL,
        )
    }

    fn pool(&self, order: u32) -> Option<&PagePool> {
        self.pools.iter().find(|pool| pool.order == order)
    }

    /// Takes a zeroed chunk of `order` from its pool.
    pub(crate) fn take(&self, order: u32) -> Option<Chunk> {
        let chunk = self.pool(order)?.take()?;
        self.pool_pages
            .fetch_sub(chunk.page_count(), Ordering::Relaxed);
        chunk.account_reclaimable(false);
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(chunk)
    }

    /// Hands a released buffer's chunks to the worker, which zeroes and pools them.
    ///
    /// Must be called in process context; may sleep.
    pub(crate) fn defer_free(&self, chunks: KVec<Chunk>) {
        if !self.enabled {
            self.stats.freed.fetch_add(chunks.len(), Ordering::Relaxed);
            return;
        }
        let mut pending = self.pending.lock();
        for chunk in chunks {
            // Without memory to queue it, the chunk is dropped: freed without pooling.
            if pending.push(chunk, GFP_KERNEL).is_err() {
                self.stats.freed.fetch_add(1, Ordering::Relaxed);
            }
        }
        drop(pending);
        // Already queued is fine: the queued run will see these chunks too.
        // SAFETY: These are the pools that own the work item.
        unsafe { self.work.queue(ptr::from_ref(self).cast()) };
    }

    /// Zeroes pending chunks and files them into the pools, freeing what does not fit. Run by
    /// the work item.
    pub(crate) fn zero_pending(&self) {
        let chunks = core::mem::take(&mut *self.pending.lock());
        for chunk in chunks {
            let pages = chunk.page_count();
            let Some(pool) = self.pool(chunk.order()).filter(|_| self.reserve(pages)) else {
                self.stats.freed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            chunk.zero();
            chunk.account_reclaimable(true);
            match pool.put(chunk) {
                Ok(()) => {
                    self.stats.zeroed.fetch_add(1, Ordering::Relaxed);
                }
                Err(chunk) => {
                    chunk.account_reclaimable(false);
                    self.pool_pages.fetch_sub(pages, Ordering::Relaxed);
                    self.stats.freed.fetch_add(1, Ordering::Relaxed);
                }
            }
            shim::cond_resched();
        }
    }

    /// Reserves room for `pages` in the pools' budget.
    fn reserve(&self, pages: usize) -> bool {
        self.pool_pages
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(pages)
                    .filter(|&total| total <= self.limit_pages)
            })
            .is_ok()
    }

    /// Base pages in the pools now.
    pub(crate) fn pool_pages(&self) -> usize {
        self.pool_pages.load(Ordering::Relaxed)
    }

    /// The pools' budget in base pages.
    pub(crate) fn limit_pages(&self) -> usize {
        self.limit_pages
    }

    /// (order, chunks) for each pool.
    pub(crate) fn chunks_per_order(&self) -> [(u32, usize); ORDERS.len()] {
        let mut out = [(0, 0); ORDERS.len()];
        for (slot, pool) in out.iter_mut().zip(self.pools.iter()) {
            *slot = (pool.order, pool.len());
        }
        out
    }

    /// Shrinker `count_objects`: pooled base pages.
    pub(crate) fn shrink_count(&self) -> usize {
        self.stats.shrink_counts.fetch_add(1, Ordering::Relaxed);
        self.pool_pages()
    }

    /// Shrinker `scan_objects`: frees at least `nr_to_scan` base pages if the pools have
    /// them, largest chunks first, and returns how many were freed.
    pub(crate) fn shrink_scan(&self, nr_to_scan: usize) -> usize {
        self.stats.shrink_scans.fetch_add(1, Ordering::Relaxed);
        let mut freed = 0;
        for pool in &self.pools {
            while freed < nr_to_scan {
                let Some(chunk) = pool.take() else { break };
                let pages = chunk.page_count();
                self.pool_pages.fetch_sub(pages, Ordering::Relaxed);
                chunk.account_reclaimable(false);
                drop(chunk);
                freed += pages;
            }
        }
        self.stats
            .shrink_freed_pages
            .fetch_add(freed, Ordering::Relaxed);
        freed
    }
}

/// The default pool budget: a quarter of RAM.
pub(crate) fn default_limit_pages() -> usize {
    shim::totalram_pages() / 4
}

/// Converts megabytes to base pages.
pub(crate) fn mb_to_pages(mb: usize) -> usize {
    mb << (20 - PAGE_SHIFT)
}
