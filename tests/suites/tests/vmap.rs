//! Kernel mappings of rsheap buffers, through the test-only probe module
//! (`tests/vmap_probe`), which calls `dma_buf_vmap()` as an importing driver would.

use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd};

use rsheap::{Buffer, Heap, SyncDirection};
use rsheap_suites::{pattern_byte, RSHEAP, RSHEAP_UNCACHED};

const PROBE: &str = "/sys/kernel/debug/rsheap_vmap_probe";

/// Runs the probe on `buffer` in `mode` and returns its `key=value` answers.
fn probe(buffer: &Buffer, mode: &str) -> Vec<(String, String)> {
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(PROBE)
        .expect("open the vmap probe");
    // One write: the probe parses each write on its own.
    let request = format!("{} {mode}", buffer.as_fd().as_raw_fd());
    file.write_all(request.as_bytes())
        .expect("probe the buffer");
    file.rewind().expect("rewind");
    let mut answer = String::new();
    file.read_to_string(&mut answer)
        .expect("read the probe's answer");
    answer
        .split_whitespace()
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn answer<'a>(answers: &'a [(String, String)], key: &str) -> &'a str {
    answers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .expect("the probe answers")
}

fn fill(buffer: &Buffer, seed: u8) -> u64 {
    let mut mapping = buffer.map().expect("map");
    let _access = buffer
        .cpu_access(SyncDirection::Write)
        .expect("begin CPU write");
    let bytes = mapping.as_mut_slice();
    for (offset, byte) in bytes.iter_mut().enumerate() {
        *byte = pattern_byte(seed, offset);
    }
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
