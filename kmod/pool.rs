// SPDX-License-Identifier: GPL-2.0

//! Page pools: freed chunks, zeroed off the allocating thread, kept per order for reuse.
//!
//! A buffer's release hands its chunks to [`Pools::take_back`], which files them as dirty in
//! the pool of their order; a kthread at nice 19 zeroes dirty chunks and files them as clean,
//! so a later allocation takes pages that are already zeroed. The chunks of a buffer that
//! nobody could have written (never mapped, attached or loaded into) still hold the zeroes they
//! were allocated with, and are filed as clean at once. The worker yields to every other
//! thread, so the thread whose `close()` freed the chunks never waits for their zeroing. A pool
//! never hands out stale data: a dirty chunk is zeroed before it leaves.
//!
//! An allocation that finds no clean chunk of an order takes fresh pages, zeroed by the page
//! allocator, while the worker keeps up ([`Pools::leaves_dirty_chunks`]), so that the chunk the
//! worker is zeroing becomes a clean one for the next allocation; when the worker falls behind,
//! or no fresh pages of the order are to be had, it takes a dirty chunk and zeroes it itself.
//! Either way each page is zeroed once for each time it was written: by the page allocator,
//! the worker or the allocation.
//!
//! Chunks are kept on lists through their own pages ([`ChunkList`]), so a pool costs nothing
//! per chunk. All pools together, dirty and clean, are bounded by [`Pools::limit_pages`] (the
//! `pool_limit_mb` parameter, a quarter of RAM by default and never more than RAM); a freed
//! chunk that does not fit goes straight back to the page allocator. Pooled pages are counted
//! as reclaimable kernel memory, and a shrinker frees them under memory pressure, dirty ones
//! first.
//!
//! With `mem_accounting` on, pages are charged to the allocating memory cgroup and are not
//! pooled, since a pooled page would stay charged to its first owner.
//!
//! # Locking
//!
//! [`PagePool::inner`] (spinlock) guards one pool's two lists. It is held only to add or take
//! one chunk: never while allocating, freeing or zeroing memory. It is taken from the
//! shrinker, which may run in reclaim on any thread, so nothing that holds it may allocate.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::chunk_list::ChunkList;
use crate::kernel::page::PAGE_SHIFT;
use crate::kernel::prelude::*;
use crate::kernel::sync::{Arc, LockClass, SpinLock};
use crate::pages::{Chunk, ORDERS};
use crate::shim::{self, PoolWorker};

/// The chunks of one pool.
struct PoolInner {
    /// Zeroed chunks, ready to hand out.
    clean: ChunkList,
    /// Freed chunks not yet zeroed.
    dirty: ChunkList,
}

/// The chunks of one order.
pub(crate) struct PagePool {
    order: u32,
    inner: SpinLock<PoolInner>,
}

impl PagePool {
    fn new(order: u32) -> Result<Self> {
        let inner = PoolInner {
            clean: ChunkList::new(order)?,
            dirty: ChunkList::new(order)?,
        };
        Ok(Self {
            order,
            inner: SpinLock::new(inner, LockClass::PAGE_POOL)?,
        })
    }

    /// (clean, dirty) chunks in the pool now.
    fn len(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.clean.len(), inner.dirty.len())
    }
}

/// Counters of the pools' activity.
#[derive(Default)]
pub(crate) struct PoolStats {
    /// Chunks zeroed and filed clean by the worker.
    pub(crate) zeroed: AtomicUsize,
    /// Freed chunks given straight back to the page allocator: the pools were full, or pooling
    /// is off.
    pub(crate) freed: AtomicUsize,
    /// Allocations of a chunk served from a pool, clean or dirty.
    pub(crate) hits: AtomicUsize,
    /// Shrinker `count` calls.
    pub(crate) shrink_counts: AtomicUsize,
    /// Shrinker `scan` calls.
    pub(crate) shrink_scans: AtomicUsize,
    /// Pages the shrinker gave back to the page allocator.
    pub(crate) shrink_freed_pages: AtomicUsize,
}

