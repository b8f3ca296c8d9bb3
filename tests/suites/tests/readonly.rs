//! Read-only exports (`RSHEAP_IOC_SHARE_READONLY`): the same pages, seen through a dma-buf
//! that the kernel lets nobody write through, from user space, devices or `/dev/rsheap`.

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::mman::{mmap, mprotect, munmap, MapFlags, ProtFlags};
use rsheap::uapi::{RsheapShare, RSHEAP_SHARE_SIZE_VER0};
use rsheap::{Account, AccountUsage, Buffer, FileIo, Heap, IoPath, Span, SyncDirection};
use rsheap_suites::{
    fill_and_check, kernel_log, open_control, open_heap, page_size, pattern, pattern_byte,
    probe_answer, raw_alloc, raw_share, request, scratch_path, vmap_probe, RSHEAP, RSHEAP_UNCACHED,
    SYSTEM,
};

fn heap(name: &str) -> Heap {
    Heap::open(name).expect("open heap")
}

/// Sizes that cover one page, a few pages, and chunks of every order with a page beyond.
fn sizes() -> [usize; 3] {
    let page = page_size();
    [page, 3 * page, (2 << 20) + page]
}

/// Writes the pattern of `seed` over the whole buffer through a mapping of the original.
fn fill(buffer: &Buffer, seed: u8) {
    let mut mapping = buffer.map().expect("map the original");
    let _access = buffer
        .cpu_access(SyncDirection::Write)
        .expect("begin CPU write");
    mapping
        .write_at(0, &pattern(seed, mapping.len()))
        .expect("write the pattern");
}

/// The first offset where `bytes` differs from the pattern of `seed`.
fn mismatch(bytes: &[u8], seed: u8) -> Option<usize> {
    bytes
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern_byte(seed, i))
}

fn errno<T: std::fmt::Debug>(result: rsheap::Result<T>) -> Option<Errno> {
    result.expect_err("refused").errno()
}

/// Maps `len` bytes of `fd` with `prot` and `flags`.
fn raw_map(
    fd: &impl AsFd,
    len: usize,
    prot: ProtFlags,
    flags: MapFlags,
) -> Result<NonNull<std::ffi::c_void>, Errno> {
    let len = NonZeroUsize::new(len).expect("non-zero");
    // SAFETY: A fresh mapping the kernel places; callers unmap it.
    unsafe { mmap(None, len, prot, flags, fd, 0) }
}

/// A share request for `buf_fd` that would succeed.
fn share_request(buf_fd: i32) -> RsheapShare {
    RsheapShare {
        size: RSHEAP_SHARE_SIZE_VER0,
        buf_fd,
        fd_flags: OFlag::O_CLOEXEC.bits() as u32,
        ro_fd: -1,
    }
}

#[test]
fn a_read_only_export_reads_what_the_original_writes() {
    for name in [RSHEAP, RSHEAP_UNCACHED] {
        for len in sizes() {
            let original = heap(name).allocate(len).expect("allocate");
            fill(&original, 1);
            let shared = original.share_read_only().expect("share read-only");
            assert_eq!(shared.len(), len, "{name}: the export's size");
            let mapping = shared.map_read_only().expect("map the export read-only");
            {
                let _access = shared
                    .cpu_access(SyncDirection::Read)
                    .expect("begin CPU read");
                assert_eq!(mismatch(&mapping.to_vec(), 1), None, "{name}: {len} bytes");
            }
            // The same pages: a later write through the original shows through the mapping
            // the export already has.
            fill(&original, 2);
            let _access = shared
                .cpu_access(SyncDirection::Read)
                .expect("begin CPU read");
            assert_eq!(
                mismatch(&mapping.to_vec(), 2),
                None,
                "{name}: {len} bytes, written again"
            );
        }
    }
}

