// SPDX-License-Identifier: GPL-2.0

//! References taken from a caller's file descriptors: the file a transfer reads or writes
//! ([`FileRef`]) and the rsheap buffer on the other side ([`BufferRef`]); and I/O on that
//! file that may still run after its call returns ([`AsyncIo`]).
//!
//! Each reference is counted for as long as it lives, so the file, or the dma-buf and its
//! pages, stay valid while a transfer uses them even if the caller closes the descriptor.

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::kernel::bindings::{self, c_int, c_uint, c_void, consts};
use crate::kernel::error::from_err_ptr;
use crate::kernel::page::PAGE_SIZE;
use crate::kernel::prelude::*;

use crate::buffer::Buffer;
use crate::shim::{self, DmaBuf};

/// How a file may be used, as opened.
#[derive(Clone, Copy)]
pub(crate) struct Access {
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// Opened with `O_APPEND`: writes go to the end whatever the offset.
    pub(crate) append: bool,
    /// The file supports direct I/O.
    pub(crate) direct: bool,
}

impl Access {
    fn from_bits(bits: c_uint) -> Self {
        Self {
            read: bits & shim::ACCESS_READ != 0,
            write: bits & shim::ACCESS_WRITE != 0,
            append: bits & shim::ACCESS_APPEND != 0,
            direct: bits & shim::ACCESS_DIRECT != 0,
        }
    }
}

/// What kind of file a descriptor names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Regular,
    BlockDevice,
    Directory,
    /// A pipe or a socket: no offsets.
    Stream,
    Other,
}

/// A counted reference to an open file.
///
/// # Invariants
///
/// `file` holds one reference taken by `fget`, put when this drops.
pub(crate) struct FileRef {
    file: NonNull<bindings::file>,
}

impl FileRef {
    /// The file open as `fd` in the calling process; `EBADF` if there is none.
    pub(crate) fn get(fd: c_int) -> Result<Self> {
        let fd = c_uint::try_from(fd).map_err(|_| EBADF)?;
        // SAFETY: `fget` accepts any number and returns a new reference or null.
        let file = NonNull::new(unsafe { bindings::fget(fd) }).ok_or(EBADF)?;
        // INVARIANT: A reference from `fget`.
        Ok(Self { file })
    }

    /// What kind of file this is.
    pub(crate) fn kind(&self) -> FileKind {
        // SAFETY: By the type invariants `file` is a live file.
        let kind = unsafe { shim::rsheap_file_type(self.file.as_ptr()) };
        match kind {
            consts::S_IFREG => FileKind::Regular,
            consts::S_IFBLK => FileKind::BlockDevice,
            consts::S_IFDIR => FileKind::Directory,
            consts::S_IFIFO | consts::S_IFSOCK => FileKind::Stream,
            _ => FileKind::Other,
        }
    }

    /// How the file was opened.
    pub(crate) fn access(&self) -> Access {
        // SAFETY: By the type invariants `file` is a live file.
        Access::from_bits(unsafe { shim::rsheap_file_access(self.file.as_ptr()) })
    }

    /// The file's size in bytes, sampled now.
    pub(crate) fn size(&self) -> u64 {
        // SAFETY: By the type invariants `file` is a live file.
        unsafe { shim::rsheap_file_size(self.file.as_ptr()) }
    }

    /// The alignment direct I/O needs of file offsets, lengths and memory (the larger of the
    /// file's two `STATX_DIOALIGN` figures), or `None` if the file has no direct I/O or needs
    /// more than a page, which chunk boundaries in a buffer do not guarantee.
    pub(crate) fn direct_io_alignment(&self) -> Option<usize> {
        let (mut offset_align, mut mem_align) = (0u32, 0u32);
        // SAFETY: By the type invariants `file` is a live file; both outputs are valid.
        unsafe {
            shim::rsheap_file_dio_align(self.file.as_ptr(), &mut offset_align, &mut mem_align)
        };
        let align = usize::try_from(offset_align.max(mem_align)).ok()?;
        let usable = offset_align != 0 && mem_align != 0 && align.is_power_of_two();
        (usable && align <= PAGE_SIZE).then_some(align)
    }

