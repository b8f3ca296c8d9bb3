//! The SDK's `Broker` against a real rsheapd: what a HAL author writes.

use std::fs::File;

use rsheap::{
    AllocationOptions, Broker, BrokerErrorCode, BufferSpec, Error, FileIo, Heap, Span,
    SyncDirection, Usage, MAX_BATCH,
};
use rsheap_suites::broker::{eventually, root_quota, Daemon, SHIPPED_CONFIG};
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

/// The hash of the first `len` bytes of `buffer`, read through a mapping between sync brackets.
fn buffer_hash(buffer: &rsheap::Buffer, len: usize) -> u64 {
    let mapping = buffer.map().expect("map");
    let _access = buffer.cpu_access(SyncDirection::Read).expect("sync");
    hash(&mapping.to_vec()[..len])
}

/// The broker's code of a failed call.
fn broker_code<T: std::fmt::Debug>(result: Result<T, Error>) -> BrokerErrorCode {
    match result {
        Err(Error::Broker { code, .. }) => code,
        other => panic!("expected a broker error: {other:?}"),
    }
}

#[test]
fn batches_allocate_in_order_and_free_all_or_none() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let specs: Vec<BufferSpec<'_>> = [
        (MIB, Usage::CAMERA_FRAME, true, "first"),
        (2 * MIB + 1, Usage::MODEL_WEIGHTS, false, "second"),
        (page_size(), Usage::SCRATCH, true, "third"),
    ]
    .into_iter()
    .map(|(size, usage, cached, name)| {
        BufferSpec::new(
            size,
            AllocationOptions {
                cached,
                debug_name: Some(name.into()),
                ..AllocationOptions::usage(usage)
            },
        )
    })
    .collect();
    let made = broker.allocate_batch(&specs).expect("allocate a batch");
    let names: Vec<&str> = made.iter().map(|b| b.info().debugName.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    assert_eq!(made[1].buffer().len(), 2 * MIB + page_size());
    assert_eq!(made[1].heap(), "rsheap-uncached");
    for (seed, buffer) in made.iter().enumerate() {
        fill_and_check(buffer.buffer(), seed as u8);
    }
    assert_eq!(broker.buffers().expect("list").len(), 3);

    // Too many requests, and a batch with one bad request, allocate nothing.
    let many = vec![BufferSpec::new(page_size(), AllocationOptions::default()); MAX_BATCH + 1];
    assert_eq!(
        broker_code(broker.allocate_batch(&many)),
        BrokerErrorCode::InvalidArgument
    );
    let bad = [
        BufferSpec::new(MIB, AllocationOptions::default()),
        BufferSpec::new(0, AllocationOptions::default()),
    ];
    assert_eq!(
        broker_code(broker.allocate_batch(&bad)),
        BrokerErrorCode::InvalidArgument
    );
    assert_eq!(broker.buffers().expect("list").len(), 3);

    // A batch free takes them all at once.
    broker.free_batch(made).expect("free the batch");
    assert!(broker.buffers().expect("list").is_empty());

    // One more than a batch takes is refused whole, and the buffers come back.
    let small = vec![BufferSpec::new(page_size(), AllocationOptions::default()); MAX_BATCH];
    let mut held = broker.allocate_batch(&small).expect("a full batch");
    held.push(
        broker
            .allocate(page_size(), &AllocationOptions::default())
            .expect("allocate"),
    );
    let failed = broker.free_batch(held).expect_err("too many to free");
    assert!(
        matches!(
            failed.error,
            Error::Broker {
                code: BrokerErrorCode::InvalidArgument,
                ..
            }
        ),
        "{failed}"
    );
    let mut held = failed.buffers;
    assert_eq!(held.len(), MAX_BATCH + 1);
    assert_eq!(broker.buffers().expect("list").len(), MAX_BATCH + 1);
    let last = held.split_off(MAX_BATCH);
    broker.free_batch(held).expect("free a full batch");
    broker.free_batch(last).expect("free the last one");
    assert!(broker.buffers().expect("list").is_empty());
}

