//! What counts against each uid's quota, and how many sessions each uid holds.
//!
//! Quotas follow the memory. Each uid has a kernel account (`rsheap::Account`, an open file
//! of `/dev/rsheap`) that every buffer of rsheap's heaps made for it is charged to; the
//! account counts a buffer until the kernel releases it, after the last copy of its fd,
//! mapping or device attachment is gone, so freeing a buffer to the broker while keeping a
//! copy of its fd does not give its quota back. Buffers the kernel cannot count (other
//! exporters' heaps, or kernels without accounts) count until they are freed to the broker.
//!
//! A uid's [`UidLedger`] lives as long as the broker: its account must outlive the buffers
//! charged to it, or a uid could close its sessions, open new ones and start from zero.
//!
//! Locking: each ledger has its own lock, so allocations of different uids never contend.
//! It is never held across an allocation, a load, a binder call or a wait (reading an
//! account is one non-blocking ioctl).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::config::Quota;
use crate::error::{BrokerError, BrokerErrorCode, Result};
use crate::sync::lock;

/// Bytes in buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// Bytes.
    pub bytes: u64,
    /// Buffers.
    pub buffers: u32,
}

impl Held {
    fn add(&mut self, bytes: u64, buffers: u32) {
        self.bytes = self.bytes.saturating_add(bytes);
        self.buffers = self.buffers.saturating_add(buffers);
    }

    fn sub(&mut self, bytes: u64, buffers: u32) {
        self.bytes = self.bytes.saturating_sub(bytes);
        self.buffers = self.buffers.saturating_sub(buffers);
    }
}

/// What counts against one uid's quota now.
#[derive(Debug, Default)]
struct Counts {
    /// The uid's kernel account, opened at its first allocation (and retried at each
    /// allocation until `/dev/rsheap` exists).
    account: Option<rsheap::Account>,
    /// Buffers the account does not count, until they are freed to the broker.
    uncharged: Held,
    /// Reserved for allocations in progress.
    pending: Held,
}

impl Counts {
    fn held(&self) -> Held {
        let mut held = self.uncharged;
        held.add(self.pending.bytes, self.pending.buffers);
        if let Some(usage) = self.account.as_ref().and_then(|a| a.usage().ok()) {
            held.add(
                usage.bytes,
                u32::try_from(usage.buffers).unwrap_or(u32::MAX),
            );
        }
        held
    }
}

/// One uid's quota, what counts against it, and its sessions.
#[derive(Debug)]
pub struct UidLedger {
    uid: u32,
    quota: Quota,
    counts: Mutex<Counts>,
    sessions: AtomicUsize,
    /// Asynchronous allocations queued or running, so one uid cannot fill the queue.
    async_allocations: AtomicUsize,
}

/// Asynchronous allocations one uid may have queued or running: a quarter of the shipped
/// queue.
const ASYNC_ALLOCATIONS: usize = 16;

impl UidLedger {
    /// A ledger for `uid`, held to `quota`.
    pub fn new(uid: u32, quota: Quota) -> Self {
        Self {
            uid,
            quota,
            counts: Mutex::new(Counts::default()),
            sessions: AtomicUsize::new(0),
            async_allocations: AtomicUsize::new(0),
        }
    }

    /// The uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Its quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Everything that counts against the quota now.
    pub fn held(&self) -> Held {
        lock(&self.counts).held()
    }

    /// Whether the uid's buffers are counted by a kernel account.
    pub fn has_account(&self) -> bool {
        lock(&self.counts).account.is_some()
    }

