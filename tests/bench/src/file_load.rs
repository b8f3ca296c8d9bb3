//! Filling dma-bufs from a file: a 1 GiB file of random content on the rig's ext4 scratch
//! disk, read with a cold page cache on every run.
//!
//! The ways to get a file's bytes into a dma-buf, side by side:
//! - rsheap: `RSHEAP_IOC_LOAD` on `/dev/rsheap`, direct I/O into the buffer's pages;
//! - the in-tree system heap: `read()` into the buffer's mmap, the page cache and a copy,
//!   since `O_DIRECT` cannot target a dma-buf's PFN mapping;
//! - udmabuf: `O_DIRECT` `read()` into a memfd's mapping, then `UDMABUF_CREATE`;
//! - the limit: `O_DIRECT` `read()` into anonymous memory, with no dma-buf at all.

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use rsheap::{Buffer, FileIo, Heap, IoPath, Span, SyncDirection};
use rsheap_suites::{
    drain_pools, drop_caches, scratch_path, wait_for_pool_worker, write_random_file,
};

use crate::udmabuf;

/// The file's size.
pub const FILE_LEN: usize = 1 << 30;

/// One way of filling a dma-buf from the file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// rsheap with an empty page pool, where allocation matters.
    Rsheap,
    /// rsheap with a page pool filled by an untimed run first.
    RsheapWarm,
    System,
    Udmabuf,
    Limit,
}

impl Loader {
    /// The loaders of a workload whose buffers exist before the timing starts.
    pub const PREALLOCATED: [Loader; 4] = [Self::Rsheap, Self::System, Self::Udmabuf, Self::Limit];
    /// The loaders of a workload that times allocation too.
    pub const ALLOCATING: [Loader; 5] = [
        Self::Rsheap,
        Self::RsheapWarm,
        Self::System,
        Self::Udmabuf,
        Self::Limit,
    ];

    pub fn name(self, allocating: bool) -> &'static str {
        match self {
            Self::Rsheap if allocating => "rsheap LOAD (cold pool)",
            Self::Rsheap => "rsheap LOAD",
            Self::RsheapWarm => "rsheap LOAD (warm pool)",
            // The ratios of the report are taken against this name: the buffered path.
            Self::System => "system heap",
            Self::Udmabuf => "udmabuf",
            Self::Limit => "limit: O_DIRECT read() into anonymous memory",
        }
    }
}

/// The benchmark file and what reads it.
pub struct Bench {
    path: PathBuf,
    io: FileIo,
    rsheap: Heap,
    system: Heap,
}

impl Bench {
    /// Writes the 1 GiB file (untimed).
    pub fn new() -> Result<Self> {
        let path = scratch_path("bench-1gib.bin");
        write_random_file(&path, FILE_LEN as u64, 0xbe4c);
        Ok(Self {
            path,
            io: FileIo::open()?,
            rsheap: Heap::open("rsheap")?,
            system: Heap::open("system")?,
        })
    }

    fn open(&self, direct: bool) -> Result<File> {
        let flags = if direct { nix::libc::O_DIRECT } else { 0 };
        File::options()
            .read(true)
            .custom_flags(flags)
            .open(&self.path)
            .with_context(|| format!("open {}", self.path.display()))
    }

    /// Reads the whole file into a buffer (or memory) made beforehand, untimed; times only
    /// the filling.
    pub fn load_whole_file(&self, loader: Loader) -> Result<Duration> {
        let len = FILE_LEN;
        let run = match loader {
            Loader::Rsheap | Loader::RsheapWarm => {
                let buffer = self.rsheap.allocate(len)?;
                let file = self.open(false)?;
                cold();
                let start = Instant::now();
                self.rsheap_load(&file, &buffer, 0, len)?;
                start.elapsed()
            }
            Loader::System => {
                let buffer = self.system.allocate(len)?;
                let mut file = self.open(false)?;
                cold();
                let start = Instant::now();
                read_into_mapping(&mut file, &buffer)?;
                start.elapsed()
            }
            Loader::Udmabuf => {
                let memfd = udmabuf::memfd(len)?;
                let mut file = self.open(true)?;
                cold();
                let start = Instant::now();
                read_into_shared(&mut file, &memfd, len)?;
                let _dmabuf = udmabuf::from_memfd(&memfd, len)?;
                start.elapsed()
            }
            Loader::Limit => {
                let mut memory = Anonymous::new(len, true)?;
                let mut file = self.open(true)?;
                cold();
                let start = Instant::now();
                read_exact(&mut file, memory.bytes())?;
                start.elapsed()
            }
        };
        Ok(run)
    }

