//! `/dev/rsheap` LOAD and STORE on the rig's ext4 scratch file system (a virtio-blk disk):
//! content preserved byte for byte at every size and alignment, the direct path taken where
//! the alignment allows and the page cache elsewhere, short files, every bad input answered
//! with its errno, a random walk over the request's fields, transfers of one buffer taking
//! turns, and a process killed mid-load leaking nothing.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use nix::unistd::{fork, pipe, ForkResult};
use rsheap::uapi::{RsheapTransfer, RSHEAP_TRANSFER_BUFFERED, RSHEAP_TRANSFER_SIZE_VER0};
use rsheap::{Buffer, FileIo, Heap, IoPath, Span, SyncDirection, Transferred};
use rsheap_suites::{
    dio_alignment, drain_pools, drop_caches, hash, hash_file, heap_stat, kernel_log, kill_and_reap,
    meminfo, open_control, open_heap, raw_alloc, raw_transfer, request, scratch_path,
    write_random_file, RSHEAP, RSHEAP_UNCACHED, SYSTEM,
};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn heap(name: &str) -> Heap {
    Heap::open(name).expect("open heap")
}

fn file_io() -> FileIo {
    FileIo::open().expect("open /dev/rsheap")
}

/// A buffer of at least `len` bytes (whole pages).
fn buffer(len: u64) -> Buffer {
    heap(RSHEAP).allocate(len as usize).expect("allocate")
}

/// The hash of the first `len` bytes of `buffer`.
fn hash_buffer(buffer: &Buffer, len: u64) -> u64 {
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    hash(&mapping.to_vec()[..len as usize])
}

/// A copy of `buffer`'s bytes.
fn buffer_bytes(buffer: &Buffer) -> Vec<u8> {
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    mapping.to_vec()
}

/// Overwrites `buffer` with `bytes`.
fn fill_buffer(buffer: &Buffer, bytes: &[u8]) {
    let mut mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Write).expect("sync");
    mapping.write_at(0, bytes).expect("write");
}

/// Loads the first `len` bytes of the file at `path` into `buffer`.
fn load_start(io: &FileIo, path: &Path, buffer: &Buffer, len: u64, mode: IoPath) -> Transferred {
    let file = File::open(path).unwrap_or_else(|err| panic!("open {path:?}: {err}"));
    io.load(&file, buffer, Span::start(len), mode)
        .unwrap_or_else(|err| panic!("load {path:?}: {err}"))
}

/// Stores the first `len` bytes of `buffer` into a new file at `path`.
fn store_start(io: &FileIo, path: &Path, buffer: &Buffer, len: u64, mode: IoPath) -> Transferred {
    let file = File::create(path).unwrap_or_else(|err| panic!("create {path:?}: {err}"));
    io.store(&file, buffer, Span::start(len), mode)
        .unwrap_or_else(|err| panic!("store {path:?}: {err}"))
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut bytes);
    bytes
}

fn open_rw(path: &Path) -> File {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .expect("open read-write")
}

/// The file offset alignment direct I/O needs on the scratch file system.
fn scratch_alignment() -> u64 {
    let probe = scratch_path("alignment-probe");
    std::fs::write(&probe, b"x").expect("write probe");
    let (mem, offset) = dio_alignment(&probe).expect("ext4 has direct I/O");
    std::fs::remove_file(&probe).expect("remove probe");
    u64::from(mem.max(offset))
}

/// A 1 GiB file of random content, made once per run: (path, hash).
fn gib_file() -> &'static (PathBuf, u64) {
    static FILE: OnceLock<(PathBuf, u64)> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = scratch_path("one-gib.bin");
        let hash = write_random_file(&path, GIB, 0x1_0000);
        (path, hash)
    })
}

