//! The heaps the configuration names: opening them, allocating with fallback, and what the
//! broker holds in each.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use log::warn;
use nix::errno::Errno;

use crate::config::Config;
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::sync::lock;

/// One heap of the configuration.
struct Slot {
    name: String,
    /// Whether the configuration lists it for cached buffers.
    cached: bool,
    /// The open heap node; `None` until it exists (a heap module may load after the broker).
    node: Mutex<Option<Arc<rsheap::Heap>>>,
    buffers: AtomicU64,
    bytes: AtomicU64,
    allocations: AtomicU64,
    failures: AtomicU64,
}

impl Slot {
    /// The heap node, opened on first use.
    fn node(&self) -> Option<Arc<rsheap::Heap>> {
        let mut node = lock(&self.node);
        if node.is_none() {
            *node = rsheap::Heap::open(&self.name).ok().map(Arc::new);
        }
        node.clone()
    }
}

/// A heap's identity and the broker's accounting in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Its name under `/dev/dma_heap`.
    pub name: String,
    /// Whether its buffers are cached.
    pub cached: bool,
    /// Buffers the broker holds in it.
    pub buffers: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Allocations it served.
    pub allocations: u64,
    /// Allocations it failed.
    pub failures: u64,
}

/// The configured heaps. Indices into it name a heap for the life of the broker.
pub struct Heaps {
    slots: Vec<Slot>,
}

impl Heaps {
    /// The heaps `config` names; they need not exist yet.
    pub fn new(config: &Config) -> Self {
        let slots = config
            .heap_names()
            .into_iter()
            .map(|name| Slot {
                name: name.to_owned(),
                cached: config
                    .heaps
                    .values()
                    .any(|choice| choice.cached.iter().any(|n| n == name)),
                node: Mutex::new(None),
                buffers: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                allocations: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            })
            .collect();
        Self { slots }
    }

    /// The index of the heap called `name`, if configured.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|slot| slot.name == name)
    }

    /// The name of heap `index`, empty for an index that names none.
    pub fn name(&self, index: usize) -> &str {
        self.slots.get(index).map_or("", |slot| slot.name.as_str())
    }

    /// Whether heap `index` exists on this device now.
    pub fn is_present(&self, index: usize) -> bool {
        self.slots
            .get(index)
            .is_some_and(|slot| slot.node().is_some())
    }

    /// Allocates `size` bytes from the first of `candidates` (heap indices) that exists and
    /// has the memory, and returns which one served it.
    pub fn allocate(&self, candidates: &[usize], size: u64) -> Result<(usize, rsheap::Buffer)> {
        let len = usize::try_from(size).map_err(|_| BrokerError::invalid("size too large"))?;
        let mut tried = Vec::new();
        let mut out_of_memory = false;
        let mut out_of_descriptors = false;
        for &index in candidates {
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            let Some(node) = slot.node() else { continue };
            match node.allocate(len) {
                Ok(buffer) => {
                    slot.allocations.fetch_add(1, Ordering::Relaxed);
                    slot.buffers.fetch_add(1, Ordering::Relaxed);
                    slot.bytes.fetch_add(size, Ordering::Relaxed);
                    return Ok((index, buffer));
                }
                Err(err) => {
                    slot.failures.fetch_add(1, Ordering::Relaxed);
                    let errno = err.errno().unwrap_or(Errno::EINVAL);
                    out_of_memory |= errno == Errno::ENOMEM;
                    out_of_descriptors |= matches!(errno, Errno::EMFILE | Errno::ENFILE);
                    warn!(
                        "heap {}: allocating {size} bytes failed: {errno}",
                        slot.name
                    );
                    tried.push(format!("{} ({})", slot.name, errno.desc()));
                }
            }
        }
        let names: Vec<&str> = candidates.iter().map(|&i| self.name(i)).collect();
        if tried.is_empty() {
            return Err(BrokerError::new(
                BrokerErrorCode::Unsupported,
                format!("none of the heaps {} is present", names.join(", ")),
            ));
        }
        let message = format!("cannot allocate {size} bytes: {}", tried.join(", "));
        Err(if out_of_memory {
            BrokerError::new(BrokerErrorCode::NoMemory, message)
        } else if out_of_descriptors {
            BrokerError::new(
                BrokerErrorCode::Busy,
                format!("{message}: the broker is out of file descriptors"),
            )
        } else {
            BrokerError::from_os(Errno::EIO, message)
        })
    }

    /// Accounts a buffer of heap `index` as freed.
    pub fn release(&self, index: usize, size: u64) {
        if let Some(slot) = self.slots.get(index) {
            slot.buffers.fetch_sub(1, Ordering::Relaxed);
            slot.bytes.fetch_sub(size, Ordering::Relaxed);
        }
    }

    /// Every configured heap that exists now, with its accounting.
    pub fn stats(&self) -> Vec<HeapStats> {
        self.slots
            .iter()
            .filter(|slot| slot.node().is_some())
            .map(|slot| HeapStats {
                name: slot.name.clone(),
                cached: slot.cached,
                buffers: slot.buffers.load(Ordering::Relaxed),
                bytes: slot.bytes.load(Ordering::Relaxed),
                allocations: slot.allocations.load(Ordering::Relaxed),
                failures: slot.failures.load(Ordering::Relaxed),
            })
            .collect()
    }
}
