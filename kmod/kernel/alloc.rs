// SPDX-License-Identifier: GPL-2.0

//! Fallible heap allocation: [`KBox`] (`kmalloc`) and [`KVec`] (`kvmalloc`, so large arrays
//! may come from vmalloc).
//!
//! Every allocation can fail and says so: there is no allocation that panics or aborts.

use core::marker::PhantomData;
use core::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use super::bindings::{self, consts, gfp_t};
use super::error::{code::ENOMEM, Result};

/// Allocation flags (`gfp_t`).
#[derive(Clone, Copy)]
pub(crate) struct Flags(gfp_t);

/// `GFP_KERNEL`: may sleep and reclaim.
pub(crate) const GFP_KERNEL: Flags = Flags(consts::GFP_KERNEL);

/// The alignment `kmalloc` and `kvmalloc` guarantee for any size.
const MIN_ALIGN: usize = 8;

/// A value in memory from `kmalloc`.
///
/// # Invariants
///
/// `ptr` points at an initialised `T` in a `kmalloc` allocation owned by this box.
pub(crate) struct KBox<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: A `KBox<T>` owns its `T` like a `T` would.
unsafe impl<T: Send> Send for KBox<T> {}
// SAFETY: As above, shared references to the box only give shared references to the `T`.
unsafe impl<T: Sync> Sync for KBox<T> {}

impl<T> KBox<T> {
    /// Moves `value` into a new allocation.
    pub(crate) fn new(value: T, flags: Flags) -> Result<Self> {
        const { assert!(size_of::<T>() != 0 && align_of::<T>() <= MIN_ALIGN) };
        // SAFETY: Any size may be requested; the result is null or a fresh allocation aligned
        // to at least `MIN_ALIGN`, which suits `T` as asserted above.
        let ptr = unsafe { bindings::rsheap_kmalloc(size_of::<T>(), flags.0) }.cast::<T>();
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // SAFETY: `ptr` is valid for writes of a `T`.
        unsafe { ptr.as_ptr().write(value) };
        // INVARIANT: Just initialised.
        Ok(Self {
            ptr,
            _owns: PhantomData,
        })
    }

    /// Gives up the box without freeing it; [`KBox::from_raw`] takes it back.
    pub(crate) fn into_raw(this: Self) -> *mut T {
        ManuallyDrop::new(this).ptr.as_ptr()
    }

