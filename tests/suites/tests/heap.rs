//! rsheap's dma-buf heap as user space sees it: allocation, mmap, CPU-access sync, device
//! import, names, and errno parity with the in-tree system heap on bad input.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use rsheap::uapi::{
    dma_buf_ioctl_sync, DmaBufSync, DMA_BUF_SYNC_END, DMA_BUF_SYNC_RW, DMA_BUF_SYNC_START,
};
use rsheap::{Buffer, Heap, SyncDirection};
use rsheap_suites::{
    fdinfo, open_heap, page_size, pattern, pattern_byte, pattern_mismatch, raw_alloc, request,
    total_ram, RSHEAP, RSHEAP_UNCACHED, SYSTEM,
};

fn rsheap() -> Heap {
    Heap::open(RSHEAP).expect("open the rsheap heap")
}

fn fill(buffer: &Buffer, seed: u8) {
    let mut mapping = buffer.map().expect("map");
    let _access = buffer
        .cpu_access(SyncDirection::Write)
        .expect("begin CPU write");
    mapping
        .write_at(0, &pattern(seed, mapping.len()))
        .expect("write the pattern");
}

fn verify(buffer: &Buffer, seed: u8) {
    let mapping = buffer.map().expect("map");
    let _access = buffer
        .cpu_access(SyncDirection::Read)
        .expect("begin CPU read");
    if let Some(offset) = pattern_mismatch(&mapping.to_vec(), 0, seed) {
        panic!("byte {offset} of {} lost its value", buffer.len());
    }
}

#[test]
fn heap_is_registered_with_the_dma_heap_core() {
    let meta = std::fs::metadata("/dev/dma_heap/rsheap").expect("/dev/dma_heap/rsheap exists");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &meta.file_type()
    ));
    assert!(
        std::path::Path::new("/sys/class/dma_heap/rsheap").exists(),
        "registered through dma_heap_add"
    );
    assert!(rsheap::heap_names()
        .expect("list heaps")
        .contains(&RSHEAP.to_owned()));
}

#[test]
fn buffers_are_zeroed_rounded_to_pages_and_keep_their_contents() {
    let page = page_size();
    let heap = rsheap();
    for (seed, len) in [
        1,
        4096,
        65536,
        1 << 20,
        (1 << 20) + 4096,
        (8 << 20) + 3 * 4096 + 5,
        33 << 20,
    ]
    .into_iter()
    .enumerate()
    {
        let buffer = heap
            .allocate(len)
            .unwrap_or_else(|err| panic!("allocate {len}: {err}"));
        assert_eq!(
            buffer.len(),
            len.div_ceil(page) * page,
            "size of a {len}-byte request"
        );
        {
            let mapping = buffer.map().expect("map");
            let _access = buffer
                .cpu_access(SyncDirection::Read)
                .expect("begin CPU read");
            assert!(
                mapping.to_vec().iter().all(|&b| b == 0),
                "a fresh {len}-byte buffer is zeroed"
            );
        }
        fill(&buffer, seed as u8);
        verify(&buffer, seed as u8);
    }
}

#[test]
fn partial_mmaps_at_page_offsets_see_the_right_bytes() {
    let page = page_size();
    let len = (3 << 20) + 2 * page;
    let buffer = rsheap().allocate(len).expect("allocate");
    fill(&buffer, 7);
    // Offsets and lengths inside one chunk, across 64 KiB and 1 MiB chunk boundaries, and to
    // the very end.
    for (offset, map_len) in [
        (0, page),
        (page, 3 * page),
        ((1 << 20) - page, 2 * page),
        ((1 << 20) - 16 * page, (1 << 20) + 32 * page),
        (3 << 20, 2 * page),
        (len - page, page),
        (0, len),
    ] {
        let mapping = buffer
            .map_range(offset, map_len)
            .unwrap_or_else(|err| panic!("map {map_len} at {offset}: {err}"));
        assert_eq!(
            pattern_mismatch(&mapping.to_vec(), offset, 7),
            None,
            "the mapping at offset {offset}"
        );
    }
}

