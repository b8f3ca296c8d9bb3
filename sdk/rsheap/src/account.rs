//! Accounts of `/dev/rsheap`: buffers counted for as long as they live, whoever holds them.
//!
//! A broker that allocates for clients charges each buffer to the client's [`Account`] and
//! holds quotas against [`Account::usage`]; a buffer stops counting only when the kernel
//! releases it, after its last file descriptor, mapping and device attachment are gone
//! (`kmod/include/uapi/linux/rsheap.h`).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};

use crate::error::{Error, Result};
use crate::file_io::open_control_device;
use crate::uapi::{
    rsheap_ioc_account, rsheap_ioc_charge, RsheapAccount, RsheapCharge, RSHEAP_ACCOUNT_SIZE_VER0,
    RSHEAP_CHARGE_SIZE_VER0,
};

/// What an account holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountUsage {
    /// Live buffers charged to the account.
    pub buffers: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// An account: an open file of [`CONTROL_DEVICE`](crate::CONTROL_DEVICE) that buffers can be charged to. It lives
/// in the kernel while this is open or a buffer charged to it lives.
#[derive(Debug)]
pub struct Account {
    device: File,
}

impl Account {
    /// Opens a new, empty account.
    pub fn open() -> Result<Self> {
        Ok(Self {
            device: open_control_device()?,
        })
    }

    /// Charges `buffer` (a dma-buf of an rsheap heap) to this account until its release:
    /// `EXDEV` for another exporter's dma-buf, `EBUSY` if it was charged before.
    pub fn charge(&self, buffer: &impl AsFd) -> Result<()> {
        let mut request = RsheapCharge {
            size: RSHEAP_CHARGE_SIZE_VER0,
            buf_fd: buffer.as_fd().as_raw_fd(),
        };
        // SAFETY: `request` is a valid `struct rsheap_charge` for the duration of the call.
        unsafe { rsheap_ioc_charge(self.device.as_raw_fd(), &mut request) }
            .map_err(|errno| Error::os("charge a buffer to an account", errno))?;
        Ok(())
    }

    /// The live buffers charged to this account, and their bytes.
    pub fn usage(&self) -> Result<AccountUsage> {
        let mut request = RsheapAccount {
            size: RSHEAP_ACCOUNT_SIZE_VER0,
            ..RsheapAccount::default()
        };
        // SAFETY: `request` is a valid `struct rsheap_account` for the duration of the call.
        unsafe { rsheap_ioc_account(self.device.as_raw_fd(), &mut request) }
            .map_err(|errno| Error::os("read an account", errno))?;
        Ok(AccountUsage {
            buffers: request.buffers,
            bytes: request.bytes,
        })
    }
}
