// SPDX-License-Identifier: GPL-2.0

//! Accounts: what the buffers charged to one open file of `/dev/rsheap` hold, for as long as
//! each buffer lives.
//!
//! A broker that hands buffers to clients cannot see when a client's last copy of a buffer
//! goes: the client may have duplicated the fd, passed it on or mapped it. The kernel can: a
//! buffer charged to an account ([`Buffer::charge`](crate::buffer::Buffer::charge)) counts
//! there until its release, whoever held it last. The broker opens one account per client (or
//! uid), charges every buffer it makes for it, and holds quotas against what the account
//! reports, so memory counts against its owner until it is really gone.
//!
//! An account lives while its file is open or any buffer charged to it lives.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::fd::BufferRef;
use crate::kernel::bindings::c_int;
use crate::kernel::prelude::*;
use crate::kernel::sync::Arc;

/// Live buffers charged to one account, and their bytes.
#[derive(Default)]
pub(crate) struct Account {
    buffers: AtomicUsize,
    bytes: AtomicUsize,
}

impl Account {
    /// Counts a buffer of `size` bytes from now until [`Self::release`].
    pub(crate) fn charge(&self, size: usize) {
        self.buffers.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
    }

    /// Stops counting a buffer of `size` bytes charged before.
    pub(crate) fn release(&self, size: usize) {
        self.buffers.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(size, Ordering::Relaxed);
    }

    /// (live buffers, their bytes), sampled now.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (
            self.buffers.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Charges the rsheap buffer open as `buf_fd` to `account`: `EBUSY` if it is charged already
/// (to this account or another), `EINVAL` for a read-only export, which is not a buffer of its
/// own (the buffer it shares counts where the buffer is charged), and the errors of
/// [`BufferRef::get`].
pub(crate) fn charge(account: &Arc<Account>, buf_fd: c_int) -> Result {
    let buffer = BufferRef::get_for("CHARGE", buf_fd)?;
    if buffer.is_read_only() {
        pr_info_ratelimited!(
            "CHARGE: refused buffer fd {}: a read-only export; charge its original\n",
            buf_fd
        );
        return Err(EINVAL);
    }
    buffer.buffer().charge(account).inspect_err(|_| {
        pr_info_ratelimited!("CHARGE: refused buffer fd {}: charged already\n", buf_fd);
    })
}
