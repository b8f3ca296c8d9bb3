// SPDX-License-Identifier: GPL-2.0

//! Monotonic time.

use super::bindings;

/// A point in `CLOCK_MONOTONIC` time, in nanoseconds.
#[derive(Clone, Copy)]
pub(crate) struct Instant(i64);

impl Instant {
    /// Now.
    pub(crate) fn now() -> Self {
        // SAFETY: `ktime_get` may be called from any context once timekeeping runs.
        Self(unsafe { bindings::ktime_get() })
    }

    /// Milliseconds from `self` to now.
    pub(crate) fn elapsed_ms(self) -> i64 {
        Self::now().0.saturating_sub(self.0) / 1_000_000
    }
}
