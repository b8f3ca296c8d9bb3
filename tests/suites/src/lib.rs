//! Helpers for the emulator suites, which run inside the test guest (`cargo xtask test` boots
//! it and runs every test binary of this package there, with rsheap.ko loaded), and for the
//! benchmark workloads of `tests/bench`.
//!
//! These wrap the raw kernel interfaces the suites probe with bad input, where the safe
//! `rsheap` API would refuse to pass it on, the debugfs files of rsheap.ko and the test-only
//! vmap probe, and files of known content on the rig's scratch file system.

pub mod broker;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use rsheap::uapi::{dma_heap_ioctl_alloc, DmaHeapAllocationData};
use rsheap::HEAP_DIR;
use xxhash_rust::xxh3::Xxh3;

/// The cached heap rsheap.ko registers.
pub const RSHEAP: &str = "rsheap";
/// The uncached heap rsheap.ko registers.
pub const RSHEAP_UNCACHED: &str = "rsheap-uncached";
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
    meminfo("MemTotal")
}

/// A byte pattern that differs for every offset and run, so misplaced pages show up.
pub fn pattern_byte(seed: u8, offset: usize) -> u8 {
    let page = offset >> 12;
    (offset as u8) ^ (page as u8).rotate_left(3) ^ seed
}

/// `len` [`pattern_byte`]s of `seed`, from offset 0.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|offset| pattern_byte(seed, offset)).collect()
}

/// The first offset where `bytes`, which start at offset `start` of a buffer, differ from the
/// pattern of `seed`.
pub fn pattern_mismatch(bytes: &[u8], start: usize, seed: u8) -> Option<usize> {
    (bytes.iter().enumerate()).position(|(i, &byte)| byte != pattern_byte(seed, start + i))
}

/// Writes [`pattern_byte`]s over the whole buffer through a mapping and reads them back, a
/// megabyte at a time, so that checking a large buffer takes no memory of its size.
pub fn fill_and_check(buffer: &rsheap::Buffer, seed: u8) {
    use rsheap::SyncDirection;
    const STEP: usize = 1 << 20;
    let mut mapping = buffer.map().expect("map");
    let len = mapping.len();
    {
        let _access = buffer.cpu_access(SyncDirection::Write).expect("sync");
        for start in (0..len).step_by(STEP) {
            let piece: Vec<u8> = (start..len.min(start + STEP))
                .map(|offset| pattern_byte(seed, offset))
                .collect();
            mapping.write_at(start, &piece).expect("write the pattern");
        }
    }
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    let mut piece = vec![0u8; STEP];
    for start in (0..len).step_by(STEP) {
        let piece = &mut piece[..STEP.min(len - start)];
        mapping.read_at(start, piece).expect("read the pattern");
        if let Some(i) = pattern_mismatch(piece, start, seed) {
            panic!("byte {} of {len} lost its value", start + i);
        }
    }
}

pub use rsheap::page_size;

