// SPDX-License-Identifier: GPL-2.0

//! Shared ownership ([`Arc`]) and locks ([`Mutex`], [`SpinLock`]).
//!
//! The C lock lives in its own small allocation from `support.c`, since its layout depends on
//! the kernel's configuration (lockdep, debug options); so a lock never moves while in use and
//! its owner needs no pinning. Each lock belongs to a lockdep class named in `support.h`.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::{offset_of, ManuallyDrop};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicUsize, Ordering};

use super::alloc::{Flags, KBox};
use super::bindings::{self, consts};
use super::error::{code::ENOMEM, Error, Result};

/// The lockdep class of a lock.
#[derive(Clone, Copy)]
pub(crate) struct LockClass(u32);

impl LockClass {
    /// `Buffer::inner`.
    pub(crate) const BUFFER_INNER: Self = Self(consts::LOCK_BUFFER_INNER);
    /// `Buffer::transfer`.
    pub(crate) const BUFFER_TRANSFER: Self = Self(consts::LOCK_BUFFER_TRANSFER);
    /// `PagePool::inner`.
    pub(crate) const PAGE_POOL: Self = Self(consts::LOCK_PAGE_POOL);
}

/// A reference count saturates here: the object then leaks instead of being freed too early.
const SATURATED: usize = usize::MAX / 2;

struct ArcInner<T> {
    refcount: AtomicUsize,
    data: T,
}

/// A reference-counted pointer to a `T` from `kmalloc`, shared between threads.
///
/// # Invariants
///
/// `ptr` points at a live `ArcInner` whose count includes this reference.
pub(crate) struct Arc<T> {
    ptr: NonNull<ArcInner<T>>,
    _owns: PhantomData<ArcInner<T>>,
}

// SAFETY: An `Arc<T>` may drop the `T` on any thread and shares it between threads.
unsafe impl<T: Send + Sync> Send for Arc<T> {}
// SAFETY: As above.
unsafe impl<T: Send + Sync> Sync for Arc<T> {}

impl<T> Arc<T> {
    /// Moves `data` into a new allocation with one reference.
    pub(crate) fn new(data: T, flags: Flags) -> Result<Self> {
        let inner = KBox::new(
            ArcInner {
                refcount: AtomicUsize::new(1),
                data,
            },
            flags,
        )?;
        // SAFETY: `into_raw` never returns null.
        let ptr = unsafe { NonNull::new_unchecked(KBox::into_raw(inner)) };
        // INVARIANT: A fresh allocation holding the one reference.
        Ok(Self {
            ptr,
            _owns: PhantomData,
        })
    }

    fn inner(&self) -> &ArcInner<T> {
        // SAFETY: By the type invariants the allocation lives while this reference does.
        unsafe { self.ptr.as_ref() }
    }

    /// Gives up this reference without dropping it; see [`Arc::from_raw`] and [`Arc::borrow`].
    pub(crate) fn into_raw(this: Self) -> *const T {
        let this = ManuallyDrop::new(this);
        &this.inner().data
    }

    /// Takes back a reference given up by [`Arc::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_raw`, and the reference it stands for is given back once.
    pub(crate) unsafe fn from_raw(ptr: *const T) -> Self {
        // SAFETY: The caller guarantees `ptr` is the `data` field of a live `ArcInner`.
        let inner = unsafe { ptr.byte_sub(offset_of!(ArcInner<T>, data)) }.cast_mut();
        // SAFETY: A field's container is never null.
        let ptr = unsafe { NonNull::new_unchecked(inner.cast::<ArcInner<T>>()) };
        // INVARIANT: The caller hands back the reference that `into_raw` kept.
        Self {
            ptr,
            _owns: PhantomData,
        }
    }

    /// Borrows the value behind a reference given up by [`Arc::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from `into_raw`, and that reference must outlive `'a`.
    pub(crate) unsafe fn borrow<'a>(ptr: *const T) -> &'a T {
        // SAFETY: The caller guarantees `ptr` is live for `'a`.
        unsafe { &*ptr }
    }

    /// A new reference to the value behind a reference given up by [`Arc::into_raw`].
    ///
    /// # Safety
    ///
    /// As for [`Arc::borrow`], for the duration of the call.
    pub(crate) unsafe fn clone_from_raw(ptr: *const T) -> Self {
        // SAFETY: The caller guarantees `ptr` came from `into_raw` and is live; the reference
        // it stands for stays given up.
        let this = ManuallyDrop::new(unsafe { Self::from_raw(ptr) });
        (*this).clone()
    }
}

