// SPDX-License-Identifier: GPL-2.0

//! File I/O straight into and out of buffers: the LOAD and STORE requests of `/dev/rsheap`.
//!
//! NPU runtimes load model weights into buffers and camera tools dump and replay frames. A
//! dma-buf's CPU mapping is a PFN mapping, which `O_DIRECT` cannot target, so without this a
//! load pays for the page cache and a copy. The heap owns the pages and can do better: the
//! part of a range that meets the file's direct I/O alignment moves by direct I/O between the
//! device and the buffer's pages; the unaligned head and tail, and files without direct I/O,
//! go through the page cache. Either way the kernel's own read and write paths do the I/O,
//! over page vectors that describe the buffer's chunks.
//!
//! A transfer goes in steps of at most [`MAX_SEGMENTS`] page vectors, so one of any size
//! needs one small array, and stops between steps if the caller gets a fatal signal. Steps run
//! one after the other: a step is issued only once the one before it has completed in full,
//! so a step that fails or comes back short ends the transfer with nothing issued past it (a
//! STORE never writes, and a LOAD never fills, beyond the step that stopped). Within a step
//! the block layer keeps the device busy with many requests at once. Steps grow while they
//! finish quickly: they are sized to take about [`STEP_MS`] milliseconds each, between
//! [`MIN_STEP`] and [`MAX_STEP`] bytes, so fast storage gets large requests and slow storage
//! still sees a fatal signal within a fraction of a second.
//!
//! The rules callers rely on are documented in `include/uapi/linux/rsheap.h`.

use crate::kernel::bindings::{self, c_int};
use crate::kernel::page::{PAGE_SHIFT, PAGE_SIZE};
use crate::kernel::prelude::*;
use crate::kernel::time::Instant;

use crate::buffer::TransferTarget;
use crate::fd::{BufferRef, FileKind, FileRef};
use crate::heap::Heap;
use crate::pages::PageSet;
use crate::shim;

/// The size of a transfer's first step.
const MIN_STEP: usize = 16 << 20;
/// The most one step moves.
const MAX_STEP: usize = 1 << 30;
/// How long a step should take, in milliseconds.
const STEP_MS: i64 = 100;
/// The most page vectors one step uses (an 8 KiB array): 1 GiB of 2 MiB chunks.
const MAX_SEGMENTS: usize = 512;

/// `RSHEAP_TRANSFER_BUFFERED`: never use direct I/O.
const FLAG_BUFFERED: u32 = 1 << 0;
/// `RSHEAP_TRANSFER_FLAGS`.
const KNOWN_FLAGS: u32 = FLAG_BUFFERED;

/// Which way the bytes go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// File to buffer.
    Load,
    /// Buffer to file.
    Store,
}

/// A LOAD or STORE request, as the caller gave it.
pub(crate) struct Request {
    pub(crate) direction: Direction,
    pub(crate) flags: u32,
    pub(crate) file_fd: c_int,
    pub(crate) buf_fd: c_int,
    pub(crate) file_offset: u64,
    pub(crate) buf_offset: u64,
    pub(crate) length: u64,
}

/// What a transfer moved.
#[derive(Default)]
pub(crate) struct Moved {
    /// Bytes moved.
    pub(crate) bytes: u64,
    /// How many of them moved by direct I/O.
    pub(crate) direct: u64,
}

