//! What a session may allocate, and read-only sharing of its buffers.

use vendor_rsheap::aidl::vendor::rsheap::SessionLimits::SessionLimits as Reported;

use super::{Broker, BrokerBuffer};
use crate::{Buffer, Result};

/// What this client's session may allocate, from the broker's `getLimits()`: enough for a HAL
/// to size its pools at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// The largest single buffer, in bytes.
    pub max_buffer_size: u64,
    /// The most requests one batch takes.
    pub max_batch: usize,
    /// The page size the broker rounds sizes up to.
    pub page_size: usize,
    /// The uid's quota in bytes, shared by all its sessions.
    pub quota_bytes: u64,
    /// The uid's quota in buffers.
    pub quota_buffers: u64,
    /// Bytes the uid holds against the quota now: every live buffer, freed to the broker or
    /// not, until its last file descriptor and mapping are gone.
    pub used_bytes: u64,
    /// Buffers the uid holds against the quota now.
    pub used_buffers: u64,
    /// Sessions the uid has open now, this one included.
    pub sessions: u64,
    /// The most sessions the uid may have open.
    pub max_sessions: u64,
    /// Whether loads can bypass the page cache (rsheap's control device is there).
    pub direct_loads: bool,
    /// Whether [`Broker::share_read_only`] works for buffers of rsheap's heaps.
    pub read_only_sharing: bool,
}

impl SessionLimits {
    fn from_reported(limits: &Reported) -> Self {
        // The broker never sends negative values; a broken one gets them read as 0.
        let unsigned = |value: i64| u64::try_from(value).unwrap_or(0);
        let count = |value: i32| u64::try_from(value).unwrap_or(0);
        let size = |value: i32| usize::try_from(value).unwrap_or(0);
        Self {
            max_buffer_size: unsigned(limits.maxBufferSize),
            max_batch: size(limits.maxBatch),
            page_size: size(limits.pageSize),
            quota_bytes: unsigned(limits.quotaBytes),
            quota_buffers: count(limits.quotaBuffers),
            used_bytes: unsigned(limits.usedBytes),
            used_buffers: count(limits.usedBuffers),
            sessions: count(limits.sessions),
            max_sessions: count(limits.maxSessions),
            direct_loads: limits.directLoads,
            read_only_sharing: limits.readOnlySharing,
        }
    }
}

impl Broker {
    /// What this session may allocate now.
    pub fn limits(&self) -> Result<SessionLimits> {
        let (limits, _) = self.call(|session| session.getLimits())?;
        Ok(SessionLimits::from_reported(&limits))
    }

    /// A read-only dma-buf over `buffer`'s memory, made by the broker, to hand to a process
    /// that may read it but must not write it: the kernel refuses to map it writable, to load
    /// into it and to reopen it for writing, and lets devices map it only to read (see
    /// [`Buffer::map_read_only`]). It keeps the memory alive, charged to this client's uid,
    /// for as long as it is open, after `buffer` is freed too.
    ///
    /// Fails with [`BrokerErrorCode::Unsupported`](super::BrokerErrorCode::Unsupported) for
    /// a buffer of another heap than rsheap's, or where the kernel cannot share.
    pub fn share_read_only(&self, buffer: &BrokerBuffer) -> Result<Buffer> {
        self.check_generation(buffer)?;
        let (shared, _) = self.call(|session| session.shareReadOnly(buffer.id()))?;
        Ok(Buffer::with_len(
            rsheap_binder::into_owned_fd(shared),
            buffer.buffer().len(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_limits_convert_and_negatives_read_as_zero() {
        let reported = Reported {
            maxBufferSize: 4 << 30,
            maxBatch: 64,
            pageSize: 4096,
            quotaBytes: 1 << 30,
            quotaBuffers: 100,
            usedBytes: -1,
            usedBuffers: 3,
            sessions: 1,
            maxSessions: 32,
            directLoads: true,
            readOnlySharing: false,
        };
        let limits = SessionLimits::from_reported(&reported);
        assert_eq!(limits.max_buffer_size, 4 << 30);
        assert_eq!((limits.max_batch, limits.page_size), (64, 4096));
        assert_eq!((limits.quota_bytes, limits.quota_buffers), (1 << 30, 100));
        assert_eq!((limits.used_bytes, limits.used_buffers), (0, 3));
        assert_eq!((limits.sessions, limits.max_sessions), (1, 32));
        assert!(limits.direct_loads && !limits.read_only_sharing);
    }
}