    /// Moves `len` bytes, in all, between file offset `pos` and the memory `segments` describe,
    /// through the page cache: a write to the file if `write`, else a read from it. Returns the
    /// bytes moved; a read returns 0 at the end of the file.
    ///
    /// # Safety
    ///
    /// The pages `segments` name must stay allocated for the call.
    pub(crate) unsafe fn read_write_buffered(
        &self,
        write: bool,
        pos: u64,
        segments: &[bindings::bio_vec],
        len: usize,
    ) -> Result<usize> {
        // SAFETY: By the type invariants `file` is a live file; the caller guarantees the pages
        // `segments` describe stay allocated for the call.
        let ret = unsafe {
            shim::rsheap_file_rw_buffered(
                self.file.as_ptr(),
                write,
                pos,
                segments.as_ptr(),
                segments.len(),
                len,
            )
        };
        byte_count(ret)
    }
}

/// The result of a read or write: a byte count, or a negative errno.
fn byte_count(ret: isize) -> Result<usize> {
    if ret < 0 {
        // A negative errno fits an `i32`; anything else becomes `EINVAL`.
        return Err(Error::from_errno(i32::try_from(ret).unwrap_or(i32::MIN)));
    }
    Ok(ret.unsigned_abs())
}

impl Drop for FileRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariants this owns one reference, given back here.
        unsafe { bindings::fput(self.file.as_ptr()) };
    }
}

/// Where an [`AsyncIo`] stands.
enum AsyncState {
    /// No request, or its result was taken.
    Idle,
    /// Issued and not yet complete.
    InFlight,
    /// Complete, with this result.
    Done(Result<usize>),
}

/// A direct read or write of a file that may still be in flight when [`AsyncIo::start`]
/// returns, and the page vectors it moves bytes through.
///
/// # Invariants
///
/// `aio` is a request from `rsheap_aio_alloc`, freed on drop. While the state is `InFlight` the
/// kernel reads `segments` and moves bytes to or from the pages they name, so `segments` is
/// handed out only when no request is in flight, and drop waits for one that is.
pub(crate) struct AsyncIo<'a> {
    aio: NonNull<shim::Aio>,
    segments: KVec<bindings::bio_vec>,
    state: AsyncState,
    /// The files of requests in flight are borrowed for as long as this lives.
    file: PhantomData<&'a FileRef>,
}

// SAFETY: The request is only used through `&mut self`, from whichever thread owns this.
unsafe impl Send for AsyncIo<'_> {}

impl<'a> AsyncIo<'a> {
    /// A request with room for `capacity` page vectors.
    pub(crate) fn new(capacity: usize) -> Result<Self> {
        let segments = KVec::with_capacity(capacity, GFP_KERNEL)?;
        // SAFETY: No preconditions; returns a zeroed request or null.
        let aio = NonNull::new(unsafe { shim::rsheap_aio_alloc() }).ok_or(ENOMEM)?;
        // INVARIANT: A fresh request, not in flight.
        Ok(Self {
            aio,
            segments,
            state: AsyncState::Idle,
            file: PhantomData,
        })
    }

    /// The page vectors, to describe the next request with; `EBUSY` while one is in flight.
    pub(crate) fn segments(&mut self) -> Result<&mut KVec<bindings::bio_vec>> {
        match self.state {
            AsyncState::InFlight => Err(EBUSY),
            _ => Ok(&mut self.segments),
        }
    }

