// SPDX-License-Identifier: GPL-2.0

//! What rsheap holds, readable at `/sys/kernel/debug/rsheap/stats`: live buffers and bytes per
//! heap, pooled chunks per order, and the pools' worker and shrinker activity.

use core::fmt::{self, Write};
use core::sync::atomic::Ordering;

use crate::kernel::bindings;
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
                "\npool bytes         {}\npool limit bytes   {}\n\
                 chunks zeroed      {}\nchunks freed       {}\npool hits          {}\n\
                 shrinker counts    {}\nshrinker scans     {}\nshrinker freed pages {}\n",
                pools.pool_pages() * PAGE_SIZE,
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
