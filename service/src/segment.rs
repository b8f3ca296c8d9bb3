//! File segments to load: checked against the buffer they go into and the file they come
//! from before anything is queued.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::stat::{fstat, SFlag};

use crate::error::{BrokerError, Result};
use crate::loader::LoadJob;
use crate::session::SessionId;

/// A file range to load, as the client gave it.
#[derive(Debug)]
pub struct SegmentSpec {
    /// The file.
    pub file: OwnedFd,
    /// Where in the file.
    pub file_offset: i64,
    /// Bytes, or -1 for up to the end of the file or the buffer.
    pub length: i64,
    /// Where in the buffer.
    pub buffer_offset: i64,
}

/// A segment that fits its buffer and whose file can be read.
#[derive(Debug)]
pub struct CheckedSegment {
    file: OwnedFd,
    file_offset: u64,
    buffer_offset: u64,
    len: u64,
    expected: u64,
}

impl CheckedSegment {
    /// Checks `segment` against a buffer of `size` bytes (`what` names it in messages).
    pub fn new(segment: SegmentSpec, size: u64, what: &str) -> Result<Self> {
        let (file_offset, buffer_offset) = match (
            u64::try_from(segment.file_offset),
            u64::try_from(segment.buffer_offset),
        ) {
            (Ok(file), Ok(buffer)) => (file, buffer),
            _ => return Err(BrokerError::invalid("offsets must not be negative")),
        };
        if buffer_offset > size {
            return Err(BrokerError::invalid(format!(
                "buffer offset {buffer_offset} is past the end of {what} ({size} bytes)"
            )));
        }
        let room = size.saturating_sub(buffer_offset);
        let len = match segment.length {
            -1 => room,
            length => u64::try_from(length)
                .ok()
                .filter(|&length| length <= room)
                .ok_or_else(|| {
                    BrokerError::invalid(format!(
                        "length {length} does not fit {what} ({room} bytes from offset {buffer_offset})"
                    ))
                })?,
        };
        if file_offset
            .checked_add(len)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(BrokerError::invalid("the file range overflows"));
        }
        let stat = fstat(segment.file.as_raw_fd())
            .map_err(|errno| BrokerError::from_os(errno, "cannot stat the file"))?;
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        let expected = match kind {
            SFlag::S_IFREG => {
                let file_size = u64::try_from(stat.st_size).unwrap_or(0);
                len.min(file_size.saturating_sub(file_offset))
            }
            SFlag::S_IFBLK => len,
            _ => {
                return Err(BrokerError::invalid(
                    "the file must be a regular file or a block device",
                ))
            }
        };
        let flags = fcntl(segment.file.as_raw_fd(), FcntlArg::F_GETFL)
            .map_err(|errno| BrokerError::from_os(errno, "cannot read the file's flags"))?;
        if OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE == OFlag::O_WRONLY {
            return Err(BrokerError::invalid("the file is not open for reading"));
        }
        Ok(Self {
            file: segment.file,
            file_offset,
            buffer_offset,
            len,
            expected,
        })
    }

    /// The load of this segment into `buffer`, buffer `buffer_id` of `session`.
    pub fn into_job(
        self,
        session: SessionId,
        buffer_id: i64,
        buffer: Arc<rsheap::Buffer>,
    ) -> LoadJob {
        LoadJob {
            client: session,
            buffer_id,
            buffer,
            file: self.file,
            file_offset: self.file_offset,
            buffer_offset: self.buffer_offset,
            len: self.len,
            expected: self.expected,
        }
    }
}