    /// Makes 32 buffers of 32 MiB and fills each from its part of the file, all timed, as a
    /// model loader filling per-layer buffers does.
    pub fn fill_32_buffers(&self, loader: Loader) -> Result<Duration> {
        const PART: usize = 32 << 20;
        let parts = FILE_LEN / PART;
        match loader {
            Loader::Rsheap => drain_pools(),
            Loader::RsheapWarm => {
                let warmup: Vec<Buffer> = (0..parts)
                    .map(|_| self.rsheap.allocate(PART))
                    .collect::<rsheap::Result<_>>()?;
                drop(warmup);
                wait_for_pool_worker();
            }
            _ => {}
        }
        let direct = matches!(loader, Loader::Udmabuf | Loader::Limit);
        let mut file = self.open(direct)?;
        let mut kept: Vec<OwnedFd> = Vec::with_capacity(parts);
        let mut anonymous = Vec::new();
        cold();
        let start = Instant::now();
        for part in 0..parts {
            match loader {
                Loader::Rsheap | Loader::RsheapWarm => {
                    let buffer = self.rsheap.allocate(PART)?;
                    self.rsheap_load(&file, &buffer, part * PART, PART)?;
                    kept.push(buffer.into_fd());
                }
                Loader::System => {
                    let buffer = self.system.allocate(PART)?;
                    read_into_mapping(&mut file, &buffer)?;
                    kept.push(buffer.into_fd());
                }
                Loader::Udmabuf => {
                    let memfd = udmabuf::memfd(PART)?;
                    read_into_shared(&mut file, &memfd, PART)?;
                    kept.push(udmabuf::from_memfd(&memfd, PART)?);
                }
                Loader::Limit => {
                    let mut memory = Anonymous::new(PART, false)?;
                    read_exact(&mut file, memory.bytes())?;
                    anonymous.push(memory);
                }
            }
        }
        let took = start.elapsed();
        drop(kept);
        drop(anonymous);
        Ok(took)
    }

    fn rsheap_load(&self, file: &File, buffer: &Buffer, offset: usize, len: usize) -> Result<()> {
        let span = Span {
            file_offset: offset as u64,
            buffer_offset: 0,
            len: len as u64,
        };
        let moved = self.io.load(file, buffer, span, IoPath::Auto)?;
        ensure!(
            moved.bytes == len as u64 && moved.direct_bytes == len as u64,
            "LOAD moved {} bytes, {} direct, of {len}",
            moved.bytes,
            moved.direct_bytes
        );
        Ok(())
    }
}

/// Lets rsheap's pool worker finish with buffers freed by earlier runs, so it does not compete
/// for the CPU, and drops the page cache, so every run reads from the disk.
pub fn cold() {
    wait_for_pool_worker();
    drop_caches();
}

/// `read()`s from `file` until `bytes` is full.
fn read_exact(file: &mut File, bytes: &mut [u8]) -> Result<()> {
    std::io::Read::read_exact(file, bytes).context("read the file")
}

/// Fills a dma-buf through its CPU mapping, inside a CPU-access bracket.
fn read_into_mapping(file: &mut File, buffer: &Buffer) -> Result<()> {
    let mut mapping = buffer.map()?;
    let _access = buffer.cpu_access(SyncDirection::Write)?;
    // `read()` straight into the mapping, as a loader without `/dev/rsheap` would.
    // SAFETY: The buffer was just allocated from the system heap for this load: no device,
    // process or other mapping reaches it while the slice lives.
    read_exact(file, unsafe { mapping.as_mut_slice() })
}

/// Fills a shared file mapping (the memfd of a udmabuf) by `read()`.
fn read_into_shared(file: &mut File, memfd: &OwnedFd, len: usize) -> Result<()> {
    let ptr = crate::map_shared(memfd.as_fd(), len)?;
    // SAFETY: `ptr` maps `len` writable bytes that nothing else uses while `bytes` lives.
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), len) };
    let result = read_exact(file, bytes);
    // SAFETY: `ptr` maps `len` bytes, and `bytes` is no longer used.
    unsafe { munmap(ptr, len) }?;
    result
}

/// Private anonymous memory, unmapped on drop.
struct Anonymous {
    ptr: std::ptr::NonNull<std::ffi::c_void>,
    len: usize,
}

impl Anonymous {
    /// Maps `len` bytes, faulted in now if `populate`.
    fn new(len: usize, populate: bool) -> Result<Self> {
        let size = NonZeroUsize::new(len).context("empty")?;
        let mut flags = MapFlags::MAP_PRIVATE;
        if populate {
            flags |= MapFlags::MAP_POPULATE;
        }
        // SAFETY: A fresh private mapping, unmapped on drop.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags,
            )
        }?;
        Ok(Self { ptr, len })
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` maps `len` writable bytes owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), self.len) }
    }
}

impl Drop for Anonymous {
    fn drop(&mut self) {
        // SAFETY: `ptr` maps `len` bytes that nothing borrows any more.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}