impl<T> Clone for Arc<T> {
    fn clone(&self) -> Self {
        let count = &self.inner().refcount;
        if count.fetch_add(1, Ordering::Relaxed) >= SATURATED {
            count.store(SATURATED, Ordering::Relaxed);
        }
        // INVARIANT: Counted just above.
        Self {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Deref for Arc<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.inner().data
    }
}

impl<T> Drop for Arc<T> {
    fn drop(&mut self) {
        let count = &self.inner().refcount;
        let before = count.fetch_sub(1, Ordering::Release);
        if before >= SATURATED {
            count.store(SATURATED, Ordering::Relaxed);
            return;
        }
        if before != 1 {
            return;
        }
        // Every other reference's accesses happen before the value is dropped.
        fence(Ordering::Acquire);
        // SAFETY: This was the last reference, so the allocation is ours to free.
        drop(unsafe { KBox::from_raw(self.ptr.as_ptr()) });
    }
}

/// A sleeping lock around a `T` (`struct mutex`). Taken only in process context.
///
/// # Invariants
///
/// `raw` is an initialised mutex from `rsheap_mutex_new`, owned by this lock; `data` is only
/// accessed with it held.
pub(crate) struct Mutex<T> {
    raw: NonNull<bindings::mutex>,
    data: UnsafeCell<T>,
}

// SAFETY: The lock may be moved to and dropped on any thread, with the `T` it owns.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: The lock hands the `T` to one thread at a time.
unsafe impl<T: Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A lock of lockdep class `class` around `data`.
    pub(crate) fn new(data: T, class: LockClass) -> Result<Self> {
        // SAFETY: No preconditions; returns an initialised mutex or null.
        let raw = NonNull::new(unsafe { bindings::rsheap_mutex_new(class.0) }).ok_or(ENOMEM)?;
        // INVARIANT: Just initialised.
        Ok(Self {
            raw,
            data: UnsafeCell::new(data),
        })
    }

    /// Takes the lock, sleeping until it is free.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        // SAFETY: By the type invariants `raw` is an initialised mutex.
        unsafe { bindings::rsheap_mutex_lock(self.raw.as_ptr()) };
        MutexGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }

    /// Takes the lock, or gives up with the error `mutex_lock_interruptible` returns (`EINTR`)
    /// if a signal arrives first.
    pub(crate) fn lock_interruptible(&self) -> Result<MutexGuard<'_, T>> {
        // SAFETY: By the type invariants `raw` is an initialised mutex.
        let ret = unsafe { bindings::rsheap_mutex_lock_interruptible(self.raw.as_ptr()) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        Ok(MutexGuard {
            lock: self,
            _not_send: PhantomData,
        })
    }
}

impl<T> Drop for Mutex<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the mutex is ours; `&mut self` means nobody holds it.
        unsafe { bindings::rsheap_mutex_free(self.raw.as_ptr()) };
    }
}

/// A held [`Mutex`], released on drop; it stays on the thread that took it.
pub(crate) struct MutexGuard<'a, T> {
    lock: &'a Mutex<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The guard holds the lock, which makes the access exclusive.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As for `deref`.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: This guard holds the lock, on the thread that took it.
        unsafe { bindings::rsheap_mutex_unlock(self.lock.raw.as_ptr()) };
    }
}

/// A spinning lock around a `T` (`spinlock_t`). Its holder must not sleep; it may be taken in
/// reclaim (the shrinker), so nothing that allocates runs under it.
///
/// # Invariants
///
/// `raw` is an initialised spinlock from `rsheap_spinlock_new`, owned by this lock; `data` is
/// only accessed with it held.
pub(crate) struct SpinLock<T> {
    raw: NonNull<bindings::spinlock>,
    data: UnsafeCell<T>,
}

// SAFETY: As for `Mutex`.
unsafe impl<T: Send> Send for SpinLock<T> {}
// SAFETY: As for `Mutex`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A lock of lockdep class `class` around `data`.
    pub(crate) fn new(data: T, class: LockClass) -> Result<Self> {
        // SAFETY: No preconditions; returns an initialised spinlock or null.
        let raw = NonNull::new(unsafe { bindings::rsheap_spinlock_new(class.0) }).ok_or(ENOMEM)?;
        // INVARIANT: Just initialised.
        Ok(Self {
            raw,
            data: UnsafeCell::new(data),
        })
    }

    /// Takes the lock, spinning until it is free.
    pub(crate) fn lock(&self) -> SpinLockGuard<'_, T> {
        // SAFETY: By the type invariants `raw` is an initialised spinlock.
        unsafe { bindings::rsheap_spin_lock(self.raw.as_ptr()) };
        SpinLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

impl<T> Drop for SpinLock<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariants the spinlock is ours; `&mut self` means nobody holds
        // it.
        unsafe { bindings::rsheap_spinlock_free(self.raw.as_ptr()) };
    }
}

/// A held [`SpinLock`], released on drop; it stays on the thread that took it.
pub(crate) struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The guard holds the lock, which makes the access exclusive.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As for `deref`.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: This guard holds the lock, on the thread that took it.
        unsafe { bindings::rsheap_spin_unlock(self.lock.raw.as_ptr()) };
    }
}