impl Request {
    /// The request's name in log messages.
    fn name(&self) -> &'static str {
        match self.direction {
            Direction::Load => "LOAD",
            Direction::Store => "STORE",
        }
    }

    /// The file, if it is one a transfer can use in this direction.
    fn open_file(&self) -> Result<FileRef> {
        let store = self.direction == Direction::Store;
        let file = FileRef::get(self.file_fd)?;
        match file.kind() {
            FileKind::Regular | FileKind::BlockDevice => {}
            FileKind::Directory => return Err(EISDIR),
            FileKind::Stream => return Err(ESPIPE),
            FileKind::Other => {
                pr_info_ratelimited!(
                    "{}: refused file fd {}: neither a regular file nor a block device\n",
                    self.name(),
                    self.file_fd
                );
                return Err(EINVAL);
            }
        }
        let access = file.access();
        if !(if store { access.write } else { access.read }) {
            pr_info_ratelimited!(
                "{}: refused file fd {}: not open for {}\n",
                self.name(),
                self.file_fd,
                if store { "writing" } else { "reading" }
            );
            return Err(EBADF);
        }
        // `O_APPEND` would write at the end whatever the offset says.
        if store && access.append {
            pr_info_ratelimited!(
                "{}: refused file fd {}: opened with O_APPEND\n",
                self.name(),
                self.file_fd
            );
            return Err(EINVAL);
        }
        Ok(file)
    }

    /// The buffer, if it is an rsheap buffer open for what this direction does to it: a LOAD
    /// writes the buffer and a STORE reads it, which a read-only export allows.
    fn open_buffer(&self) -> Result<BufferRef> {
        let store = self.direction == Direction::Store;
        let buffer = BufferRef::get_for(self.name(), self.buf_fd)?;
        // Checked before the file's mode, which would say EBADF: the export is read-only for
        // good, not for want of a writable descriptor.
        if !store && buffer.is_read_only() {
            pr_info_ratelimited!(
                "{}: refused buffer fd {}: a read-only export\n",
                self.name(),
                self.buf_fd
            );
            return Err(EACCES);
        }
        let access = buffer.access();
        if !(if store { access.read } else { access.write }) {
            pr_info_ratelimited!(
                "{}: refused buffer fd {}: not open for {}\n",
                self.name(),
                self.buf_fd,
                if store { "reading" } else { "writing" }
            );
            return Err(EBADF);
        }
        Ok(buffer)
    }

    /// Checks that the range fits the file's offsets and lies within a buffer of
    /// `buffer_size` bytes.
    fn check_range(&self, buffer_size: usize) -> Result {
        let overflow = |name: &str, offset: u64| {
            pr_info_ratelimited!(
                "{}: refused {} {:#x} + length {:#x}: overflows\n",
                self.name(),
                name,
                offset,
                self.length
            );
            EOVERFLOW
        };
        self.file_offset
            .checked_add(self.length)
            .filter(|&end| i64::try_from(end).is_ok())
            .ok_or_else(|| overflow("file offset", self.file_offset))?;
        let buf_end = self
            .buf_offset
            .checked_add(self.length)
            .ok_or_else(|| overflow("buffer offset", self.buf_offset))?;
        if buf_end > buffer_size as u64 {
            pr_info_ratelimited!(
                "{}: refused buffer range {:#x} + {:#x}: the buffer has {:#x} bytes\n",
                self.name(),
                self.buf_offset,
                self.length,
                buffer_size
            );
            return Err(EINVAL);
        }
        Ok(())
    }
}

/// Validates `request` and carries it out.
///
/// Nothing moves unless every descriptor, mode and range is valid; a refusal whose errno does
/// not say which field is at fault is logged, rate-limited. Once bytes have moved, an error or
/// a fatal signal ends the transfer with the count so far, as `read(2)` and `write(2)` report
/// partial progress.
pub(crate) fn transfer(request: &Request) -> Result<Moved> {
    let store = request.direction == Direction::Store;
    if request.flags & !KNOWN_FLAGS != 0 {
        pr_info_ratelimited!(
            "{}: refused unknown flags {:#x}\n",
            request.name(),
            request.flags
        );
        return Err(EINVAL);
    }
    let file = request.open_file()?;
    let buffer = request.open_buffer()?;
    let buffer = buffer.buffer();
    request.check_range(buffer.size())?;

    let mut length = request.length;
    if !store {
        // A load ends at the end of the file, leaving the rest of the range untouched.
        length = length.min(file.size().saturating_sub(request.file_offset));
    }
    if length == 0 {
        return Ok(Moved::default());
    }
    let align = if request.flags & FLAG_BUFFERED != 0 || !file.access().direct {
        None
    } else {
        file.direct_io_alignment()
    };

    // Both fit in `usize`: the range lies within the buffer.
    let (buf_offset, length) = (request.buf_offset as usize, length as usize);
    let segments = KVec::with_capacity(MAX_SEGMENTS, GFP_KERNEL)?;
    buffer.exclusive_transfer(|target| {
        let transfer = Transfer {
            file: &file,
            target,
            store,
            file_pos: request.file_offset,
            buf_pos: buf_offset,
            segments,
            step: MIN_STEP,
            moved: Moved::default(),
        };
        transfer.run(length, align)
    })
}

