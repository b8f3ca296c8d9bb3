//! Direct allocation from a dma-buf heap node, without the broker.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use crate::uapi::{dma_heap_ioctl_alloc, DmaHeapAllocationData};
use crate::{Buffer, Error, Result};

/// Where the kernel publishes dma-buf heaps.
pub const HEAP_DIR: &str = "/dev/dma_heap";

/// How the uncached variant of a heap is named.
const UNCACHED_SUFFIX: &str = "-uncached";

/// The names of the heaps this system offers, sorted.
pub fn heap_names() -> Result<Vec<String>> {
    let entries =
        std::fs::read_dir(HEAP_DIR).map_err(|err| Error::io(format!("list {HEAP_DIR}"), &err))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// An open dma-buf heap, such as `/dev/dma_heap/rsheap`.
#[derive(Debug)]
pub struct Heap {
    name: String,
    file: File,
}

impl Heap {
    /// Opens the heap called `name`.
    pub fn open(name: &str) -> Result<Self> {
        if name.is_empty() || name.contains('/') {
            return Err(Error::InvalidArgument(format!("bad heap name {name:?}")));
        }
        let path = Path::new(HEAP_DIR).join(name);
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .map_err(|err| Error::io(format!("open {}", path.display()), &err))?;
        Ok(Self {
            name: name.to_owned(),
            file,
        })
    }

    /// Opens the uncached variant of heap `name` (`<name>-uncached`), or `name` itself if the
    /// system has no uncached variant, as libdmabufheap falls back from `system-uncached` to
    /// `system`. [`Heap::is_cached`] tells which one was opened.
    pub fn open_uncached(name: &str) -> Result<Self> {
        match Self::open(&format!("{name}{UNCACHED_SUFFIX}")) {
            Err(Error::Os {
                errno: Errno::ENOENT,
                ..
            }) => Self::open(name),
            opened => opened,
        }
    }

    /// The heap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether CPU access to this heap's buffers goes through the caches: heaps named
    /// `*-uncached` map write-combined.
    pub fn is_cached(&self) -> bool {
        !self.name.ends_with(UNCACHED_SUFFIX)
    }

    /// Allocates a buffer of at least `len` bytes (the kernel rounds up to whole pages),
    /// readable and writable, with a close-on-exec file descriptor.
    pub fn allocate(&self, len: usize) -> Result<Buffer> {
        if len == 0 {
            return Err(Error::InvalidArgument("zero-length buffer".into()));
        }
        let mut data = DmaHeapAllocationData {
            len: len as u64,
            fd: 0,
            fd_flags: (libc_flags::O_RDWR | libc_flags::O_CLOEXEC) as u32,
            heap_flags: 0,
        };
        // SAFETY: `data` is a valid `dma_heap_allocation_data` for the duration of the call.
        unsafe { dma_heap_ioctl_alloc(self.file.as_raw_fd(), &mut data) }.map_err(|errno| {
            Error::os(
                format!("allocate {len} bytes from heap {}", self.name),
                errno,
            )
        })?;
        // SAFETY: On success the kernel installed a new file descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(data.fd as i32) };
        Buffer::from_fd(fd)
    }
}

/// The open(2) flags the allocation ioctl takes for the new file descriptor.
mod libc_flags {
    pub use nix::fcntl::OFlag;
    pub const O_RDWR: i32 = OFlag::O_RDWR.bits();
    pub const O_CLOEXEC: i32 = OFlag::O_CLOEXEC.bits();
}
