//! Anonymous memory pressure, bounded to the guest: enough that reclaim runs, and with it
//! rsheap's shrinker, while a workload allocates, and never so much that the OOM killer does.
//!
//! [`MemoryPressure::start`] fills anonymous memory until only [`headroom`] is left available,
//! then keeps mapping, touching and unmapping [`CHURN`] more, so that free memory swings across
//! the watermarks for as long as the pressure lasts. The guest has no swap: the filled memory
//! cannot be reclaimed, only the page cache and the caches with shrinkers can.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use rsheap_suites::meminfo;

use crate::MIB;

/// The memory mapped and unmapped again and again on top of the fill.
const CHURN: usize = 64 * MIB;

/// What the fill leaves available: a thirty-second of RAM (128 MiB of the guest's 4 GiB), room
/// for the workload's buffers (32 MiB at most) and the churn, whose swings take free memory
/// down to the watermarks, where reclaim runs.
fn headroom() -> usize {
    usize::try_from(meminfo("MemTotal") / 32).unwrap_or(usize::MAX)
}

/// Anonymous memory mapped and populated, unmapped on drop.
struct Anonymous {
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    len: NonZeroUsize,
}

impl Anonymous {
    /// Maps `len` bytes and makes the kernel back every page of them.
    fn populated(len: NonZeroUsize) -> Result<Self> {
        // SAFETY: A fresh private anonymous mapping aliases nothing.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE,
            )
        }
        .context("map anonymous memory")?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Anonymous {
    fn drop(&mut self) {
        // SAFETY: The mapping is this value's, and nothing refers to it any more.
        let _ = unsafe { munmap(self.ptr, self.len.get()) };
    }
}

// SAFETY: The mapping is only unmapped, by its owner; nothing reads or writes it.
unsafe impl Send for Anonymous {}

/// Pressure that lasts until this value is dropped.
pub struct MemoryPressure {
    stop: Arc<AtomicBool>,
    churn: Option<JoinHandle<Result<()>>>,
    _fill: Vec<Anonymous>,
}

impl MemoryPressure {
    /// Fills memory down to the headroom and starts the churn.
    pub fn start() -> Result<Self> {
        let mut fill = Vec::new();
        let headroom = headroom();
        loop {
            let available = usize::try_from(meminfo("MemAvailable")).unwrap_or(0);
            let Some(len) = NonZeroUsize::new(available.saturating_sub(headroom).min(256 * MIB))
            else {
                break;
            };
            if len.get() < MIB {
                break;
            }
            fill.push(Anonymous::populated(len)?);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let churn = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let len = NonZeroUsize::new(CHURN).context("no churn")?;
                while !stop.load(Ordering::Relaxed) {
                    drop(Anonymous::populated(len)?);
                }
                Ok(())
            }
        });
        Ok(Self {
            stop,
            churn: Some(churn),
            _fill: fill,
        })
    }

    /// Ends the churn and gives the memory back; an error if the churn failed.
    pub fn stop(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.churn.take() {
            Some(churn) => churn
                .join()
                .map_err(|_| anyhow::anyhow!("the pressure thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for MemoryPressure {
    fn drop(&mut self) {
        let _ = self.end();
    }
}
