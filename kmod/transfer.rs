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
//! needs two small arrays, and stops between steps if the caller gets a fatal signal. Direct
//! I/O keeps two steps in flight, so the device has the next request before it finishes the
//! current one. Steps grow while they finish quickly: they are sized to take about [`STEP_MS`]
//! milliseconds each, between [`MIN_STEP`] and [`MAX_STEP`] bytes, so fast storage gets large
//! requests and slow storage still sees a fatal signal within a fraction of a second.
//!
//! The rules callers rely on are documented in `include/uapi/linux/rsheap.h`.

use crate::kernel::bindings::{self, c_int};
use crate::kernel::page::{PAGE_SHIFT, PAGE_SIZE};
use crate::kernel::prelude::*;
use crate::kernel::time::Instant;

use crate::fd::{AsyncIo, BufferRef, FileKind, FileRef};
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
/// Direct I/O steps in flight at once.
const DEPTH: usize = 2;

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

/// Validates `request` and carries it out.
///
/// Nothing moves unless every descriptor, mode and range is valid. Once bytes have moved, an
/// error or a fatal signal ends the transfer with the count so far, as `read(2)` and
/// `write(2)` report partial progress.
pub(crate) fn transfer(request: &Request) -> Result<Moved> {
    let store = request.direction == Direction::Store;
    if request.flags & !KNOWN_FLAGS != 0 {
        return Err(EINVAL);
    }
    let file = FileRef::get(request.file_fd)?;
    match file.kind() {
        FileKind::Regular | FileKind::BlockDevice => {}
        FileKind::Directory => return Err(EISDIR),
        FileKind::Stream => return Err(ESPIPE),
        FileKind::Other => return Err(EINVAL),
    }
    let access = file.access();
    let file_ok = if store { access.write } else { access.read };
    if !file_ok {
        return Err(EBADF);
    }
    // `O_APPEND` would write at the end whatever the offset says.
    if store && access.append {
        return Err(EINVAL);
    }
    let buffer = BufferRef::get(request.buf_fd)?;
    if !store && !buffer.access().write {
        return Err(EBADF);
    }

    let eoverflow = EOVERFLOW;
    request
        .file_offset
        .checked_add(request.length)
        .filter(|&end| i64::try_from(end).is_ok())
        .ok_or(eoverflow)?;
    let buf_end = request
        .buf_offset
        .checked_add(request.length)
        .ok_or(eoverflow)?;
    let buffer = buffer.buffer();
    if buf_end > buffer.size() as u64 {
        return Err(EINVAL);
    }
    let mut length = request.length;
    if !store {
        // A load ends at the end of the file, leaving the rest of the range untouched.
        length = length.min(file.size().saturating_sub(request.file_offset));
    }
    if length == 0 {
        return Ok(Moved::default());
    }
    let align = if request.flags & FLAG_BUFFERED != 0 || !access.direct {
        None
    } else {
        file.direct_io_alignment()
    };

    // Both fit in `usize`: the range lies within the buffer.
    let (buf_offset, length) = (request.buf_offset as usize, length as usize);
    buffer.exclusive_transfer(|pages| {
        let transfer = Transfer {
            file: &file,
            pages,
            store,
            file_pos: request.file_offset,
            buf_pos: buf_offset,
            steps: [AsyncIo::new(MAX_SEGMENTS)?, AsyncIo::new(MAX_SEGMENTS)?],
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
    /// The file ended.
    EndOfFile,
}

/// One transfer in progress: how far it got in the file and in the buffer.
struct Transfer<'a> {
    file: &'a FileRef,
    pages: &'a PageSet,
    store: bool,
    /// Where the bytes moved so far end in the file.
    file_pos: u64,
    /// Where the bytes moved so far end in the buffer.
    buf_pos: usize,
    /// The requests of the steps in flight, used in turn.
    steps: [AsyncIo<'a>; DEPTH],
    /// The size of the next step.
    step: usize,
    moved: Moved,
}

impl<'a> Transfer<'a> {
    fn run(mut self, length: usize, align: Option<usize>) -> Result<Moved> {
        let (head, body) = split(self.file_pos, self.buf_pos, length, align);
        let tail = length - head - body;
        let mut result = self.move_buffered(head);
        if let Ok(Flow::Continue) = result {
            result = self.move_body(body);
        }
        if let Ok(Flow::Continue) = result {
            result = self.move_buffered(tail);
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
        match self.move_direct(len) {
            Err(err) if self.moved.direct == before && refuses_direct(err) => {
                self.move_buffered(len)
            }
            other => other,
        }
    }

    /// Moves `len` bytes from the current position through the page cache, a step at a time.
    fn move_buffered(&mut self, len: usize) -> Result<Flow> {
        let end = self.buf_pos + len;
        while self.buf_pos < end {
            if shim::fatal_signal_pending() {
                return Err(EINTR);
            }
            let segments = self.steps.first_mut().ok_or(EINVAL)?.segments()?;
            let step = describe(
                segments,
                self.pages,
                self.buf_pos,
                end - self.buf_pos,
                self.step,
            )?;
            let started = Instant::now();
            // SAFETY: The segments name pages of the buffer, which the caller of `transfer`
            // holds until the transfer ends.
            let done = unsafe {
                self.file
                    .read_write_buffered(self.store, self.file_pos, segments, step)
            }?;
            if done == 0 {
                return Ok(Flow::EndOfFile);
            }
            self.resize_step(started.elapsed_ms());
            self.advance(done, false);
            shim::cond_resched();
        }
        Ok(Flow::Continue)
    }

    /// Moves `len` bytes from the current position by direct I/O, with [`DEPTH`] steps in
    /// flight.
    ///
    /// Steps complete in the order they were issued. Bytes count only up to the first step
    /// that fails or comes back short; steps issued after it are waited for and ignored.
    fn move_direct(&mut self, len: usize) -> Result<Flow> {
        let end = self.buf_pos + len;
        // Where the next step starts, ahead of the completed position.
        let (mut next_buf, mut next_file) = (self.buf_pos, self.file_pos);
        let mut issued: [(usize, Instant); DEPTH] = [(0, Instant::now()); DEPTH];
        let (mut oldest, mut in_flight) = (0, 0);
        // Why no more steps are issued, and whether steps still in flight count.
        let mut stopped: Option<Result<Flow>> = None;
        let mut counting = true;
        loop {
            while stopped.is_none() && in_flight < DEPTH && next_buf < end {
                if shim::fatal_signal_pending() {
                    stopped = Some(Err(EINTR));
                    break;
                }
                let slot = (oldest + in_flight) % DEPTH;
                let Some(io) = self.steps.get_mut(slot) else {
                    stopped = Some(Err(EINVAL));
                    break;
                };
                let step = match io
                    .segments()
                    .and_then(|s| describe(s, self.pages, next_buf, end - next_buf, self.step))
                {
                    Ok(step) => step,
                    Err(err) => {
                        stopped = Some(Err(err));
                        break;
                    }
                };
                // SAFETY: The segments name pages of the buffer, which the caller of `transfer`
                // holds until the transfer, and with it every step, ends.
                if let Err(err) = unsafe { io.start(self.file, self.store, next_file, step) } {
                    stopped = Some(Err(err));
                    break;
                }
                if let Some(entry) = issued.get_mut(slot) {
                    *entry = (step, Instant::now());
                }
                next_buf += step;
                next_file += step as u64;
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            let slot = oldest;
            oldest = (oldest + 1) % DEPTH;
            in_flight -= 1;
            let result = self
                .steps
                .get_mut(slot)
                .map_or(Err(EINVAL), AsyncIo::finish);
            if !counting {
                continue;
            }
            let Some(&(step, started)) = issued.get(slot) else {
                continue;
            };
            match result {
                Ok(done) => {
                    self.resize_step(started.elapsed_ms());
                    self.advance(done, true);
                    if done < step {
                        // The file ended (or shrank) under the transfer.
                        stopped = Some(Ok(Flow::EndOfFile));
                        counting = false;
                    }
                }
                Err(err) => {
                    stopped = Some(Err(err));
                    counting = false;
                }
            }
            shim::cond_resched();
        }
        stopped.unwrap_or(Ok(Flow::Continue))
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