/// Column `index` (0: live buffers, 1: their bytes) of a heap's line in rsheap's stats.
pub fn heap_stat(heap: &str, index: usize) -> u64 {
    let text = std::fs::read_to_string("/sys/kernel/debug/rsheap/stats").expect("read stats");
    let line = text
        .lines()
        .find(|line| line.split_whitespace().next() == Some(heap))
        .unwrap_or_else(|| panic!("no line for heap {heap}"));
    line.split_whitespace()
        .nth(1 + index)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

/// `/sys/kernel/debug/rsheap/stats` as (label, value) pairs for its `label  value` lines.
pub fn rsheap_stats() -> Vec<(String, u64)> {
    let text =
        std::fs::read_to_string("/sys/kernel/debug/rsheap/stats").expect("read rsheap stats");
    text.lines()
        .filter_map(|line| {
            let (label, value) = line.trim().rsplit_once(char::is_whitespace)?;
            Some((label.trim().to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// One value of the rsheap stats, by its label (`pool bytes`, `pool hits`, ...).
pub fn rsheap_stat(label: &str) -> u64 {
    rsheap_stats()
        .into_iter()
        .find_map(|(l, v)| (l == label).then_some(v))
        .unwrap_or_else(|| panic!("no {label:?} in rsheap stats"))
}

/// Waits until the pool worker has zeroed and filed everything freed so far.
pub fn wait_for_pool_worker() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = (u64::MAX, u64::MAX);
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = (rsheap_stat("chunks zeroed"), rsheap_stat("chunks freed"));
        if now == last {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pool worker never settled"
        );
        last = now;
    }
}

/// Empties rsheap's pools through their shrinker, leaving every other cache as it is.
pub fn drain_pools() {
    wait_for_pool_worker();
    let shrinker = std::fs::read_dir("/sys/kernel/debug/shrinker")
        .expect("list shrinkers")
        .filter_map(|entry| entry.ok())
        .find(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("rsheap-pool")
        })
        .expect("rsheap's shrinker is in /sys/kernel/debug/shrinker");
    // "<memcg inode> <node> <objects to scan>"; the pools are neither per-memcg nor per-node.
    std::fs::write(shrinker.path().join("scan"), format!("0 0 {}", u32::MAX))
        .expect("run rsheap's shrinker");
}

/// Runs the test-only vmap probe (`tests/vmap_probe`) on the dma-buf `fd` in `mode` (`time`,
/// `sum` or `twice`) and returns its `key=value` answers.
pub fn vmap_probe(fd: &impl AsRawFd, mode: &str) -> Vec<(String, String)> {
    use std::io::{Read, Seek, Write};
    let mut file = File::options()
        .read(true)
        .write(true)
        .open("/sys/kernel/debug/rsheap_vmap_probe")
        .expect("open the vmap probe (is rsheap_vmap_probe.ko loaded?)");
    // One write: the probe parses each write on its own.
    file.write_all(format!("{} {mode}", fd.as_raw_fd()).as_bytes())
        .expect("probe the buffer");
    file.rewind().expect("rewind");
    let mut answer = String::new();
    file.read_to_string(&mut answer)
        .expect("read the probe's answer");
    answer
        .split_whitespace()
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Whether the page mapped at `addr` in this process is write-combined (the probe compares its
/// protection with what `pgprot_writecombine()` makes of it); the page must be mapped.
pub fn is_write_combined(addr: *const u8) -> bool {
    use std::io::{Read, Seek, Write};
    let mut file = File::options()
        .read(true)
        .write(true)
        .open("/sys/kernel/debug/rsheap_prot_probe")
        .expect("open the protection probe (is rsheap_vmap_probe.ko loaded?)");
    file.write_all(format!("{:x}", addr as usize).as_bytes())
        .expect("probe the page");
    file.rewind().expect("rewind");
    let mut answer = String::new();
    file.read_to_string(&mut answer)
        .expect("read the probe's answer");
    match answer.trim() {
        "writecombine=1" => true,
        "writecombine=0" => false,
        other => panic!("the protection probe answered {other:?}"),
    }
}

/// The value of `key` in the vmap probe's answers.
pub fn probe_answer<'a>(answers: &'a [(String, String)], key: &str) -> &'a str {
    answers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the vmap probe gave no {key}"))
}

/// A value from `/proc/meminfo`, in bytes.
pub fn meminfo(field: &str) -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/meminfo"));
    kib * 1024
}

/// A counter from `/proc/vmstat`.
pub fn vmstat(field: &str) -> u64 {
    std::fs::read_to_string("/proc/vmstat")
        .expect("read /proc/vmstat")
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/vmstat"))
}

/// Where the rig mounts the ext4 file system of its scratch disk (virtio-blk).
pub const SCRATCH: &str = "/run/scratch";

/// `name` on the scratch file system, failing the test with a hint if it is not mounted.
pub fn scratch_path(name: &str) -> PathBuf {
    path_on(SCRATCH, name)
}

/// Where the rig mounts the ext4 file system of its small disk (virtio-blk), for the suites
/// that fill a file system up or make its disk fail.
pub const SMALL: &str = "/run/small";

/// `name` on the small file system, failing the test with a hint if it is not mounted.
pub fn small_path(name: &str) -> PathBuf {
    path_on(SMALL, name)
}

/// `name` under `mount`, one of the rig's file systems, failing the test with a hint if it is
/// not mounted.
fn path_on(mount: &str, name: &str) -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    assert!(
        mounts
            .lines()
            .any(|line| line.split(' ').nth(1) == Some(mount)),
        "{mount} is not mounted (run the suites with `cargo xtask test`)"
    );
    Path::new(mount).join(name)
}

/// Writes dirty pages back and drops the clean page cache, so the next read of any file
/// comes from its disk.
pub fn drop_caches() {
    nix::unistd::sync();
    std::fs::write("/proc/sys/vm/drop_caches", "1").expect("drop the page cache");
}

/// The 64-bit XXH3 hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// Creates `path` with `len` bytes of random content drawn from `seed`, and returns the
/// content's hash. Writes in 4 MiB pieces, so the content never has to fit in memory.
pub fn write_random_file(path: &Path, len: u64, seed: u64) -> u64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut file = File::create(path).unwrap_or_else(|err| panic!("create {path:?}: {err}"));
    let mut hasher = Xxh3::new();
    let mut piece = vec![0u8; 4 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        rng.fill(&mut piece[..n]);
        hasher.update(&piece[..n]);
        file.write_all(&piece[..n]).expect("write the file");
        left -= n as u64;
    }
    file.sync_all().expect("sync the file");
    hasher.digest()
}

