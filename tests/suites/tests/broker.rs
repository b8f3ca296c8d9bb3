//! rsheapd over real binder: allocation, naming, accounting, loads, errors, client death,
//! restarts and many clients at once. Each test starts its own rsheapd; clients other than
//! the test itself are processes of `broker_client`.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use rsbinder::{Interface, ParcelFileDescriptor, SIBinder, Strong};
use rsheap::SyncDirection;
use rsheap_suites::broker::{
    code, config, error_code, eventually, heap_buffers, into_buffer, is_dead_object, request,
    root_quota, segment, token, ClientProcess, Daemon, SHIPPED_CONFIG,
};
use rsheap_suites::{
    drain_pools, drop_caches, fdinfo, fill_and_check, hash, heap_stat, meminfo, page_size,
    scratch_path, write_random_file, RSHEAP, RSHEAP_UNCACHED,
};
use vendor_rsheap::aidl::vendor::rsheap::{
    AllocationRequest::AllocationRequest,
    FileSegment::FileSegment,
    IHeapBroker::{self, IHeapBroker as Broker},
    ILoadCallback::{BnLoadCallback, ILoadCallback},
    Usage::Usage,
};

const MIB: i64 = 1 << 20;

/// How far MemFree may stay below its earlier value once a dead client's memory is back:
/// pages parked on per-CPU free lists and kernel objects of the processes come and gone
/// account for up to about 20 MiB here. It is less than any buffer the tests kill a client
/// with (32 MiB and up), so a buffer whose pages did not come back still fails the test.
const MEMFREE_NOISE: u64 = 24 << 20;

const INVALID: i32 = IHeapBroker::ERROR_INVALID_ARGUMENT;
const NO_MEMORY: i32 = IHeapBroker::ERROR_NO_MEMORY;
const QUOTA: i32 = IHeapBroker::ERROR_QUOTA_EXCEEDED;
const NOT_FOUND: i32 = IHeapBroker::ERROR_NOT_FOUND;
const IO: i32 = IHeapBroker::ERROR_IO;
const UNSUPPORTED: i32 = IHeapBroker::ERROR_UNSUPPORTED;
const BUSY: i32 = IHeapBroker::ERROR_BUSY;

fn dump(broker: &Strong<dyn Broker>) -> String {
    dump_with(broker, &[])
}

fn dump_with(broker: &Strong<dyn Broker>, args: &[&str]) -> String {
    let (read, write) = ParcelFileDescriptor::pipe().expect("pipe");
    let binder = broker.as_binder();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    binder
        .as_proxy()
        .expect("a remote broker")
        .dump(OwnedFd::from(write), &args)
        .expect("dump");
    let mut text = String::new();
    File::from(OwnedFd::from(read))
        .read_to_string(&mut text)
        .expect("read the dump");
    text
}

#[test]
fn allocates_names_maps_lists_and_frees_buffers() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let client = token();
    let page = page_size() as i64;
    let mut ids = Vec::new();
    for (usage, tag) in [
        (Usage::CAMERA_FRAME, "camera"),
        (Usage::MODEL_WEIGHTS, "weights"),
        (Usage::MODEL_EXECUTABLE, "exec"),
        (Usage::SCRATCH, "scratch"),
    ] {
        for cached in [true, false] {
            let mut asked = request(3 * MIB + 1, usage);
            asked.cached = cached;
            asked.debugName = Some(format!("{tag} test buffer"));
            let made = broker.allocate(&client, &asked).expect("allocate");
            let info = &made.info;
            assert_eq!(info.size, 3 * MIB + page, "rounded up to pages");
            assert_eq!(info.heap, if cached { RSHEAP } else { RSHEAP_UNCACHED });
            assert_eq!(info.usage, usage);
            assert_eq!(info.cached, cached);
            assert_eq!(
                info.name,
                format!("{tag}-{}-{}", std::process::id(), info.id)
            );
            assert_eq!(info.debugName, format!("{tag} test buffer"));
            let buffer = into_buffer(made.fd);
            assert_eq!(buffer.len() as i64, info.size);
            let fdinfo = fdinfo(&buffer.as_fd());
            assert!(
                fdinfo
                    .lines()
                    .any(|line| line == format!("name:\t{}", info.name)),
                "fdinfo shows the name:\n{fdinfo}"
            );
            fill_and_check(&buffer, info.id as u8);
            ids.push(info.id);
        }
    }
    let listed: Vec<i64> = broker
        .listBuffers(&client)
        .expect("list")
        .iter()
        .map(|info| info.id)
        .collect();
    assert_eq!(listed, ids, "the client's buffers, oldest first");
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids grow");
    assert_eq!(heap_buffers(&broker, RSHEAP), (4, 4 * (3 * MIB + page)));
    assert_eq!(
        heap_buffers(&broker, RSHEAP_UNCACHED),
        (4, 4 * (3 * MIB + page))
    );
    let heaps = broker.getHeaps().expect("heaps");
    let rsheap = heaps.iter().find(|h| h.name == RSHEAP).expect("rsheap");
    assert!(rsheap.cached && rsheap.usages.len() == 4 && rsheap.allocations >= 4);

    for id in &ids {
        broker.free(&client, *id).expect("free");
    }
    assert!(broker.listBuffers(&client).expect("list").is_empty());
    assert_eq!(heap_buffers(&broker, RSHEAP), (0, 0));
    assert_eq!(code(broker.free(&client, ids[0])), NOT_FOUND, "freed twice");
}

