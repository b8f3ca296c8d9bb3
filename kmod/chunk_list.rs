// SPDX-License-Identifier: GPL-2.0

//! A list of chunks of one order, linked through their first pages, so that keeping a chunk
//! costs no memory: the pools hold free memory without allocating any.

use core::ptr::NonNull;

use crate::kernel::bindings;
use crate::kernel::prelude::*;
use crate::pages::Chunk;
use crate::shim;

/// Chunks of one order, last in first out.
///
/// # Invariants
///
/// `head` is a list head from `rsheap_page_list_new`, owned by this value. Every page on the
/// list is the first page of a chunk of `order` that the list owns, linked through its `lru`
/// field; `len` is how many there are.
pub(crate) struct ChunkList {
    head: NonNull<bindings::list_head>,
    order: u32,
    len: usize,
}

// SAFETY: The list owns plain memory; any thread may add, take or free its chunks. Callers
// serialise access, as `&mut self` requires.
unsafe impl Send for ChunkList {}

impl ChunkList {
    /// An empty list for chunks of `order`.
    pub(crate) fn new(order: u32) -> Result<Self> {
        // SAFETY: No preconditions; returns an initialised, empty list head or null.
        let head = NonNull::new(unsafe { shim::rsheap_page_list_new() }).ok_or(ENOMEM)?;
        // INVARIANT: A new, empty list.
        Ok(Self {
            head,
            order,
            len: 0,
        })
    }

    /// Adds `chunk`, or gives it back if it has another order.
    pub(crate) fn push(&mut self, chunk: Chunk) -> Result<(), Chunk> {
        if chunk.order() != self.order {
            return Err(chunk);
        }
        // SAFETY: By the type invariants `head` is a live list; the chunk's first page is on no
        // list, since its chunk owned it, and ownership moves to the list.
        unsafe { shim::rsheap_page_list_add(self.head.as_ptr(), chunk.into_raw()) };
        // INVARIANT: One more chunk of `order` on the list.
        self.len += 1;
        Ok(())
    }

    /// Takes the chunk added last, if there is one.
    pub(crate) fn pop(&mut self) -> Option<Chunk> {
        // SAFETY: By the type invariants `head` is a live list.
        let page = unsafe { shim::rsheap_page_list_take(self.head.as_ptr()) };
        if page.is_null() {
            return None;
        }
        // INVARIANT: The chunk left the list.
        self.len = self.len.saturating_sub(1);
        // SAFETY: By the type invariants the page heads a chunk of `order` owned by the list,
        // which has just given it up.
        Some(unsafe { Chunk::from_raw(page, self.order) })
    }

    /// The number of chunks on the list.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for ChunkList {
    fn drop(&mut self) {
        while let Some(chunk) = self.pop() {
            drop(chunk);
        }
        // SAFETY: By the type invariants the head is ours, and the list is now empty.
        unsafe { shim::rsheap_page_list_free(self.head.as_ptr()) };
    }
}
