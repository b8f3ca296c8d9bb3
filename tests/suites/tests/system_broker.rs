//! The SDK against the broker the system runs: init's rsheapd on a device, where this is the
//! `rsheap_system_broker_test` module, or the one the rig starts before the suite, as init
//! would.
//!
//! Other clients may use the same broker at once, so the tests assert only what their own
//! client does: its buffers, their contents and its errors. They use nothing but the SDK and
//! the standard library, so that Soong builds them as they are.

use std::path::PathBuf;

use rsheap::{
    page_size, AllocationOptions, Broker, BrokerErrorCode, Error, Span, SyncDirection, Usage,
};

const MIB: usize = 1 << 20;

/// A byte that differs for every offset and seed, so misplaced pages show up.
fn pattern(seed: u8, offset: usize) -> u8 {
    (offset ^ (offset >> 12).wrapping_mul(7)) as u8 ^ seed
}

/// A file of `len` patterned bytes in the temporary folder (`/data/local/tmp` on a device).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, len: usize, seed: u8) -> (Self, Vec<u8>) {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let content: Vec<u8> = (0..len).map(|offset| pattern(seed, offset)).collect();
        std::fs::write(&path, &content).expect("write the file");
        (Self(path), content)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn allocates_maps_and_frees() {
    let broker = Broker::connect().expect("connect to the system's rsheapd");
    let heaps: Vec<String> = broker
        .heaps()
        .expect("heaps")
        .into_iter()
        .map(|heap| heap.name)
        .collect();
    assert!(!heaps.is_empty(), "the broker serves no heap");

    let options = AllocationOptions {
        debug_name: Some("system-broker-test".into()),
        ..AllocationOptions::usage(Usage::MODEL_WEIGHTS)
    };
    let buffer = broker.allocate(MIB + 1, &options).expect("allocate");
    assert_eq!(buffer.buffer().len(), MIB + page_size());
    assert!(heaps.iter().any(|heap| heap == buffer.heap()), "{heaps:?}");
    {
        let mut mapping = buffer.buffer().map().expect("map");
        let _access = buffer
            .buffer()
            .cpu_access(SyncDirection::ReadWrite)
            .expect("sync");
        let written: Vec<u8> = (0..mapping.len())
            .map(|offset| pattern(3, offset))
            .collect();
        mapping.write_at(0, &written).expect("write");
        let wrong = (mapping.to_vec().iter().enumerate())
            .filter(|(offset, byte)| **byte != pattern(3, *offset))
            .count();
        assert_eq!(wrong, 0, "bytes that differ");
    }

    let mine = broker.buffers().expect("list");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].id, buffer.id());
    assert_eq!(mine[0].debugName, "system-broker-test");
    broker.free(buffer).expect("free");
    assert!(broker.buffers().expect("list").is_empty());
}

#[test]
fn loads_a_file_where_asked() {
    let broker = Broker::connect().expect("connect to the system's rsheapd");
    let (file, content) = TempFile::new("rsheap-system-broker", 3 * MIB + 123, 8);
    let buffer = broker
        .allocate(4 * MIB, &AllocationOptions::usage(Usage::MODEL_WEIGHTS))
        .expect("allocate");

    let mut reports = Vec::new();
    let loaded = broker
        .load_path(&buffer, &file.0, Span::whole(), &mut |done, total| {
            reports.push((done, total));
        })
        .expect("load");
    assert_eq!(loaded, content.len() as u64);
    assert_eq!(reports.last(), Some(&(loaded, loaded)), "{reports:?}");
    {
        let mapping = buffer.buffer().map().expect("map");
        let _access = buffer
            .buffer()
            .cpu_access(SyncDirection::Read)
            .expect("sync");
        let mut loaded = vec![0; content.len()];
        mapping.read_at(0, &mut loaded).expect("read");
        assert!(loaded == content, "the file's bytes");
    }

    // The second MiB of the file, one page into the buffer.
    let page = page_size();
    let span = Span {
        file_offset: MIB as u64,
        buffer_offset: page as u64,
        len: MIB as u64,
    };
    let opened = std::fs::File::open(&file.0).expect("open");
    let loaded = broker
        .load_file(&buffer, &opened, span)
        .expect("load a range");
    assert_eq!(loaded, MIB as u64);
    {
        let mapping = buffer.buffer().map().expect("map");
        let _access = buffer
            .buffer()
            .cpu_access(SyncDirection::Read)
            .expect("sync");
        let mut range = vec![0; MIB];
        mapping.read_at(page, &mut range).expect("read");
        assert!(range == content[MIB..2 * MIB], "the range's bytes");
    }
    broker.free(buffer).expect("free");
}

#[test]
fn errors_carry_the_errno_and_the_brokers_code() {
    let broker = Broker::connect().expect("connect to the system's rsheapd");
    let code = |result: rsheap::Result<_>| match result {
        Err(Error::Broker { code, .. }) => code,
        other => panic!("expected a broker error, got {other:?}"),
    };
    let zero = broker.allocate(0, &AllocationOptions::usage(Usage::SCRATCH));
    assert_eq!(code(zero.map(drop)), BrokerErrorCode::InvalidArgument);
    let options = AllocationOptions {
        heap: Some("no-such-heap".into()),
        ..AllocationOptions::usage(Usage::SCRATCH)
    };
    assert_eq!(
        code(broker.allocate(MIB, &options).map(drop)),
        BrokerErrorCode::Unsupported
    );

    let buffer = broker
        .allocate(MIB, &AllocationOptions::usage(Usage::SCRATCH))
        .expect("allocate");
    let missing = PathBuf::from("/nonexistent/rsheap-weights.bin");
    let err = broker
        .load_path(&buffer, &missing, Span::whole(), &mut |_, _| {})
        .expect_err("a missing file");
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENOENT), "{err}");
    broker.free(buffer).expect("free");
    assert!(broker.buffers().expect("list").is_empty());
}