#[test]
fn usages_fall_back_to_the_next_heap_present() {
    let (_daemon, broker) = Daemon::start(&config(&[(
        "[usage.scratch]\ncached = [\"rsheap\", \"system\"]",
        "[usage.scratch]\ncached = [\"npu-carveout\", \"system\", \"rsheap\"]",
    )]));
    let client = token();
    let made = broker
        .allocate(&client, &request(MIB, Usage::SCRATCH))
        .expect("allocate");
    assert_eq!(made.info.heap, "system", "the first heap present");
    let names: Vec<String> = broker
        .getHeaps()
        .expect("heaps")
        .into_iter()
        .map(|heap| heap.name)
        .collect();
    assert!(
        !names.iter().any(|name| name == "npu-carveout"),
        "{names:?}"
    );
    assert!(names.iter().any(|name| name == "system"), "{names:?}");
}

#[test]
fn batches_are_all_or_nothing() {
    let (_daemon, broker) = Daemon::start(&root_quota(64, 8));
    let client = token();
    let good = request(MIB, Usage::SCRATCH);
    let made = broker
        .allocateBatch(&client, &[good.clone(), good.clone(), good.clone()])
        .expect("a batch of three");
    assert_eq!(made.len(), 3);
    for buffer in made {
        fill_and_check(&into_buffer(buffer.fd), 3);
    }

    let mut bad = good.clone();
    bad.size = 0;
    let status = broker
        .allocateBatch(&client, &[good.clone(), bad, good.clone()])
        .expect_err("one bad request");
    assert_eq!(error_code(&status), Ok(INVALID));
    assert!(
        format!("{status:?}").contains("request 1"),
        "the message names the request: {status:?}"
    );
    let too_big = [
        request(32 * MIB, Usage::SCRATCH),
        request(32 * MIB, Usage::SCRATCH),
    ];
    assert_eq!(code(broker.allocateBatch(&client, &too_big)), QUOTA);
    assert_eq!(
        broker.listBuffers(&client).expect("list").len(),
        3,
        "nothing added"
    );
    assert_eq!(heap_buffers(&broker, RSHEAP).0, 3);

    let many = vec![good.clone(); IHeapBroker::MAX_BATCH as usize + 1];
    assert_eq!(code(broker.allocateBatch(&client, &many)), INVALID);
    assert_eq!(code(broker.allocateBatch(&client, &[])), INVALID);
    broker
        .allocateBatch(&client, &[request(32 * MIB, Usage::SCRATCH)])
        .expect("what fits the quota");
}

#[test]
fn bad_allocation_requests_get_their_error_codes() {
    let (_daemon, broker) = Daemon::start(&root_quota(64, 4));
    let client = token();
    let with = |change: &dyn Fn(&mut AllocationRequest)| {
        let mut asked = request(MIB, Usage::SCRATCH);
        change(&mut asked);
        broker.allocate(&client, &asked)
    };
    assert_eq!(code(with(&|r| r.size = 0)), INVALID, "zero size");
    assert_eq!(code(with(&|r| r.size = -4096)), INVALID, "negative size");
    assert_eq!(
        code(with(&|r| r.size = 4097 * MIB)),
        INVALID,
        "above the largest buffer"
    );
    assert_eq!(code(with(&|r| r.size = i64::MAX)), INVALID, "huge size");
    assert_eq!(
        code(with(&|r| r.usage = Usage(99))),
        INVALID,
        "unknown usage"
    );
    assert_eq!(
        code(with(&|r| r.heap = Some("nonexistent".into()))),
        UNSUPPORTED
    );
    assert_eq!(
        code(with(&|r| r.heap = Some("../system".into()))),
        UNSUPPORTED
    );
    assert_eq!(code(with(&|r| r.debugName = Some("x".repeat(64)))), INVALID);
    assert_eq!(
        code(with(&|r| r.debugName = Some("two\nlines".into()))),
        INVALID
    );

    // More than the machine has, within the largest buffer: refused up front.
    assert_eq!(code(with(&|r| r.size = 4000 * MIB)), NO_MEMORY);

    // An explicit heap.
    let system = with(&|r| r.heap = Some("system".into())).expect("the system heap");
    assert_eq!(system.info.heap, "system");

    // Quota: 64 MiB and 4 buffers for uid 0; the system buffer holds 1 MiB and 1 buffer.
    let big = with(&|r| r.size = 48 * MIB).expect("48 MiB");
    let status = with(&|r| r.size = 16 * MIB).expect_err("over the byte quota");
    assert_eq!(error_code(&status), Ok(QUOTA));
    assert!(format!("{status:?}").contains("uid 0 holds"), "{status:?}");
    with(&|r| r.size = 4096).expect("a third buffer");
    with(&|r| r.size = 4096).expect("a fourth buffer");
    assert_eq!(
        code(with(&|r| r.size = 4096)),
        QUOTA,
        "over the buffer quota"
    );
    // The quota follows the memory: freed to the broker, the buffer still counts while this
    // client holds its fd, and stops counting once the last reference is gone.
    broker.free(&client, big.info.id).expect("free");
    assert_eq!(
        code(with(&|r| r.size = 32 * MIB)),
        QUOTA,
        "a freed buffer whose fd is still open"
    );
    drop(big);
    let refill = with(&|r| r.size = 62 * MIB).expect("room again once the buffer is gone");
    assert_eq!(refill.info.heap, RSHEAP, "and from the usage's heap");
}