/// The pools of every order, their worker and their shrinker's state.
///
/// # Invariants
///
/// `pool_pages` is the number of base pages on all lists of all pools, plus those reserved
/// for a chunk on its way onto one, and never exceeds `limit_pages`; `dirty_pages` counts the
/// dirty ones among them. Every pooled page is counted as reclaimable kernel memory.
pub(crate) struct Pools {
    /// Runs [`Pools::zero_pending`]. Declared first, so that it is stopped, and a pass under
    /// way waited for, before anything the pass uses goes.
    worker: PoolWorker,
    pools: [PagePool; ORDERS.len()],
    limit_pages: usize,
    pool_pages: AtomicUsize,
    dirty_pages: AtomicUsize,
    pub(crate) stats: PoolStats,
}

impl Pools {
    /// Creates empty pools bounded by `limit_pages` base pages in all, at most all of RAM;
    /// `enabled` false pools nothing.
    pub(crate) fn new(limit_pages: usize, enabled: bool) -> Result<Arc<Self>> {
        let limit_pages = if enabled {
            limit_pages.min(shim::totalram_pages())
        } else {
            0
        };
        let pools = [
            PagePool::new(ORDERS[0])?,
            PagePool::new(ORDERS[1])?,
            PagePool::new(ORDERS[2])?,
            PagePool::new(ORDERS[3])?,
        ];
        Arc::new(
            Self {
                worker: PoolWorker::start()?,
                pools,
                limit_pages,
                pool_pages: AtomicUsize::new(0),
                dirty_pages: AtomicUsize::new(0),
                stats: PoolStats::default(),
            },
            GFP_KERNEL,
        )
    }

    fn pool(&self, order: u32) -> Option<&PagePool> {
        self.pools.iter().find(|pool| pool.order == order)
    }

    /// Takes a clean chunk of `order` from its pool.
    pub(crate) fn take_clean(&self, order: u32) -> Option<Chunk> {
        let pool = self.pool(order)?;
        let chunk = pool.inner.lock().clean.pop()?;
        self.unpool(&chunk, false);
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(chunk)
    }

    /// Takes a dirty chunk of `order` from its pool and zeroes it here. May sleep.
    pub(crate) fn take_dirty(&self, order: u32) -> Option<Chunk> {
        let pool = self.pool(order)?;
        let chunk = pool.inner.lock().dirty.pop()?;
        self.unpool(&chunk, true);
        chunk.zero();
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(chunk)
    }

    /// Whether an allocation of `pages` base pages should leave dirty chunks to the worker
    /// and take fresh pages instead: while the backlog is at most one such allocation, the
    /// worker keeps up, and a chunk it zeroes now is a clean one for a later allocation. A
    /// larger backlog means it does not (all CPUs are busy), and the allocation zeroes dirty
    /// chunks itself rather than growing the pools.
    pub(crate) fn leaves_dirty_chunks(&self, pages: usize) -> bool {
        self.dirty_pages() <= pages
    }

    /// Accounts for `chunk` having left a pool's lists.
    fn unpool(&self, chunk: &Chunk, dirty: bool) {
        let pages = chunk.page_count();
        if dirty {
            self.dirty_pages.fetch_sub(pages, Ordering::Relaxed);
        }
        self.pool_pages.fetch_sub(pages, Ordering::Relaxed);
        chunk.account_reclaimable(false);
    }

