//! A dma-buf: its file descriptor, CPU mappings and CPU-access bracketing.

use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::unistd::{lseek, Whence};

use crate::uapi::{self, dma_buf_ioctl_sync, DmaBufSync};
use crate::{Error, Result};

/// The CPU's base page size in bytes (4 KiB, 16 KiB or 64 KiB): heaps round every buffer's
/// size up to a multiple of it.
pub fn page_size() -> usize {
    // SAFETY: `sysconf` has no preconditions.
    let size = unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) };
    // Linux always answers; otherwise the smallest page size any of its architectures has.
    usize::try_from(size).unwrap_or(4096)
}

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

    /// Wraps a dma-buf file descriptor whose size is known.
    pub(crate) fn with_len(fd: OwnedFd, len: usize) -> Self {
        Self { fd, len }
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
    ///
    /// Mappings of 2 MiB or more are placed so that the address and the offset agree modulo
    /// 2 MiB: rsheap then maps each 2 MiB chunk with a single page-table entry when it is
    /// first touched.
    pub fn map_range(&self, offset: usize, len: usize) -> Result<Mapping<'_>> {
        self.map_with(offset, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE)
    }

    /// Maps the whole buffer readable only: the one mapping a read-only buffer
    /// ([`Buffer::share_read_only`]) allows.
    pub fn map_read_only(&self) -> Result<ReadOnlyMapping<'_>> {
        Ok(ReadOnlyMapping(self.map_with(
            0,
            self.len,
            ProtFlags::PROT_READ,
        )?))
    }

    fn map_with(&self, offset: usize, len: usize, prot: ProtFlags) -> Result<Mapping<'_>> {
        let len = NonZeroUsize::new(len)
            .ok_or_else(|| Error::InvalidArgument("zero-length mapping".into()))?;
        let file_offset = i64::try_from(offset)
            .map_err(|_| Error::InvalidArgument("offset out of range".into()))?;
        let placement = if len.get() >= HUGE_ALIGN {
            reserve_aligned(len.get(), offset)?
        } else {
            None
        };
        let flags = if placement.is_some() {
            MapFlags::MAP_SHARED | MapFlags::MAP_FIXED
        } else {
            MapFlags::MAP_SHARED
        };
        // SAFETY: Either a fresh mapping the kernel places, or one over an address range this
        // call reserved above and nothing else uses.
        let ptr = unsafe { mmap(placement, len, prot, flags, &self.fd, file_offset) }.map_err(
            |errno| {
                let reserved =
                    placement.and_then(|addr| NonNull::new(addr.get() as *mut std::ffi::c_void));
                if let Some(reserved) = reserved {
                    // SAFETY: The reservation is ours and unused.
                    let _ = unsafe { munmap(reserved, len.get()) };
                }
                Error::os(
                    format!("mmap {len} bytes at offset {offset} of dma-buf"),
                    errno,
                )
            },
        )?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len: len.get(),
            _buffer: self,
        })
    }

    /// Starts CPU access in `direction`; access ends when the guard drops.
    pub fn cpu_access(&self, direction: SyncDirection) -> Result<CpuAccess<'_>> {
        self.begin_cpu_access(direction)?;
        Ok(CpuAccess {
            buffer: self,
            direction,
        })
    }

    /// Starts CPU access in `direction` (`DMA_BUF_SYNC_START`), for callers that cannot hold
    /// a [`CpuAccess`] guard, such as bindings to other languages; each start needs an
    /// [`Buffer::end_cpu_access`] in the same direction.
    pub fn begin_cpu_access(&self, direction: SyncDirection) -> Result<()> {
        sync(
            self.fd.as_fd(),
            uapi::DMA_BUF_SYNC_START | direction.flags(),
        )
    }

    /// Ends CPU access in `direction` (`DMA_BUF_SYNC_END`): what the CPU wrote becomes
    /// visible to devices.
    pub fn end_cpu_access(&self, direction: SyncDirection) -> Result<()> {
        sync(self.fd.as_fd(), uapi::DMA_BUF_SYNC_END | direction.flags())
    }
}

impl AsFd for Buffer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The alignment that lets the kernel map a 2 MiB chunk with one page-table entry.
const HUGE_ALIGN: usize = 2 << 20;

/// Reserves `len` bytes of address space whose start agrees with `offset` modulo 2 MiB, and
/// returns the start, for a `MAP_FIXED` mapping to replace.
fn reserve_aligned(len: usize, offset: usize) -> Result<Option<NonZeroUsize>> {
    let span = len
        .checked_add(HUGE_ALIGN)
        .ok_or_else(|| Error::InvalidArgument("mapping too large".into()))?;
    let span = NonZeroUsize::new(span)
        .ok_or_else(|| Error::InvalidArgument("zero-length mapping".into()))?;
    // SAFETY: A fresh inaccessible anonymous mapping that nothing else uses.
    let base = unsafe {
        mmap_anonymous(
            None,
            span,
            ProtFlags::PROT_NONE,
            MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        )
    }
    .map_err(|errno| Error::os("reserve address space", errno))?;
    let base_addr = base.as_ptr() as usize;
    // Addresses within the reservation, which the kernel placed below the top of the address
    // space: none of this wraps, and the remainders are below `HUGE_ALIGN`.
    let skew = (offset % HUGE_ALIGN)
        .wrapping_add(HUGE_ALIGN)
        .wrapping_sub(base_addr % HUGE_ALIGN)
        % HUGE_ALIGN;
    let start = base_addr.wrapping_add(skew);
    // Give back what the mapping will not cover: the head before `start` and the tail after.
    // SAFETY: Both ranges lie within the reservation made above and are unused.
    unsafe {
        if skew > 0 {
            let _ = munmap(base, skew);
        }
        let tail = HUGE_ALIGN.wrapping_sub(skew);
        let _ = munmap(
            NonNull::new_unchecked(start.wrapping_add(len) as *mut _),
            tail,
        );
    }
    Ok(NonZeroUsize::new(start))
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
        let result = self.buffer.end_cpu_access(self.direction);
        std::mem::forget(self);
        result
    }
}

impl Drop for CpuAccess<'_> {
    fn drop(&mut self) {
        // An end that fails leaves nothing to undo; `end` reports it to callers who care.
        let _ = self.buffer.end_cpu_access(self.direction);
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

/// A CPU mapping of a whole buffer that can only be read, unmapped on drop.
#[derive(Debug)]
pub struct ReadOnlyMapping<'a>(Mapping<'a>);

impl ReadOnlyMapping<'_> {
    /// The mapped bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether the mapping is empty; mappings never are.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` describe a mapping made by `mmap` that no slice outlives.
        // munmap of a valid mapping cannot fail.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}