#[test]
fn allocating_duplicating_and_freeing_in_a_loop_meets_the_quota() {
    let (_daemon, broker) = Daemon::start(&root_quota(64, 64));
    let client = token();
    let mut kept: Vec<OwnedFd> = Vec::new();
    let mut rounds = 0;
    let status = loop {
        assert!(rounds < 64, "the loop never met the quota");
        let made = match broker.allocate(&client, &request(8 * MIB, Usage::SCRATCH)) {
            Ok(made) => made,
            Err(status) => break status,
        };
        let fd: OwnedFd = made.fd.expect("a file descriptor").into();
        kept.push(fd.try_clone().expect("dup"));
        drop(fd);
        broker.free(&client, made.info.id).expect("free");
        rounds += 1;
    };
    assert_eq!(error_code(&status), Ok(QUOTA), "{status:?}");
    assert_eq!(rounds, 8, "64 MiB of quota holds eight 8 MiB buffers");
    assert!(
        broker.listBuffers(&client).expect("list").is_empty(),
        "every buffer was freed to the broker"
    );
    // Closing the copies releases the buffers, and their quota with them.
    kept.clear();
    broker
        .allocate(&client, &request(64 * MIB, Usage::SCRATCH))
        .expect("the whole quota once the copies are closed");
}

#[test]
fn buffers_are_private_to_their_client() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let owner = token();
    let ids: Vec<i64> = (0..3)
        .map(|_| {
            broker
                .allocate(&owner, &request(MIB, Usage::CAMERA_FRAME))
                .expect("allocate")
                .info
                .id
        })
        .collect();
    let file = File::open("/proc/self/exe").expect("a file");

    // Another client in this process.
    let other = token();
    assert!(broker.listBuffers(&other).expect("list").is_empty());
    for id in &ids {
        assert_eq!(code(broker.free(&other, *id)), NOT_FOUND);
        assert_eq!(
            code(broker.loadFile(&other, *id, &segment(&file, 0, 4096, 0))),
            NOT_FOUND
        );
    }
    // Other processes: the same uid, and another uid.
    let args: Vec<String> = ids.iter().map(i64::to_string).collect();
    for uid in [None, Some("4242")] {
        let mut argv: Vec<&str> = Vec::new();
        if let Some(uid) = uid {
            argv.extend(["--uid", uid]);
        }
        argv.push("probe");
        argv.extend(args.iter().map(String::as_str));
        let mut probe = ClientProcess::spawn(&argv);
        let expected = format!("probe {} buffers 0", vec!["4"; 2 * ids.len()].join(" "));
        assert_eq!(probe.line(), expected, "uid {uid:?}");
        assert!(probe.child.wait().expect("wait").success());
    }
    assert_eq!(
        broker.listBuffers(&owner).expect("list").len(),
        3,
        "all still there"
    );
}

#[test]
fn loads_put_file_segments_into_buffers() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let client = token();
    let path = scratch_path("broker-load.bin");
    let len = 64 * MIB + 123;
    write_random_file(&path, len as u64, 7);
    let content = std::fs::read(&path).expect("read the file");
    drop_caches();
    let file = File::open(&path).expect("open");

    for heap in [RSHEAP, RSHEAP_UNCACHED, "system"] {
        let mut asked = request(128 * MIB, Usage::MODEL_WEIGHTS);
        asked.heap = Some(heap.to_owned());
        let made = broker.allocate(&client, &asked).expect("allocate");
        let id = made.info.id;
        let buffer = into_buffer(made.fd);
        // The whole file at the start, then a slice of it further in.
        let whole = broker
            .loadFile(&client, id, &segment(&file, 0, -1, 0))
            .expect("load");
        assert_eq!(whole, len, "{heap}: the whole file, short of the buffer");
        let slice = broker
            .loadFile(&client, id, &segment(&file, 4096, 8 * MIB, 96 * MIB))
            .expect("load a slice");
        assert_eq!(slice, 8 * MIB);
        let mapping = buffer.map().expect("map");
        let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
        let bytes = mapping.to_vec();
        assert_eq!(
            hash(&bytes[..len as usize]),
            hash(&content),
            "{heap}: the file"
        );
        assert_eq!(
            hash(&bytes[96 * MIB as usize..104 * MIB as usize]),
            hash(&content[4096..4096 + 8 * MIB as usize]),
            "{heap}: the slice"
        );
        broker.free(&client, id).expect("free");
    }
    std::fs::remove_file(&path).expect("remove the file");
}

