//! The uncached heap: the same guarantees as the cached one, without CPU cache maintenance.

use std::os::fd::{AsFd, AsRawFd};

use rsheap::{Heap, SyncDirection};
use rsheap_suites::{
    fdinfo, is_write_combined, page_size, pattern, pattern_mismatch, RSHEAP, RSHEAP_UNCACHED,
};

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
            mapping.to_vec().iter().all(|&b| b == 0),
            "fresh {len}-byte buffer is zeroed"
        );
        {
            // Sync is accepted (and costs nothing) on uncached buffers.
            let _access = buffer
                .cpu_access(SyncDirection::Write)
                .expect("begin CPU write");
            mapping
                .write_at(0, &pattern(seed as u8, mapping.len()))
                .expect("write the pattern");
        }
        drop(mapping);
        let mapping = buffer.map().expect("map again");
        assert_eq!(pattern_mismatch(&mapping.to_vec(), 0, seed as u8), None);
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
        // Fault in the first and the last page.
        let last = mapping.len() - 1;
        mapping.write_at(0, &[1]).expect("write the first byte");
        mapping.write_at(last, &[1]).expect("write the last byte");
        // x86 keeps the uncached heap's mappings cached: its DMA is coherent and its PAT
        // refuses a second write-combined mapping of RAM. Elsewhere (arm64: Normal-NC) they
        // are write-combined.
        let expected = uncached && !cfg!(target_arch = "x86_64");
        for addr in [mapping.as_ptr(), mapping.as_ptr().wrapping_add(last)] {
            assert_eq!(is_write_combined(addr), expected, "{heap} at {addr:p}");
        }
    }
}