/// Splits `length` bytes from file offset `file_pos` and buffer offset `buf_pos` into a head
/// for the page cache and a body for direct I/O with alignment `align`; the rest is the tail.
///
/// The body starts where the file offset is aligned and covers whole alignment units, and
/// only exists if the buffer offset is aligned there too.
fn split(file_pos: u64, buf_pos: usize, length: usize, align: Option<usize>) -> (usize, usize) {
    let Some(align) = align else {
        return (length, 0);
    };
    // `align` is a power of two no larger than a page.
    let misalign = (file_pos & (align as u64 - 1)) as usize;
    let head = ((align - misalign) & (align - 1)).min(length);
    if (buf_pos + head) & (align - 1) != 0 {
        return (length, 0);
    }
    (head, (length - head) & !(align - 1))
}

/// Whether a file refused direct I/O for a range, rather than failed it.
fn refuses_direct(err: Error) -> bool {
    err == EINVAL || err == ENOTBLK || err == EOPNOTSUPP
}

/// Whether a transfer goes on after a part of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// A step moved less than it asked for: the file ended, or took no more. The transfer
    /// ends with the count so far.
    Short,
}

/// One transfer in progress: how far it got in the file and in the buffer.
struct Transfer<'a> {
    file: &'a FileRef,
    target: TransferTarget<'a>,
    store: bool,
    /// Where the bytes moved so far end in the file.
    file_pos: u64,
    /// Where the bytes moved so far end in the buffer.
    buf_pos: usize,
    /// The page vectors of the current step.
    segments: KVec<bindings::bio_vec>,
    /// The size of the next step.
    step: usize,
    moved: Moved,
}