/// The hash of a whole file's content, read in 4 MiB pieces.
pub fn hash_file(path: &Path) -> u64 {
    let mut file = File::open(path).unwrap_or_else(|err| panic!("open {path:?}: {err}"));
    let mut hasher = Xxh3::new();
    let mut piece = vec![0u8; 4 << 20];
    loop {
        let n = file.read(&mut piece).expect("read the file");
        if n == 0 {
            return hasher.digest();
        }
        hasher.update(&piece[..n]);
    }
}

/// The direct I/O alignment `statx` reports for `path`: (memory, file offset), or `None` if
/// the file has no direct I/O.
pub fn dio_alignment(path: &Path) -> Option<(u32, u32)> {
    let path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("a path");
    // SAFETY: `statx` is plain data, for which all zeroes is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stx` is valid for writes, both for the call.
    let ret = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            0,
            libc::STATX_DIOALIGN,
            &mut stx,
        )
    };
    assert_eq!(ret, 0, "statx {path:?}");
    (stx.stx_mask & libc::STATX_DIOALIGN != 0 && stx.stx_dio_offset_align != 0)
        .then_some((stx.stx_dio_mem_align, stx.stx_dio_offset_align))
}

/// Opens rsheap's control device, `/dev/rsheap`.
pub fn open_control() -> File {
    File::options()
        .read(true)
        .open(rsheap::CONTROL_DEVICE)
        .unwrap_or_else(|err| panic!("open {}: {err}", rsheap::CONTROL_DEVICE))
}

/// Issues `RSHEAP_IOC_SHARE_READONLY` with exactly these fields, and owns the new descriptor.
pub fn raw_share(
    control: &File,
    request: &mut rsheap::uapi::RsheapShare,
) -> Result<OwnedFd, Errno> {
    // SAFETY: `request` is a valid `struct rsheap_share` for the duration of the call.
    unsafe { rsheap::uapi::rsheap_ioc_share_readonly(control.as_raw_fd(), request) }?;
    // SAFETY: On success the kernel installed a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(request.ro_fd) })
}

/// The kernel's log buffer, as `dmesg` prints it.
pub fn kernel_log() -> String {
    const SYSLOG_ACTION_READ_ALL: libc::c_int = 3;
    const SYSLOG_ACTION_SIZE_BUFFER: libc::c_int = 10;
    // SAFETY: Asking for the buffer's size passes no memory.
    let size = unsafe { libc::klogctl(SYSLOG_ACTION_SIZE_BUFFER, std::ptr::null_mut(), 0) };
    assert!(size > 0, "the kernel log's size");
    let mut bytes = vec![0u8; size as usize];
    // SAFETY: `bytes` is valid for `size` bytes of writes.
    let len = unsafe { libc::klogctl(SYSLOG_ACTION_READ_ALL, bytes.as_mut_ptr().cast(), size) };
    assert!(len >= 0, "read the kernel log");
    bytes.truncate(len as usize);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Issues `RSHEAP_IOC_LOAD` (or `RSHEAP_IOC_STORE`) with exactly these fields.
pub fn raw_transfer(
    control: &File,
    store: bool,
    request: &mut rsheap::uapi::RsheapTransfer,
) -> Result<(), Errno> {
    let fd = control.as_raw_fd();
    // SAFETY: `request` is a valid `struct rsheap_transfer` for the duration of the call.
    unsafe {
        if store {
            rsheap::uapi::rsheap_ioc_store(fd, request)
        } else {
            rsheap::uapi::rsheap_ioc_load(fd, request)
        }
    }
    .map(drop)
}

/// Sends SIGKILL to `child`, reaps it, checks that the signal is what ended it, and returns
/// how long it took to die.
pub fn kill_and_reap(child: nix::unistd::Pid) -> std::time::Duration {
    use nix::sys::signal::{kill, Signal};
    use nix::sys::wait::{waitpid, WaitStatus};
    let start = std::time::Instant::now();
    kill(child, Signal::SIGKILL).expect("kill");
    let status = waitpid(child, None).expect("waitpid");
    assert_eq!(
        status,
        WaitStatus::Signaled(child, Signal::SIGKILL, false),
        "the child died of SIGKILL, before it finished"
    );
    start.elapsed()
}