    /// Takes back a box given up by [`KBox::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_raw` and be given back once.
    pub(crate) unsafe fn from_raw(ptr: *mut T) -> Self {
        // SAFETY: The caller guarantees `ptr` came from a box, which is never null.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        // INVARIANT: The caller hands back ownership of the allocation.
        Self {
            ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Deref for KBox<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: By the type invariants the value is initialised and owned by the box.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for KBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As for `deref`; `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for KBox<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the value is initialised and the allocation is ours;
        // neither is used again.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            bindings::kfree(self.ptr.as_ptr().cast());
        }
    }
}

/// A growable array from `kvmalloc`.
///
/// # Invariants
///
/// `ptr` is dangling if `cap` is zero, else a `kvmalloc` allocation of `cap` elements owned
/// by the vector; its first `len <= cap` elements are initialised.
pub(crate) struct KVec<T> {
    ptr: NonNull<T>,
    len: usize,
    cap: usize,
    _owns: PhantomData<T>,
}

// SAFETY: A `KVec<T>` owns its elements like an array of `T` would.
unsafe impl<T: Send> Send for KVec<T> {}
// SAFETY: As above, shared references only give shared references to the elements.
unsafe impl<T: Sync> Sync for KVec<T> {}

impl<T> KVec<T> {
    /// An empty vector, which allocates nothing.
    pub(crate) const fn new() -> Self {
        // INVARIANT: No capacity.
        Self {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
            _owns: PhantomData,
        }
    }

    /// An empty vector with room for `cap` elements.
    pub(crate) fn with_capacity(cap: usize, flags: Flags) -> Result<Self> {
        let mut vec = Self::new();
        vec.reserve(cap, flags)?;
        Ok(vec)
    }

    /// Makes room for at least `additional` more elements.
    pub(crate) fn reserve(&mut self, additional: usize, flags: Flags) -> Result {
        const { assert!(size_of::<T>() != 0 && align_of::<T>() <= MIN_ALIGN) };
        let needed = self.len.checked_add(additional).ok_or(ENOMEM)?;
        if needed <= self.cap {
            return Ok(());
        }
        let cap = needed.max(self.cap.saturating_mul(2)).max(4);
        let bytes = cap.checked_mul(size_of::<T>()).ok_or(ENOMEM)?;
        // SAFETY: Any size may be requested; the result is null or a fresh allocation aligned
        // to at least `MIN_ALIGN`, which suits `T` as asserted above.
        let new = unsafe { bindings::rsheap_kvmalloc(bytes, flags.0) }.cast::<T>();
        let new = NonNull::new(new).ok_or(ENOMEM)?;
        if self.cap != 0 {
            // SAFETY: Both allocations hold at least `len` elements and do not overlap; the
            // old one is freed at once and never read again.
            unsafe {
                ptr::copy_nonoverlapping(self.ptr.as_ptr(), new.as_ptr(), self.len);
                bindings::kvfree(self.ptr.as_ptr().cast());
            }
        }
        // INVARIANT: The first `len` elements moved over; the new allocation holds `cap`.
        self.ptr = new;
        self.cap = cap;
        Ok(())
    }

    /// Appends `value`, growing the vector if it is full.
    pub(crate) fn push(&mut self, value: T, flags: Flags) -> Result {
        if self.len == self.cap {
            self.reserve(1, flags)?;
        }
        // SAFETY: `len < cap`, so the slot is within the allocation and not initialised.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        // INVARIANT: One more element initialised.
        self.len += 1;
        Ok(())
    }

    /// Removes element `index`, moving the last one into its place; `None` if out of range.
    pub(crate) fn swap_remove(&mut self, index: usize) -> Option<T> {
        if index >= self.len {
            return None;
        }
        let last = self.len - 1;
        // SAFETY: `index` and `last` are initialised elements; the value at `index` moves out
        // and the last one moves into its slot, after which only `last` elements count.
        unsafe {
            let base = self.ptr.as_ptr();
            let value = base.add(index).read();
            ptr::copy(base.add(last), base.add(index), 1);
            self.len = last;
            Some(value)
        }
    }

    /// The unused capacity.
    pub(crate) fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<T>] {
        // SAFETY: By the type invariants the allocation has `cap - len` slots after the
        // initialised ones (none if `cap` is zero), which `&mut self` makes ours.
        unsafe {
            core::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.len).cast(),
                self.cap - self.len,
            )
        }
    }

    /// Sets the number of initialised elements.
    ///
    /// # Safety
    ///
    /// `len` must be at most the capacity and the first `len` elements initialised; elements
    /// past `len` are forgotten, not dropped.
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        // INVARIANT: The caller guarantees it.
        self.len = len;
    }

    /// Drops every element, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        let len = self.len;
        // INVARIANT: Forget the elements before dropping them, so a panicking drop leaks.
        self.len = 0;
        // SAFETY: The first `len` elements were initialised and are no longer counted.
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), len)) };
    }
}

impl<T> Default for KVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Deref for KVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: By the type invariants the first `len` elements are initialised (and the
        // pointer is dangling but aligned when there are none).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for KVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: As for `deref`; `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for KVec<T> {
    fn drop(&mut self) {
        self.clear();
        if self.cap != 0 {
            // SAFETY: By the type invariants the allocation is ours, and now holds nothing.
            unsafe { bindings::kvfree(self.ptr.as_ptr().cast()) };
        }
    }
}

impl<T> IntoIterator for KVec<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { vec: self, next: 0 }
    }
}

impl<'a, T> IntoIterator for &'a KVec<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The elements of a [`KVec`], by value.
///
/// # Invariants
///
/// The elements of `vec` from `next` on are initialised and owned here; those before `next`
/// were moved out.
pub(crate) struct IntoIter<T> {
    vec: KVec<T>,
    next: usize,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.next >= self.vec.len {
            return None;
        }
        // SAFETY: By the type invariants element `next` is initialised and still owned here;
        // it moves out and is never read again.
        let value = unsafe { self.vec.ptr.as_ptr().add(self.next).read() };
        self.next += 1;
        Some(value)
    }
}

impl<T> Drop for IntoIter<T> {
    fn drop(&mut self) {
        let (start, end) = (self.next, self.vec.len);
        // The vector must not drop the elements that moved out.
        // SAFETY: Zero elements are trivially initialised.
        unsafe { self.vec.set_len(0) };
        // SAFETY: The elements from `start` to `end` are initialised and owned here.
        unsafe {
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                self.vec.ptr.as_ptr().add(start),
                end - start,
            ))
        };
    }
}