#[test]
fn the_export_is_open_read_only_and_close_on_exec() {
    let original = heap(RSHEAP).allocate(page_size()).expect("allocate");
    let shared = original.share_read_only().expect("share read-only");
    let flags = OFlag::from_bits_truncate(
        fcntl(shared.as_fd().as_raw_fd(), FcntlArg::F_GETFL).expect("getfl"),
    );
    assert_eq!(flags & OFlag::O_ACCMODE, OFlag::O_RDONLY);
    let fd_flags = FdFlag::from_bits_truncate(
        fcntl(shared.as_fd().as_raw_fd(), FcntlArg::F_GETFD).expect("getfd"),
    );
    assert!(fd_flags.contains(FdFlag::FD_CLOEXEC));
    // fd_flags 0: the descriptor survives exec.
    let control = open_control();
    let mut request = RsheapShare {
        fd_flags: 0,
        ..share_request(original.as_fd().as_raw_fd())
    };
    let fd = raw_share(&control, &mut request).expect("share without O_CLOEXEC");
    let fd_flags =
        FdFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).expect("getfd"));
    assert!(!fd_flags.contains(FdFlag::FD_CLOEXEC));
}

#[test]
fn writable_mappings_of_a_read_only_export_are_refused() {
    let len = 3 * page_size();
    let original = heap(RSHEAP).allocate(len).expect("allocate");
    fill(&original, 3);
    let shared = original.share_read_only().expect("share read-only");
    let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    for (what, prot, flags, want) in [
        ("shared, writable", rw, MapFlags::MAP_SHARED, Errno::EACCES),
        (
            "shared, write only",
            ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            Errno::EACCES,
        ),
        (
            "private, writable",
            rw,
            MapFlags::MAP_PRIVATE,
            Errno::EACCES,
        ),
        (
            "private, read only",
            ProtFlags::PROT_READ,
            MapFlags::MAP_PRIVATE,
            Errno::EINVAL,
        ),
    ] {
        assert_eq!(
            raw_map(&shared, len, prot, flags).map(drop),
            Err(want),
            "{what}"
        );
    }

    let mapping =
        raw_map(&shared, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED).expect("map readable");
    // SAFETY: The mapping covers `len` readable bytes until it is unmapped below.
    let bytes = unsafe { std::slice::from_raw_parts(mapping.as_ptr().cast::<u8>(), len) };
    assert_eq!(mismatch(bytes, 3), None);
    // The mapping can never become writable.
    // SAFETY: Changes only the protection of the mapping made above.
    let got = unsafe { mprotect(mapping, len, rw) };
    assert_eq!(got, Err(Errno::EACCES), "mprotect to writable");
    // Nor can a forced write through /proc/self/mem reach the pages.
    let mem = File::options()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .expect("open /proc/self/mem");
    let written = mem.write_at(&[0xff; 16], mapping.as_ptr() as u64);
    assert!(
        written.is_err(),
        "a write through /proc/self/mem: {written:?}"
    );
    assert_eq!(mismatch(bytes, 3), None, "after the refused writes");
    // SAFETY: The mapping made above; `bytes` is not used after this.
    unsafe { munmap(mapping, len) }.expect("unmap");
}

#[test]
fn reopening_a_read_only_export_gives_no_new_file() {
    let original = heap(RSHEAP).allocate(page_size()).expect("allocate");
    let shared = original.share_read_only().expect("share read-only");
    let path = format!("/proc/self/fd/{}", shared.as_fd().as_raw_fd());
    for (what, write) in [("read-write", true), ("read-only", false)] {
        let got = File::options().read(true).write(write).open(&path);
        assert_eq!(
            got.expect_err("reopen refused").raw_os_error(),
            Some(libc::ENXIO),
            "reopen {what}"
        );
    }
}