/// What an asynchronous load reported.
#[derive(Clone, Debug, PartialEq)]
enum Event {
    Progress(i64, i64, i64),
    Complete(i64, i64, i32, Option<String>),
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Recorder {
    fn completion(&self, buffer: i64) -> Event {
        let start = Instant::now();
        let mut events = self.events.lock().expect("events");
        loop {
            if let Some(done) = events
                .iter()
                .find(|e| matches!(e, Event::Complete(id, ..) if *id == buffer))
            {
                return done.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no completion for {buffer}"
            );
            events = self
                .changed
                .wait_timeout(events, Duration::from_secs(1))
                .expect("events")
                .0;
        }
    }
}

struct Callback(Arc<Recorder>);

impl Interface for Callback {}

impl ILoadCallback for Callback {
    fn onProgress(&self, id: i64, done: i64, total: i64) -> rsbinder::BinderResult<()> {
        self.0
            .events
            .lock()
            .expect("events")
            .push(Event::Progress(id, done, total));
        self.0.changed.notify_all();
        Ok(())
    }

    fn onComplete(
        &self,
        id: i64,
        bytes: i64,
        errno: i32,
        message: Option<&str>,
    ) -> rsbinder::BinderResult<()> {
        let event = Event::Complete(id, bytes, errno, message.map(str::to_owned));
        self.0.events.lock().expect("events").push(event);
        self.0.changed.notify_all();
        Ok(())
    }
}

fn callback() -> (Arc<Recorder>, Strong<dyn ILoadCallback>) {
    let recorder = Arc::new(Recorder::default());
    (
        recorder.clone(),
        BnLoadCallback::new_binder(Callback(recorder)),
    )
}

#[test]
fn asynchronous_loads_report_progress_and_cancellation() {
    let (_daemon, broker) = Daemon::start(&config(&[("load_workers = 2", "load_workers = 1")]));
    let client = token();
    let path = scratch_path("broker-async.bin");
    let len = 256 * MIB;
    let expected = write_random_file(&path, len as u64, 11);
    drop_caches();
    let file = File::open(&path).expect("open");
    let (recorder, callback) = callback();

    let first = broker
        .allocate(&client, &request(len, Usage::MODEL_WEIGHTS))
        .expect("allocate");
    let second = broker
        .allocate(&client, &request(len, Usage::MODEL_WEIGHTS))
        .expect("allocate");
    let (first_id, second_id) = (first.info.id, second.info.id);
    broker
        .loadFileAsync(&client, first_id, &segment(&file, 0, -1, 0), &callback)
        .expect("queue the first load");
    // With one worker busy on the first load, the second waits in the queue; freeing its
    // buffer cancels it there.
    broker
        .loadFileAsync(&client, second_id, &segment(&file, 0, -1, 0), &callback)
        .expect("queue the second load");
    broker
        .free(&client, second_id)
        .expect("free the second buffer");

    assert_eq!(
        recorder.completion(first_id),
        Event::Complete(first_id, len, 0, None)
    );
    match recorder.completion(second_id) {
        Event::Complete(_, 0, errno, Some(message)) => {
            assert_eq!(errno, Errno::ECANCELED as i32, "{message}");
        }
        other => panic!("the second load was not cancelled: {other:?}"),
    }
    let events = recorder.events.lock().expect("events").clone();
    let progress: Vec<(i64, i64)> = events
        .iter()
        .filter_map(|event| match event {
            Event::Progress(id, done, total) if *id == first_id => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert!(progress.len() >= 2, "progress came in steps: {progress:?}");
    assert!(progress.windows(2).all(|p| p[0].0 < p[1].0), "{progress:?}");
    assert!(progress
        .iter()
        .all(|&(done, total)| total == len && done <= len));
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Progress(id, ..) if *id == second_id)));

    let buffer = into_buffer(first.fd);
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    assert_eq!(hash(&mapping.to_vec()), expected, "the loaded content");
    std::fs::remove_file(&path).expect("remove the file");
}

