//! Load and lifecycle: many threads allocating at once, a fatal signal in the middle of a
//! large allocation, and requests no machine could satisfy.

use std::time::{Duration, Instant};

use nix::unistd::{fork, ForkResult};
use rsheap::{Buffer, Heap};
use rsheap_suites::{
    drain_pools, kill_and_reap, meminfo, open_heap, page_size, raw_alloc, request, total_ram,
    vmstat, RSHEAP, RSHEAP_UNCACHED,
};

/// Writes a value into the first and last 8 bytes of every page and checks them.
fn stamp_and_check(buffer: &Buffer, stamp: u64) {
    let mut mapping = buffer.map().expect("map");
    let page = page_size();
    let pages = mapping.len() / page;
    for i in 0..pages {
        let value = (stamp ^ i as u64).to_ne_bytes();
        let start = i * page;
        mapping
            .write_at(start, &value)
            .expect("stamp a page's start");
        mapping
            .write_at(start + page - 8, &value)
            .expect("stamp a page's end");
    }
    for i in 0..pages {
        let value = (stamp ^ i as u64).to_ne_bytes();
        let (mut first, mut last) = ([0; 8], [0; 8]);
        let start = i * page;
        mapping
            .read_at(start, &mut first)
            .expect("read a page's start");
        mapping
            .read_at(start + page - 8, &mut last)
            .expect("read a page's end");
        assert_eq!(first, value, "page {i} start");
        assert_eq!(last, value, "page {i} end");
    }
}

#[test]
fn a_hundred_threads_allocate_a_hundred_buffers_each() {
    std::thread::scope(|scope| {
        for thread in 0..100u64 {
            scope.spawn(move || {
                let heap = Heap::open(if thread % 4 == 0 {
                    RSHEAP_UNCACHED
                } else {
                    RSHEAP
                })
                .expect("open heap");
                let mut held: Vec<Buffer> = Vec::new();
                for round in 0..100u64 {
                    let len = page_size() << (round % 7);
                    let buffer = heap.allocate(len).expect("allocate");
                    stamp_and_check(&buffer, thread << 32 | round);
                    // Keep a few alive so frees and allocations interleave.
                    held.push(buffer);
                    if held.len() > 3 {
                        held.remove(0);
                    }
                }
            });
        }
    });
}

#[test]
fn a_fatal_signal_stops_a_large_allocation_and_leaks_nothing() {
    drain_pools();
    let free_before = meminfo("MemFree");
    // Most of RAM: long enough to be caught in the middle, small enough not to need reclaim.
    let len = free_before * 3 / 4;
    // SAFETY: The child only makes system calls and exits; it touches no lock the parent's
    // other threads could hold.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let heap = open_heap(RSHEAP);
            let result = raw_alloc(&heap, request(len));
            // Reaching here means the allocation finished before the signal: report it.
            std::process::exit(if result.is_ok() { 3 } else { 4 });
        }
        ForkResult::Parent { child } => {
            // Wait until the allocation is well under way.
            let deadline = Instant::now() + Duration::from_secs(30);
            while meminfo("MemFree") + (256 << 20) > free_before {
                assert!(
                    Instant::now() < deadline,
                    "the child's allocation never got going"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let took = kill_and_reap(child);
            assert!(
                took < Duration::from_secs(5),
                "the allocation stopped promptly"
            );
        }
    }
    drain_pools();
    let free_after = meminfo("MemFree");
    // The child held at least 256 MiB when it was killed; per-CPU page lists and slab caches
    // may keep a few tens of MiB out of MemFree.
    assert!(
        free_after + (64 << 20) >= free_before,
        "MemFree went from {free_before} to {free_after}"
    );
}

#[test]
fn impossible_sizes_trigger_no_oom_kill() {
    let ooms = vmstat("oom_kill");
    let heap = open_heap(RSHEAP);
    for len in [total_ram() + page_size() as u64, 2 * total_ram(), 1 << 40] {
        let start = Instant::now();
        let err = raw_alloc(&heap, request(len))
            .map(drop)
            .expect_err("larger than RAM");
        assert_eq!(err, nix::errno::Errno::ENOMEM);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
    assert_eq!(vmstat("oom_kill"), ooms);
}