#[test]
fn loads_into_an_export_are_refused_and_stores_from_it_work() {
    let len = 64 * page_size();
    let original = heap(RSHEAP).allocate(len).expect("allocate");
    fill(&original, 4);
    let shared = original.share_read_only().expect("share read-only");
    let io = FileIo::open().expect("open the control device");
    let path = scratch_path("readonly-store.bin");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create the file");
    let stored = io
        .store(&file, &shared, Span::whole(), IoPath::Auto)
        .expect("store from the export");
    assert_eq!(stored.bytes, len as u64);
    let content = std::fs::read(&path).expect("read the file");
    assert_eq!(
        mismatch(&content, 4),
        None,
        "the file holds the buffer's bytes"
    );
    for path_kind in [IoPath::Auto, IoPath::Buffered] {
        let got = io.load(&file, &shared, Span::whole(), path_kind);
        assert_eq!(errno(got), Some(Errno::EACCES), "LOAD into the export");
    }
    // The original still loads.
    io.load(&file, &original, Span::whole(), IoPath::Auto)
        .expect("load into the original");
    std::fs::remove_file(&path).expect("remove the file");
}

#[test]
fn an_export_cannot_be_charged_and_counts_where_its_buffer_does() {
    let account = Account::open().expect("open an account");
    let len = 2 << 20;
    let original = heap(RSHEAP).allocate(len).expect("allocate");
    let shared = original.share_read_only().expect("share read-only");
    assert_eq!(errno(account.charge(&shared)), Some(Errno::EINVAL));
    assert_eq!(account.usage().expect("usage"), AccountUsage::default());
    // Charging the original after sharing it works, and counts the pages once.
    account.charge(&original).expect("charge the original");
    let one = AccountUsage {
        buffers: 1,
        bytes: len as u64,
    };
    assert_eq!(account.usage().expect("usage"), one);
    let again = shared.share_read_only().expect("share the export");
    assert_eq!(
        account.usage().expect("usage"),
        one,
        "exports are no buffers"
    );
    drop((original, shared, again));
    assert_eq!(account.usage().expect("usage"), AccountUsage::default());
}

#[test]
fn the_memory_lives_until_the_original_and_every_export_are_gone() {
    for name in [RSHEAP, RSHEAP_UNCACHED] {
        let account = Account::open().expect("open an account");
        let len = (1 << 20) + page_size();
        let original = heap(name).allocate(len).expect("allocate");
        account.charge(&original).expect("charge");
        fill(&original, 5);
        let shared = original.share_read_only().expect("share read-only");
        // An export of the export is another read-only export of the same pages.
        let again = shared.share_read_only().expect("share the export");
        assert_eq!(
            raw_map(
                &again,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED
            )
            .map(drop),
            Err(Errno::EACCES),
            "{name}: the second export is read-only too"
        );
        let one = AccountUsage {
            buffers: 1,
            bytes: len as u64,
        };
        drop(original);
        assert_eq!(account.usage().expect("usage"), one, "{name}: two exports");
        {
            let mapping = again.map_read_only().expect("map the second export");
            let _access = again
                .cpu_access(SyncDirection::Read)
                .expect("begin CPU read");
            assert_eq!(mismatch(&mapping.to_vec(), 5), None, "{name}");
        }
        drop(shared);
        assert_eq!(account.usage().expect("usage"), one, "{name}: one export");
        // A mapping of the last export keeps the memory too.
        let mapping =
            raw_map(&again, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED).expect("map");
        drop(again);
        assert_eq!(account.usage().expect("usage"), one, "{name}: a mapping");
        // SAFETY: The mapping made above, used by nothing else.
        unsafe { munmap(mapping, len) }.expect("unmap");
        assert_eq!(
            account.usage().expect("usage"),
            AccountUsage::default(),
            "{name}: all gone"
        );
    }
}

