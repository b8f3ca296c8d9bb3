// SPDX-License-Identifier: GPL-2.0

//! What rsheap holds: live buffers and bytes per heap, pooled chunks per order, and the pools'
//! worker and shrinker activity; one value per file under `/sys/kernel/rsheap/`
//! ([`Inventory::stat`]) and as one table at `/sys/kernel/debug/rsheap/stats`
//! ([`Inventory::show`]). `rsheap_stats.c` lays the files out.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use crate::kernel::bindings::{self, consts};
use crate::kernel::page::PAGE_SIZE;
use crate::kernel::prelude::*;
use crate::kernel::sync::Arc;

use crate::heap::Heap;
use crate::pool::Pools;

/// The module's heaps and pools, for the stats file.
pub(crate) struct Inventory {
    pub(crate) pools: Arc<Pools>,
    pub(crate) cached: Arc<Heap>,
    pub(crate) uncached: Option<Arc<Heap>>,
}

/// A seq_file in the middle of a `show` call, written to as text.
struct SeqText(*mut bindings::seq_file);

impl Write for SeqText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // A full buffer is not an error here: seq_file then calls `show` again with a larger
        // one.
        // SAFETY: `self.0` is the seq_file being shown (see `Inventory::show`), and `s` is
        // valid for its length.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// Writes formatted text to a seq_file.
fn emit(seq: *mut bindings::seq_file, args: fmt::Arguments<'_>) -> Result {
    SeqText(seq).write_fmt(args).map_err(|_| EINVAL)
}

impl Inventory {
    /// The counter `stat` (an `enum rsheap_stat_id`) of heap or pool order `index`; 0 for one
    /// that does not exist.
    pub(crate) fn stat(&self, stat: u32, index: u32) -> u64 {
        let heap = match index {
            consts::HEAP_CACHED => Some(&self.cached),
            consts::HEAP_UNCACHED => self.uncached.as_ref(),
            _ => None,
        };
        let pools = &self.pools;
        let bytes = |pages: usize| pages.saturating_mul(PAGE_SIZE);
        let count = |counter: &core::sync::atomic::AtomicUsize| counter.load(Ordering::Relaxed);
        let value = match stat {
            consts::STAT_BUFFERS => heap.map_or(0, |heap| count(&heap.stats.buffers)),
            consts::STAT_BYTES => heap.map_or(0, |heap| count(&heap.stats.bytes)),
            consts::STAT_POOL_BYTES => bytes(pools.pool_pages()),
            consts::STAT_POOL_PENDING_BYTES => bytes(pools.dirty_pages()),
            consts::STAT_POOL_LIMIT_BYTES => bytes(pools.limit_pages()),
            consts::STAT_POOL_CHUNK_BYTES => pools
                .chunks_per_order()
                .get(index as usize)
                .map_or(0, |&(order, chunks)| bytes(chunks << order)),
            consts::STAT_POOL_HITS => count(&pools.stats.hits),
            consts::STAT_POOL_ZEROED => count(&pools.stats.zeroed),
            consts::STAT_POOL_FREED => count(&pools.stats.freed),
            consts::STAT_SHRINKER_COUNTS => count(&pools.stats.shrink_counts),
            consts::STAT_SHRINKER_SCANS => count(&pools.stats.shrink_scans),
            consts::STAT_SHRINKER_FREED_BYTES => bytes(count(&pools.stats.shrink_freed_pages)),
            _ => 0,
        };
        value as u64
    }

    /// Prints the statistics into `seq`.
    ///
    /// # Safety
    ///
    /// `seq` must be a seq_file in the middle of a `show` call.
    pub(crate) unsafe fn show(&self, seq: *mut bindings::seq_file) -> Result {
        emit(
            seq,
            format_args!("{:<18} {:>10} {:>14}\n", "heap", "buffers", "bytes"),
        )?;
        for heap in Iterator::chain(core::iter::once(&self.cached), self.uncached.iter()) {
            emit(
                seq,
                format_args!(
                    "{:<18} {:>10} {:>14}\n",
                    heap.name().to_str().unwrap_or("?"),
                    heap.stats.buffers.load(Ordering::Relaxed),
                    heap.stats.bytes.load(Ordering::Relaxed)
                ),
            )?;
        }
        let pools = &self.pools;
        emit(
            seq,
            format_args!(
                "\n{:<18} {:>10} {:>14}\n",
                "pool (order)", "chunks", "bytes"
            ),
        )?;
        for (order, chunks) in pools.chunks_per_order() {
            emit(
                seq,
                format_args!(
                    "{:<18} {:>10} {:>14}\n",
                    order,
                    chunks,
                    (chunks << order) * PAGE_SIZE
                ),
            )?;
        }
        let stats = &pools.stats;
        emit(
            seq,
            format_args!(
                "\npool bytes         {}\npool pending bytes {}\npool limit bytes   {}\n\
                 chunks zeroed      {}\nchunks freed       {}\npool hits          {}\n\
                 shrinker counts    {}\nshrinker scans     {}\nshrinker freed pages {}\n",
                pools.pool_pages() * PAGE_SIZE,
                pools.dirty_pages() * PAGE_SIZE,
                pools.limit_pages() * PAGE_SIZE,
                stats.zeroed.load(Ordering::Relaxed),
                stats.freed.load(Ordering::Relaxed),
                stats.hits.load(Ordering::Relaxed),
                stats.shrink_counts.load(Ordering::Relaxed),
                stats.shrink_scans.load(Ordering::Relaxed),
                stats.shrink_freed_pages.load(Ordering::Relaxed)
            ),
        )
    }
}