    /// Files a released buffer's chunks in their pools, and gives back to the page allocator
    /// those that do not fit in the budget: as dirty, for the worker to zero, if anyone may
    /// have `written` them; else as clean, since they still hold the zeroes they were
    /// allocated with. Never allocates.
    pub(crate) fn take_back(&self, chunks: KVec<Chunk>, written: bool) {
        let mut queued = false;
        for chunk in chunks {
            let pages = chunk.page_count();
            let Some(pool) = self.pool(chunk.order()).filter(|_| self.reserve(pages)) else {
                self.stats.freed.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            chunk.account_reclaimable(true);
            if written {
                self.dirty_pages.fetch_add(pages, Ordering::Relaxed);
            }
            // INVARIANT: Reserved and counted above; the chunk's order is the pool's.
            let filed = {
                let mut lists = pool.inner.lock();
                if written {
                    lists.dirty.push(chunk)
                } else {
                    lists.clean.push(chunk)
                }
            };
            if let Err(chunk) = filed {
                self.unpool(&chunk, written);
                self.stats.freed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            queued |= written;
        }
        if queued {
            // A wake already pending is fine: its pass will see these chunks too.
            // SAFETY: These are the pools that own the worker.
            unsafe { self.worker.wake(ptr::from_ref(self).cast()) };
        }
    }

    /// Zeroes dirty chunks and files them clean, until none is left. Run by the worker.
    pub(crate) fn zero_pending(&self) {
        for pool in &self.pools {
            loop {
                let Some(chunk) = pool.inner.lock().dirty.pop() else {
                    break;
                };
                chunk.zero();
                // The chunk stays reserved and counted as pooled; only its list changes.
                self.dirty_pages
                    .fetch_sub(chunk.page_count(), Ordering::Relaxed);
                if let Err(chunk) = pool.inner.lock().clean.push(chunk) {
                    // Not of this pool's order, which `take_back` rules out.
                    self.pool_pages
                        .fetch_sub(chunk.page_count(), Ordering::Relaxed);
                    chunk.account_reclaimable(false);
                    continue;
                }
                self.stats.zeroed.fetch_add(1, Ordering::Relaxed);
                shim::cond_resched();
            }
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

    /// Base pages in the pools now, dirty and clean.
    pub(crate) fn pool_pages(&self) -> usize {
        self.pool_pages.load(Ordering::Relaxed)
    }

    /// Base pages in the pools now that wait to be zeroed.
    pub(crate) fn dirty_pages(&self) -> usize {
        self.dirty_pages.load(Ordering::Relaxed)
    }

    /// The pools' budget in base pages.
    pub(crate) fn limit_pages(&self) -> usize {
        self.limit_pages
    }

    /// (order, chunks) for each pool, dirty and clean, largest order first.
    pub(crate) fn chunks_per_order(&self) -> [(u32, usize); ORDERS.len()] {
        let mut out = [(0, 0); ORDERS.len()];
        for (slot, pool) in out.iter_mut().zip(self.pools.iter()) {
            let (clean, dirty) = pool.len();
            *slot = (pool.order, clean + dirty);
        }
        out
    }

    /// Shrinker `count_objects`: pooled base pages, dirty and clean.
    pub(crate) fn shrink_count(&self) -> usize {
        self.stats.shrink_counts.fetch_add(1, Ordering::Relaxed);
        self.pool_pages()
    }

    /// Shrinker `scan_objects`: frees at least `nr_to_scan` base pages if the pools have
    /// them, dirty chunks first (they would cost zeroing to reuse), then clean ones, largest
    /// first, and returns how many were freed.
    pub(crate) fn shrink_scan(&self, nr_to_scan: usize) -> usize {
        self.stats.shrink_scans.fetch_add(1, Ordering::Relaxed);
        let mut freed = 0;
        for dirty in [true, false] {
            for pool in &self.pools {
                while freed < nr_to_scan {
                    let chunk = {
                        let mut inner = pool.inner.lock();
                        if dirty {
                            inner.dirty.pop()
                        } else {
                            inner.clean.pop()
                        }
                    };
                    let Some(chunk) = chunk else { break };
                    self.unpool(&chunk, dirty);
                    freed += chunk.page_count();
                    drop(chunk);
                }
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

/// Converts megabytes to base pages, saturating.
pub(crate) fn mb_to_pages(mb: usize) -> usize {
    mb.saturating_mul(1 << (20 - PAGE_SHIFT))
}