#[test]
fn cpu_access_sync_works_in_every_direction() {
    let original = heap(RSHEAP).allocate(4 * page_size()).expect("allocate");
    let shared = original.share_read_only().expect("share read-only");
    for direction in [
        SyncDirection::Read,
        SyncDirection::Write,
        SyncDirection::ReadWrite,
    ] {
        let access = shared.cpu_access(direction).expect("begin CPU access");
        access.end().expect("end CPU access");
    }
    // The original is unaffected by its export.
    fill_and_check(&original, 6);
}

#[test]
fn devices_may_map_an_export_only_to_read_it() {
    for name in [RSHEAP, RSHEAP_UNCACHED] {
        let len = (2 << 20) + page_size();
        let original = heap(name).allocate(len).expect("allocate");
        let shared = original.share_read_only().expect("share read-only");
        for mode in ["to_dev", "from_dev", "bidir"] {
            let answers = vmap_probe(&original.as_fd().as_raw_fd(), mode);
            assert_eq!(
                probe_answer(&answers, "mapped"),
                "1",
                "{name}: original, {mode}"
            );
        }
        let answers = vmap_probe(&shared.as_fd().as_raw_fd(), "to_dev");
        assert_eq!(
            probe_answer(&answers, "mapped"),
            "1",
            "{name}: export, to_dev"
        );
        for mode in ["from_dev", "bidir"] {
            assert_eq!(
                try_vmap_probe(&shared, mode),
                Some(libc::EACCES),
                "{name}: export, {mode}"
            );
        }
    }
}

/// The probe's error for `mode` on `buffer`, or `None` if it succeeded.
fn try_vmap_probe(buffer: &Buffer, mode: &str) -> Option<i32> {
    use std::io::Write;
    let mut file = File::options()
        .read(true)
        .write(true)
        .open("/sys/kernel/debug/rsheap_vmap_probe")
        .expect("open the vmap probe (is rsheap_vmap_probe.ko loaded?)");
    file.write_all(format!("{} {mode}", buffer.as_fd().as_raw_fd()).as_bytes())
        .err()
        .and_then(|err| err.raw_os_error())
}

#[test]
fn the_kernel_mapping_of_an_export_sees_the_buffer() {
    let len = 5 * page_size();
    let original = heap(RSHEAP).allocate(len).expect("allocate");
    fill(&original, 7);
    let shared = original.share_read_only().expect("share read-only");
    let sum = |buffer: &Buffer| {
        let answers = vmap_probe(&buffer.as_fd().as_raw_fd(), "sum");
        probe_answer(&answers, "sum").to_owned()
    };
    assert_eq!(sum(&shared), sum(&original));
}

