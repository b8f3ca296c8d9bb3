//! `/dev/rsheap` transfers that end early or meet file systems that need care: a waiter
//! interrupted by a signal while another holds the buffer, a disk that fails mid-transfer
//! (the kernel's `fail_make_request` on the small disk), a file system that fills up, and a
//! direct STORE through overlayfs that must leave its file system freezable.
//!
//! What users rely on: every transfer of a buffer completes once its turn comes, whatever
//! happens to the others; a transfer that ends early reports what moved and changes nothing
//! past the step that stopped it; and a STORE never leaves a file system stuck.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use rsheap::{Buffer, FileIo, Heap, IoPath, Span, SyncDirection};
use rsheap_suites::{
    drop_caches, hash, scratch_path, small_path, write_random_file, RSHEAP, SMALL,
};

const MIB: u64 = 1 << 20;

/// The size of a transfer's first step, as `rsheap.h` documents it: a failure in the first
/// step changes nothing past it.
const FIRST_STEP: u64 = 16 * MIB;

fn buffer(len: u64) -> Buffer {
    Heap::open(RSHEAP)
        .expect("open heap")
        .allocate(len as usize)
        .expect("allocate")
}

/// Overwrites `buffer` with `byte`.
fn fill_buffer(buffer: &Buffer, byte: u8) {
    let mut mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Write).expect("sync");
    mapping.fill(byte);
}

/// A copy of `buffer`'s bytes.
fn buffer_bytes(buffer: &Buffer) -> Vec<u8> {
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    mapping.to_vec()
}

/// Runs `f` on another thread and fails the test if it takes longer than `limit`.
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// Installs a SIGUSR1 handler without `SA_RESTART`, so a signalled wait in the kernel ends.
fn catch_sigusr1() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_sigusr1),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: The handler does nothing, which is async-signal-safe.
    unsafe { sigaction(Signal::SIGUSR1, &action) }.expect("install a SIGUSR1 handler");
}

#[test]
fn a_signalled_waiter_leaves_no_other_transfer_stuck() {
    catch_sigusr1();
    let len = 32 * MIB;
    let path = scratch_path("turns-signal.bin");
    write_random_file(&path, len, 71);
    let buffer = std::sync::Arc::new(buffer(len));
    let interrupted = std::sync::Arc::new(AtomicUsize::new(0));
    // Rounds of three threads on one buffer: one holds it with a load, a second queues behind
    // it and is signalled at some moment of the first load, the third queues too and must get
    // its turn; the signal lands before, during and after the hand-over across the rounds.
    for round in 0..24u64 {
        let (path, buffer, interrupted) = (path.clone(), buffer.clone(), interrupted.clone());
        within(
            Duration::from_secs(60),
            "a round of contended transfers",
            move || {
                let load = |path: &Path, buffer: &Buffer| {
                    let file = File::open(path).expect("open");
                    FileIo::open().expect("open /dev/rsheap").load(
                        &file,
                        buffer,
                        Span::start(len),
                        IoPath::Buffered,
                    )
                };
                let victim_tid = std::sync::Mutex::new(None);
                let (path, buffer, victim_tid) = (&path, &*buffer, &victim_tid);
                std::thread::scope(|scope| {
                    let holder = scope.spawn(move || load(path, buffer));
                    std::thread::sleep(Duration::from_millis(5));
                    let victim = scope.spawn(move || {
                        // SAFETY: No preconditions.
                        *victim_tid.lock().expect("lock") = Some(unsafe { libc::pthread_self() });
                        load(path, buffer)
                    });
                    let waiter = scope.spawn(move || load(path, buffer));
                    std::thread::sleep(Duration::from_millis(round * 7 % 120));
                    if let Some(thread) = *victim_tid.lock().expect("lock") {
                        // SAFETY: The thread is alive until joined below.
                        unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
                    }
                    let holder = holder.join().expect("holder");
                    assert_eq!(holder.expect("the holder's load").bytes, len);
                    match victim.join().expect("victim") {
                        Ok(moved) => assert_eq!(moved.bytes, len),
                        Err(err) if err.errno() == Some(Errno::EINTR) => {
                            interrupted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => panic!("the signalled load: {err}"),
                    }
                    let waiter = waiter.join().expect("waiter");
                    assert_eq!(waiter.expect("the other waiter's load").bytes, len);
                });
            },
        );
    }
    println!(
        "{} of 24 signals ended a wait",
        interrupted.load(Ordering::Relaxed)
    );
    std::fs::remove_file(&path).expect("remove");
}

/// A file on the small disk, removed when this goes, so that a failed test leaves the disk's
/// room to the next.
struct SmallFile(PathBuf);

impl SmallFile {
    fn new(name: &str) -> Self {
        Self(small_path(name))
    }
}

impl Drop for SmallFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Fails block I/O of this thread on the small disk, one request at a time, while it lives.
struct FailingDisk;

impl FailingDisk {
    /// Makes the next `times` requests this thread sends to the small disk fail with `EIO`.
    fn next_requests(times: u32) -> Self {
        let knob = |name: &str, value: &str| {
            std::fs::write(format!("/sys/kernel/debug/fail_make_request/{name}"), value)
                .unwrap_or_else(|err| panic!("set fail_make_request/{name}: {err}"));
        };
        knob("probability", "100");
        knob("interval", "1");
        knob("times", &times.to_string());
        knob("space", "0");
        knob("verbose", "0");
        knob("task-filter", "Y");
        // The flag is per thread; the suite's tests run on threads of their own.
        std::fs::write("/proc/thread-self/make-it-fail", "1").expect("mark this thread");
        std::fs::write(small_disk_knob(), "1").expect("mark the small disk");
        Self
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        let _ = std::fs::write(small_disk_knob(), "0");
        let _ = std::fs::write("/proc/thread-self/make-it-fail", "0");
        let _ = std::fs::write("/sys/kernel/debug/fail_make_request/times", "0");
    }
}

/// The small disk's `make-it-fail` switch.
fn small_disk_knob() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("read /proc/mounts");
    let device = mounts
        .lines()
        .find_map(|line| {
            let mut fields = line.split(' ');
            let device = fields.next()?;
            (fields.next() == Some(SMALL)).then_some(device)
        })
        .unwrap_or_else(|| {
            panic!("{SMALL} is not mounted (run the suites with `cargo xtask test`)")
        });
    let name = Path::new(device).file_name().expect("a device name");
    Path::new("/sys/block").join(name).join("make-it-fail")
}

