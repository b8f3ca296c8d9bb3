//! The SDK's `Broker` against a real rsheapd: what a HAL author writes.

use std::fs::File;

use rsheap::{
    AllocationOptions, Broker, BrokerErrorCode, Error, FileIo, Heap, Span, SyncDirection, Usage,
};
use rsheap_suites::broker::{Daemon, SHIPPED_CONFIG};
use rsheap_suites::{
    drop_caches, fill_and_check, hash, hash_file, page_size, scratch_path, write_random_file,
};

const MIB: usize = 1 << 20;

#[test]
fn allocate_map_write_read_free() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let options = AllocationOptions {
        debug_name: Some("preview".into()),
        ..AllocationOptions::usage(Usage::CAMERA_FRAME)
    };
    let buffer = broker.allocate(4 * MIB + 1, &options).expect("allocate");
    assert_eq!(buffer.buffer().len(), 4 * MIB + page_size());
    assert_eq!(buffer.heap(), "rsheap");
    assert!(buffer
        .name()
        .starts_with(&format!("camera-{}-", std::process::id())));
    fill_and_check(buffer.buffer(), 5);
    let listed = broker.buffers().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].debugName, "preview");
    broker.free(buffer).expect("free");
    assert!(broker.buffers().expect("list").is_empty());
    assert!(broker
        .heaps()
        .expect("heaps")
        .iter()
        .any(|heap| heap.name == "rsheap"));
}

#[test]
fn load_a_file_and_check_its_hash() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let path = scratch_path("sdk-broker-load.bin");
    let len = 24 * MIB + 77;
    let expected = write_random_file(&path, len as u64, 21);
    drop_caches();
    let buffer = broker
        .allocate(len, &AllocationOptions::usage(Usage::MODEL_WEIGHTS))
        .expect("allocate");
    let file = File::open(&path).expect("open");
    let loaded = broker
        .load_file(&buffer, &file, Span::start(len as u64))
        .expect("load");
    assert_eq!(loaded, len as u64);
    let mapping = buffer.buffer().map().expect("map");
    let _access = buffer
        .buffer()
        .cpu_access(SyncDirection::Read)
        .expect("sync");
    assert_eq!(hash(&mapping.to_vec()[..len]), expected);
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn errors_are_typed_with_code_errno_and_message() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let options = AllocationOptions {
        heap: Some("carveout".into()),
        ..AllocationOptions::default()
    };
    match broker.allocate(MIB, &options) {
        Err(
            err @ Error::Broker {
                code: BrokerErrorCode::Unsupported,
                ..
            },
        ) => {
            assert_eq!(err.errno(), Some(nix::errno::Errno::EOPNOTSUPP));
            assert!(err.to_string().contains("carveout"), "{err}");
        }
        other => panic!("expected an unsupported heap: {other:?}"),
    }
    match broker.allocate(0, &AllocationOptions::default()) {
        Err(Error::Broker {
            code: BrokerErrorCode::InvalidArgument,
            message,
        }) => {
            assert!(message.contains("size 0"), "{message}");
        }
        other => panic!("expected an invalid size: {other:?}"),
    }
    let buffer = broker
        .allocate(MIB, &AllocationOptions::default())
        .expect("allocate");
    let (pipe, _writer) = nix::unistd::pipe().expect("pipe");
    let err = broker
        .load_file(&buffer, &pipe, Span::start(4096))
        .expect_err("a pipe is no file");
    assert_eq!(err.errno(), Some(nix::errno::Errno::EINVAL), "{err}");
}

