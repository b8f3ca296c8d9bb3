// SPDX-License-Identifier: GPL-2.0

//! rsheap: a dma-buf system heap for camera and NPU pipelines.
//!
//! Registers `/dev/dma_heap/rsheap`, which hands out zeroed system memory in 1 MiB, 64 KiB and
//! base-page chunks as dma-bufs with CPU mmap, kernel vmap, device attach/map and CPU-access
//! sync. The Rust core holds all policy; `rsheap_shim.c` holds only what the 6.12 `kernel`
//! crate cannot express (ops tables, static inlines, namespace imports).

use kernel::c_str;
use kernel::prelude::*;

mod buffer;
mod heap;
mod ops;
mod pages;
mod sgt;
mod shim;

use heap::Heap;

module! {
    type: RsheapModule,
    name: "rsheap",
    author: "rsheap developers",
    description: "dma-buf system heap for camera and NPU pipelines",
    license: "GPL",
}

/// The cached system heap.
static RSHEAP: Heap = Heap::new(c_str!("rsheap"));

struct RsheapModule;

impl kernel::Module for RsheapModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        RSHEAP.register()?;
        pr_info!("registered /dev/dma_heap/rsheap\n");
        Ok(Self)
    }
}
