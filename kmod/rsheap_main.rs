// SPDX-License-Identifier: GPL-2.0

//! rsheap: dma-buf system heaps for camera and NPU pipelines.
//!
//! Registers `/dev/dma_heap/rsheap` (cached) and `/dev/dma_heap/rsheap-uncached`, which hand
//! out zeroed system memory in 2 MiB, 1 MiB, 64 KiB and base-page chunks as dma-bufs with CPU
//! mmap (mapped at once, but for 2 MiB chunks left to PMD faults), kernel vmap, device
//! attach/map and CPU-access sync. Freed pages are zeroed by a worker and pooled per order,
//! so warm allocations skip both the page allocator and zeroing; a shrinker gives pooled
//! pages back under memory pressure.
//!
//! `/dev/rsheap` moves file contents straight into and out of those buffers, by direct I/O
//! where the file allows, counts buffers in accounts, and shares a buffer read-only, with the
//! kernel enforcing it (`include/uapi/linux/rsheap.h`).
//!
//! The Rust core holds all policy. `rsheap_shim.c` holds what Rust cannot express against the
//! kernel's C headers (ops tables, the control device's ioctl ABI, static inlines, module
//! parameters, misc-device and shrinker registration, namespace imports), `rsheap_stats.c`
//! the sysfs and debugfs tables, and [`kernel`] the kernel interfaces the core uses, so the
//! module needs no Rust from the kernel.

#![no_std]

mod kernel;

mod account;
mod buffer;
mod chunk_list;
mod fd;
mod heap;
mod ops;
mod pages;
mod pool;
mod readonly;
mod sgt;
mod shim;
mod stats;
mod transfer;

use crate::kernel::prelude::*;
use crate::kernel::sync::Arc;

use heap::{Caching, Heap};
use pool::Pools;
use shim::ControlDevice;
use stats::Inventory;

/// Sets up the heaps, the control device, the shrinker, sysfs and debugfs, in that order.
///
/// The heaps come first: once the cached heap is registered the module can never unload, so
/// nothing after that fails the init. What follows is optional and only logged if it fails,
/// and the control device, whose open files could outlive a failed init, appears only once
/// the init can no longer fail.
fn init() -> Result {
    let accounting = shim::mem_accounting();
    let limit = shim::pool_limit_mb().map_or_else(pool::default_limit_pages, pool::mb_to_pages);
    let pools = Pools::new(limit, !accounting)?;
    if !accounting && pools.limit_pages() < limit {
        pr_warn!(
            "pool_limit_mb is more than RAM: pooling at most {} MiB\n",
            pools.limit_pages() >> (20 - crate::kernel::page::PAGE_SHIFT)
        );
    }
    let cached = Heap::new(c"rsheap", Caching::Cached, pools.clone(), accounting)?;
    let uncached = Heap::new(
        c"rsheap-uncached",
        Caching::Uncached,
        pools.clone(),
        accounting,
    )?;

    Heap::register(&cached)?;
    let uncached = match Heap::register(&uncached) {
        Ok(()) => Some(uncached),
        Err(err) => {
            pr_err!("cannot set up rsheap-uncached: {:?}\n", err);
            None
        }
    };
    match ControlDevice::register() {
        // The control device works on the heaps' buffers for as long as the module lives.
        Ok(control) => control.leak(),
        Err(err) => pr_err!("cannot register /dev/rsheap: {:?}\n", err),
    }

    // SAFETY: The pools are leaked to the shrinker, which uses them for good.
    if unsafe { shim::rsheap_shrinker_register(Arc::into_raw(pools.clone()).cast_mut().cast()) }
        .is_null()
    {
        pr_warn!("no shrinker: pooled pages are only freed by the pool limit\n");
    }
    let has_uncached = uncached.is_some();
    match KBox::new(
        Inventory {
            pools,
            cached,
            uncached,
        },
        GFP_KERNEL,
    ) {
        Ok(inventory) => {
            let inventory = KBox::into_raw(inventory).cast();
            // SAFETY: The inventory is leaked to sysfs and debugfs, which use it for good.
            let ret = unsafe { shim::rsheap_sysfs_create(inventory, has_uncached) };
            if ret != 0 {
                pr_warn!("incomplete /sys/kernel/rsheap: error {}\n", ret);
            }
            // SAFETY: As above.
            unsafe { shim::rsheap_debugfs_create(inventory) };
        }
        Err(_) => pr_warn!("no memory for the statistics\n"),
    }
    Ok(())
}

/// The module's init, called by `kernel/support.c`'s `module_init`.
#[no_mangle]
extern "C" fn rsheap_init() -> core::ffi::c_int {
    match init() {
        Ok(()) => 0,
        Err(err) => err.to_errno(),
    }
}

/// Reports a panic and stops, as the kernel's `BUG()` does. rsheap's code is written never to
/// panic (no unwrapping, no indexing that can fail); this is the end of what `core` itself
/// might reach.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kernel::print::pr_emerg!("{}\n", info);
    // SAFETY: No preconditions; `BUG()` does not return.
    unsafe { kernel::bindings::rsheap_bug() }
}