#[test]
fn mmap_beyond_the_buffer_fails_with_einval() {
    let page = page_size();
    let buffer = rsheap().allocate(4 * page).expect("allocate");
    for (offset, len) in [(4 * page, page), (0, 5 * page), (3 * page, 2 * page)] {
        let err = buffer
            .map_range(offset, len)
            .expect_err("mapping past the end must fail");
        assert_eq!(err.errno(), Some(Errno::EINVAL), "map {len} at {offset}");
    }
}

#[test]
fn bad_requests_get_the_same_errno_as_the_system_heap() {
    let ours = open_heap(RSHEAP);
    let theirs = open_heap(SYSTEM);
    let cases = [
        (
            "zero length",
            rsheap::uapi::DmaHeapAllocationData {
                len: 0,
                ..request(0)
            },
        ),
        ("length that wraps when page-aligned", request(u64::MAX)),
        (
            "unknown heap flags",
            rsheap::uapi::DmaHeapAllocationData {
                heap_flags: 0x111111,
                ..request(4096)
            },
        ),
        (
            "every fd flag",
            rsheap::uapi::DmaHeapAllocationData {
                fd_flags: !0,
                ..request(4096)
            },
        ),
        (
            "O_NONBLOCK fd flag",
            rsheap::uapi::DmaHeapAllocationData {
                fd_flags: OFlag::O_NONBLOCK.bits() as u32,
                ..request(4096)
            },
        ),
        (
            "fd field set",
            rsheap::uapi::DmaHeapAllocationData {
                fd: 3,
                ..request(4096)
            },
        ),
    ];
    for (what, case) in cases {
        let ours = raw_alloc(&ours, case).map(drop).expect_err(what);
        let theirs = raw_alloc(&theirs, case).map(drop).expect_err(what);
        assert_eq!(ours, Errno::EINVAL, "{what}");
        assert_eq!(ours, theirs, "{what}: rsheap and system differ");
    }
}

#[test]
fn impossible_sizes_fail_at_once_with_enomem() {
    let heap = open_heap(RSHEAP);
    for len in [2 * total_ram(), 1 << 50, u64::MAX - (1 << 20)] {
        let start = Instant::now();
        let err = raw_alloc(&heap, request(len))
            .map(drop)
            .expect_err("larger than RAM");
        assert_eq!(err, Errno::ENOMEM, "{len} bytes");
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{len} bytes took {:?} to refuse",
            start.elapsed()
        );
    }
    // Still healthy afterwards.
    rsheap().allocate(1 << 20).expect("allocate after refusals");
}

#[test]
fn fd_flags_set_close_on_exec_and_access_mode() {
    let heap = open_heap(RSHEAP);
    let cloexec = raw_alloc(&heap, request(4096)).expect("allocate O_CLOEXEC");
    let flags =
        FdFlag::from_bits_truncate(fcntl(cloexec.as_raw_fd(), FcntlArg::F_GETFD).expect("F_GETFD"));
    assert!(flags.contains(FdFlag::FD_CLOEXEC));

    let read_only = rsheap::uapi::DmaHeapAllocationData {
        fd_flags: OFlag::O_RDONLY.bits() as u32,
        ..request(4096)
    };
    let fd = raw_alloc(&heap, read_only).expect("allocate O_RDONLY");
    let flags =
        FdFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).expect("F_GETFD"));
    assert!(!flags.contains(FdFlag::FD_CLOEXEC));
    let buffer = Buffer::from_fd(fd).expect("buffer");
    let err = buffer
        .map()
        .expect_err("a read-only dma-buf cannot be mapped writable");
    assert_eq!(err.errno(), Some(Errno::EACCES));
}

