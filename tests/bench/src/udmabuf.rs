//! udmabuf: a dma-buf over memfd pages, the upstream way to get a dma-buf user space fills.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::unistd::ftruncate;

/// `struct udmabuf_create`.
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}

const UDMABUF_FLAGS_CLOEXEC: u32 = 0x01;

nix::ioctl_write_ptr!(
    /// `UDMABUF_CREATE`.
    udmabuf_create,
    b'u',
    0x42,
    UdmabufCreate
);

/// Creates a `len`-byte udmabuf the way its users do: memfd, size, shrink seal, create.
pub fn create(len: usize) -> Result<OwnedFd> {
    from_memfd(&memfd(len)?, len)
}

/// A `len`-byte memfd sealed against shrinking, as `UDMABUF_CREATE` requires.
pub fn memfd(len: usize) -> Result<OwnedFd> {
    let name: &CStr = c"rsheap-bench";
    let memfd = memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    ftruncate(&memfd, len as i64)?;
    fcntl(
        memfd.as_raw_fd(),
        FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK),
    )?;
    Ok(memfd)
}

/// A udmabuf over the first `len` bytes of `memfd`.
pub fn from_memfd(memfd: &OwnedFd, len: usize) -> Result<OwnedFd> {
    let device = std::fs::File::open("/dev/udmabuf").context("open /dev/udmabuf")?;
    let request = UdmabufCreate {
        memfd: memfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size: len as u64,
    };
    // SAFETY: `request` is a valid `udmabuf_create` for the duration of the call.
    let fd = unsafe { udmabuf_create(device.as_raw_fd(), &request) }.context("UDMABUF_CREATE")?;
    // SAFETY: On success the kernel returns a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
