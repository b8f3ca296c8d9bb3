//! Locking that survives a panicked holder.
//!
//! The broker's state stays consistent at every unlock, so a lock whose holder panicked is
//! still good to use; taking it anyway keeps one failed request from failing all later ones.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, whether or not an earlier holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