#[test]
fn bad_requests_get_their_errno() {
    let control = open_control();
    let original = heap(RSHEAP).allocate(page_size()).expect("allocate");
    let buf_fd = original.as_fd().as_raw_fd();
    let base = share_request(buf_fd);
    let share = |mut request: RsheapShare| raw_share(&control, &mut request).map(drop);
    assert_eq!(share(base), Ok(()), "the base request is valid");

    let system = raw_alloc(&open_heap(SYSTEM), request(1 << 20)).expect("system heap buffer");
    let file = File::open("/proc/self/status").expect("open a file");
    // SAFETY: `memfd_create` takes a NUL-terminated name and flags.
    let memfd = unsafe { libc::memfd_create(c"rsheap-readonly".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(memfd >= 0, "memfd_create");
    // SAFETY: A new descriptor that nothing else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(memfd) };
    let write_only = raw_alloc(
        &open_heap(RSHEAP),
        rsheap::uapi::DmaHeapAllocationData {
            fd_flags: (OFlag::O_WRONLY | OFlag::O_CLOEXEC).bits() as u32,
            ..request(page_size() as u64)
        },
    )
    .expect("a write-only buffer");
    let page = page_size() as u32;
    for (what, request, want) in [
        ("buffer fd -1", share_request(-1), Errno::EBADF),
        ("buffer fd not open", share_request(999_999), Errno::EBADF),
        (
            "a write-only buffer",
            share_request(write_only.as_raw_fd()),
            Errno::EBADF,
        ),
        (
            "a regular file",
            share_request(file.as_raw_fd()),
            Errno::EINVAL,
        ),
        ("a memfd", share_request(memfd.as_raw_fd()), Errno::EINVAL),
        (
            "another exporter's dma-buf",
            share_request(system.as_raw_fd()),
            Errno::EXDEV,
        ),
        ("size 0", RsheapShare { size: 0, ..base }, Errno::EINVAL),
        (
            "size below version 0",
            RsheapShare {
                size: RSHEAP_SHARE_SIZE_VER0 - 4,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "size above a page",
            RsheapShare {
                size: page + 8,
                ..base
            },
            Errno::E2BIG,
        ),
        (
            "O_RDWR",
            RsheapShare {
                fd_flags: OFlag::O_RDWR.bits() as u32,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "O_WRONLY",
            RsheapShare {
                fd_flags: OFlag::O_WRONLY.bits() as u32,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "O_NONBLOCK",
            RsheapShare {
                fd_flags: (OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).bits() as u32,
                ..base
            },
            Errno::EINVAL,
        ),
    ] {
        assert_eq!(share(request), Err(want), "{what}");
    }

    // A newer, larger struct is accepted if its extra bytes are zero.
    #[repr(C)]
    struct Larger {
        share: RsheapShare,
        extra: [u32; 2],
    }
    for (extra, want) in [([0, 0], Ok(())), ([0, 1], Err(Errno::E2BIG))] {
        let mut larger = Larger {
            share: RsheapShare {
                size: std::mem::size_of::<Larger>() as u32,
                ..base
            },
            extra,
        };
        // SAFETY: `larger` starts with a valid `struct rsheap_share` and holds as many bytes
        // as its size says, for the duration of the call.
        let got = unsafe {
            rsheap::uapi::rsheap_ioc_share_readonly(control.as_raw_fd(), &mut larger.share)
        };
        let got = got.map(|_| {
            // SAFETY: On success the kernel installed a new descriptor that nothing owns.
            drop(unsafe { OwnedFd::from_raw_fd(larger.share.ro_fd) });
        });
        assert_eq!(got, want, "extra bytes {extra:?}");
    }
}

#[test]
fn a_refused_share_says_why_in_the_kernel_log() {
    // Refusals share one rate limit of 10 messages per 5 seconds, which the other tests of
    // this binary may have used up: wait for a fresh interval.
    std::thread::sleep(Duration::from_millis(5500));
    let control = open_control();
    let original = heap(RSHEAP).allocate(page_size()).expect("allocate");
    let shared = original.share_read_only().expect("share read-only");
    let mut bad_flags = RsheapShare {
        fd_flags: OFlag::O_RDWR.bits() as u32,
        ..share_request(original.as_fd().as_raw_fd())
    };
    assert_eq!(
        raw_share(&control, &mut bad_flags).map(drop),
        Err(Errno::EINVAL)
    );
    let io = FileIo::open().expect("open the control device");
    let file = File::open("/proc/self/exe").expect("open a file");
    assert_eq!(
        errno(io.load(&file, &shared, Span::start(16), IoPath::Buffered)),
        Some(Errno::EACCES)
    );
    assert_eq!(
        raw_map(
            &shared,
            page_size(),
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE
        )
        .map(drop),
        Err(Errno::EACCES)
    );
    let log = kernel_log();
    for reason in [
        format!(
            "rsheap: SHARE_READONLY: refused fd flags {:#x}: only O_CLOEXEC",
            OFlag::O_RDWR.bits()
        ),
        format!(
            "rsheap: LOAD: refused buffer fd {}: a read-only export",
            shared.as_fd().as_raw_fd()
        ),
        "rsheap: read-only export: refused a writable mapping".to_owned(),
    ] {
        assert!(log.contains(&reason), "the kernel log says {reason:?}");
    }
}