#[test]
fn allocate_and_load_hands_over_loaded_buffers() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let path = scratch_path("sdk-broker-allocate-load.bin");
    let len = 8 * MIB + 77;
    let expected = write_random_file(&path, len as u64, 41);
    let content = std::fs::read(&path).expect("read the file");
    drop_caches();
    let file = File::open(&path).expect("open");
    let weights = AllocationOptions::usage(Usage::MODEL_WEIGHTS);

    let buffer = broker
        .allocate_and_load(len, &weights, &file, Span::whole())
        .expect("allocate and load");
    assert_eq!(buffer.buffer().len(), 8 * MIB + page_size());
    assert_eq!(buffer_hash(buffer.buffer(), len), expected);
    // Past the file's end the buffer is zeroed.
    let mapping = buffer.buffer().map().expect("map");
    assert!(mapping.to_vec()[len..].iter().all(|&byte| byte == 0));
    drop(mapping);
    broker.free(buffer).expect("free");

    // A batch loads each buffer with its own range; one without a load stays zeroed.
    let (head, tail) = (3 * MIB, 5 * MIB);
    let specs = [
        BufferSpec::new(head, weights.clone()).with_load(&file, Span::start(head as u64)),
        BufferSpec::new(tail, weights.clone()).with_load(
            &file,
            Span {
                file_offset: head as u64,
                buffer_offset: page_size() as u64,
                len: (tail - page_size()) as u64,
            },
        ),
        BufferSpec::new(MIB, AllocationOptions::default()),
    ];
    let made = broker
        .allocate_batch(&specs)
        .expect("allocate a loaded batch");
    assert_eq!(buffer_hash(made[0].buffer(), head), hash(&content[..head]));
    let bytes = made[1].buffer().map().expect("map").to_vec();
    assert!(bytes[..page_size()].iter().all(|&byte| byte == 0));
    assert_eq!(
        hash(&bytes[page_size()..tail]),
        hash(&content[head..head + tail - page_size()])
    );
    let bytes = made[2].buffer().map().expect("map").to_vec();
    assert!(bytes.iter().all(|&byte| byte == 0));
    broker.free_batch(made).expect("free");

    // A segment that does not fit the buffer fails the request, and nothing is kept.
    let past_end = Span {
        buffer_offset: MIB as u64,
        ..Span::start(page_size() as u64)
    };
    assert_eq!(
        broker_code(broker.allocate_and_load(MIB, &weights, &file, past_end)),
        BrokerErrorCode::InvalidArgument
    );
    assert!(broker.buffers().expect("list").is_empty());
    std::fs::remove_file(&path).expect("remove");
}

/// A file of `len` bytes that reads as zeros and costs no disk: a hole.
fn sparse_file(name: &str, len: u64) -> (std::path::PathBuf, File) {
    let path = scratch_path(name);
    let file = File::create(&path).expect("create");
    file.set_len(len).expect("extend");
    drop(file);
    let file = File::open(&path).expect("open");
    (path, file)
}

