//! File contents straight into and out of rsheap buffers, through the control device
//! `/dev/rsheap`.
//!
//! A LOAD fills a buffer's pages from a file without mapping the buffer, by direct I/O for the
//! part of the range that meets the file's alignment, so model weights and frame dumps skip the
//! page cache and the copy out of it. Only buffers of rsheap's heaps qualify.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};

use crate::heap::io_errno;
use crate::uapi::{self, RsheapTransfer};
use crate::{Buffer, Error, Result};

/// The control device of rsheap.ko.
pub const CONTROL_DEVICE: &str = "/dev/rsheap";

/// Which part of a file and of a buffer a transfer covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Where in the file the range starts.
    pub file_offset: u64,
    /// Where in the buffer the range starts.
    pub buffer_offset: u64,
    /// Bytes to move.
    pub len: u64,
}

impl Span {
    /// The first `len` bytes of both the file and the buffer.
    pub fn start(len: u64) -> Self {
        Self {
            file_offset: 0,
            buffer_offset: 0,
            len,
        }
    }
}

/// How bytes may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoPath {
    /// Direct I/O where the file and the offsets allow, the page cache for the rest.
    #[default]
    Auto,
    /// The page cache only.
    Buffered,
}

/// What a transfer moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    /// Bytes moved; less than asked for only when a load reached the end of the file.
    pub bytes: u64,
    /// How many of them moved by direct I/O.
    pub direct_bytes: u64,
}

/// The open control device.
#[derive(Debug)]
pub struct FileIo {
    device: File,
}

impl FileIo {
    /// Opens [`CONTROL_DEVICE`].
    pub fn open() -> Result<Self> {
        let device = OpenOptions::new()
            .read(true)
            .open(CONTROL_DEVICE)
            .map_err(|err| Error::os(format!("open {CONTROL_DEVICE}"), io_errno(&err)))?;
        Ok(Self { device })
    }

    /// Reads `span` of `file` into `buffer`. At the end of the file the count comes back
    /// short and the rest of the buffer range stays as it was.
    pub fn load(
        &self,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
    ) -> Result<Transferred> {
        self.transfer(false, file, buffer, span, path)
    }

    /// Writes `span` of `buffer` into `file`, extending it if needed.
    pub fn store(
        &self,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
    ) -> Result<Transferred> {
        self.transfer(true, file, buffer, span, path)
    }

    fn transfer(
        &self,
        store: bool,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
    ) -> Result<Transferred> {
        let mut request = RsheapTransfer {
            flags: match path {
                IoPath::Auto => 0,
                IoPath::Buffered => uapi::RSHEAP_TRANSFER_BUFFERED,
            },
            file_fd: file.as_fd().as_raw_fd(),
            buf_fd: buffer.as_fd().as_raw_fd(),
            file_offset: span.file_offset,
            buf_offset: span.buffer_offset,
            length: span.len,
            ..RsheapTransfer::new()
        };
        let device = self.device.as_raw_fd();
        // SAFETY: `request` is a valid `struct rsheap_transfer` for the duration of the call.
        let result = unsafe {
            if store {
                uapi::rsheap_ioc_store(device, &mut request)
            } else {
                uapi::rsheap_ioc_load(device, &mut request)
            }
        };
        result.map_err(|errno| {
            let (verb, dir) = if store {
                ("store", "from")
            } else {
                ("load", "into")
            };
            Error::os(
                format!(
                    "{verb} {} bytes at file offset {} {dir} buffer offset {}",
                    span.len, span.file_offset, span.buffer_offset
                ),
                errno,
            )
        })?;
        Ok(Transferred {
            bytes: request.bytes,
            direct_bytes: request.direct_bytes,
        })
    }
}
