//! A bounded random walk over every user-space entry point of the heaps and their buffers:
//! each call must succeed or fail with an errno, never crash, hang or upset the kernel (the
//! rig fails the run on any kernel warning).

use std::ffi::CString;
use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use rsheap::uapi::{self, DmaBufSync, DmaHeapAllocationData};
use rsheap_suites::{open_heap, page_size, raw_alloc, RSHEAP, RSHEAP_UNCACHED};

const CALLS: usize = 100_000;

/// A length that is usually small, sometimes on an edge, sometimes absurd.
fn length(rng: &mut fastrand::Rng) -> u64 {
    match rng.u8(0..10) {
        0 => 0,
        1 => u64::MAX - rng.u64(0..8192),
        2 => 1 << rng.u32(36..63),
        3 => rng.u64(..),
        _ => rng.u64(1..=256 * 1024),
    }
}

/// Flags that are usually valid and sometimes anything.
fn flags(rng: &mut fastrand::Rng, valid: u64) -> u64 {
    match rng.u8(0..4) {
        0 => rng.u64(..),
        1 => 1 << rng.u32(0..64),
        _ => valid,
    }
}

fn allocate(rng: &mut fastrand::Rng, heap: &File) -> Result<OwnedFd, Errno> {
    let request = DmaHeapAllocationData {
        len: length(rng),
        fd: if rng.u8(0..8) == 0 { rng.u32(..) } else { 0 },
        fd_flags: flags(rng, (libc_o_rdwr() | libc_o_cloexec()) as u64) as u32,
        heap_flags: if rng.u8(0..4) == 0 { rng.u64(..) } else { 0 },
    };
    raw_alloc(heap, request)
}

fn libc_o_rdwr() -> i32 {
    nix::fcntl::OFlag::O_RDWR.bits()
}

fn libc_o_cloexec() -> i32 {
    nix::fcntl::OFlag::O_CLOEXEC.bits()
}

/// An ioctl on `fd` with a random command of type `kind`, a random size and a pointer to
/// random bytes.
///
/// Commands that would hand out a new file descriptor the caller cannot learn (an allocation
/// without `IOC_OUT`, or too short to return its fd; the core's sync-file export) are steered
/// to forms that report or refuse it, so the loop stays bounded in memory and descriptors.
fn random_ioctl(rng: &mut fastrand::Rng, fd: i32, kind: u8) -> Result<(), Errno> {
    const IOC_WRITE: u64 = 1;
    const IOC_READ: u64 = 2;
    let mut arg = [0u8; 256];
    rng.fill(&mut arg);
    let mut dir = rng.u64(0..4);
    let mut size = rng.u64(0..=64);
    let number = match kind {
        b'b' => [0u64, 1, 4, 5, 6, 7][rng.usize(0..6)],
        _ => rng.u64(0..8),
    };
    let allocates = kind == b'H' && number == 0;
    if allocates {
        dir = IOC_READ | IOC_WRITE;
        size = [16, 24, 32, 48, 64][rng.usize(0..5)];
        arg[..8].copy_from_slice(&rng.u64(1..=(1 << 20)).to_ne_bytes());
        arg[8..12].fill(0);
    }
    let request = dir << 30 | size << 16 | (kind as u64) << 8 | number;
    // SAFETY: `arg` is 256 bytes, more than the sizes used here (at most 64), so the kernel
    // never reads or writes past it.
    let ret = unsafe { nix::libc::ioctl(fd, request as _, arg.as_mut_ptr()) };
    Errno::result(ret)?;
    if allocates {
        let new_fd = i32::from_ne_bytes(arg[8..12].try_into().expect("4 bytes"));
        // SAFETY: The allocation succeeded, so the kernel installed `new_fd` for us alone.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(new_fd) });
    }
    Ok(())
}

fn buffer_call(rng: &mut fastrand::Rng, buffer: &OwnedFd) -> Result<(), Errno> {
    let fd = buffer.as_raw_fd();
    match rng.u8(0..4) {
        0 => {
            let end = if rng.bool() {
                uapi::DMA_BUF_SYNC_END
            } else {
                uapi::DMA_BUF_SYNC_START
            };
            let sync = DmaBufSync {
                flags: flags(rng, uapi::DMA_BUF_SYNC_RW | end),
            };
            // SAFETY: A valid `dma_buf_sync` for the duration of the call.
            unsafe { uapi::dma_buf_ioctl_sync(fd, &sync) }.map(drop)
        }
        1 => {
            let len = rng.usize(0..48);
            let name: Vec<u8> = (0..len).map(|_| rng.u8(1..=255)).collect();
            let name = CString::new(name).expect("no NUL");
            // SAFETY: `name` is NUL-terminated and outlives the call.
            unsafe { uapi::dma_buf_set_name(fd, name.as_ptr()) }.map(drop)
        }
        2 => {
            let Some(len) = NonZeroUsize::new(rng.usize(0..=(1 << 21))) else {
                return Err(Errno::EINVAL);
            };
            let page = page_size() as i64;
            let offset = (rng.i64(0..=512) * page)
                + if rng.u8(0..8) == 0 {
                    rng.i64(1..page)
                } else {
                    0
                };
            let prot = ProtFlags::from_bits_truncate(rng.i32(0..8));
            let shared = if rng.bool() {
                MapFlags::MAP_SHARED
            } else {
                MapFlags::MAP_PRIVATE
            };
            // SAFETY: A fresh mapping that nothing aliases; unmapped right away.
            let ptr = unsafe { mmap(None, len, prot, shared, buffer, offset) }?;
            // SAFETY: `ptr` maps `len` bytes.
            unsafe { munmap(ptr, len.get()) }
        }
        _ => random_ioctl(rng, fd, b'b'),
    }
}

#[test]
fn random_calls_get_an_errno_and_never_break_the_heap() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0f25_4ea9);
    let heaps = [open_heap(RSHEAP), open_heap(RSHEAP_UNCACHED)];
    let mut buffers: Vec<OwnedFd> = Vec::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    for _ in 0..CALLS {
        let heap = &heaps[rng.usize(0..heaps.len())];
        let result = match rng.u8(0..10) {
            0..=2 => allocate(&mut rng, heap).map(|fd| {
                buffers.push(fd);
                if buffers.len() > 16 {
                    buffers.swap_remove(0);
                }
            }),
            3 => random_ioctl(&mut rng, heap.as_raw_fd(), b'H'),
            _ => match buffers.len() {
                0 => Err(Errno::ENOENT),
                n => {
                    let pick = rng.usize(0..n);
                    buffer_call(&mut rng, &buffers[pick])
                }
            },
        };
        match result {
            Ok(()) => ok += 1,
            Err(errno) => {
                assert_ne!(errno, Errno::UnknownErrno);
                failed += 1;
            }
        }
    }
    assert!(
        ok > CALLS / 10 && failed > CALLS / 10,
        "{ok} calls succeeded, {failed} failed"
    );
    drop(buffers);
    // Still serving normally.
    rsheap::Heap::open(RSHEAP)
        .expect("open")
        .allocate(1 << 20)
        .expect("allocate after fuzzing");
}
