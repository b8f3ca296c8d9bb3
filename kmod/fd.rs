// SPDX-License-Identifier: GPL-2.0

//! References taken from a caller's file descriptors: the file a transfer reads or writes
//! ([`FileRef`]), with its read and write calls, and the rsheap buffer on the other side
//! ([`BufferRef`]), through its own dma-buf or a read-only export.
//!
//! Each reference is counted for as long as it lives, so the file, or the dma-buf and its
//! pages, stay valid while a transfer uses them even if the caller closes the descriptor.

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

    /// Moves `len` bytes, in all, between file offset `pos` and the memory `segments` describe:
    /// a write to the file if `write`, else a read from it; by direct I/O if `direct`, else
    /// through the page cache. Returns when the I/O is complete, with the bytes moved; a read
    /// returns 0 at the end of the file.
    ///
    /// # Safety
    ///
    /// The pages `segments` name must stay allocated for the call.
    pub(crate) unsafe fn read_write(
        &self,
        write: bool,
        direct: bool,
        pos: u64,
        segments: &[bindings::bio_vec],
        len: usize,
    ) -> Result<usize> {
        // SAFETY: By the type invariants `file` is a live file; the caller guarantees the pages
        // `segments` describe stay allocated for the call, which waits for its I/O.
        let ret = unsafe {
            shim::rsheap_file_rw(
                self.file.as_ptr(),
                write,
                direct,
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

/// A counted reference to a dma-buf exported by rsheap: a buffer's own, or a read-only export
/// of one ([`ReadOnly`](crate::readonly::ReadOnly)).
///
/// # Invariants
///
/// `dmabuf` holds one reference taken by `dma_buf_get` and put when this drops, and `buffer`
/// is the rsheap buffer behind it, which lives at least as long as that reference: the
/// dma-buf's `priv`, or, if `read_only`, the buffer of the `ReadOnly` that is its `priv`,
/// which holds the buffer's dma-buf until its own release.
pub(crate) struct BufferRef {
    dmabuf: NonNull<DmaBuf>,
    buffer: NonNull<c_void>,
    read_only: bool,
}

impl BufferRef {
    /// The rsheap buffer open as `fd`: `EBADF` if `fd` is not open, `EINVAL` if it is not a
    /// dma-buf, `EXDEV` if another exporter made it. A read-only export gives its buffer, and
    /// says so ([`Self::is_read_only`]).
    pub(crate) fn get(fd: c_int) -> Result<Self> {
        let mut dmabuf = core::ptr::null_mut();
        let mut read_only = false;
        // SAFETY: `rsheap_dmabuf_get` accepts any number and on success stores a new reference
        // and what the dma-buf is.
        let got = unsafe { shim::rsheap_dmabuf_get(fd, &mut dmabuf, &mut read_only) };
        let private = from_err_ptr(got)?;
        let dmabuf = NonNull::new(dmabuf).ok_or(EINVAL)?;
        let buffer = NonNull::new(private).map(|private| {
            if read_only {
                // SAFETY: The `priv` of a read-only export is its `ReadOnly` until release,
                // which the reference just taken holds off.
                NonNull::from(unsafe { crate::ops::borrow_readonly(private.as_ptr()) }.buffer())
                    .cast()
            } else {
                private
            }
        });
        // INVARIANT: A reference from `dma_buf_get` to one of rsheap's dma-bufs, whose buffer
        // lives until the dma-buf's release, which this reference holds off.
        match buffer {
            Some(buffer) => Ok(Self {
                dmabuf,
                buffer,
                read_only,
            }),
            None => {
                // SAFETY: The reference was just taken and is not stored anywhere.
                unsafe { shim::rsheap_dmabuf_put(dmabuf.as_ptr()) };
                Err(EINVAL)
            }
        }
    }

    /// [`Self::get`], logging why `fd` was refused when it is open: the `what` request's
    /// message names the descriptor.
    pub(crate) fn get_for(what: &str, fd: c_int) -> Result<Self> {
        Self::get(fd).inspect_err(|&err| {
            let why = if err == EXDEV {
                "a dma-buf of another exporter"
            } else if err == EINVAL {
                "not a dma-buf"
            } else {
                return;
            };
            pr_info_ratelimited!("{}: refused buffer fd {}: {}\n", what, fd, why);
        })
    }

    /// Whether this is a read-only export of the buffer rather than the buffer's own dma-buf.
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The buffer.
    pub(crate) fn buffer(&self) -> &Buffer {
        // SAFETY: By the type invariants `buffer` is the live `priv` of the dma-buf this holds.
        unsafe { crate::ops::borrow(self.buffer.as_ptr()) }
    }

    /// How the dma-buf's file was opened (`fd_flags` at allocation; read-only for a read-only
    /// export).
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