#[test]
fn load_and_store_round_trip_byte_for_byte_from_4_kib_to_1_gib() {
    let io = file_io();
    let align = scratch_alignment();
    for (i, &size) in [
        4 * KIB,
        100_000,
        MIB,
        7 * MIB + 4 * KIB + 1,
        64 * MIB + 512,
        GIB,
    ]
    .iter()
    .enumerate()
    {
        let (source, source_hash) = if size == GIB {
            gib_file().clone()
        } else {
            let path = scratch_path(&format!("round-trip-{i}.bin"));
            let hash = write_random_file(&path, size, i as u64);
            (path, hash)
        };
        let buffer = buffer(size);
        drop_caches();
        let loaded = load_start(&io, &source, &buffer, size, IoPath::Auto);
        assert_eq!(loaded.bytes, size, "load of {size} bytes");
        // Everything but an unaligned tail of the file goes direct.
        assert_eq!(
            loaded.direct_bytes,
            size / align * align,
            "direct part of {size}"
        );
        assert_eq!(
            hash_buffer(&buffer, size),
            source_hash,
            "buffer after loading {size}"
        );

        let copy = scratch_path(&format!("round-trip-{i}.copy"));
        let stored = store_start(&io, &copy, &buffer, size, IoPath::Auto);
        assert_eq!(stored.bytes, size, "store of {size} bytes");
        assert_eq!(stored.direct_bytes, size / align * align);
        drop(buffer);
        drop_caches();
        assert_eq!(std::fs::metadata(&copy).expect("stat copy").len(), size);
        assert_eq!(
            hash_file(&copy),
            source_hash,
            "file stored from {size} bytes"
        );
        std::fs::remove_file(&copy).expect("remove copy");
        if size != GIB {
            std::fs::remove_file(&source).expect("remove source");
        }
    }
}

#[test]
fn loads_at_any_offsets_land_exactly_and_touch_nothing_else() {
    let io = file_io();
    let align = scratch_alignment();
    let file_len = 3 * MIB + 777;
    let path = scratch_path("offsets.bin");
    write_random_file(&path, file_len, 7);
    let content = std::fs::read(&path).expect("read back");
    let buffer = buffer(4 * MIB);
    let background = vec![0x5a; 4 * MIB as usize];
    let file = File::open(&path).expect("open");
    // (file offset, buffer offset, length)
    let cases = [
        (0, 0, file_len),
        (1, 1, 2 * MIB),
        (1, 0, 2 * MIB),
        (0, 3 * 4096 + 512, MIB),
        (4095, 8191, MIB + 3),
        (513, 100, 12345),
        (MIB, 2 * MIB - 512, MIB),
        (file_len - 100, 0, 1000),
        (file_len, 0, 4096),
        (file_len + 4096, 4096, 4096),
        (5, 4 * MIB - 7, 7),
    ];
    for (file_offset, buffer_offset, len) in cases {
        fill_buffer(&buffer, &background);
        drop_caches();
        let moved = io
            .load(
                &file,
                &buffer,
                Span {
                    file_offset,
                    buffer_offset,
                    len,
                },
                IoPath::Auto,
            )
            .unwrap_or_else(|err| panic!("load {file_offset}/{buffer_offset}/{len}: {err}"));
        let expected = len.min(file_len.saturating_sub(file_offset));
        assert_eq!(
            moved.bytes, expected,
            "count for {file_offset}/{buffer_offset}/{len}"
        );
        let co_aligned = (file_offset % align) == (buffer_offset % align);
        if !co_aligned {
            assert_eq!(
                moved.direct_bytes, 0,
                "misaligned {file_offset}/{buffer_offset}"
            );
        } else if expected >= 2 * align {
            assert!(
                moved.direct_bytes > 0,
                "co-aligned {file_offset}/{buffer_offset}"
            );
        }

        let mut want = background.clone();
        let (bo, fo, n) = (
            buffer_offset as usize,
            file_offset as usize,
            expected as usize,
        );
        if n > 0 {
            want[bo..bo + n].copy_from_slice(&content[fo..fo + n]);
        }
        assert!(
            buffer_bytes(&buffer) == want,
            "buffer after loading {file_offset}/{buffer_offset}/{len}"
        );
    }
}

