//! Loads through the broker: synchronous, with progress, and cancellable.
//!
//! The broker moves a file into a buffer on its own load workers, chunk by chunk, and checks
//! between chunks whether the load was cancelled; an asynchronous load reports each chunk to
//! a oneway observer. [`Broker::load_file_with_control`] turns those reports into calls of a
//! progress callback on the waiting thread, and a callback that answers
//! [`ControlFlow::Break`] cancels the load there, as [`Broker::cancel_loads`] does from any
//! thread.

use std::ops::ControlFlow;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rsheap_binder::{Interface, ParcelFileDescriptor, Result as BinderResult};
use vendor_rsheap::aidl::vendor::rsheap::{FileSegment::FileSegment, ILoadObserver::ILoadObserver};

use super::{Broker, BrokerBuffer, BrokerErrorCode};
use crate::{Error, Result, Span};

impl Broker {
    /// Loads `span` of `file` into `buffer` (by direct I/O where the file allows) and returns
    /// the bytes loaded: fewer than `span.len` if the file ends first.
    pub fn load_file(&self, buffer: &BrokerBuffer, file: &impl AsFd, span: Span) -> Result<u64> {
        self.check_generation(buffer)?;
        let segment = segment(file, span)?;
        let (loaded, _) = self.call(|session| session.loadFile(buffer.id(), &segment))?;
        Ok(loaded.max(0) as u64)
    }

    /// Loads as [`Broker::load_file`] does, calling `progress(done, total)` on this thread as
    /// the broker reports (about every 100 ms of loading), and last with `done` the bytes
    /// loaded.
    ///
    /// The broker runs the load on its own workers, so a slow load holds none of its binder
    /// threads; if the broker dies meanwhile, the call fails as unreachable.
    pub fn load_file_with_progress(
        &self,
        buffer: &BrokerBuffer,
        file: &impl AsFd,
        span: Span,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        self.load_file_with_control(buffer, file, span, &mut |done, total| {
            progress(done, total);
            ControlFlow::Continue(())
        })
    }

    /// Loads as [`Broker::load_file_with_progress`] does, and stops the load when `progress`
    /// answers [`ControlFlow::Break`]: the broker is asked to cancel it
    /// ([`Broker::cancel_loads`]), `progress` hears nothing more, and the call returns the
    /// broker's [`BrokerErrorCode::Cancelled`] error once the load has stopped. What was loaded
    /// until then stays in the buffer. A load that ends before the cancellation reaches it
    /// returns its bytes as usual.
    ///
    /// Progress comes between the broker's chunks, so a load stops within a chunk of the
    /// answer (about 100 ms of loading).
    pub fn load_file_with_control(
        &self,
        buffer: &BrokerBuffer,
        file: &impl AsFd,
        span: Span,
        progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.check_generation(buffer)?;
        let segment = segment(file, span)?;
        let (sender, events) = mpsc::channel();
        let observer = rsheap_binder::new_load_observer(LoadEvents(sender));
        let (_, generation) =
            self.call(|session| session.loadFileAsync(buffer.id(), &segment, &observer))?;
        let mut last = None;
        let mut stopping = false;
        loop {
            match events.recv_timeout(LIVENESS_CHECK) {
                Ok(LoadEvent::Progress(done, total)) => {
                    last = Some((done, total));
                    if !stopping && progress(done, total).is_break() {
                        stopping = true;
                        // A cancel that fails leaves the load to end by itself: the buffer was
                        // freed (which cancels it) or the broker died (which the liveness
                        // check below notices).
                        let _ = self.cancel_id(buffer.id());
                    }
                }
                Ok(LoadEvent::Complete {
                    bytes, error: 0, ..
                }) => {
                    // The broker reports progress between chunks; the end comes with the
                    // completion.
                    let total = last.map_or(bytes, |(_, total)| total);
                    if !stopping && last.map(|(done, _)| done) != Some(bytes) {
                        // The load is over: the callback's answer changes nothing now.
                        let _ = progress(bytes, total);
                    }
                    return Ok(bytes);
                }
                Ok(LoadEvent::Complete { error, message, .. }) => {
                    return Err(Error::Broker {
                        code: BrokerErrorCode::from_code(error),
                        message,
                    })
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let current = self.current();
                    if current.generation != generation
                        || current.service.as_binder().ping_binder().is_err()
                    {
                        return Err(Error::Unreachable(format!(
                            "the broker died while loading buffer {}",
                            buffer.id()
                        )));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::Unreachable(format!(
                        "the broker dropped the load of buffer {}",
                        buffer.id()
                    )))
                }
            }
        }
    }

    /// Opens the file at `path` and loads `span` of it into `buffer`, with progress.
    pub fn load_path(
        &self,
        buffer: &BrokerBuffer,
        path: &Path,
        span: Span,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let file = std::fs::File::open(path)
            .map_err(|err| Error::io(format!("open {}", path.display()), &err))?;
        self.load_file_with_progress(buffer, &file, span, progress)
    }

    /// Cancels the loads into `buffer`, queued and running, from any thread: each ends with
    /// [`BrokerErrorCode::Cancelled`] (a running one at the end of its current chunk) and
    /// keeps what it loaded so far. The buffer stays allocated; a buffer without loads is
    /// left as it is.
    pub fn cancel_loads(&self, buffer: &BrokerBuffer) -> Result<()> {
        self.check_generation(buffer)?;
        self.cancel_id(buffer.id())
    }

    fn cancel_id(&self, id: i64) -> Result<()> {
        self.call(|session| session.cancelLoads(id)).map(drop)
    }
}

/// How often a load that reports nothing checks that the broker still lives.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

/// The file part of a load request.
pub(super) fn segment(file: &impl AsFd, span: Span) -> Result<FileSegment> {
    let to_i64 = |value: u64, what: &str| {
        i64::try_from(value).map_err(|_| Error::InvalidArgument(format!("{what} too large")))
    };
    let file = file
        .as_fd()
        .try_clone_to_owned()
        .map_err(|err| Error::io("duplicate the file descriptor", &err))?;
    Ok(FileSegment {
        file: Some(ParcelFileDescriptor::new(file)),
        fileOffset: to_i64(span.file_offset, "file offset")?,
        // The broker's "to the end of the file".
        length: if span.len == Span::TO_END {
            -1
        } else {
            to_i64(span.len, "length")?
        },
        bufferOffset: to_i64(span.buffer_offset, "buffer offset")?,
    })
}

/// What the broker reports of an asynchronous load.
enum LoadEvent {
    Progress(u64, u64),
    Complete {
        bytes: u64,
        /// 0, or the broker's `ERROR_` code.
        error: i32,
        message: String,
    },
}

/// The callback binder of one asynchronous load: passes the broker's reports from the binder
/// thread they arrive on to the thread that waits for the load.
struct LoadEvents(mpsc::Sender<LoadEvent>);

impl Interface for LoadEvents {}

impl ILoadObserver for LoadEvents {
    fn onProgress(&self, _id: i64, done: i64, total: i64) -> BinderResult<()> {
        // A waiter that has gone (it gave up on a dead broker) wants no more reports.
        let _ = self
            .0
            .send(LoadEvent::Progress(done.max(0) as u64, total.max(0) as u64));
        Ok(())
    }

    fn onComplete(
        &self,
        _id: i64,
        bytes: i64,
        error: i32,
        message: Option<&str>,
    ) -> BinderResult<()> {
        let _ = self.0.send(LoadEvent::Complete {
            bytes: bytes.max(0) as u64,
            error,
            message: message.unwrap_or("load failed").to_owned(),
        });
        Ok(())
    }
}
