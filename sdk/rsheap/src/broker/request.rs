//! Allocation requests: one buffer or a batch, each optionally loaded from a file before the
//! broker hands it over, and batch frees.

use std::os::fd::{AsFd, BorrowedFd};

use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest, Buffer::Buffer as Allocated,
    BufferRequest::BufferRequest, IHeapBroker,
};

use super::load::segment;
use super::{AllocationOptions, Broker, BrokerBuffer, BrokerErrorCode};
use crate::{Buffer, Error, Result, Span};

/// The most requests one [`Broker::allocate_batch`] or [`Broker::free_batch`] takes.
pub const MAX_BATCH: usize = IHeapBroker::MAX_BATCH as usize;

/// One buffer to allocate: its size, how, and optionally what to load into it.
#[derive(Clone, Debug)]
pub struct BufferSpec<'a> {
    /// Bytes; the broker rounds up to whole pages.
    pub size: usize,
    /// Usage, caching, heap and debug name.
    pub options: AllocationOptions,
    /// A file range the broker loads into the new buffer before handing it over.
    pub load: Option<FileLoad<'a>>,
}

impl<'a> BufferSpec<'a> {
    /// `size` bytes as `options` say, not loaded.
    pub fn new(size: usize, options: AllocationOptions) -> Self {
        Self {
            size,
            options,
            load: None,
        }
    }

    /// This request, loaded with `span` of `file` (by direct I/O where the file allows).
    pub fn with_load(self, file: &'a impl AsFd, span: Span) -> Self {
        Self {
            load: Some(FileLoad {
                file: file.as_fd(),
                span,
            }),
            ..self
        }
    }
}

/// A file range to load into a buffer as it is allocated.
#[derive(Clone, Copy, Debug)]
pub struct FileLoad<'a> {
    /// The file, open for reading; the broker reads its own duplicate, leaving this
    /// descriptor's offset as it was.
    pub file: BorrowedFd<'a>,
    /// Which part of the file goes where in the buffer; [`Span::TO_END`] loads up to the end
    /// of the file or of the buffer, whichever comes first.
    pub span: Span,
}

/// A [`Broker::free_batch`] that freed nothing: why, and the buffers, still allocated.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FreeBatchError {
    /// What went wrong.
    pub error: Error,
    /// The buffers of the batch, given back.
    pub buffers: Vec<BrokerBuffer>,
}

impl From<FreeBatchError> for Error {
    fn from(failed: FreeBatchError) -> Self {
        failed.error
    }
}

impl Broker {
    /// Allocates `size` bytes (rounded up to pages).
    pub fn allocate(&self, size: usize, options: &AllocationOptions) -> Result<BrokerBuffer> {
        let request = request(&BufferSpec::new(size, options.clone()))?;
        let (made, generation) = self.call(|session| session.allocate(&request))?;
        self.adopt(made, generation)
    }

    /// Allocates `size` bytes and loads `span` of `file` into the new buffer, in one call:
    /// the buffer comes back loaded, or the call fails and the broker keeps nothing of it.
    /// A file shorter than the span leaves the rest of the buffer zeroed.
    pub fn allocate_and_load(
        &self,
        size: usize,
        options: &AllocationOptions,
        file: &impl AsFd,
        span: Span,
    ) -> Result<BrokerBuffer> {
        let request = request(&BufferSpec::new(size, options.clone()).with_load(file, span))?;
        let (made, generation) = self.call(|session| session.allocate(&request))?;
        self.adopt(made, generation)
    }

