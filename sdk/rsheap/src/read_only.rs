//! Read-only sharing of a buffer, enforced by the kernel (`RSHEAP_IOC_SHARE_READONLY` of
//! `/dev/rsheap`, `kmod/include/uapi/linux/rsheap.h`).
//!
//! A broker that loaded a buffer hands a less trusted process a read-only export of it: a
//! second dma-buf over the same pages that maps only readable, that devices may map only to
//! read, and that no LOAD can fill. The receiver sees every later write to the original.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::OFlag;

use crate::file_io::open_control_device;
use crate::uapi::{rsheap_ioc_share_readonly, RsheapShare, RSHEAP_SHARE_SIZE_VER0};
use crate::{Buffer, Error, Result};

impl Buffer {
    /// A read-only export of this buffer (of an rsheap heap, open for reading), with its own
    /// close-on-exec file descriptor: it maps only with [`Buffer::map_read_only`], and keeps
    /// the memory alive until it is closed too; the memory stays charged to the account this
    /// buffer is charged to. `EXDEV` for another exporter's dma-buf, `EBADF` for a buffer not
    /// open for reading.
    pub fn share_read_only(&self) -> Result<Buffer> {
        let device = open_control_device()?;
        let mut request = RsheapShare {
            size: RSHEAP_SHARE_SIZE_VER0,
            buf_fd: self.as_fd().as_raw_fd(),
            fd_flags: OFlag::O_CLOEXEC.bits() as u32,
            ro_fd: -1,
        };
        // SAFETY: `request` is a valid `struct rsheap_share` for the duration of the call.
        unsafe { rsheap_ioc_share_readonly(device.as_raw_fd(), &mut request) }
            .map_err(|errno| Error::os("share a buffer read-only", errno))?;
        // SAFETY: On success the kernel installed a new file descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(request.ro_fd) };
        Ok(Buffer::with_len(fd, self.len()))
    }
}
