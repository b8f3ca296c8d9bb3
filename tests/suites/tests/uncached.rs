//! The uncached heap: the same guarantees as the cached one, without CPU cache maintenance.

use std::os::fd::{AsFd, AsRawFd};

use rsheap::{Heap, SyncDirection};
use rsheap_suites::{fdinfo, is_write_combined, page_size, pattern_byte, RSHEAP, RSHEAP_UNCACHED};

#[test]
fn uncached_buffers_are_zeroed_and_keep_their_contents() {
    let heap = Heap::open(RSHEAP_UNCACHED).expect("open the uncached heap");
    let page = page_size();
    for (seed, len) in [page, 100 << 10, (2 << 20) + page, 16 << 20]
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

#[test]
fn uncached_mappings_are_write_combined_where_the_cpu_maps_them_so() {
    for (heap, uncached) in [(RSHEAP, false), (RSHEAP_UNCACHED, true)] {
        let buffer = Heap::open(heap)
            .expect("open heap")
            .allocate(4 << 20)
            .expect("allocate");
        let mut mapping = buffer.map().expect("map");
        let bytes = mapping.as_mut_slice();
        // Fault in the first and the last page.
        let last = bytes.len() - 1;
        bytes[0] = 1;
        bytes[last] = 1;
        // x86 keeps the uncached heap's mappings cached: its DMA is coherent and its PAT
        // refuses a second write-combined mapping of RAM. Elsewhere (arm64: Normal-NC) they
        // are write-combined.
        let expected = uncached && !cfg!(target_arch = "x86_64");
        for addr in [bytes.as_ptr(), bytes[last..].as_ptr()] {
            assert_eq!(is_write_combined(addr), expected, "{heap} at {addr:p}");
        }
    }
}
