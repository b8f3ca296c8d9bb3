//! Helpers for the emulator suites, which run inside the test guest (`cargo xtask test` boots
//! it and runs every test binary of this package there, with rsheap.ko loaded).
//!
//! These wrap the raw kernel interfaces the suites probe with bad input, where the safe
//! `rsheap` API would refuse to pass it on.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use rsheap::uapi::{dma_heap_ioctl_alloc, DmaHeapAllocationData};
use rsheap::HEAP_DIR;

/// The heap rsheap.ko registers.
pub const RSHEAP: &str = "rsheap";
/// The kernel's own system heap, the reference for behaviour.
pub const SYSTEM: &str = "system";

/// Opens `/dev/dma_heap/<name>`, failing the test with a hint if it is missing.
pub fn open_heap(name: &str) -> File {
    File::open(format!("{HEAP_DIR}/{name}")).unwrap_or_else(|err| {
        panic!("open {HEAP_DIR}/{name}: {err} (run the suites with `cargo xtask test`)")
    })
}

/// Issues `DMA_HEAP_IOCTL_ALLOC` with exactly these fields.
pub fn raw_alloc(heap: &File, request: DmaHeapAllocationData) -> Result<OwnedFd, Errno> {
    let mut data = request;
    // SAFETY: `data` is a valid `dma_heap_allocation_data` for the duration of the call.
    unsafe { dma_heap_ioctl_alloc(heap.as_raw_fd(), &mut data) }?;
    // SAFETY: On success the kernel installed a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(data.fd as i32) })
}

/// An allocation request with the usual flags for `len` bytes.
pub fn request(len: u64) -> DmaHeapAllocationData {
    DmaHeapAllocationData {
        len,
        fd: 0,
        fd_flags: (nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC).bits() as u32,
        heap_flags: 0,
    }
}

/// The text of `/proc/self/fdinfo/<fd>`.
pub fn fdinfo(fd: &impl AsRawFd) -> String {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("read fdinfo")
}

/// Total RAM in bytes, from `/proc/meminfo`.
pub fn total_ram() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kib * 1024
}

/// A byte pattern that differs for every offset and run, so misplaced pages show up.
pub fn pattern_byte(seed: u8, offset: usize) -> u8 {
    let page = offset >> 12;
    (offset as u8) ^ (page as u8).rotate_left(3) ^ seed
}

/// The page size.
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |size| size as usize)
}
