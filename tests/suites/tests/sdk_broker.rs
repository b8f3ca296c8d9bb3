//! The SDK's `Broker` against a real rsheapd: what a HAL author writes.

use std::fs::File;

use rsheap::{AllocationOptions, Broker, BrokerErrorCode, Error, Span, SyncDirection, Usage};
use rsheap_suites::broker::{Daemon, SHIPPED_CONFIG};
use rsheap_suites::{drop_caches, fill_and_check, hash, scratch_path, write_random_file};

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
    assert_eq!(buffer.buffer().len(), 4 * MIB + 4096);
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
    assert_eq!(hash(&mapping.as_slice()[..len]), expected);
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
