//! A dma-buf: its file descriptor, CPU mappings and CPU-access bracketing.

use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::unistd::{lseek, Whence};

use crate::uapi::{self, dma_buf_ioctl_sync, DmaBufSync};
use crate::{Error, Result};

/// An owned dma-buf.
#[derive(Debug)]
pub struct Buffer {
    fd: OwnedFd,
    len: usize,
}

impl Buffer {
    /// Takes ownership of a dma-buf file descriptor, learning its size from the kernel.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let end = lseek(fd.as_raw_fd(), 0, Whence::SeekEnd)
            .map_err(|errno| Error::os("size of dma-buf", errno))?;
        lseek(fd.as_raw_fd(), 0, Whence::SeekSet)
            .map_err(|errno| Error::os("rewind dma-buf", errno))?;
        Ok(Self {
            fd,
            len: end as usize,
        })
    }

    /// The size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty; dma-bufs never are.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gives up ownership of the file descriptor.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Names the buffer (shown in `/proc/<pid>/fdinfo` and debugfs); at most 31 bytes.
    pub fn set_name(&self, name: &str) -> Result<()> {
        if name.len() >= uapi::DMA_BUF_NAME_LEN {
            return Err(Error::InvalidArgument(format!(
                "buffer name {name:?} is longer than 31 bytes"
            )));
        }
        let name = CString::new(name)
            .map_err(|_| Error::InvalidArgument("buffer name contains NUL".into()))?;
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        unsafe { uapi::dma_buf_set_name(self.fd.as_raw_fd(), name.as_ptr()) }
            .map_err(|errno| Error::os("name dma-buf", errno))?;
        Ok(())
    }

    /// Maps the whole buffer readable and writable.
    pub fn map(&self) -> Result<Mapping<'_>> {
        self.map_range(0, self.len)
    }

    /// Maps `len` bytes starting at `offset`, which must be page-aligned.
    pub fn map_range(&self, offset: usize, len: usize) -> Result<Mapping<'_>> {
        let len = NonZeroUsize::new(len)
            .ok_or_else(|| Error::InvalidArgument("zero-length mapping".into()))?;
        let offset = i64::try_from(offset)
            .map_err(|_| Error::InvalidArgument("offset out of range".into()))?;
        // SAFETY: A fresh shared mapping of a file; it aliases nothing in this process.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &self.fd,
                offset,
            )
        }
        .map_err(|errno| {
            Error::os(
                format!("mmap {len} bytes at offset {offset} of dma-buf"),
                errno,
            )
        })?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len: len.get(),
            _buffer: self,
        })
    }

    /// Starts CPU access in `direction`; access ends when the guard drops.
    pub fn cpu_access(&self, direction: SyncDirection) -> Result<CpuAccess<'_>> {
        sync(
            self.fd.as_fd(),
            uapi::DMA_BUF_SYNC_START | direction.flags(),
        )?;
        Ok(CpuAccess {
            buffer: self,
            direction,
        })
    }
}

impl AsFd for Buffer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What the CPU does with a buffer between the sync calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncDirection {
    /// The CPU only reads.
    Read,
    /// The CPU only writes.
    Write,
    /// The CPU reads and writes.
    ReadWrite,
}

impl SyncDirection {
    fn flags(self) -> u64 {
        match self {
            Self::Read => uapi::DMA_BUF_SYNC_READ,
            Self::Write => uapi::DMA_BUF_SYNC_WRITE,
            Self::ReadWrite => uapi::DMA_BUF_SYNC_RW,
        }
    }
}

fn sync(fd: BorrowedFd<'_>, flags: u64) -> Result<()> {
    let arg = DmaBufSync { flags };
    // SAFETY: `arg` is a valid `dma_buf_sync` for the duration of the call.
    unsafe { dma_buf_ioctl_sync(fd.as_raw_fd(), &arg) }
        .map_err(|errno| Error::os("sync dma-buf", errno))?;
    Ok(())
}

/// A CPU-access window on a buffer: `DMA_BUF_SYNC_START` when made, `DMA_BUF_SYNC_END` when
/// dropped.
#[derive(Debug)]
pub struct CpuAccess<'a> {
    buffer: &'a Buffer,
    direction: SyncDirection,
}

impl CpuAccess<'_> {
    /// Ends the access now, reporting a failure that drop would have to ignore.
    pub fn end(self) -> Result<()> {
        let result = sync(
            self.buffer.fd.as_fd(),
            uapi::DMA_BUF_SYNC_END | self.direction.flags(),
        );
        std::mem::forget(self);
        result
    }
}

impl Drop for CpuAccess<'_> {
    fn drop(&mut self) {
        // An end that fails leaves nothing to undo; `end` reports it to callers who care.
        let _ = sync(
            self.buffer.fd.as_fd(),
            uapi::DMA_BUF_SYNC_END | self.direction.flags(),
        );
    }
}

/// A CPU mapping of (part of) a buffer, unmapped on drop.
#[derive(Debug)]
pub struct Mapping<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _buffer: &'a Buffer,
}

impl Mapping<'_> {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` bytes, readable, for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` bytes, writable, for as long as `self` lives, and `&mut self`
        // makes this the only view of them in this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty; mappings never are.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` describe a mapping made by `mmap` that no slice outlives.
        // munmap of a valid mapping cannot fail.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}
