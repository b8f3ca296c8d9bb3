//! Kernel mappings of rsheap buffers, through the test-only probe module
//! (`tests/vmap_probe`), which calls `dma_buf_vmap()` as an importing driver would.

use std::os::fd::{AsFd, AsRawFd};

use rsheap::{Buffer, Heap, SyncDirection};
use rsheap_suites::{pattern, probe_answer as answer, vmap_probe, RSHEAP, RSHEAP_UNCACHED};

/// Runs the probe on `buffer` in `mode`.
fn probe(buffer: &Buffer, mode: &str) -> Vec<(String, String)> {
    vmap_probe(&buffer.as_fd().as_raw_fd(), mode)
}

fn fill(buffer: &Buffer, seed: u8) -> u64 {
    let mut mapping = buffer.map().expect("map");
    let _access = buffer
        .cpu_access(SyncDirection::Write)
        .expect("begin CPU write");
    let bytes = pattern(seed, mapping.len());
    mapping.write_at(0, &bytes).expect("write the pattern");
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .fold(0u64, u64::wrapping_add)
}

#[test]
fn the_kernel_mapping_sees_what_the_cpu_wrote() {
    for heap in [RSHEAP, RSHEAP_UNCACHED] {
        let heap = Heap::open(heap).expect("open heap");
        for (seed, len) in [4096usize, 64 << 10, (1 << 20) + 3 * 4096, 9 << 20]
            .into_iter()
            .enumerate()
        {
            let buffer = heap.allocate(len).expect("allocate");
            let expected = fill(&buffer, seed as u8);
            let answers = probe(&buffer, "sum");
            assert_eq!(
                u64::from_str_radix(answer(&answers, "sum"), 16).expect("hex"),
                expected,
                "{}: vmap of {len} bytes",
                heap.name()
            );
        }
    }
}

#[test]
fn kernel_mappings_are_shared_and_counted() {
    let buffer = Heap::open(RSHEAP)
        .expect("open heap")
        .allocate(3 << 20)
        .expect("allocate");
    let answers = probe(&buffer, "twice");
    assert_eq!(
        answer(&answers, "same"),
        "1",
        "a second vmap reuses the mapping"
    );
    // Mapping again after both were dropped still works.
    let answers = probe(&buffer, "time");
    assert!(answer(&answers, "vmap_ns").parse::<u64>().is_ok());
}
