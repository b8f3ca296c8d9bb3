// SPDX-License-Identifier: GPL-2.0

//! The heaps rsheap registers with the dma-heap core, and allocation into a new dma-buf.
//!
//! The core has already validated the request by the time [`Heap::allocate`] runs: `fd` is
//! zero, `fd_flags` holds only `O_CLOEXEC` and access modes, `heap_flags` is zero, and the
//! length is page-aligned and non-zero. What is left is a size no machine can satisfy, which
//! fails at once with `ENOMEM` instead of draining memory into the OOM killer.

use kernel::error::from_err_ptr;
use kernel::ffi::c_void;
use kernel::page::PAGE_SHIFT;
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::types::ForeignOwnable;

use crate::buffer::Buffer;
use crate::pages::PageSet;
use crate::shim::{self, DmaBuf};

/// A dma-buf heap, exposed as `/dev/dma_heap/<name>`.
///
/// # Invariants
///
/// Once registered, a heap is never removed: the dma-heap core has no way to, so the shim pins
/// the module and heaps live in statics.
pub(crate) struct Heap {
    name: &'static CStr,
}

impl Heap {
    /// A heap named `name`, not yet registered.
    pub(crate) const fn new(name: &'static CStr) -> Self {
        Self { name }
    }

    /// Registers the heap with the dma-heap core.
    pub(crate) fn register(&'static self) -> Result {
        let this = (self as *const Self).cast_mut().cast::<c_void>();
        // SAFETY: `name` is a static NUL-terminated string, and `this` is a static heap that
        // the C side only hands back to `rsheap_heap_allocate`, which reads it.
        from_err_ptr(unsafe { shim::rsheap_heap_add(self.name.as_char_ptr(), this) })?;
        Ok(())
    }

    /// Allocates `len` bytes and exports them as a dma-buf opened with `fd_flags`.
    pub(crate) fn allocate(
        &self,
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
        let pages = PageSet::alloc(len)?;
        let size = pages.size();
        let buffer = Buffer::new(pages)?.into_foreign().cast_mut();
        // SAFETY: `buffer` is a live buffer whose ownership moves to the dma-buf on success;
        // `name` is static.
        let dmabuf =
            unsafe { shim::rsheap_dmabuf_export(buffer, size, fd_flags, self.name.as_char_ptr()) };
        from_err_ptr(dmabuf).inspect_err(|_| {
            // SAFETY: The export failed, so `buffer` is still ours and nobody else has seen it.
            drop(unsafe { Pin::<KBox<Buffer>>::from_foreign(buffer) });
        })
    }
}