#[test]
fn stores_at_any_offsets_write_exactly_their_range() {
    let io = file_io();
    let buffer = buffer(4 * MIB);
    let source = random_bytes(4 * MIB as usize, 11);
    fill_buffer(&buffer, &source);
    let original = random_bytes((3 * MIB + 777) as usize, 12);
    let path = scratch_path("store-offsets.bin");
    let cases = [
        (0, 0, 3 * MIB + 777),
        (1, 1, 2 * MIB),
        (1, 0, 2 * MIB),
        (4095, 8191, MIB + 3),
        (3 * MIB, 512, 2 * MIB),
        (3 * MIB + 777 + 1000, 5, 3000),
        (0, 4 * MIB - 1, 1),
    ];
    for (file_offset, buffer_offset, len) in cases {
        std::fs::write(&path, &original).expect("reset the file");
        let moved = io
            .store(
                &open_rw(&path),
                &buffer,
                Span {
                    file_offset,
                    buffer_offset,
                    len,
                },
                IoPath::Auto,
            )
            .unwrap_or_else(|err| panic!("store {file_offset}/{buffer_offset}/{len}: {err}"));
        assert_eq!(moved.bytes, len);

        let (fo, bo, n) = (file_offset as usize, buffer_offset as usize, len as usize);
        let mut want = original.clone();
        if want.len() < fo + n {
            want.resize(fo + n, 0);
        }
        want[fo..fo + n].copy_from_slice(&source[bo..bo + n]);
        drop_caches();
        assert!(
            std::fs::read(&path).expect("read back") == want,
            "file after storing {file_offset}/{buffer_offset}/{len}"
        );
    }
}

#[test]
fn a_short_file_gives_a_short_count_and_leaves_the_rest_of_the_buffer_alone() {
    let io = file_io();
    let path = scratch_path("short.bin");
    let hash_of_file = write_random_file(&path, 10_000, 3);
    let buffer = buffer(MIB);
    let background = vec![0xc3; MIB as usize];
    fill_buffer(&buffer, &background);
    drop_caches();
    let file = File::open(&path).expect("open");
    let moved = io
        .load(&file, &buffer, Span::start(MIB), IoPath::Auto)
        .expect("load");
    assert_eq!(moved.bytes, 10_000);
    let bytes = buffer_bytes(&buffer);
    assert_eq!(hash(&bytes[..10_000]), hash_of_file);
    assert!(
        bytes[10_000..].iter().all(|&b| b == 0xc3),
        "bytes past the end of the file were written"
    );
    let past_end = Span {
        file_offset: 20_000,
        buffer_offset: 0,
        len: 4096,
    };
    let moved = io
        .load(&file, &buffer, past_end, IoPath::Auto)
        .expect("load past the end");
    assert_eq!(moved.bytes, 0);
}

#[test]
fn files_without_direct_io_and_the_buffered_flag_use_the_page_cache() {
    let io = file_io();
    let len = 3 * MIB;
    // tmpfs reports no direct I/O alignment; the 9p root is the test binary's own file system.
    let tmpfs = Path::new("/run/transfer-tmpfs.bin");
    let tmpfs_hash = write_random_file(tmpfs, len, 21);
    let exe = std::env::current_exe().expect("current exe");
    let exe_bytes = std::fs::read(&exe).expect("read exe");
    let ext4 = scratch_path("buffered.bin");
    let ext4_hash = write_random_file(&ext4, len, 22);

    let cases: [(&Path, u64, u64, IoPath); 3] = [
        (tmpfs, len, tmpfs_hash, IoPath::Auto),
        (&exe, exe_bytes.len() as u64, hash(&exe_bytes), IoPath::Auto),
        (&ext4, len, ext4_hash, IoPath::Buffered),
    ];
    for (path, size, want, mode) in cases {
        let buffer = buffer(size);
        drop_caches();
        let moved = load_start(&io, path, &buffer, size, mode);
        assert_eq!(
            moved,
            Transferred {
                bytes: size,
                direct_bytes: 0
            },
            "{path:?}"
        );
        assert_eq!(hash_buffer(&buffer, size), want, "{path:?}");
        let copy = Path::new("/run/transfer-copy.bin");
        let moved = store_start(&io, copy, &buffer, size, mode);
        assert_eq!(moved.bytes, size);
        assert_eq!(hash_file(copy), want);
    }
    std::fs::remove_file(tmpfs).expect("remove");
}