#[test]
fn a_load_that_fails_on_the_disk_changes_nothing_past_the_failed_step() {
    let len = 3 * FIRST_STEP;
    let path = SmallFile::new("failing-load.bin");
    write_random_file(&path.0, len, 72);
    let file = File::open(&path.0).expect("open");
    let buffer = buffer(len);
    fill_buffer(&buffer, 0x5a);
    drop_caches();
    let result = {
        let _failing = FailingDisk::next_requests(1);
        FileIo::open().expect("open /dev/rsheap").load(
            &file,
            &buffer,
            Span::start(len),
            IoPath::Auto,
        )
    };
    let err = result.expect_err("a load whose first request fails");
    assert_eq!(err.errno(), Some(Errno::EIO), "{err}");
    let bytes = buffer_bytes(&buffer);
    assert!(
        bytes[FIRST_STEP as usize..].iter().all(|&b| b == 0x5a),
        "bytes past the failed first step changed"
    );
}

#[test]
fn a_store_that_fails_on_the_disk_writes_nothing_past_the_failed_step() {
    let len = 3 * FIRST_STEP;
    let path = SmallFile::new("failing-store.bin");
    write_random_file(&path.0, len, 73);
    let before = std::fs::read(&path.0).expect("read");
    let file = File::options().write(true).open(&path.0).expect("open");
    let buffer = buffer(len);
    fill_buffer(&buffer, 0xa5);
    let result = {
        let _failing = FailingDisk::next_requests(1);
        FileIo::open().expect("open /dev/rsheap").store(
            &file,
            &buffer,
            Span::start(len),
            IoPath::Auto,
        )
    };
    let err = result.expect_err("a store whose first request fails");
    assert_eq!(err.errno(), Some(Errno::EIO), "{err}");
    drop(file);
    drop_caches();
    let after = std::fs::read(&path.0).expect("read back");
    assert_eq!(after.len(), before.len(), "the file kept its length");
    assert!(
        after[FIRST_STEP as usize..] == before[FIRST_STEP as usize..],
        "bytes past the failed first step changed"
    );
}

/// Bytes free for an unprivileged file on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let stat = nix::sys::statvfs::statvfs(path).expect("statvfs");
    stat.blocks_available() * stat.fragment_size()
}