    /// Issues a direct read of `file` at `pos` into the pages `segments` name, `len` bytes in
    /// all, or a write from them if `write`. The result comes from [`Self::finish`]; `EBUSY`
    /// here means a request is still in flight.
    ///
    /// # Safety
    ///
    /// The pages `segments` name must stay allocated until the request completes, that is
    /// until [`Self::finish`] returns or this value drops.
    pub(crate) unsafe fn start(
        &mut self,
        file: &'a FileRef,
        write: bool,
        pos: u64,
        len: usize,
    ) -> Result {
        if let AsyncState::InFlight = self.state {
            return Err(EBUSY);
        }
        // SAFETY: `aio` is idle, `file` outlives the request (drop waits for it), `segments` stay
        // put by the type invariants and their pages stay allocated as the caller guarantees.
        let ret = unsafe {
            shim::rsheap_aio_submit(
                self.aio.as_ptr(),
                file.file.as_ptr(),
                write,
                pos,
                self.segments.as_ptr(),
                self.segments.len(),
                len,
            )
        };
        self.state = if ret == EIOCBQUEUED.to_errno() as isize {
            AsyncState::InFlight
        } else {
            AsyncState::Done(byte_count(ret))
        };
        Ok(())
    }

    /// Waits for the request issued last and returns its byte count.
    pub(crate) fn finish(&mut self) -> Result<usize> {
        match core::mem::replace(&mut self.state, AsyncState::Idle) {
            AsyncState::Idle => Err(EINVAL),
            AsyncState::Done(result) => result,
            AsyncState::InFlight => {
                // SAFETY: The request is in flight; this waits for its completion.
                byte_count(unsafe { shim::rsheap_aio_wait(self.aio.as_ptr()) })
            }
        }
    }
}

impl Drop for AsyncIo<'_> {
    fn drop(&mut self) {
        if let AsyncState::InFlight = self.state {
            // The kernel still uses the request and `segments`: wait for it first.
            let _ = self.finish();
        }
        // SAFETY: By the type invariants `aio` came from `rsheap_aio_alloc`, and no request is
        // in flight any more.
        unsafe { shim::rsheap_aio_free(self.aio.as_ptr()) };
    }
}

/// A counted reference to a dma-buf exported by an rsheap heap.
///
/// # Invariants
///
/// `dmabuf` holds one reference taken by `dma_buf_get` and put when this drops, and `buffer`
/// is its `priv`, an rsheap buffer, which lives at least as long as that reference.
pub(crate) struct BufferRef {
    dmabuf: NonNull<DmaBuf>,
    buffer: NonNull<c_void>,
}

impl BufferRef {
    /// The rsheap buffer open as `fd`: `EBADF` if `fd` is not open, `EINVAL` if it is not a
    /// dma-buf, `EXDEV` if another exporter made it.
    pub(crate) fn get(fd: c_int) -> Result<Self> {
        let mut dmabuf = core::ptr::null_mut();
        // SAFETY: `rsheap_dmabuf_get` accepts any number and on success stores a new reference.
        let buffer = from_err_ptr(unsafe { shim::rsheap_dmabuf_get(fd, &mut dmabuf) })?;
        let dmabuf = NonNull::new(dmabuf).ok_or(EINVAL)?;
        // INVARIANT: A reference from `dma_buf_get` to one of rsheap's dma-bufs, whose `priv`
        // is its buffer until release, which this reference holds off.
        match NonNull::new(buffer) {
            Some(buffer) => Ok(Self { dmabuf, buffer }),
            None => {
                // SAFETY: The reference was just taken and is not stored anywhere.
                unsafe { shim::rsheap_dmabuf_put(dmabuf.as_ptr()) };
                Err(EINVAL)
            }
        }
    }

    /// The buffer.
    pub(crate) fn buffer(&self) -> &Buffer {
        // SAFETY: By the type invariants `buffer` is the live `priv` of the dma-buf this holds.
        unsafe { crate::ops::borrow(self.buffer.as_ptr()) }
    }

    /// How the dma-buf's file was opened (`fd_flags` at allocation).
    pub(crate) fn access(&self) -> Access {
        // SAFETY: By the type invariants `dmabuf` is a live dma-buf.
        Access::from_bits(unsafe { shim::rsheap_dmabuf_access(self.dmabuf.as_ptr()) })
    }
}

impl Drop for BufferRef {
    fn drop(&mut self) {
        // SAFETY: By the type invariants this owns one reference, given back here.
        unsafe { shim::rsheap_dmabuf_put(self.dmabuf.as_ptr()) };
    }
}
