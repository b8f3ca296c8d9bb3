//! The uncached heap: the same guarantees as the cached one, without CPU cache maintenance.

use std::os::fd::{AsFd, AsRawFd};

use rsheap::{Heap, SyncDirection};
use rsheap_suites::{fdinfo, pattern_byte, RSHEAP_UNCACHED};

#[test]
fn uncached_buffers_are_zeroed_and_keep_their_contents() {
    let heap = Heap::open(RSHEAP_UNCACHED).expect("open the uncached heap");
    for (seed, len) in [4096usize, 100 << 10, (2 << 20) + 4096, 16 << 20]
        .into_iter()
        .enumerate()
    {
        let buffer = heap.allocate(len).expect("allocate");
        let mut mapping = buffer.map().expect("map");
        assert!(
            mapping.as_slice().iter().all(|&b| b == 0),
            "fresh {len}-byte buffer is zeroed"
        );
        {
            // Sync is accepted (and costs nothing) on uncached buffers.
            let _access = buffer
                .cpu_access(SyncDirection::Write)
                .expect("begin CPU write");
            for (offset, byte) in mapping.as_mut_slice().iter_mut().enumerate() {
                *byte = pattern_byte(seed as u8, offset);
            }
        }
        drop(mapping);
        let mapping = buffer.map().expect("map again");
        assert!(mapping
            .as_slice()
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern_byte(seed as u8, i)));
    }
}

#[test]
fn uncached_buffers_name_their_heap() {
    let buffer = Heap::open(RSHEAP_UNCACHED)
        .expect("open")
        .allocate(1 << 20)
        .expect("allocate");
    assert!(fdinfo(&buffer.as_fd().as_raw_fd()).contains("exp_name:\trsheap-uncached"));
}