#[test]
fn bad_loads_get_their_error_codes() {
    let (_daemon, broker) = Daemon::start(&config(&[(
        "loads_per_client = 16",
        "loads_per_client = 1",
    )]));
    let client = token();
    let made = broker
        .allocate(&client, &request(MIB, Usage::SCRATCH))
        .expect("allocate");
    let id = made.info.id;
    let path = scratch_path("broker-bad-loads.bin");
    write_random_file(&path, 2 * MIB as u64, 3);
    let file = File::open(&path).expect("open");
    let load = |segment: &FileSegment| broker.loadFile(&client, id, segment);

    assert_eq!(
        code(broker.loadFile(&client, id + 1000, &segment(&file, 0, 4096, 0))),
        NOT_FOUND
    );
    // The file is not nullable: the proxy refuses to send a segment without one.
    let mut missing = segment(&file, 0, 4096, 0);
    missing.file = None;
    let status = load(&missing).expect_err("no file");
    assert_eq!(
        error_code(&status),
        Err(format!("{status:?}")),
        "not sent to the broker"
    );
    let (pipe_read, _pipe_write) = nix::unistd::pipe().expect("pipe");
    let pipe = File::from(pipe_read);
    assert_eq!(code(load(&segment(&pipe, 0, 4096, 0))), INVALID, "a pipe");
    let dir = File::open("/run/scratch").expect("a directory");
    assert_eq!(
        code(load(&segment(&dir, 0, 4096, 0))),
        INVALID,
        "a directory"
    );
    let write_only = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    assert_eq!(
        code(load(&segment(&write_only, 0, 4096, 0))),
        INVALID,
        "write-only"
    );
    assert_eq!(
        code(load(&segment(&file, -1, 4096, 0))),
        INVALID,
        "negative file offset"
    );
    assert_eq!(
        code(load(&segment(&file, 0, 4096, -1))),
        INVALID,
        "negative buffer offset"
    );
    assert_eq!(
        code(load(&segment(&file, 0, -2, 0))),
        INVALID,
        "negative length"
    );
    assert_eq!(
        code(load(&segment(&file, 0, 4096, MIB + 1))),
        INVALID,
        "past the buffer"
    );
    assert_eq!(
        code(load(&segment(&file, 0, MIB + 1, 0))),
        INVALID,
        "longer than the buffer"
    );
    assert_eq!(
        code(load(&segment(&file, i64::MAX, 4096, 0))),
        INVALID,
        "overflowing range"
    );
    assert_eq!(
        load(&segment(&file, 4 * MIB, 4096, 0)).expect("past EOF"),
        0
    );

    // A read error: process memory at address 0 cannot be read (into a system-heap buffer,
    // which loads through a mapping).
    let mut asked = request(MIB, Usage::SCRATCH);
    asked.heap = Some("system".into());
    let system = broker.allocate(&client, &asked).expect("allocate");
    let memory = File::open("/proc/self/mem").expect("open /proc/self/mem");
    let status = broker
        .loadFile(&client, system.info.id, &segment(&memory, 0, 4096, 0))
        .expect_err("reading address 0");
    assert_eq!(error_code(&status), Ok(IO), "{status:?}");

    // One load per client: a second one queued behind a running one is refused.
    let big = scratch_path("broker-busy.bin");
    write_random_file(&big, 256 * MIB as u64, 5);
    drop_caches();
    let big_file = File::open(&big).expect("open");
    let target = broker
        .allocate(&client, &request(256 * MIB, Usage::SCRATCH))
        .expect("allocate");
    let (recorder, callback) = callback();
    broker
        .loadFileAsync(
            &client,
            target.info.id,
            &segment(&big_file, 0, -1, 0),
            &callback,
        )
        .expect("the first load");
    assert_eq!(
        code(broker.loadFileAsync(&client, id, &segment(&file, 0, 4096, 0), &callback)),
        BUSY
    );
    assert_eq!(code(load(&segment(&file, 0, 4096, 0))), BUSY);
    assert!(
        matches!(recorder.completion(target.info.id), Event::Complete(_, n, 0, None) if n == 256 * MIB)
    );
    assert_eq!(
        load(&segment(&file, 0, 4096, 0)).expect("a load once the first ended"),
        4096
    );
    std::fs::remove_file(&path).expect("remove");
    std::fs::remove_file(&big).expect("remove");
}

#[test]
fn the_dump_shows_every_session_and_buffer() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let client = token();
    let mut asked = request(5 * MIB, Usage::CAMERA_FRAME);
    asked.debugName = Some("preview ring 0".into());
    let made = broker.allocate(&client, &asked).expect("allocate");
    let mut holder = ClientProcess::spawn(&["--uid", "4242", "hold", "2", "1048576"]);
    assert_eq!(holder.line(), "ready");

    let text = dump(&broker);
    assert!(text.contains("sessions:") && text.contains("buffers:") && text.contains("heaps:"));
    let me = format!(" 0 {:>8} {:>8}", std::process::id(), 1);
    assert!(
        text.lines().any(|l| l.contains(&me)),
        "a line for this client:\n{text}"
    );
    let other = format!(" 4242 {:>8} {:>8}", holder.child.id(), 2);
    assert!(
        text.lines().any(|l| l.contains(&other)),
        "a line for the holder:\n{text}"
    );
    assert!(
        text.contains(&made.info.name) && text.contains("preview ring 0"),
        "{text}"
    );
    assert!(
        text.contains(&format!("camera-{}-", holder.child.id())),
        "{text}"
    );
    rsheap_suites::kill_and_reap(holder.pid());
}