#[test]
fn loads_from_a_block_device_go_direct() {
    let io = file_io();
    let len = 4 * MIB;
    nix::unistd::sync();
    let device = File::open("/dev/vda").expect("open /dev/vda");
    let buffer = buffer(len);
    let moved = io
        .load(&device, &buffer, Span::start(len), IoPath::Auto)
        .expect("load from /dev/vda");
    assert_eq!(
        moved,
        Transferred {
            bytes: len,
            direct_bytes: len
        }
    );
    let mut want = vec![0u8; len as usize];
    (&device).read_exact(&mut want).expect("read /dev/vda");
    assert!(buffer_bytes(&buffer) == want, "block device content");
}

#[test]
fn uncached_buffers_load_and_store_too() {
    let io = file_io();
    let len = 8 * MIB + 123;
    let path = scratch_path("uncached.bin");
    let want = write_random_file(&path, len, 31);
    let buffer = heap(RSHEAP_UNCACHED)
        .allocate(len as usize)
        .expect("allocate");
    drop_caches();
    let moved = load_start(&io, &path, &buffer, len, IoPath::Auto);
    assert_eq!(moved.bytes, len);
    assert_eq!(hash_buffer(&buffer, len), want);
    let copy = scratch_path("uncached.copy");
    store_start(&io, &copy, &buffer, len, IoPath::Auto);
    drop_caches();
    assert_eq!(hash_file(&copy), want);
}

#[test]
fn the_cpu_sees_loaded_bytes_and_stores_see_cpu_writes() {
    let io = file_io();
    let len = 2 * MIB;
    let buffer = buffer(len);
    let mut mapping = buffer.map().expect("map");
    let written = random_bytes(len as usize, 41);
    {
        let _access = buffer.cpu_access(SyncDirection::Write).expect("sync");
        mapping.write_at(0, &written).expect("write");
    }
    let path = scratch_path("cpu.bin");
    store_start(&io, &path, &buffer, len, IoPath::Auto);
    drop_caches();
    assert!(std::fs::read(&path).expect("read") == written);

    let other = random_bytes(len as usize, 42);
    std::fs::write(&path, &other).expect("rewrite");
    drop_caches();
    load_start(&io, &path, &buffer, len, IoPath::Auto);
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    assert!(mapping.to_vec() == other, "the mapping shows the load");
}

/// A request that would succeed, for the bad-input tests to spoil one field at a time.
struct Fixture {
    control: File,
    file: File,
    buffer: Buffer,
}

impl Fixture {
    fn new() -> Self {
        let path = scratch_path("errors.bin");
        write_random_file(&path, 64 * KIB, 51);
        Self {
            control: open_control(),
            file: open_rw(&path),
            buffer: buffer(64 * KIB),
        }
    }

    fn request(&self) -> RsheapTransfer {
        RsheapTransfer {
            file_fd: self.file.as_raw_fd(),
            buf_fd: self.buffer.as_fd().as_raw_fd(),
            length: 4096,
            ..RsheapTransfer::new()
        }
    }

    /// Issues `request` as a LOAD and as a STORE, expecting `errno` from both.
    fn expect_both(&self, what: &str, request: RsheapTransfer, errno: Errno) {
        for store in [false, true] {
            self.expect(what, store, request, errno);
        }
    }

    fn expect(&self, what: &str, store: bool, mut request: RsheapTransfer, errno: Errno) {
        let verb = if store { "STORE" } else { "LOAD" };
        assert_eq!(
            raw_transfer(&self.control, store, &mut request),
            Err(errno),
            "{verb}: {what}"
        );
    }
}