impl Transfer<'_> {
    fn run(mut self, length: usize, align: Option<usize>) -> Result<Moved> {
        let (head, body) = split(self.file_pos, self.buf_pos, length, align);
        let tail = length - head - body;
        let mut result = self.move_steps(head, false);
        if let Ok(Flow::Continue) = result {
            result = self.move_body(body);
        }
        if let Ok(Flow::Continue) = result {
            result = self.move_steps(tail, false);
        }
        match result {
            Err(err) if self.moved.bytes == 0 => Err(err),
            _ => Ok(self.moved),
        }
    }

    /// Moves the aligned body by direct I/O, or through the page cache if the file refuses
    /// direct I/O before any of it moved.
    fn move_body(&mut self, len: usize) -> Result<Flow> {
        let before = self.moved.direct;
        match self.move_steps(len, true) {
            Err(err) if self.moved.direct == before && refuses_direct(err) => {
                self.move_steps(len, false)
            }
            other => other,
        }
    }

    /// Moves `len` bytes from the current position, a step at a time, by direct I/O if
    /// `direct`, else through the page cache.
    ///
    /// Each step completes before the next is issued. A step that fails, or moves less than it
    /// asked for, ends the walk; bytes count up to where the last step stopped.
    fn move_steps(&mut self, len: usize, direct: bool) -> Result<Flow> {
        let end = self.buf_pos + len;
        // The page cache reaches an uncached buffer through cached mappings.
        let flush_through = self.target.flush_through.filter(|_| !direct);
        while self.buf_pos < end {
            if shim::fatal_signal_pending() {
                return Err(EINTR);
            }
            let step = describe(
                &mut self.segments,
                self.target.pages,
                self.buf_pos,
                end - self.buf_pos,
                self.step,
            )?;
            if let Some(heap) = flush_through {
                // SAFETY: The segments name pages of the buffer, which the caller of
                // `transfer` holds until the transfer ends.
                unsafe { heap.flush_segments(&self.segments) }?;
            }
            let started = Instant::now();
            // SAFETY: As above; the call returns once its I/O is complete.
            let done = unsafe {
                self.file
                    .read_write(self.store, direct, self.file_pos, &self.segments, step)
            }?;
            let flushed = match flush_through {
                // SAFETY: As above.
                Some(heap) => unsafe { flush_after(heap, &self.segments) },
                None => Ok(()),
            };
            self.resize_step(started.elapsed_ms());
            self.advance(done, direct);
            // The bytes moved count, whatever the flush after them says.
            flushed?;
            if done < step {
                return Ok(Flow::Short);
            }
            shim::cond_resched();
        }
        Ok(Flow::Continue)
    }

    /// Counts `done` bytes as moved from the current position.
    fn advance(&mut self, done: usize, direct: bool) {
        self.moved.bytes += done as u64;
        if direct {
            self.moved.direct += done as u64;
        }
        self.file_pos += done as u64;
        self.buf_pos += done;
    }

    /// Sizes the next step from how long the last one took.
    fn resize_step(&mut self, took_ms: i64) {
        if took_ms < STEP_MS {
            self.step = (self.step * 2).min(MAX_STEP);
        } else if took_ms > 4 * STEP_MS {
            self.step = (self.step / 2).max(MIN_STEP);
        }
    }
}

/// Writes back what a page cache step left in the CPU caches over an uncached buffer's pages.
/// A failure is logged: the bytes did move, but the CPU's mappings may not see them yet.
///
/// # Safety
///
/// The pages `segments` name must stay allocated for the call.
unsafe fn flush_after(heap: &Heap, segments: &[bindings::bio_vec]) -> Result {
    // SAFETY: The caller guarantees the pages stay allocated.
    unsafe { heap.flush_segments(segments) }.inspect_err(|err| {
        pr_warn_ratelimited!(
            "could not flush the CPU caches after a transfer step: {:?}\n",
            err
        );
    })
}

/// Describes in `segments` the pages of up to `max` bytes of `pages` from byte `offset`, at
/// most `step` bytes and [`MAX_SEGMENTS`] vectors, and returns the length described.
///
/// Segments end at chunk boundaries, which are page-aligned, so a step that starts aligned for
/// direct I/O (to at most a page) also has aligned segments.
fn describe(
    segments: &mut KVec<bindings::bio_vec>,
    pages: &PageSet,
    offset: usize,
    max: usize,
    step: usize,
) -> Result<usize> {
    // SAFETY: `bio_vec` is plain data with nothing to drop; emptying only forgets entries.
    unsafe { segments.set_len(0) };
    let want = max.min(step);
    let mut covered = 0;
    for (chunk, skip) in pages.chunks_from(offset) {
        if covered == want || segments.len() == MAX_SEGMENTS {
            break;
        }
        let len = (chunk.len() - skip).min(want - covered);
        let segment = bindings::bio_vec {
            // `skip` lies within the chunk.
            bv_page: chunk.nth_page(skip >> PAGE_SHIFT).ok_or(EINVAL)?,
            // A chunk is at most 2 MiB.
            bv_len: len as u32,
            bv_offset: (skip & (PAGE_SIZE - 1)) as u32,
        };
        // Within the capacity reserved at the start: never allocates.
        segments.push(segment, GFP_KERNEL)?;
        covered += len;
    }
    if covered == 0 {
        // The caller checked the range against the buffer's size.
        return Err(EINVAL);
    }
    Ok(covered)
}
