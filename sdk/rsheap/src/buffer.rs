//! A dma-buf: its file descriptor, CPU mappings and CPU-access bracketing.

use std::ffi::CString;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
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
///
/// The mapped memory is shared: devices, other processes and other mappings of the buffer
/// may write it at any time. A Rust reference to memory that changes under it is undefined
/// behaviour (a `&[u8]` promises the compiler the bytes stay put, a `&mut [u8]` that nothing
/// else reaches them), so safe code never gets one. Instead it copies:
/// [`read_at`](Self::read_at), [`write_at`](Self::write_at), [`fill`](Self::fill) and
/// [`to_vec`](Self::to_vec). Code that can promise the bytes hold still may take a slice with
/// the `unsafe` [`as_slice`](Self::as_slice) and [`as_mut_slice`](Self::as_mut_slice).
///
/// # Why the copies are sound
///
/// They form no reference to the mapping: each one copies between it and memory the caller
/// owns through raw pointers (`ptr::copy_nonoverlapping`, `ptr::write_bytes`), within the
/// mapped range, which stays mapped for as long as `self` lives. The compiler then assumes
/// nothing about the mapped bytes between accesses, every bit pattern is a valid `u8`, and
/// the destination is the caller's own. What another writer does meanwhile can only decide
/// which values arrive: bytes it changes during a copy may come out old or new, which is why
/// CPU access is bracketed ([`Buffer::cpu_access`]) and ordered by the pipeline's own
/// handshakes. Within this process, writes take `&mut self` and a `Mapping` is not `Sync`, so
/// one mapping's copies never race one another; two mappings of one buffer race as the CPU
/// and a device do, which a copy tolerates and a reference would not.
#[derive(Debug)]
pub struct Mapping<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _buffer: &'a Buffer,
}

impl Mapping<'_> {
    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty; mappings never are.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first mapped byte, for code that hands the mapping to another API (a device
    /// driver's ioctl, a Java direct buffer) and takes on the rules of [`Self::as_slice`].
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The first mapped byte, writable; as [`Self::as_ptr`], with the rules of
    /// [`Self::as_mut_slice`] for whoever writes through it.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Gives up the mapping without unmapping it, for code that hands it across a boundary
    /// where no lifetime follows it (a C API): the caller owns the `len` bytes at the returned
    /// address and unmaps them with `munmap`. They stay mapped after the buffer's file
    /// descriptor closes, as every mapping of a dma-buf does.
    pub fn into_raw(self) -> (NonNull<u8>, usize) {
        let raw = (self.ptr, self.len);
        std::mem::forget(self);
        raw
    }

    /// Copies `dst.len()` bytes starting at `offset` into `dst`.
    ///
    /// Fails with [`Error::InvalidArgument`] when the range does not lie within the mapping.
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let src = self.range(offset, dst.len())?;
        // SAFETY: `range` checked that `src` starts `dst.len()` readable mapped bytes, which
        // stay mapped while `self` lives; `dst` is the caller's own memory, so the two do not
        // overlap. No reference to the mapping is formed (see the type's docs).
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies `src` into the mapping, starting at `offset`.
    ///
    /// Fails with [`Error::InvalidArgument`] when the range does not lie within the mapping.
    pub fn write_at(&mut self, offset: usize, src: &[u8]) -> Result<()> {
        let dst = self.range(offset, src.len())?.cast_mut();
        // SAFETY: `range` checked that `dst` starts `src.len()` mapped bytes, writable as this
        // is a read-write mapping, which stay mapped while `self` lives; `src` is the caller's
        // own memory, so the two do not overlap. No reference to the mapping is formed.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Reads up to `len` bytes of `file`, from `file_offset`, into the mapping at `offset`
    /// with one `pread`, and returns how many arrived (0 at the end of the file).
    ///
    /// The kernel copies straight into the mapping, with no slice of it formed here: this is
    /// how to fill a mapping from a file without a bounce buffer. Fails with
    /// [`Error::InvalidArgument`] when the range does not lie within the mapping, and with
    /// the errno otherwise (`EINTR` included, for the caller to retry).
    pub fn read_file_at(
        &mut self,
        offset: usize,
        len: usize,
        file: BorrowedFd<'_>,
        file_offset: u64,
    ) -> Result<usize> {
        let dst = self.range(offset, len)?.cast_mut();
        let file_offset = nix::libc::off_t::try_from(file_offset)
            .map_err(|_| Error::InvalidArgument(format!("file offset {file_offset}")))?;
        // SAFETY: `range` checked that `dst` starts `len` mapped bytes, writable as this is a
        // read-write mapping, which stay mapped for the call; the kernel writes them as it
        // would a device's memory, and no reference to them is formed.
        let read = unsafe { nix::libc::pread(file.as_raw_fd(), dst.cast(), len, file_offset) };
        usize::try_from(read).map_err(|_| {
            Error::os(
                format!("read {len} bytes at offset {file_offset} into a mapping"),
                Errno::last(),
            )
        })
    }

    /// Sets every mapped byte to `byte`.
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: `ptr` starts `len` mapped bytes, writable as this is a read-write mapping,
        // which stay mapped while `self` lives. No reference to the mapping is formed.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr(), byte, self.len) };
    }

    /// A copy of every mapped byte.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.len];
        // SAFETY: `ptr` starts `len` readable mapped bytes, which stay mapped while `self`
        // lives; `bytes` is a fresh allocation of `len` bytes. No reference to the mapping is
        // formed.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), bytes.as_mut_ptr(), self.len) };
        bytes
    }

    /// The mapped bytes as a slice.
    ///
    /// # Safety
    ///
    /// For as long as the slice lives, nothing may write the mapped bytes: no other mapping
    /// of the buffer in this or any process, no device, and no import of the buffer (a
    /// `/dev/rsheap` load, the broker). A buffer this process allocated, has not shared and
    /// writes through no other mapping meets this; one that a device or another process may
    /// be filling does not.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives, and the caller
        // guarantees that nothing writes them while the slice lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes as a writable slice.
    ///
    /// # Safety
    ///
    /// For as long as the slice lives, nothing else may read or write the mapped bytes: no
    /// other mapping of the buffer in this or any process, no device, and no import of the
    /// buffer. `&mut self` already rules out every other view through this mapping.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` writable bytes for as long as `self` lives, `&mut self`
        // makes this the only view through this mapping, and the caller guarantees that
        // nothing else reaches the bytes while the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The start of `len` mapped bytes at `offset`, or an error naming the range if they do
    /// not all lie within the mapping.
    fn range(&self, offset: usize, len: usize) -> Result<*const u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: `offset <= end <= self.len`, so the result stays within the mapping.
                Ok(unsafe { self.ptr.as_ptr().add(offset) })
            }
            _ => Err(Error::InvalidArgument(format!(
                "{len} bytes at offset {offset} do not fit a mapping of {} bytes",
                self.len
            ))),
        }
    }
}