#[test]
fn bad_descriptors_get_a_clear_errno() {
    let fixture = Fixture::new();
    let base = fixture.request();
    let ok = raw_transfer(&fixture.control, false, &mut fixture.request());
    assert_eq!(ok, Ok(()), "the fixture's request is valid");

    let dir = File::open(scratch_path("")).expect("open the scratch directory");
    let (pipe_read, pipe_write) = pipe().expect("pipe");
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    let system = raw_alloc(&open_heap(SYSTEM), request(64 * KIB)).expect("system heap buffer");
    let path = scratch_path("errors.bin");
    let read_only = File::open(&path).expect("open read-only");
    let write_only = File::options()
        .write(true)
        .open(&path)
        .expect("open write-only");
    let append = File::options()
        .append(true)
        .open(&path)
        .expect("open append");
    let buffer_opened = |mode: i32| {
        let mut data = request(64 * KIB);
        data.fd_flags = mode as u32 | libc::O_CLOEXEC as u32;
        raw_alloc(&open_heap(RSHEAP), data).expect("rsheap buffer")
    };
    let read_only_buffer = buffer_opened(libc::O_RDONLY);
    let write_only_buffer = buffer_opened(libc::O_WRONLY);

    let file = |fd: i32| RsheapTransfer {
        file_fd: fd,
        ..base
    };
    let buf = |fd: i32| RsheapTransfer { buf_fd: fd, ..base };
    for (what, request, errno) in [
        ("file fd -1", file(-1), Errno::EBADF),
        ("file fd not open", file(999_999), Errno::EBADF),
        ("buffer fd -1", buf(-1), Errno::EBADF),
        ("buffer fd not open", buf(999_999), Errno::EBADF),
        ("directory", file(dir.as_raw_fd()), Errno::EISDIR),
        ("pipe", file(pipe_read.as_raw_fd()), Errno::ESPIPE),
        ("socket", file(sock.as_raw_fd()), Errno::ESPIPE),
        ("character device", file(null.as_raw_fd()), Errno::EINVAL),
        (
            "the control device",
            file(fixture.control.as_raw_fd()),
            Errno::EINVAL,
        ),
        (
            "a dma-buf as the file",
            file(fixture.buffer.as_fd().as_raw_fd()),
            Errno::EINVAL,
        ),
        (
            "a regular file as the buffer",
            buf(fixture.file.as_raw_fd()),
            Errno::EINVAL,
        ),
        (
            "a pipe as the buffer",
            buf(pipe_write.as_raw_fd()),
            Errno::EINVAL,
        ),
        (
            "a system heap buffer",
            buf(system.as_raw_fd()),
            Errno::EXDEV,
        ),
    ] {
        fixture.expect_both(what, request, errno);
    }
    fixture.expect(
        "file open write-only",
        false,
        file(write_only.as_raw_fd()),
        Errno::EBADF,
    );
    fixture.expect(
        "file open read-only",
        true,
        file(read_only.as_raw_fd()),
        Errno::EBADF,
    );
    fixture.expect(
        "file open O_APPEND",
        true,
        file(append.as_raw_fd()),
        Errno::EINVAL,
    );
    fixture.expect(
        "read-only buffer",
        false,
        buf(read_only_buffer.as_raw_fd()),
        Errno::EBADF,
    );
    fixture.expect(
        "write-only buffer",
        true,
        buf(write_only_buffer.as_raw_fd()),
        Errno::EBADF,
    );
    // Reading a read-only buffer out to a file is fine, as is loading into a write-only one.
    let mut store = buf(read_only_buffer.as_raw_fd());
    assert_eq!(raw_transfer(&fixture.control, true, &mut store), Ok(()));
    let mut load = buf(write_only_buffer.as_raw_fd());
    assert_eq!(raw_transfer(&fixture.control, false, &mut load), Ok(()));
}