    /// Sessions the uid holds now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Counts one more session, unless the uid holds `most` already.
    pub fn open_session(&self, most: usize) -> Result<()> {
        self.sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                open.checked_add(1).filter(|&total| total <= most)
            })
            .map(drop)
            .map_err(|open| {
                BrokerError::new(
                    BrokerErrorCode::QuotaExceeded,
                    format!(
                        "uid {} holds {open} sessions, the most one uid may; close one first",
                        self.uid
                    ),
                )
            })
    }

    /// Counts one session less.
    pub fn close_session(&self) {
        let _ = self
            .sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                open.checked_sub(1)
            });
    }

    /// Counts one more asynchronous allocation: `BUSY` past the uid's share.
    pub fn start_async_allocation(&self) -> Result<()> {
        self.async_allocations
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                queued.checked_add(1).filter(|&n| n <= ASYNC_ALLOCATIONS)
            })
            .map(drop)
            .map_err(|queued| {
                BrokerError::new(
                    BrokerErrorCode::Busy,
                    format!(
                        "uid {} has {queued} asynchronous allocations queued or running",
                        self.uid
                    ),
                )
            })
    }

    /// Counts one asynchronous allocation less.
    pub fn end_async_allocation(&self) {
        let _ = self
            .async_allocations
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Reserves `bytes` in `count` buffers of the quota, for an allocation in progress.
    pub fn reserve(&self, bytes: u64, count: u32) -> Result<()> {
        let mut counts = lock(&self.counts);
        if counts.account.is_none() {
            counts.account = rsheap::Account::open().ok();
        }
        let held = counts.held();
        let quota = self.quota;
        if held.bytes.saturating_add(bytes) > quota.bytes
            || held.buffers.saturating_add(count) > quota.buffers
        {
            return Err(BrokerError::new(
                BrokerErrorCode::QuotaExceeded,
                format!(
                    "uid {} holds {} in {} buffers of its quota of {} in {}; {} in {count} more would exceed it",
                    self.uid,
                    mib(held.bytes),
                    held.buffers,
                    mib(quota.bytes),
                    quota.buffers,
                    mib(bytes)
                ),
            ));
        }
        counts.pending.add(bytes, count);
        Ok(())
    }

    /// Ends a reservation of [`Self::reserve`]: the allocation failed, or its buffers are
    /// counted now.
    pub fn unreserve(&self, bytes: u64, count: u32) {
        lock(&self.counts).pending.sub(bytes, count);
    }

    /// Charges a new buffer to the uid's kernel account, or else counts it here; returns
    /// whether the account counts it.
    pub fn charge(&self, buffer: &rsheap::Buffer, bytes: u64) -> bool {
        let mut counts = lock(&self.counts);
        let charged = counts
            .account
            .as_ref()
            .is_some_and(|account| account.charge(buffer).is_ok());
        if !charged {
            counts.uncharged.add(bytes, 1);
        }
        charged
    }

    /// Stops counting a buffer freed to the broker that [`Self::charge`] counted here.
    pub fn uncharge(&self, bytes: u64) {
        lock(&self.counts).uncharged.sub(bytes, 1);
    }
}

/// `bytes` as MiB for messages.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_reserve_and_return() {
        let ledger = UidLedger::new(
            7,
            Quota {
                bytes: 2 << 20,
                buffers: 2,
            },
        );
        ledger.reserve(1 << 20, 1).expect("first MiB");
        ledger.reserve(1 << 20, 1).expect("second MiB");
        let err = ledger.reserve(4096, 1).expect_err("over quota");
        assert_eq!(err.kind, BrokerErrorCode::QuotaExceeded);
        assert!(
            err.message.contains("uid 7 holds 2.0 MiB in 2 buffers"),
            "{}",
            err.message
        );
        ledger.unreserve(1 << 20, 1);
        ledger.reserve(4096, 1).expect("room again");
        ledger.unreserve(4096, 1);
        ledger.unreserve(1 << 20, 1);
        assert_eq!(ledger.held(), Held::default());
    }

    #[test]
    fn sessions_are_bounded() {
        let ledger = UidLedger::new(
            7,
            Quota {
                bytes: 1 << 20,
                buffers: 1,
            },
        );
        ledger.open_session(2).expect("first");
        ledger.open_session(2).expect("second");
        let err = ledger.open_session(2).expect_err("third");
        assert_eq!(err.kind, BrokerErrorCode::QuotaExceeded);
        ledger.close_session();
        ledger.open_session(2).expect("room again");
        assert_eq!(ledger.sessions(), 2);
    }

    #[test]
    fn asynchronous_allocations_are_bounded_per_uid() {
        let ledger = UidLedger::new(
            7,
            Quota {
                bytes: 1 << 20,
                buffers: 1,
            },
        );
        for _ in 0..ASYNC_ALLOCATIONS {
            ledger.start_async_allocation().expect("within the share");
        }
        let err = ledger.start_async_allocation().expect_err("past the share");
        assert_eq!(err.kind, BrokerErrorCode::Busy);
        ledger.end_async_allocation();
        ledger.start_async_allocation().expect("room again");
    }
}
