// SPDX-License-Identifier: GPL-2.0

//! An owned scatter-gather table over a buffer's chunks, and its DMA mapping for one device.
//!
//! Every attachment gets its own table because each device gets its own DMA addresses for the
//! same pages.

use crate::kernel::bindings;
use crate::kernel::error::to_result;
use crate::kernel::prelude::*;

use crate::pages::PageSet;
use crate::shim;

/// A DMA mapping of an [`SgTable`] for one device, direction and set of attributes.
#[derive(Clone, Copy)]
struct Mapping {
    dev: *mut bindings::device,
    dir: bindings::dma_data_direction,
    attrs: usize,
}

/// A scatter-gather table with one entry per chunk of a [`PageSet`].
///
/// # Invariants
///
/// `table` was set up by `sg_alloc_table` and every entry points at a chunk of the page set it
/// was built from, which outlives the table. If `mapped` is set, the table is DMA-mapped for
/// that device and direction. Drop order: the DMA mapping goes first, then the table.
pub(crate) struct SgTable {
    table: bindings::sg_table,
    mapped: Option<Mapping>,
}

// SAFETY: The table and its entries are owned by this object; the device pointer is only passed
// back to the DMA API, which may be called from any thread.
unsafe impl Send for SgTable {}

impl SgTable {
    /// Builds a table over `pages`. The caller keeps `pages` alive for as long as the table.
    pub(crate) fn new(pages: &PageSet) -> Result<Self> {
        let chunks = pages.chunks();
        let nents = u32::try_from(chunks.len()).map_err(|_| ENOMEM)?;
        let mut table = bindings::sg_table {
            sgl: core::ptr::null_mut(),
            nents: 0,
            orig_nents: 0,
        };
        // SAFETY: `table` is a zeroed `sg_table` owned by this function.
        to_result(unsafe {
            bindings::sg_alloc_table(&mut table, nents, bindings::consts::GFP_KERNEL)
        })?;
        let mut sg = table.sgl;
        for chunk in chunks {
            // Chunks are at most 1 MiB, so the length always fits.
            let len = chunk.len() as u32;
            // SAFETY: `sg_alloc_table` made exactly `nents` entries, and `sg_next` walks them
            // across chained blocks, so `sg` is a valid entry here.
            unsafe {
                shim::rsheap_sg_set_page(sg, chunk.page(), len);
                sg = bindings::sg_next(sg);
            }
        }
        // INVARIANT: All entries now point at the chunks of `pages`.
        Ok(Self {
            table,
            mapped: None,
        })
    }

    /// Maps the table for DMA by `dev` in direction `dir` with DMA attributes `attrs`, and
    /// returns it for the importer.
    ///
    /// `dev` must stay valid until [`Self::unmap`] or drop.
    pub(crate) fn map(
        &mut self,
        dev: *mut bindings::device,
        dir: bindings::dma_data_direction,
        attrs: usize,
    ) -> Result<*mut bindings::sg_table> {
        if self.mapped.is_some() {
            return Err(EBUSY);
        }
        // SAFETY: By the type invariants the table is valid and not mapped; the caller
        // guarantees `dev` stays valid while mapped.
        to_result(unsafe { bindings::dma_map_sgtable(dev, &mut self.table, dir, attrs as _) })?;
        // INVARIANT: Just mapped for `dev`, `dir` and `attrs`.
        self.mapped = Some(Mapping { dev, dir, attrs });
        Ok(&mut self.table)
    }

    /// Undoes [`Self::map`]; does nothing if the table is not mapped.
    pub(crate) fn unmap(&mut self) {
        if let Some(mapping) = self.mapped.take() {
            // SAFETY: By the type invariants the table is mapped with exactly these arguments.
            unsafe {
                shim::rsheap_dma_unmap_sgtable(
                    mapping.dev,
                    &mut self.table,
                    mapping.dir,
                    mapping.attrs,
                )
            };
        }
    }

    /// Makes device writes visible to the CPU, if the table is mapped.
    ///
    /// Syncs in the direction the device mapped the table, as the DMA API requires.
    pub(crate) fn sync_for_cpu(&mut self) {
        if let Some(mapping) = self.mapped {
            // SAFETY: By the type invariants the table is mapped for `mapping.dev` and
            // `mapping.dir`.
            unsafe {
                shim::rsheap_dma_sync_sgtable_for_cpu(mapping.dev, &mut self.table, mapping.dir)
            };
        }
    }

    /// Makes CPU writes visible to the device, if the table is mapped.
    ///
    /// Syncs in the direction the device mapped the table, as the DMA API requires.
    pub(crate) fn sync_for_device(&mut self) {
        if let Some(mapping) = self.mapped {
            // SAFETY: By the type invariants the table is mapped for `mapping.dev` and
            // `mapping.dir`.
            unsafe {
                shim::rsheap_dma_sync_sgtable_for_device(mapping.dev, &mut self.table, mapping.dir)
            };
        }
    }
}

impl Drop for SgTable {
    fn drop(&mut self) {
        self.unmap();
        // SAFETY: By the type invariants the table came from `sg_alloc_table` and is no longer
        // mapped.
        unsafe { bindings::sg_free_table(&mut self.table) };
    }
}