#[test]
fn cpu_access_sync_accepts_valid_flags_and_rejects_others() {
    let buffer = rsheap().allocate(1 << 20).expect("allocate");
    let fd = buffer.as_fd().as_raw_fd();
    for flags in [
        DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW,
        DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW,
    ] {
        // SAFETY: A valid `dma_buf_sync` for the duration of the call.
        unsafe { dma_buf_ioctl_sync(fd, &DmaBufSync { flags }) }.expect("valid sync");
    }
    for flags in [0x100, DMA_BUF_SYNC_START, 1 << 63] {
        // SAFETY: A valid `dma_buf_sync` for the duration of the call.
        let err = unsafe { dma_buf_ioctl_sync(fd, &DmaBufSync { flags }) }
            .expect_err("invalid sync flags");
        assert_eq!(err, Errno::EINVAL, "flags {flags:#x}");
    }
}

#[test]
fn buffer_name_and_exporter_show_in_fdinfo() {
    let buffer = rsheap().allocate(2 << 20).expect("allocate");
    buffer.set_name("camera-frame-0").expect("set name");
    let info = fdinfo(&buffer.as_fd());
    assert!(info.contains("exp_name:\trsheap"), "{info}");
    assert!(info.contains(&format!("size:\t{}", 2 << 20)), "{info}");
    assert!(info.contains("name:\tcamera-frame-0"), "{info}");
}

#[test]
fn buffers_outlive_the_heap_file() {
    let buffer = {
        let heap = rsheap();
        heap.allocate(1 << 20).expect("allocate")
    };
    fill(&buffer, 3);
    verify(&buffer, 3);
}

#[test]
fn many_buffers_live_at_once_and_stay_distinct() {
    let heap = rsheap();
    let buffers: Vec<Buffer> = (0..64)
        .map(|_| heap.allocate(256 << 10).expect("allocate"))
        .collect();
    for (i, buffer) in buffers.iter().enumerate() {
        fill(buffer, i as u8);
    }
    for (i, buffer) in buffers.iter().enumerate() {
        verify(buffer, i as u8);
    }
}

#[test]
fn concurrent_allocations_from_many_threads() {
    std::thread::scope(|scope| {
        for thread in 0..8u8 {
            scope.spawn(move || {
                let heap = rsheap();
                for round in 0..25u8 {
                    let buffer = heap
                        .allocate((64 << 10) * (1 + round as usize % 5))
                        .expect("allocate");
                    let seed = thread.wrapping_mul(31) ^ round;
                    fill(&buffer, seed);
                    verify(&buffer, seed);
                }
            });
        }
    });
}

#[test]
fn module_stays_loaded_while_its_heap_is_registered() {
    // The system call itself: nix's `kmod` is a feature AOSP's libnix does not build, and
    // this package's system_broker.rs builds there.
    // SAFETY: `delete_module` takes a NUL-terminated name, which lives through the call, and
    // flags; it touches no memory of this process.
    let result = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_delete_module,
            c"rsheap".as_ptr(),
            nix::libc::O_NONBLOCK,
        )
    };
    assert_eq!(result, -1, "rmmod of a registered heap must fail");
    let err = Errno::last();
    assert!(matches!(err, Errno::EWOULDBLOCK | Errno::EBUSY), "{err}");
    rsheap()
        .allocate(1 << 20)
        .expect("heap works after the refused unload");
}

#[test]
fn memcg_accounting_is_off_by_default() {
    let value =
        std::fs::read_to_string("/sys/module/rsheap/parameters/mem_accounting").expect("parameter");
    assert_eq!(value.trim(), "N");
}

#[test]
fn private_mappings_are_refused() {
    let buffer = rsheap().allocate(4 << 20).expect("allocate");
    let len = std::num::NonZeroUsize::new(4 << 20).expect("non-zero");
    let prot = nix::sys::mman::ProtFlags::PROT_READ;
    // SAFETY: A fresh mapping that is unmapped at once if it succeeds.
    let result = unsafe {
        nix::sys::mman::mmap(
            None,
            len,
            prot,
            nix::sys::mman::MapFlags::MAP_PRIVATE,
            &buffer,
            0,
        )
    };
    assert_eq!(
        result.map(drop),
        Err(Errno::EINVAL),
        "a copy-on-write mapping of a shared buffer"
    );
}

