//! File contents straight into and out of rsheap buffers, through the control device
//! `/dev/rsheap`.
//!
//! A LOAD fills a buffer's pages from a file without mapping the buffer, by direct I/O for the
//! part of the range that meets the file's alignment, so model weights and frame dumps skip the
//! page cache and the copy out of it. Only buffers of rsheap's heaps qualify.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use nix::unistd::{lseek, Whence};

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
    /// Bytes to move; [`Span::TO_END`] for as many as the file (loads) or the buffer (stores)
    /// has past the offsets.
    pub len: u64,
}

impl Span {
    /// The length that means "up to the end": of the file for loads, also bounded by the
    /// buffer, and of the buffer for stores.
    pub const TO_END: u64 = u64::MAX;

    /// The first `len` bytes of both the file and the buffer.
    pub fn start(len: u64) -> Self {
        Self {
            file_offset: 0,
            buffer_offset: 0,
            len,
        }
    }

    /// The whole file into the buffer's start, or the whole buffer into the file's start.
    pub fn whole() -> Self {
        Self::start(Self::TO_END)
    }

    /// This span with [`Span::TO_END`] replaced by the bytes there are in `file` (for a
    /// load) and `buffer`.
    fn resolve(self, file: &impl AsFd, buffer: &Buffer, store: bool) -> Result<Self> {
        if self.len != Self::TO_END {
            return Ok(self);
        }
        let in_buffer = (buffer.len() as u64).saturating_sub(self.buffer_offset);
        let len = if store {
            in_buffer
        } else {
            in_buffer.min(file_len(file)?.saturating_sub(self.file_offset))
        };
        Ok(Self { len, ..self })
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

/// The bytes a transfer with progress moves between two reports: small enough to report a few
/// times a second at disk speed, large enough that the extra calls cost nothing measurable.
pub const PROGRESS_STEP: u64 = 64 << 20;

/// The size of `file` (of the device, for a block device), leaving its position as it was.
fn file_len(file: &impl AsFd) -> Result<u64> {
    let fd = file.as_fd().as_raw_fd();
    let size = |errno| Error::os("size of the file", errno);
    let position = lseek(fd, 0, Whence::SeekCur).map_err(size)?;
    let end = lseek(fd, 0, Whence::SeekEnd).map_err(size)?;
    lseek(fd, position, Whence::SeekSet).map_err(size)?;
    Ok(end.max(0) as u64)
}

/// The open control device.
#[derive(Debug)]
pub struct FileIo {
    device: File,
}

/// Opens [`CONTROL_DEVICE`]: a new open file, and so a new account.
pub(crate) fn open_control_device() -> Result<File> {
    OpenOptions::new()
        .read(true)
        .open(CONTROL_DEVICE)
        .map_err(|err| Error::io(format!("open {CONTROL_DEVICE}"), &err))
}

impl FileIo {
    /// Opens [`CONTROL_DEVICE`].
    pub fn open() -> Result<Self> {
        Ok(Self {
            device: open_control_device()?,
        })
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

    /// Loads as [`FileIo::load`] does, in steps of [`PROGRESS_STEP`], calling
    /// `progress(done, total)` after each.
    pub fn load_with_progress(
        &self,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transferred> {
        self.transfer_in_steps(false, file, buffer, span, path, progress)
    }

    /// Stores as [`FileIo::store`] does, in steps of [`PROGRESS_STEP`], calling
    /// `progress(done, total)` after each.
    pub fn store_with_progress(
        &self,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transferred> {
        self.transfer_in_steps(true, file, buffer, span, path, progress)
    }

    /// Opens the file at `path` and loads `span` of it into `buffer`, with progress.
    pub fn load_path(
        &self,
        path: &Path,
        buffer: &Buffer,
        span: Span,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transferred> {
        let file =
            File::open(path).map_err(|err| Error::io(format!("open {}", path.display()), &err))?;
        self.load_with_progress(&file, buffer, span, IoPath::Auto, progress)
    }

    /// Creates the file at `path`, or truncates it, and stores `span` of `buffer` into it, with
    /// progress.
    pub fn store_path(
        &self,
        path: &Path,
        buffer: &Buffer,
        span: Span,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transferred> {
        let file = File::create(path)
            .map_err(|err| Error::io(format!("create {}", path.display()), &err))?;
        self.store_with_progress(&file, buffer, span, IoPath::Auto, progress)
    }

    fn transfer_in_steps(
        &self,
        store: bool,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Transferred> {
        let span = span.resolve(file, buffer, store)?;
        let mut done = Transferred {
            bytes: 0,
            direct_bytes: 0,
        };
        progress(0, span.len);
        while done.bytes < span.len {
            // `resolve` checked the span against the file's and the buffer's limits.
            let step = Span {
                file_offset: span.file_offset.saturating_add(done.bytes),
                buffer_offset: span.buffer_offset.saturating_add(done.bytes),
                len: span.len.saturating_sub(done.bytes).min(PROGRESS_STEP),
            };
            let moved = self.transfer(store, file, buffer, step, path)?;
            done.bytes = done.bytes.saturating_add(moved.bytes);
            done.direct_bytes = done.direct_bytes.saturating_add(moved.direct_bytes);
            progress(done.bytes, span.len);
            if moved.bytes < step.len {
                // The file ended.
                break;
            }
        }
        Ok(done)
    }

    fn transfer(
        &self,
        store: bool,
        file: &impl AsFd,
        buffer: &Buffer,
        span: Span,
        path: IoPath,
    ) -> Result<Transferred> {
        let span = span.resolve(file, buffer, store)?;
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