#[test]
fn reconnects_after_the_broker_restarts() {
    let (mut daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let old = broker
        .allocate(MIB, &AllocationOptions::default())
        .expect("allocate");
    daemon.kill();
    drop(daemon);
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let fresh = broker
        .allocate(MIB, &AllocationOptions::default())
        .expect("allocate after the restart");
    fill_and_check(fresh.buffer(), 1);
    // The old buffer's memory stays usable while this process holds it; the new broker
    // does not know its id.
    fill_and_check(old.buffer(), 2);
    match broker.free(old) {
        Err(Error::Broker {
            code: BrokerErrorCode::NotFound,
            ..
        }) => {}
        other => panic!("expected the old id to be unknown: {other:?}"),
    }
    broker.free(fresh).expect("free");
}

/// Progress reports as a test expects them: from 0 or more, never going back, ending at the
/// total.
fn check_progress(reports: &[(u64, u64)], total: u64, at_least: usize) {
    assert!(
        reports.len() >= at_least,
        "{} progress reports for {total} bytes: {reports:?}",
        reports.len()
    );
    assert!(
        reports.windows(2).all(|pair| pair[0].0 <= pair[1].0),
        "progress went back: {reports:?}"
    );
    assert!(reports.iter().all(|&(_, of)| of == total), "{reports:?}");
    assert_eq!(reports.last().map(|r| r.0), Some(total), "{reports:?}");
}

#[test]
fn broker_loads_by_path_report_progress() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let path = scratch_path("sdk-broker-progress.bin");
    let len = 192 * MIB as u64 + 4095;
    let expected = write_random_file(&path, len, 33);
    drop_caches();
    let buffer = broker
        .allocate(
            len as usize,
            &AllocationOptions::usage(Usage::MODEL_WEIGHTS),
        )
        .expect("allocate");
    let mut reports = Vec::new();
    let loaded = broker
        .load_path(&buffer, &path, Span::whole(), &mut |done, total| {
            reports.push((done, total))
        })
        .expect("load");
    assert_eq!(loaded, len);
    check_progress(&reports, len, 2);
    let mapping = buffer.buffer().map().expect("map");
    let access = buffer
        .buffer()
        .cpu_access(SyncDirection::Read)
        .expect("sync");
    assert_eq!(hash(&mapping.to_vec()[..len as usize]), expected);
    access.end().expect("end access");
    drop(mapping);

    // A file that is not there fails before the broker sees it; a range past the buffer's end
    // the broker refuses before it queues the load.
    let err = broker
        .load_path(
            &buffer,
            &scratch_path("missing"),
            Span::whole(),
            &mut |_, _| {},
        )
        .expect_err("no such file");
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENOENT), "{err}");
    let past_end = Span {
        buffer_offset: buffer.buffer().len() as u64,
        ..Span::start(4096)
    };
    let err = broker
        .load_path(&buffer, &path, past_end, &mut |_, _| {})
        .expect_err("past the end");
    assert!(
        matches!(
            err,
            Error::Broker {
                code: BrokerErrorCode::InvalidArgument,
                ..
            }
        ),
        "{err}"
    );
    broker.free(buffer).expect("free");
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn heap_loads_and_stores_by_path_with_progress() {
    let io = FileIo::open().expect("open /dev/rsheap");
    let path = scratch_path("sdk-heap-progress.bin");
    let len = 150 * MIB as u64 + 123;
    let expected = write_random_file(&path, len, 34);
    drop_caches();
    let heap = Heap::open("rsheap").expect("open");
    let buffer = heap.allocate(len as usize).expect("allocate");
    let mut reports = Vec::new();
    let loaded = io
        .load_path(&path, &buffer, Span::whole(), &mut |done, total| {
            reports.push((done, total))
        })
        .expect("load");
    assert_eq!(loaded.bytes, len);
    assert!(loaded.direct_bytes >= len - 4096, "{loaded:?}");
    // 150 MiB in 64 MiB steps: a report before, and one after each of the three steps.
    check_progress(&reports, len, 4);
    assert_eq!(reports[0].0, 0);

    let copy = scratch_path("sdk-heap-progress-copy.bin");
    let mut reports = Vec::new();
    let stored = io
        .store_path(&copy, &buffer, Span::start(len), &mut |done, total| {
            reports.push((done, total))
        })
        .expect("store");
    assert_eq!(stored.bytes, len);
    check_progress(&reports, len, 4);
    assert_eq!(hash_file(&copy), expected);

    // `Span::whole()` stores the whole buffer, page rounding included, over the old copy.
    io.store_path(&copy, &buffer, Span::whole(), &mut |_, _| {})
        .expect("store the whole buffer");
    assert_eq!(
        std::fs::metadata(&copy).expect("stat").len(),
        buffer.len() as u64
    );
    let err = io
        .load_path(
            &scratch_path("missing"),
            &buffer,
            Span::whole(),
            &mut |_, _| {},
        )
        .expect_err("no such file");
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENOENT), "{err}");
    std::fs::remove_file(&path).expect("remove");
    std::fs::remove_file(&copy).expect("remove");
}

#[test]
fn uncached_heaps_fall_back_to_cached_ones() {
    let heap = Heap::open_uncached("rsheap").expect("open");
    assert_eq!(heap.name(), "rsheap-uncached");
    assert!(!heap.is_cached());
    fill_and_check(&heap.allocate(MIB).expect("allocate"), 3);
    // This kernel has no system-uncached heap: the cached one serves.
    let heap = Heap::open_uncached("system").expect("open");
    assert_eq!(heap.name(), "system");
    assert!(heap.is_cached());
    fill_and_check(&heap.allocate(MIB).expect("allocate"), 4);
    let err = Heap::open_uncached("carveout").expect_err("no such heap");
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENOENT), "{err}");
}

fn example(name: &str) -> std::process::Command {
    let dir = std::env::var_os("RSHEAP_EXAMPLES").expect("$RSHEAP_EXAMPLES names the examples");
    std::process::Command::new(std::path::Path::new(&dir).join(name))
}

fn run(command: &mut std::process::Command) -> (bool, String) {
    let out = command.output().expect("run the example");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_examples_run() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let (ok, text) = run(example("frame_ring").arg("40"));
    assert!(ok, "{text}");
    assert!(
        text.contains("ring of 4 1920x1080 NV12 frames") && text.contains("camera-"),
        "{text}"
    );
    assert!(text.contains("40 frames produced and checked"), "{text}");

    let path = scratch_path("sdk-example-model.bin");
    let len = 40 * MIB as u64 + 11;
    let expected = write_random_file(&path, len, 35);
    let (ok, text) = run(example("model_load").arg(&path));
    assert!(ok, "{text}");
    assert!(text.contains(&format!("loaded {len} bytes")), "{text}");
    assert!(text.contains("100% ("), "{text}");
    assert!(text.contains(&format!("xxh3 {expected:016x}")), "{text}");
    std::fs::remove_file(&path).expect("remove");

    let (ok, text) = run(&mut example("model_load"));
    assert!(
        !ok && text.contains("usage: model_load <weights file>"),
        "{text}"
    );
    let (ok, text) = run(example("frame_ring").arg("many"));
    assert!(
        !ok && text.contains("\"many\" is not a frame count"),
        "{text}"
    );
}