#[test]
fn the_json_dump_says_what_the_text_dump_says() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let client = token();
    let mut asked = request(5 * MIB, Usage::CAMERA_FRAME);
    asked.debugName = Some("weights \"v2\"".into());
    let made = broker.allocate(&client, &asked).expect("allocate");

    let text = dump_with(&broker, &["--json"]);
    let report: serde_json::Value = serde_json::from_str(&text).expect("the dump is JSON");
    for count in [
        "loads_queued",
        "loads_running",
        "allocations_queued",
        "allocations_running",
    ] {
        assert_eq!(report[count], 0, "{count}: {text}");
    }
    let rsheap = report["heaps"]
        .as_array()
        .and_then(|heaps| heaps.iter().find(|heap| heap["name"] == RSHEAP))
        .unwrap_or_else(|| panic!("no rsheap heap: {text}"));
    assert_eq!(rsheap["cached"], true);
    assert_eq!(rsheap["buffers"], 1);
    assert_eq!(rsheap["bytes"], 5 * MIB);
    let pid = i64::from(std::process::id());
    let mine = report["sessions"]
        .as_array()
        .and_then(|sessions| sessions.iter().find(|session| session["pid"] == pid))
        .unwrap_or_else(|| panic!("no session of this client: {text}"));
    assert_eq!((&mine["uid"], &mine["buffers"]), (&0.into(), &1.into()));
    assert_eq!(mine["bytes"], 5 * MIB);
    let root = report["uids"]
        .as_array()
        .and_then(|uids| uids.iter().find(|uid| uid["uid"] == 0))
        .unwrap_or_else(|| panic!("no uid 0: {text}"));
    assert_eq!(
        (&root["buffers"], &root["bytes"]),
        (&1.into(), &(5 * MIB).into())
    );
    assert_eq!(root["kernel_account"], true);
    assert!(root["quota_bytes"]
        .as_i64()
        .is_some_and(|quota| quota >= 5 * MIB));
    let buffers = report["buffers"].as_array().expect("buffers");
    assert_eq!(buffers.len(), 1, "{text}");
    assert_eq!(buffers[0]["session"], mine["session"]);
    assert_eq!(buffers[0]["id"], made.info.id);
    assert_eq!(buffers[0]["name"], made.info.name.as_str());
    assert_eq!(buffers[0]["usage"], "camera_frame");
    assert_eq!(buffers[0]["debug_name"], "weights \"v2\"");

    let usage = dump_with(&broker, &["--yaml"]);
    assert!(usage.contains("usage: dump [--json]"), "{usage}");
}

#[test]
fn a_killed_client_gives_back_all_its_memory() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    drain_pools();
    drop_caches();
    let buffers_before = heap_stat(RSHEAP, 0);
    let free_before = meminfo("MemFree");

    let mut holder = ClientProcess::spawn(&["hold", "8", &(32 * MIB).to_string()]);
    assert_eq!(holder.line(), "ready");
    assert_eq!(heap_buffers(&broker, RSHEAP), (8, 8 * 32 * MIB));
    assert_eq!(heap_stat(RSHEAP, 0), buffers_before + 8);
    rsheap_suites::kill_and_reap(holder.pid());

    eventually(10, "the broker frees the dead client's buffers", || {
        heap_buffers(&broker, RSHEAP) == (0, 0) && heap_stat(RSHEAP, 0) == buffers_before
    });
    // The client's program text sits in the page cache now.
    drop_caches();
    drain_pools();
    let free_after = meminfo("MemFree");
    assert!(
        free_after + MEMFREE_NOISE >= free_before,
        "MemFree went from {free_before} to {free_after}"
    );
}

#[test]
fn a_client_killed_mid_load_gives_back_all_its_memory() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let path = scratch_path("broker-killed-load.bin");
    write_random_file(&path, 512 * MIB as u64, 13);
    drain_pools();
    drop_caches();
    let buffers_before = heap_stat(RSHEAP, 0);
    let free_before = meminfo("MemFree");

    let mut loader = ClientProcess::spawn(&["load-loop", path.to_str().expect("a path")]);
    assert_eq!(loader.line(), "ready");
    eventually(20, "a load runs", || dump(&broker).contains("running 1"));
    rsheap_suites::kill_and_reap(loader.pid());

    eventually(20, "the load stops and the buffer is freed", || {
        let text = dump(&broker);
        text.contains("queued 0, running 0")
            && heap_buffers(&broker, RSHEAP) == (0, 0)
            && heap_stat(RSHEAP, 0) == buffers_before
    });
    std::fs::remove_file(&path).expect("remove");
    drop_caches();
    drain_pools();
    let free_after = meminfo("MemFree");
    assert!(
        free_after + MEMFREE_NOISE >= free_before,
        "MemFree went from {free_before} to {free_after}"
    );
    // The broker still serves.
    broker
        .allocate(&token(), &request(MIB, Usage::SCRATCH))
        .expect("allocate after the kill");
}