#[test]
fn a_progress_callback_or_another_thread_cancels_a_load() {
    use std::ops::ControlFlow;

    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    // The broker moves 32 MiB, then chunks that double while they are fast: the first report
    // comes after 32 MiB, and a cancel made then stops the load at the next chunk, long
    // before the end of 1 GiB.
    let len = 1u64 << 30;
    let (path, file) = sparse_file("sdk-broker-cancel.bin", len);
    let buffer = broker
        .allocate(
            len as usize,
            &AllocationOptions::usage(Usage::MODEL_WEIGHTS),
        )
        .expect("allocate");

    let mut reports = Vec::new();
    let result =
        broker.load_file_with_control(&buffer, &file, Span::whole(), &mut |done, total| {
            reports.push((done, total));
            ControlFlow::Break(())
        });
    assert_eq!(broker_code(result), BrokerErrorCode::Cancelled);
    assert_eq!(reports.len(), 1, "reports after the break: {reports:?}");
    assert!(reports[0].0 < len, "{reports:?}");

    // From another thread, while this one waits for the load.
    let (first, reported) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let loading = scope.spawn(|| {
            broker.load_file_with_progress(&buffer, &file, Span::whole(), &mut |done, _| {
                let _ = first.send(done);
            })
        });
        let done = reported
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a first report");
        assert!(done < len, "{done}");
        broker.cancel_loads(&buffer).expect("cancel");
        let result = loading.join().expect("the loading thread");
        assert_eq!(broker_code(result), BrokerErrorCode::Cancelled);
    });

    // The buffer stays allocated and loads again; cancelling with no load running is fine.
    assert_eq!(broker.buffers().expect("list").len(), 1);
    broker.cancel_loads(&buffer).expect("cancel nothing");
    let loaded = broker
        .load_file(&buffer, &file, Span::start(4 * MIB as u64))
        .expect("load after the cancel");
    assert_eq!(loaded, 4 * MIB as u64);
    broker.free(buffer).expect("free");
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn read_only_shares_through_the_sdk_refuse_writes() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let broker = Broker::connect().expect("connect");
    let buffer = broker
        .allocate(MIB, &AllocationOptions::usage(Usage::MODEL_WEIGHTS))
        .expect("allocate");
    fill_and_check(buffer.buffer(), 7);
    let shared = broker.share_read_only(&buffer).expect("share read-only");
    assert_eq!(shared.len(), buffer.buffer().len());
    let writable = shared
        .map()
        .expect_err("a read-only share maps only readable");
    assert!(
        matches!(
            writable.errno(),
            Some(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM)
        ),
        "{writable}"
    );
    let expected = buffer_hash(buffer.buffer(), MIB);
    let view = shared.map_read_only().expect("map read-only");
    assert_eq!(hash(&view.to_vec()), expected);
    drop(view);

    // The share outlives the buffer's free: the memory stays, charged to this uid.
    let id = buffer.id();
    broker.free(buffer).expect("free");
    let limits = broker.limits().expect("limits");
    assert!(
        limits.used_bytes >= MIB as u64,
        "{limits:?} after freeing {id}"
    );
    let view = shared.map_read_only().expect("map read-only");
    assert_eq!(hash(&view.to_vec()), expected);
    drop(view);
    drop(shared);

    // Buffers of other exporters' heaps cannot be shared read-only.
    let system = broker
        .allocate(
            MIB,
            &AllocationOptions {
                heap: Some("system".into()),
                ..AllocationOptions::default()
            },
        )
        .expect("allocate from system");
    assert_eq!(
        broker_code(broker.share_read_only(&system)),
        BrokerErrorCode::Unsupported
    );
    broker.free(system).expect("free");
}

#[test]
fn limits_report_the_quota_and_what_counts_against_it() {
    let (_daemon, _) = Daemon::start(&root_quota(256, 10));
    let broker = Broker::connect().expect("connect");
    let before = broker.limits().expect("limits");
    assert_eq!(before.quota_bytes, 256 << 20, "{before:?}");
    assert_eq!(before.quota_buffers, 10, "{before:?}");
    assert_eq!(before.max_buffer_size, 4096 << 20, "{before:?}");
    assert_eq!(before.max_batch, MAX_BATCH, "{before:?}");
    assert_eq!(before.page_size, page_size(), "{before:?}");
    assert!(
        before.sessions >= 1 && before.max_sessions == 32,
        "{before:?}"
    );
    assert!(
        before.direct_loads && before.read_only_sharing,
        "{before:?}"
    );

    let buffer = broker
        .allocate(MIB, &AllocationOptions::default())
        .expect("allocate");
    let during = broker.limits().expect("limits");
    assert_eq!(
        during.used_bytes,
        before.used_bytes + MIB as u64,
        "{during:?}"
    );
    assert_eq!(during.used_buffers, before.used_buffers + 1, "{during:?}");
    broker.free(buffer).expect("free");
    // The kernel releases the buffer once its last reference is gone.
    eventually(10, "the freed buffer stops counting", || {
        broker.limits().expect("limits").used_bytes == before.used_bytes
    });

    // Another session of the same uid counts.
    let other = Broker::connect().expect("connect again");
    assert_eq!(
        broker.limits().expect("limits").sessions,
        before.sessions + 1
    );
    drop(other);
}