#[test]
fn a_store_onto_a_full_file_system_reports_what_it_wrote_and_no_more() {
    let filler = SmallFile::new("filler.bin");
    let target = SmallFile::new("full-store.bin");
    let room = 24 * MIB;
    let free = free_bytes(Path::new(SMALL));
    assert!(
        free > room + 8 * MIB,
        "the small disk has {free} bytes free"
    );
    let filler_file = File::create(&filler.0).expect("create the filler");
    nix::fcntl::fallocate(
        filler_file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        (free - room) as i64,
    )
    .expect("fill the small disk");
    filler_file.sync_all().expect("sync the filler");

    let len = 3 * FIRST_STEP;
    let buffer = buffer(len);
    let mut content = vec![0u8; len as usize];
    fastrand::Rng::with_seed(74).fill(&mut content);
    {
        let mut mapping = buffer.map().expect("map");
        let _access = buffer.cpu_access(SyncDirection::Write).expect("sync");
        mapping.write_at(0, &content).expect("write");
    }
    let file = File::create(&target.0).expect("create");
    let stored = FileIo::open().expect("open /dev/rsheap").store(
        &file,
        &buffer,
        Span::start(len),
        IoPath::Auto,
    );
    let written = match stored {
        Ok(moved) => {
            assert!(moved.bytes < len, "all {len} bytes fit in {room}");
            moved.bytes
        }
        Err(err) => {
            assert_eq!(err.errno(), Some(Errno::ENOSPC), "{err}");
            0
        }
    };
    drop(file);
    drop_caches();
    let on_disk = std::fs::read(&target.0).expect("read back");
    assert_eq!(
        on_disk.len() as u64,
        written,
        "the file is exactly as long as the reported count"
    );
    assert!(
        on_disk == content[..written as usize],
        "the stored bytes are the buffer's"
    );
    println!("stored {written} of {len} bytes into {room} free");
}

/// `FIFREEZE` and `FITHAW` of `<linux/fs.h>`.
const FIFREEZE: libc::c_ulong = nix::request_code_readwrite!(b'X', 119, 4) as libc::c_ulong;
const FITHAW: libc::c_ulong = nix::request_code_readwrite!(b'X', 120, 4) as libc::c_ulong;

/// Freezes and thaws the file system holding `dir`.
fn freeze_and_thaw(dir: &Path) -> Result<(), Errno> {
    let dir = File::open(dir).expect("open the file system's root");
    for request in [FIFREEZE, FITHAW] {
        let mut arg: libc::c_int = 0;
        // SAFETY: Both take an int the kernel ignores; `arg` is valid for the call.
        let ret = unsafe { libc::ioctl(dir.as_raw_fd(), request as _, &mut arg) };
        Errno::result(ret)?;
    }
    Ok(())
}

/// An overlay whose upper layer lies on the scratch file system, mounted while this lives.
struct Overlay {
    merged: PathBuf,
}

impl Overlay {
    fn mount() -> Self {
        let base = scratch_path("overlay");
        let dir = |name: &str| {
            let path = base.join(name);
            std::fs::create_dir_all(&path).expect("make an overlay directory");
            path
        };
        let (lower, upper, work, merged) = (dir("lower"), dir("upper"), dir("work"), dir("merged"));
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .expect("mount the overlay");
        Self { merged }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount(&self.merged);
    }
}

#[test]
fn a_direct_store_through_overlayfs_leaves_its_file_system_freezable() {
    let overlay = Overlay::mount();
    let len = 8 * MIB;
    let buffer = buffer(len);
    let mut content = vec![0u8; len as usize];
    fastrand::Rng::with_seed(75).fill(&mut content);
    {
        let mut mapping = buffer.map().expect("map");
        let _access = buffer.cpu_access(SyncDirection::Write).expect("sync");
        mapping.write_at(0, &content).expect("write");
    }
    let path = overlay.merged.join("stored.bin");
    let file = File::create(&path).expect("create on the overlay");
    let stored = FileIo::open()
        .expect("open /dev/rsheap")
        .store(&file, &buffer, Span::start(len), IoPath::Auto)
        .expect("store through the overlay");
    assert_eq!(stored.bytes, len);
    assert!(
        stored.direct_bytes > 0,
        "the overlay's file took direct I/O: {stored:?}"
    );
    drop(file);
    let scratch = scratch_path("");
    let frozen = within(
        Duration::from_secs(30),
        "freezing the scratch file system",
        move || freeze_and_thaw(&scratch),
    );
    assert_eq!(frozen, Ok(()), "freeze and thaw");
    assert!(
        hash(&std::fs::read(&path).expect("read back")) == hash(&content),
        "the stored bytes"
    );
    std::fs::remove_file(&path).expect("remove");
    drop(overlay);
}