/// A shared read-only mapping of a whole buffer one page past a 2 MiB boundary, where no PMD
/// can map it; unmapped when dropped.
struct OddMapping {
    reservation: std::ptr::NonNull<std::ffi::c_void>,
    span: usize,
    start: *const u8,
    len: usize,
}

impl OddMapping {
    fn new(buffer: &Buffer) -> Self {
        let len = std::num::NonZeroUsize::new(buffer.len()).expect("non-zero");
        // Room for the mapping after the next 2 MiB boundary, and a page more.
        let span = buffer.len() + (4 << 20);
        // SAFETY: A fresh reservation, which nothing else uses; `drop` unmaps it.
        let reservation = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                std::num::NonZeroUsize::new(span).expect("non-zero"),
                nix::sys::mman::ProtFlags::PROT_NONE,
                nix::sys::mman::MapFlags::MAP_PRIVATE,
            )
        }
        .expect("reserve");
        let at = (reservation.as_ptr() as usize).next_multiple_of(2 << 20) + page_size();
        let at = std::num::NonZeroUsize::new(at).expect("non-zero");
        let flags = nix::sys::mman::MapFlags::MAP_SHARED | nix::sys::mman::MapFlags::MAP_FIXED;
        let prot = nix::sys::mman::ProtFlags::PROT_READ;
        // SAFETY: `[at, at + len)` lies inside the reservation.
        let start = unsafe { nix::sys::mman::mmap(Some(at), len, prot, flags, buffer, 0) }
            .expect("map at an odd address");
        Self {
            reservation,
            span,
            start: start.as_ptr().cast(),
            len: len.get(),
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `start` maps `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }
}

impl Drop for OddMapping {
    fn drop(&mut self) {
        // SAFETY: The whole reservation, including the mapping, is ours.
        let _ = unsafe { nix::sys::mman::munmap(self.reservation, self.span) };
    }
}

#[test]
fn mappings_at_any_address_see_the_same_bytes() {
    // The SDK places large mappings 2 MiB-aligned; the kernel must serve any other placement
    // from base pages, with the same contents.
    let buffer = rsheap().allocate(9 << 20).expect("allocate");
    fill(&buffer, 11);
    let mapping = OddMapping::new(&buffer);
    for (offset, &byte) in mapping.bytes().iter().enumerate().step_by(509) {
        assert_eq!(byte, pattern_byte(11, offset), "byte {offset}");
    }
}

/// The page faults this thread takes to read one byte of every page of `bytes`.
///
/// Reads, since a first write may fault where the CPU keeps no dirty bit of its own.
fn faults_reading(bytes: &[u8]) -> i64 {
    let faults = || {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
            .expect("getrusage")
            .minor_page_faults()
    };
    let before = faults();
    for offset in (0..bytes.len()).step_by(page_size()) {
        // SAFETY: `offset` lies within `bytes`.
        let byte = unsafe { std::ptr::read_volatile(bytes.as_ptr().add(offset)) };
        assert_eq!(byte, 0, "byte {offset} of a fresh buffer");
    }
    faults() - before
}

#[test]
fn mmap_maps_at_once_every_page_no_pmd_will() {
    let page = page_size();
    let heap = rsheap();
    // One-page buffers, as command lists and metadata take: a fault each, were they mapped
    // when first touched.
    let buffers: Vec<Buffer> = (0..64)
        .map(|_| heap.allocate(page).expect("allocate"))
        .collect();
    let mappings: Vec<_> = buffers.iter().map(|b| b.map().expect("map")).collect();
    let faults: i64 = mappings
        .iter()
        .map(|mapping| {
            // SAFETY: The mapping maps `len()` readable bytes while it lives.
            faults_reading(unsafe { std::slice::from_raw_parts(mapping.as_ptr(), mapping.len()) })
        })
        .sum();
    assert!(
        faults < 8,
        "reading 64 fresh one-page mappings took {faults} faults"
    );
    // A large buffer where no PMD can map it: mmap() maps all of it.
    let buffer = heap.allocate(64 << 20).expect("allocate");
    let mapping = OddMapping::new(&buffer);
    let faults = faults_reading(mapping.bytes());
    assert!(
        faults < 4,
        "reading a fresh 64 MiB mapping took {faults} faults"
    );
}

#[test]
fn a_buffer_maps_twice_at_once_from_either_heap() {
    let page = page_size();
    for name in [RSHEAP, RSHEAP_UNCACHED] {
        let heap = Heap::open(name).expect("open the heap");
        for len in [page, 64 << 10, (2 << 20) + page] {
            let buffer = heap.allocate(len).expect("allocate");
            let mut first = buffer.map().expect("map");
            let second = buffer.map().expect("map a second time");
            first
                .write_at(0, &pattern(7, len))
                .expect("write the pattern");
            assert_eq!(
                pattern_mismatch(&second.to_vec(), 0, 7),
                None,
                "{len} bytes of {name} through a second mapping"
            );
        }
    }
}

/// A `kB` figure of `/proc/self/status`.
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The `VmFlags` of the mapping that starts at `addr`, from `/proc/self/smaps`.
fn vm_flags(addr: usize) -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let start = format!("{addr:x}-");
    smaps
        .lines()
        .skip_while(|line| !line.starts_with(&start))
        .find_map(|line| line.strip_prefix("VmFlags:"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no mapping at {addr:#x} in /proc/self/smaps"))
}

/// Sets THP's global mode while it lives, and puts the old one back.
struct ThpMode(String);

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

impl ThpMode {
    fn set(mode: &str) -> Self {
        let text = std::fs::read_to_string(THP_ENABLED).expect("read the THP mode");
        let old = text
            .split_whitespace()
            .find_map(|word| word.strip_prefix('[')?.strip_suffix(']'))
            .expect("a selected THP mode")
            .to_owned();
        std::fs::write(THP_ENABLED, mode).expect("set the THP mode");
        Self(old)
    }
}

impl Drop for ThpMode {
    fn drop(&mut self) {
        let _ = std::fs::write(THP_ENABLED, &self.0);
    }
}

#[test]
fn large_mappings_take_pmds_with_thp_in_madvise_mode_and_no_vma_mark() {
    let page = page_size();
    // A PMD maps as many pages as a page-table page has entries.
    let pmd = page * (page / 8);
    if pmd != 2 << 20 {
        println!("skipped: a PMD maps {pmd} bytes, more than the heap's largest chunk");
        return;
    }
    // Android's default: huge pages only where asked for.
    let _mode = ThpMode::set("madvise");
    let len = 256 << 20;
    let buffer = rsheap().allocate(len).expect("allocate");
    let mapping = buffer.map().expect("map");
    let base = mapping.as_ptr() as usize;
    assert_eq!(base % pmd, 0, "the SDK places large mappings PMD-aligned");
    let before = status_kb("VmPTE");
    // One byte read per PMD faults each one in.
    let touched: u64 = (0..len)
        .step_by(pmd)
        .map(|offset| {
            let mut byte = [0];
            mapping.read_at(offset, &mut byte).expect("read");
            u64::from(byte[0])
        })
        .sum();
    assert_eq!(touched, 0, "a fresh buffer is zeroed");
    let grown = status_kb("VmPTE").saturating_sub(before);
    // Base pages would need a page-table page per PMD: 128 of them, 512 KiB with 4 KiB pages.
    let base_page_tables = (len / pmd * page / 1024) as u64;
    assert!(
        grown < base_page_tables / 4,
        "mapping {len} bytes grew the page tables by {grown} kB, base pages need \
         {base_page_tables} kB"
    );
    // The kernel lets huge PFN mappings bypass the THP policy (6.12.115 and later), so the VMA
    // does not claim MADV_HUGEPAGE ("hg") that nobody asked for.
    let flags = vm_flags(base);
    assert!(
        !flags.split_whitespace().any(|flag| flag == "hg"),
        "VmFlags:{flags}"
    );
}

#[test]
fn a_charged_buffer_counts_in_its_account_until_its_last_reference_goes() {
    use rsheap::uapi::{rsheap_ioc_account, rsheap_ioc_charge, RsheapAccount, RsheapCharge};
    use rsheap::{Account, AccountUsage};
    let account = Account::open().expect("open an account");
    assert_eq!(account.usage().expect("usage"), AccountUsage::default());
    let len = 3 << 20;
    let buffer = rsheap().allocate(len).expect("allocate");
    account.charge(&buffer).expect("charge");
    let one = AccountUsage {
        buffers: 1,
        bytes: len as u64,
    };
    assert_eq!(account.usage().expect("usage"), one);
    // A buffer has one owner.
    let errno = |result: rsheap::Result<()>| result.expect_err("refused").errno();
    assert_eq!(errno(account.charge(&buffer)), Some(Errno::EBUSY));
    let other = Account::open().expect("another account");
    assert_eq!(errno(other.charge(&buffer)), Some(Errno::EBUSY));
    // Only rsheap's buffers can be charged.
    let system = raw_alloc(&open_heap(SYSTEM), request(1 << 20)).expect("system heap buffer");
    assert_eq!(errno(account.charge(&system)), Some(Errno::EXDEV));
    let file = std::fs::File::open("/proc/self/status").expect("open a file");
    assert_eq!(errno(account.charge(&file)), Some(Errno::EINVAL));

    // The count follows the memory: a copy of the fd, then a mapping, keep the buffer.
    let copy = buffer.as_fd().try_clone_to_owned().expect("dup");
    let size = std::num::NonZeroUsize::new(len).expect("non-zero");
    // SAFETY: A fresh shared mapping, unmapped below.
    let mapping = unsafe {
        nix::sys::mman::mmap(
            None,
            size,
            nix::sys::mman::ProtFlags::PROT_READ,
            nix::sys::mman::MapFlags::MAP_SHARED,
            &copy,
            0,
        )
    }
    .expect("map");
    drop(buffer);
    assert_eq!(
        account.usage().expect("usage"),
        one,
        "a copy of the fd is open"
    );
    drop(copy);
    assert_eq!(account.usage().expect("usage"), one, "a mapping is left");
    // SAFETY: The mapping made above, used by nothing else.
    unsafe { nix::sys::mman::munmap(mapping, len) }.expect("unmap");
    assert_eq!(
        account.usage().expect("usage"),
        AccountUsage::default(),
        "the buffer is gone"
    );
    // A closed account's buffers still release cleanly.
    let buffer = rsheap().allocate(1 << 20).expect("allocate");
    other.charge(&buffer).expect("charge");
    drop(other);
    drop(buffer);

    // Bad requests get their errno.
    let fd = std::fs::File::open(rsheap::CONTROL_DEVICE).expect("open /dev/rsheap");
    let mut bad_flags = RsheapAccount {
        size: 24,
        flags: 1,
        ..RsheapAccount::default()
    };
    // SAFETY: `bad_flags` is a valid request for the call.
    let got = unsafe { rsheap_ioc_account(fd.as_raw_fd(), &mut bad_flags) }.map(drop);
    assert_eq!(got, Err(Errno::EINVAL), "unknown account flags");
    let mut short = RsheapCharge { size: 4, buf_fd: 0 };
    // SAFETY: As above.
    let got = unsafe { rsheap_ioc_charge(fd.as_raw_fd(), &mut short) }.map(drop);
    assert_eq!(got, Err(Errno::EINVAL), "a size below version 0");
    let mut bad_fd = RsheapCharge {
        size: 8,
        buf_fd: -1,
    };
    // SAFETY: As above.
    let got = unsafe { rsheap_ioc_charge(fd.as_raw_fd(), &mut bad_fd) }.map(drop);
    assert_eq!(got, Err(Errno::EBADF), "no such fd");
}