#[test]
fn clients_see_a_dead_broker_and_reconnect_to_its_restart() {
    let (mut daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let client = token();
    let old = broker
        .allocate(&client, &request(MIB, Usage::SCRATCH))
        .expect("allocate");
    daemon.kill();
    let status = broker
        .allocate(&client, &request(MIB, Usage::SCRATCH))
        .expect_err("the broker is dead");
    assert!(is_dead_object(&status), "a dead-object error: {status:?}");
    drop(daemon);

    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let made = broker
        .allocate(&client, &request(MIB, Usage::SCRATCH))
        .expect("allocate");
    fill_and_check(&into_buffer(made.fd), 9);
    assert_eq!(
        broker.listBuffers(&client).expect("list").len(),
        1,
        "a fresh start"
    );
    assert_ne!(
        made.info.id, old.info.id,
        "ids do not repeat across restarts"
    );
    assert_eq!(
        code(broker.free(&client, old.info.id)),
        NOT_FOUND,
        "the old id"
    );
}

#[test]
fn twenty_clients_allocate_and_free_a_thousand_times_each() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let start = Instant::now();
    let mut clients: Vec<ClientProcess> = (0..20)
        .map(|seed| ClientProcess::spawn(&["cycles", "1000", &seed.to_string()]))
        .collect();
    for client in &mut clients {
        assert_eq!(client.line(), "done 1000");
        assert!(client.child.wait().expect("wait").success());
    }
    eprintln!(
        "20 x 1000 cycles took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(heap_buffers(&broker, RSHEAP), (0, 0));
    let heaps = broker.getHeaps().expect("heaps");
    let rsheap = heaps.iter().find(|h| h.name == RSHEAP).expect("rsheap");
    assert!(rsheap.allocations >= 20_000, "{rsheap:?}");
}

#[test]
fn random_calls_get_documented_errors_and_never_break_the_broker() {
    let (_daemon, broker) = Daemon::start(&root_quota(256, 64));
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let clients: Vec<SIBinder> = (0..3).map(|_| token()).collect();
    let file = File::open("/proc/self/exe").expect("a file");
    let (pipe_read, _pipe_write) = nix::unistd::pipe().expect("pipe");
    let pipe = File::from(pipe_read);
    let (recorder, callback) = callback();
    let mut ids: Vec<i64> = vec![0, -1, i64::MAX, i64::MIN];
    let value = |rng: &mut fastrand::Rng| -> i64 {
        match rng.u8(0..6) {
            0 => rng.i64(..),
            1 => rng.i64(-2..=2),
            2 => rng.i64(0..(8 * MIB)),
            3 => i64::MAX - rng.i64(0..2),
            4 => i64::MIN + rng.i64(0..2),
            _ => rng.i64(0..4) * 4096,
        }
    };
    let mut outcomes = [0usize; 8];
    for _ in 0..3000 {
        let client = &clients[rng.usize(..clients.len())];
        let id = ids[rng.usize(..ids.len())];
        let pick = |rng: &mut fastrand::Rng| if rng.bool() { &file } else { &pipe };
        let result = match rng.u8(0..6) {
            0 | 1 => {
                let asked = AllocationRequest {
                    size: value(&mut rng),
                    usage: Usage(rng.i32(-2..6)),
                    heap: [
                        None,
                        Some("rsheap"),
                        Some("system"),
                        Some(""),
                        Some("nope/.."),
                    ][rng.usize(..5)]
                    .map(str::to_owned),
                    cached: rng.bool(),
                    debugName: if rng.bool() {
                        None
                    } else {
                        Some((0..rng.usize(0..80)).map(|_| rng.char(..)).collect())
                    },
                };
                broker
                    .allocate(client, &asked)
                    .map(|made| ids.push(made.info.id))
            }
            2 => broker.free(client, id),
            3 => {
                let seg = segment(
                    pick(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                );
                broker.loadFile(client, id, &seg).map(drop)
            }
            4 => {
                let seg = segment(
                    pick(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                    value(&mut rng),
                );
                broker.loadFileAsync(client, id, &seg, &callback)
            }
            _ => broker.listBuffers(client).map(drop),
        };
        match result {
            Ok(()) => outcomes[0] += 1,
            Err(status) => {
                let code = error_code(&status).unwrap_or_else(|other| panic!("{other}"));
                assert!(
                    (1..=7).contains(&code),
                    "undocumented code {code}: {status:?}"
                );
                outcomes[code as usize] += 1;
            }
        }
    }
    eprintln!("outcomes (ok, then by error code): {outcomes:?}");
    assert!(outcomes[0] > 100 && outcomes[INVALID as usize] > 100);
    broker.getHeaps().expect("the broker still answers");
    for client in &clients {
        for info in broker.listBuffers(client).expect("list") {
            broker.free(client, info.id).expect("free");
        }
    }
    drop(recorder);
}

#[test]
fn an_invalid_configuration_stops_rsheapd_with_a_message() {
    let dir = std::env::temp_dir();
    for (text, key) in [
        (
            config(&[("load_workers = 2", "load_workers = 0")]),
            "limits.load_workers",
        ),
        (
            config(&[("[usage.scratch]", "[usage.scrap]")]),
            "usage.scrap",
        ),
        ("not toml [".to_owned(), "TOML"),
    ] {
        let path = dir.join("rsheapd-invalid.toml");
        std::fs::write(&path, &text).expect("write");
        let log = dir.join("rsheapd-invalid.log");
        let status = Daemon::spawn(&path, &log).status().expect("run rsheapd");
        let said = std::fs::read_to_string(&log).expect("read the log");
        assert!(!status.success(), "rsheapd refused {key}");
        assert!(said.contains(key) || key == "TOML", "{key}: {said}");
        assert!(said.contains(path.to_str().expect("a path")), "{said}");
    }
    let missing = Daemon::spawn(&dir.join("no-such.toml"), &dir.join("rsheapd-missing.log"))
        .status()
        .expect("run rsheapd");
    assert!(!missing.success());
}

/// Hides `/dev/rsheap` while it lives, as if rsheap.ko had not loaded yet.
struct HiddenControlDevice;

const HIDDEN_CONTROL_DEVICE: &str = "/dev/rsheap.hidden";

impl HiddenControlDevice {
    fn hide() -> Self {
        std::fs::rename(rsheap::CONTROL_DEVICE, HIDDEN_CONTROL_DEVICE).expect("hide /dev/rsheap");
        Self
    }
}

impl Drop for HiddenControlDevice {
    fn drop(&mut self) {
        let _ = std::fs::rename(HIDDEN_CONTROL_DEVICE, rsheap::CONTROL_DEVICE);
    }
}

#[test]
fn loads_go_direct_once_the_control_device_appears_after_the_broker() {
    let hidden = HiddenControlDevice::hide();
    let (daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let client = token();
    let path = scratch_path("broker-late-control.bin");
    let len = 4 * MIB;
    write_random_file(&path, len as u64, 8);
    let content = std::fs::read(&path).expect("read the file");
    let file = File::open(&path).expect("open");
    let made = broker
        .allocate(&client, &request(len, Usage::MODEL_WEIGHTS))
        .expect("allocate");
    let id = made.info.id;
    let buffer = into_buffer(made.fd);
    let loaded = broker
        .loadFile(&client, id, &segment(&file, 0, -1, 0))
        .expect("a load through the mapping");
    assert_eq!(loaded, len);
    assert!(!daemon.log().contains("appeared"), "{}", daemon.log());
    // The module's control device appears.
    drop(hidden);
    let loaded = broker
        .loadFile(&client, id, &segment(&file, 0, -1, 0))
        .expect("a direct load");
    assert_eq!(loaded, len);
    assert!(
        daemon
            .log()
            .contains("/dev/rsheap appeared: loads go direct"),
        "{}",
        daemon.log()
    );
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    assert!(
        hash(&mapping.to_vec()) == hash(&content),
        "the loaded bytes"
    );
    std::fs::remove_file(&path).expect("remove the file");
}

/// Starts rsheapd with `limit` file descriptors (soft and hard), and puts this process's own
/// limit back.
fn start_with_fd_limit(limit: u64) -> (Daemon, Strong<dyn Broker>) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let old = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, limit, limit).expect("lower the limit");
    let started = std::panic::catch_unwind(|| Daemon::start(SHIPPED_CONFIG));
    setrlimit(Resource::RLIMIT_NOFILE, old.0, old.1).expect("restore the limit");
    started.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn the_broker_holds_no_more_buffers_than_its_file_descriptors_allow() {
    // 64 descriptors stay free for binder, files and logs: 32 buffers at most.
    let (_daemon, broker) = start_with_fd_limit(96);
    let client = token();
    let mut ids = Vec::new();
    let status = loop {
        assert!(ids.len() <= 96, "the broker never refused");
        match broker.allocate(&client, &request(4096, Usage::SCRATCH)) {
            Ok(made) => ids.push(made.info.id),
            Err(status) => break status,
        }
    };
    assert_eq!(error_code(&status), Ok(BUSY), "{status:?}");
    assert!(
        format!("{status:?}").contains("file descriptor limit"),
        "the message says why: {status:?}"
    );
    assert_eq!(ids.len(), 32);
    // The broker still serves, and a freed buffer makes room.
    broker.getHeaps().expect("heaps");
    broker.free(&client, ids[0]).expect("free");
    broker
        .allocate(&client, &request(4096, Usage::SCRATCH))
        .expect("room for one more");
}