    /// Allocates (and loads) up to [`MAX_BATCH`] buffers in one call, all or none, and
    /// returns them in the order asked.
    pub fn allocate_batch(&self, specs: &[BufferSpec<'_>]) -> Result<Vec<BrokerBuffer>> {
        let requests = specs.iter().map(request).collect::<Result<Vec<_>>>()?;
        let (made, generation) = self.call(|session| session.allocateBatch(&requests))?;
        let ids: Vec<i64> = made.iter().map(|buffer| buffer.info.id).collect();
        let mut buffers = Vec::with_capacity(made.len());
        for buffer in made {
            match self.adopt(buffer, generation) {
                Ok(buffer) => buffers.push(buffer),
                Err(err) => {
                    // All or none for the caller too: give back what came.
                    drop(buffers);
                    let _ = self.call(|session| session.freeBatch(&ids));
                    return Err(err);
                }
            }
        }
        Ok(buffers)
    }

    /// Frees `buffers` in one call, as [`Broker::free`] frees one: all of them, or, if the
    /// broker refuses (a buffer it does not know, more than [`MAX_BATCH`]), none, and the
    /// buffers come back in the error.
    pub fn free_batch(
        &self,
        buffers: Vec<BrokerBuffer>,
    ) -> std::result::Result<(), FreeBatchError> {
        if let Some(stale) = buffers
            .iter()
            .find(|buffer| self.check_generation(buffer).is_err())
        {
            let error = Error::Broker {
                code: BrokerErrorCode::NotFound,
                message: format!(
                    "buffer {} belongs to a broker that has since restarted",
                    stale.id()
                ),
            };
            return Err(FreeBatchError { error, buffers });
        }
        let ids: Vec<i64> = buffers.iter().map(BrokerBuffer::id).collect();
        match self.call(|session| session.freeBatch(&ids)) {
            Ok(_) => Ok(()),
            Err(error) => Err(FreeBatchError { error, buffers }),
        }
    }

    /// A [`BrokerBuffer`] for what the broker sent.
    fn adopt(&self, made: Allocated, generation: u64) -> Result<BrokerBuffer> {
        let fd = made
            .fd
            .map(rsheap_binder::into_owned_fd)
            .ok_or_else(|| Error::InvalidArgument("the broker sent no buffer".into()))?;
        Ok(BrokerBuffer {
            buffer: Buffer::from_fd(fd)?,
            info: made.info,
            generation,
        })
    }
}

/// The AIDL request for `spec`.
fn request(spec: &BufferSpec<'_>) -> Result<BufferRequest> {
    let size = spec.size;
    let options = &spec.options;
    Ok(BufferRequest {
        allocation: AllocationRequest {
            size: i64::try_from(size)
                .map_err(|_| Error::InvalidArgument(format!("size {size} too large")))?,
            usage: options.usage,
            heap: options.heap.clone(),
            cached: options.cached,
            debugName: options.debug_name.clone(),
        },
        load: spec
            .load
            .map(|load| segment(&load.file, load.span))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_spec_and_its_load() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let options = AllocationOptions {
            debug_name: Some("weights".into()),
            ..AllocationOptions::usage(crate::Usage::MODEL_WEIGHTS)
        };
        let plain = request(&BufferSpec::new(4096, options.clone())).unwrap();
        assert_eq!(plain.allocation.size, 4096);
        assert_eq!(plain.allocation.debugName.as_deref(), Some("weights"));
        assert!(plain.load.is_none());

        let span = Span {
            file_offset: 8192,
            buffer_offset: 4096,
            len: Span::TO_END,
        };
        let loaded = request(&BufferSpec::new(1 << 20, options).with_load(&file, span)).unwrap();
        let segment = loaded.load.unwrap();
        assert_eq!(
            (segment.fileOffset, segment.bufferOffset, segment.length),
            (8192, 4096, -1)
        );
        assert!(segment.file.is_some());
    }

    #[test]
    fn sizes_and_offsets_beyond_i64_are_refused_here() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let huge = BufferSpec::new(usize::MAX, AllocationOptions::default());
        assert!(matches!(request(&huge), Err(Error::InvalidArgument(_))));
        let far = Span {
            file_offset: u64::MAX,
            ..Span::start(4096)
        };
        let spec = BufferSpec::new(4096, AllocationOptions::default()).with_load(&file, far);
        assert!(matches!(request(&spec), Err(Error::InvalidArgument(_))));
    }
}