#[test]
fn bad_ranges_flags_and_sizes_get_a_clear_errno() {
    let fixture = Fixture::new();
    let base = fixture.request();
    let len = fixture.buffer.len() as u64;
    for (what, request, errno) in [
        (
            "unknown flag",
            RsheapTransfer {
                flags: 1 << 1,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "all flags",
            RsheapTransfer {
                flags: u32::MAX,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "range past the buffer",
            RsheapTransfer {
                buf_offset: len - 4095,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "buffer offset past the end",
            RsheapTransfer {
                buf_offset: len + 1,
                length: 0,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "length larger than the buffer",
            RsheapTransfer {
                length: len + 1,
                ..base
            },
            Errno::EINVAL,
        ),
        (
            "buffer range overflows",
            RsheapTransfer {
                buf_offset: u64::MAX - 100,
                ..base
            },
            Errno::EOVERFLOW,
        ),
        (
            "file range overflows",
            RsheapTransfer {
                file_offset: u64::MAX - 100,
                ..base
            },
            Errno::EOVERFLOW,
        ),
        (
            "file range past the largest offset",
            RsheapTransfer {
                file_offset: i64::MAX as u64 - 100,
                ..base
            },
            Errno::EOVERFLOW,
        ),
        ("size 0", RsheapTransfer { size: 0, ..base }, Errno::EINVAL),
        (
            "size smaller than version 0",
            RsheapTransfer {
                size: RSHEAP_TRANSFER_SIZE_VER0 - 8,
                ..base
            },
            Errno::EINVAL,
        ),
    ] {
        fixture.expect_both(what, request, errno);
    }

    // A larger struct from a newer caller: accepted if the extra bytes are zero.
    #[repr(C)]
    struct Newer {
        request: RsheapTransfer,
        extra: [u64; 2],
    }
    for (extra, want) in [([0, 0], Ok(())), ([0, 1], Err(Errno::E2BIG))] {
        let mut newer = Newer {
            request: RsheapTransfer {
                size: std::mem::size_of::<Newer>() as u32,
                ..base
            },
            extra,
        };
        let control = fixture.control.as_raw_fd();
        let newer_ptr: *mut Newer = &mut newer;
        // SAFETY: The kernel reads `size` bytes, all of which `newer` holds.
        let got = unsafe { rsheap::uapi::rsheap_ioc_load(control, newer_ptr.cast()) }.map(drop);
        assert_eq!(got, want, "extra bytes {extra:?}");
        if want.is_ok() {
            assert_eq!(newer.request.bytes, 4096);
            assert_eq!(newer.extra, [0, 0], "the kernel writes only what it knows");
        }
    }

    // No more than a page is scanned for zeroes: a larger size is E2BIG, zeroes or not.
    let page = rsheap::page_size();
    for (size, want) in [
        (page, Ok(())),
        (page + 8, Err(Errno::E2BIG)),
        (u32::MAX as usize, Err(Errno::E2BIG)),
    ] {
        let mut bytes = vec![0u64; page.div_ceil(8) + 1];
        let request = RsheapTransfer {
            size: size as u32,
            ..base
        };
        // SAFETY: `bytes` is larger than the struct and suitably aligned for it.
        unsafe { bytes.as_mut_ptr().cast::<RsheapTransfer>().write(request) };
        let control = fixture.control.as_raw_fd();
        // SAFETY: The kernel reads at most `size` bytes and refuses sizes past what `bytes`
        // holds before reading them.
        let got =
            unsafe { rsheap::uapi::rsheap_ioc_load(control, bytes.as_mut_ptr().cast()) }.map(drop);
        assert_eq!(got, want, "size {size}");
    }

    // A null request and unknown ioctls.
    let control = fixture.control.as_raw_fd();
    // SAFETY: A null pointer is never dereferenced by the caller; the kernel must fault it.
    let null = unsafe { rsheap::uapi::rsheap_ioc_load(control, std::ptr::null_mut()) };
    assert_eq!(null, Err(Errno::EFAULT));
    for code in [
        nix::request_code_readwrite!(0xB9, 0x05, std::mem::size_of::<RsheapTransfer>()),
        nix::request_code_write!(0xB9, 0x00, std::mem::size_of::<RsheapTransfer>()),
        nix::request_code_readwrite!(b'H', 0x00, std::mem::size_of::<RsheapTransfer>()),
    ] {
        let mut request = base;
        // SAFETY: `request` is valid for the kernel to read or write, whichever it tries.
        let ret = unsafe { libc::ioctl(control, code as _, &mut request) };
        assert_eq!(ret, -1);
        assert_eq!(Errno::last(), Errno::ENOTTY, "ioctl {code:#x}");
    }
    // Length 0 moves nothing and succeeds, even at the buffer's end.
    let mut empty = RsheapTransfer {
        buf_offset: len,
        length: 0,
        ..base
    };
    assert_eq!(raw_transfer(&fixture.control, false, &mut empty), Ok(()));
    assert_eq!(empty.bytes, 0);
}

#[test]
fn a_random_walk_over_the_request_fields_gets_errno_only() {
    let fixture = Fixture::new();
    let (pipe_read, _pipe_write) = pipe().expect("pipe");
    let dir = File::open(scratch_path("")).expect("open the scratch directory");
    let system = raw_alloc(&open_heap(SYSTEM), request(64 * KIB)).expect("system heap buffer");
    let uncached = heap(RSHEAP_UNCACHED)
        .allocate(128 * KIB as usize)
        .expect("allocate");
    let read_only = File::open(scratch_path("errors.bin")).expect("open");
    let fds = [
        fixture.file.as_raw_fd(),
        read_only.as_raw_fd(),
        fixture.buffer.as_fd().as_raw_fd(),
        uncached.as_fd().as_raw_fd(),
        system.as_raw_fd(),
        pipe_read.as_raw_fd(),
        dir.as_raw_fd(),
        fixture.control.as_raw_fd(),
        -1,
        999_999,
    ];
    let offsets = [
        0,
        1,
        511,
        512,
        4095,
        4096,
        64 * KIB - 1,
        64 * KIB,
        128 * KIB,
        i64::MAX as u64,
        u64::MAX,
    ];
    let allowed = [
        Errno::EBADF,
        Errno::EINVAL,
        Errno::EXDEV,
        Errno::EISDIR,
        Errno::ESPIPE,
        Errno::EOVERFLOW,
        Errno::E2BIG,
        // write(2)'s answer to a STORE past the largest file ext4 allows.
        Errno::EFBIG,
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let pick = |rng: &mut fastrand::Rng, values: &[u64]| {
        if rng.u8(..4) == 0 {
            rng.u64(..)
        } else {
            values[rng.usize(..values.len())]
        }
    };
    let (mut succeeded, mut failed) = (0, 0);
    for i in 0..20_000 {
        #[repr(C)]
        struct Padded {
            request: RsheapTransfer,
            tail: [u8; 64],
        }
        let mut padded = Padded {
            request: RsheapTransfer {
                size: match rng.u8(..8) {
                    0 => rng.u32(..200),
                    1 => RSHEAP_TRANSFER_SIZE_VER0 + rng.u32(..64),
                    _ => RSHEAP_TRANSFER_SIZE_VER0,
                },
                flags: match rng.u8(..4) {
                    0 => rng.u32(..),
                    1 => RSHEAP_TRANSFER_BUFFERED,
                    _ => 0,
                },
                // Half the time a descriptor that fits the field, so that calls get past the
                // descriptor checks into the range and transfer code.
                file_fd: if rng.bool() {
                    fds[rng.usize(..2)]
                } else {
                    fds[rng.usize(..fds.len())]
                },
                buf_fd: if rng.bool() {
                    fds[2 + rng.usize(..2)]
                } else {
                    fds[rng.usize(..fds.len())]
                },
                file_offset: pick(&mut rng, &offsets),
                buf_offset: pick(&mut rng, &offsets),
                length: pick(&mut rng, &offsets),
                bytes: rng.u64(..),
                direct_bytes: rng.u64(..),
            },
            tail: [0; 64],
        };
        if rng.bool() {
            rng.fill(&mut padded.tail);
        }
        let request = padded.request;
        let store = rng.bool();
        let control = fixture.control.as_raw_fd();
        let ptr: *mut Padded = &mut padded;
        // SAFETY: The kernel reads at most `size` (< 264) bytes, all within `padded`.
        let result = unsafe {
            if store {
                rsheap::uapi::rsheap_ioc_store(control, ptr.cast())
            } else {
                rsheap::uapi::rsheap_ioc_load(control, ptr.cast())
            }
        };
        match result {
            Ok(_) => {
                succeeded += 1;
                assert!(
                    padded.request.bytes <= request.length,
                    "call {i}: moved {} of {}",
                    padded.request.bytes,
                    request.length
                );
                assert!(padded.request.direct_bytes <= padded.request.bytes);
            }
            Err(errno) => {
                failed += 1;
                assert!(
                    allowed.contains(&errno),
                    "call {i}: {request:?} gave {errno}"
                );
            }
        }
    }
    assert!(
        succeeded > 500 && failed > 500,
        "{succeeded} succeeded, {failed} failed"
    );
}

#[test]
fn transfers_of_one_buffer_take_turns() {
    let len = 48 * MIB;
    let files: Vec<(PathBuf, u64)> = (0..2)
        .map(|i| {
            let path = scratch_path(&format!("turns-{i}.bin"));
            let hash = write_random_file(&path, len, 60 + i);
            (path, hash)
        })
        .collect();
    let buffer = buffer(len);
    drop_caches();
    std::thread::scope(|scope| {
        for (path, _) in &files {
            let buffer = &buffer;
            scope.spawn(move || {
                let io = file_io();
                let file = File::open(path).expect("open");
                for _ in 0..4 {
                    let moved = io
                        .load(&file, buffer, Span::start(len), IoPath::Auto)
                        .expect("load");
                    assert_eq!(moved.bytes, len);
                }
            });
        }
    });
    let content = hash_buffer(&buffer, len);
    assert!(
        files.iter().any(|(_, hash)| *hash == content),
        "the buffer holds one whole file, not a mix"
    );
}

#[test]
fn a_process_killed_mid_load_leaks_nothing() {
    let (path, _) = gib_file();
    drain_pools();
    let buffers_before = heap_stat(RSHEAP, 0);
    let free_before = meminfo("MemFree");
    drop_caches();
    let (ready_read, ready_write) = pipe().expect("pipe");
    // SAFETY: The child only makes system calls and exits; it touches no lock the parent's
    // other threads could hold.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let buffer = buffer(GIB);
            let file = File::open(path).expect("open");
            let mut ready = File::from(ready_write);
            ready.write_all(b"!").expect("signal readiness");
            // Load after load (direct I/O, so each reads the disk), each a fraction of a
            // second here, so the signal finds the child inside one: only it ends the loop.
            let io = file_io();
            loop {
                if io
                    .load(&file, &buffer, Span::start(GIB), IoPath::Auto)
                    .is_err()
                {
                    std::process::exit(4);
                }
            }
        }
        ForkResult::Parent { child } => {
            drop(ready_write);
            let mut byte = [0u8];
            File::from(ready_read)
                .read_exact(&mut byte)
                .expect("the child got ready");
            // Let the load get well under way.
            std::thread::sleep(Duration::from_millis(300));
            let took = kill_and_reap(child);
            assert!(took < Duration::from_secs(3), "the load stopped promptly");
        }
    }
    assert_eq!(
        heap_stat(RSHEAP, 0),
        buffers_before,
        "the child's buffer was released"
    );
    drain_pools();
    drop_caches();
    let free_after = meminfo("MemFree");
    assert!(
        free_after + (64 << 20) >= free_before,
        "MemFree went from {free_before} to {free_after}"
    );
}

#[test]
fn a_refused_request_says_why_in_the_kernel_log() {
    let fixture = Fixture::new();
    // Rejections share one rate limit of 10 messages per 5 seconds, which the other tests of
    // this binary may have used up: wait for a fresh interval.
    std::thread::sleep(Duration::from_millis(5500));
    let base = fixture.request();
    let buffer_len = fixture.buffer.len() as u64;
    fixture.expect(
        "unknown flag",
        false,
        RsheapTransfer {
            flags: 1 << 30,
            ..base
        },
        Errno::EINVAL,
    );
    fixture.expect(
        "range past the buffer",
        true,
        RsheapTransfer {
            buf_offset: buffer_len,
            ..base
        },
        Errno::EINVAL,
    );
    let log = kernel_log();
    for reason in [
        "rsheap: LOAD: refused unknown flags 0x40000000".to_owned(),
        format!(
            "rsheap: STORE: refused buffer range {buffer_len:#x} + 0x1000: the buffer has \
             {buffer_len:#x} bytes"
        ),
    ] {
        assert!(log.contains(&reason), "the kernel log says {reason:?}");
    }
}