/// A CPU mapping of a whole buffer that can only be read, unmapped on drop.
///
/// Its bytes are shared memory like a [`Mapping`]'s, and read the same way: by copying, or
/// through the `unsafe` [`as_slice`](Self::as_slice).
#[derive(Debug)]
pub struct ReadOnlyMapping<'a>(Mapping<'a>);

impl ReadOnlyMapping<'_> {
    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Whether the mapping is empty; mappings never are.
    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// The first mapped byte; see [`Mapping::as_ptr`].
    pub fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// Gives up the mapping without unmapping it; see [`Mapping::into_raw`].
    pub fn into_raw(self) -> (NonNull<u8>, usize) {
        self.0.into_raw()
    }

    /// Copies `dst.len()` bytes starting at `offset` into `dst`; see [`Mapping::read_at`].
    pub fn read_at(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.0.read_at(offset, dst)
    }

    /// A copy of every mapped byte.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// The mapped bytes as a slice.
    ///
    /// # Safety
    ///
    /// As for [`Mapping::as_slice`]: nothing may write the bytes while the slice lives. The
    /// owner of a buffer shared read-only keeps its own writable access, so this holds only
    /// while the owner is known to be done with it.
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: The caller upholds the same contract.
        unsafe { self.0.as_slice() }
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` describe a mapping made by `mmap`; every slice of it borrows
        // `self`, so none outlives it. munmap of a valid mapping cannot fail.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;

    use super::*;

    /// A buffer over an unlinked temporary file of `len` bytes: mapped the same way as a
    /// dma-buf, and there on any host.
    fn file_buffer(len: u64) -> Buffer {
        let path =
            std::env::temp_dir().join(format!("rsheap-mapping-{}-{len}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create a file");
        std::fs::remove_file(&path).expect("unlink it");
        file.set_len(len).expect("size it");
        Buffer::from_fd(file.into()).expect("a buffer")
    }

    #[test]
    fn copies_reach_the_mapped_bytes_and_other_mappings_see_them() {
        let page = page_size();
        let buffer = file_buffer(3 * page as u64);
        let mut mapping = buffer.map().expect("map");
        mapping.fill(7);
        mapping
            .write_at(page - 2, b"abcd")
            .expect("write across a page");
        let other = buffer.map_read_only().expect("map again");
        let mut read = [0; 6];
        other.read_at(page - 3, &mut read).expect("read");
        assert_eq!(&read, b"\x07abcd\x07");
        let all = mapping.to_vec();
        assert_eq!(all.len(), 3 * page);
        assert!(all.iter().filter(|&&b| b == 7).count() == 3 * page - 4);
        let tail = buffer.map_range(2 * page, page).expect("map the last page");
        assert_eq!(tail.to_vec(), vec![7; page]);
    }

    #[test]
    fn copies_outside_the_mapping_are_refused() {
        let page = page_size();
        let buffer = file_buffer(page as u64);
        let mut mapping = buffer.map().expect("map");
        let mut one = [0];
        assert!(mapping.read_at(page - 1, &mut one).is_ok());
        assert!(matches!(
            mapping.read_at(page, &mut one),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            mapping.write_at(usize::MAX, &[1, 2]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(
            mapping.write_at(page, &[]).is_ok(),
            "an empty copy at the end"
        );
        let file = File::open("/proc/self/exe").expect("a file");
        assert!(matches!(
            mapping.read_file_at(1, page, file.as_fd(), 0),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_file_reads_straight_into_the_mapping() {
        let page = page_size();
        let buffer = file_buffer(2 * page as u64);
        let mut mapping = buffer.map().expect("map");
        let mut source = source_file(b"0123456789");
        source.flush().expect("flush");
        let read = mapping
            .read_file_at(page, 8, source.as_fd(), 2)
            .expect("read");
        assert_eq!(read, 8);
        let mut bytes = [0; 9];
        mapping.read_at(page, &mut bytes).expect("read back");
        assert_eq!(&bytes, b"23456789\0");
        let at_end = mapping
            .read_file_at(0, 4, source.as_fd(), 10)
            .expect("read");
        assert_eq!(at_end, 0, "nothing past the end of the file");
    }

    /// An unlinked temporary file holding `bytes`.
    fn source_file(bytes: &[u8]) -> File {
        let path = std::env::temp_dir().join(format!("rsheap-source-{}", std::process::id()));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create a file");
        std::fs::remove_file(&path).expect("unlink it");
        file.write_all(bytes).expect("write it");
        file
    }
}
