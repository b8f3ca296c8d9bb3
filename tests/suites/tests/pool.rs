//! rsheap's page pools: freed pages come back zeroed, and are zeroed only if someone could
//! have written them; the pool stays within its limit, the shrinker and real memory pressure
//! drain it, no page leaks, and what is pooled shows in `/sys/kernel/dma_heap/total_pools_kb`
//! and `/sys/kernel/rsheap`.

use std::os::fd::AsFd;

use rsheap::{Buffer, FileIo, Heap, IoPath, Span, SyncDirection};
use rsheap_suites::{
    drain_pools, heap_stat, meminfo, page_size, rsheap_stat, scratch_path, vmap_probe, vmstat,
    wait_for_pool_worker, write_random_file, RSHEAP,
};

const MIB: usize = 1 << 20;

fn heap() -> Heap {
    Heap::open(RSHEAP).expect("open the rsheap heap")
}

fn dirty(buffer: &Buffer) {
    let mut mapping = buffer.map().expect("map");
    let _access = buffer
        .cpu_access(SyncDirection::Write)
        .expect("begin CPU write");
    mapping.fill(0xa5);
}

fn assert_zeroed(buffer: &Buffer, what: &str) {
    let mapping = buffer.map().expect("map");
    let _access = buffer
        .cpu_access(SyncDirection::Read)
        .expect("begin CPU read");
    if let Some(offset) = mapping.to_vec().iter().position(|&b| b != 0) {
        panic!(
            "{what}: byte {offset} of a {}-byte buffer is not zero",
            buffer.len()
        );
    }
}

/// Allocates `sizes`, dirties every byte, and frees them, then waits for the pool worker.
fn churn(sizes: &[usize]) {
    let heap = heap();
    let buffers: Vec<Buffer> = sizes
        .iter()
        .map(|&len| heap.allocate(len).expect("allocate"))
        .collect();
    for buffer in &buffers {
        dirty(buffer);
    }
    drop(buffers);
    wait_for_pool_worker();
}

/// Sizes that take every chunk size the heap uses: 2 MiB, 1 MiB, 64 KiB and base pages.
fn mixed() -> [usize; 4] {
    let page = page_size();
    [8 * MIB, MIB + 64 * 1024 + page, 192 * 1024, 3 * page]
}

/// Allocates [`mixed`] sizes again, checking that each buffer comes zeroed (`what` came back
/// to the pool) and that the pool served some of them.
fn allocate_mixed_from_the_pool(what: &str) {
    let hits = rsheap_stat("pool hits");
    let heap = heap();
    for len in mixed() {
        let buffer = heap.allocate(len).expect("allocate");
        assert_zeroed(&buffer, what);
    }
    assert!(
        rsheap_stat("pool hits") > hits,
        "allocations were served from the pool"
    );
}

#[test]
fn freed_pages_come_back_zeroed_from_the_pool() {
    drain_pools();
    churn(&mixed());
    assert!(rsheap_stat("pool bytes") > 0, "freed chunks were pooled");
    allocate_mixed_from_the_pool("pooled pages");
}

#[test]
fn a_chunk_taken_before_the_worker_zeroed_it_comes_back_zeroed() {
    drain_pools();
    let heap = heap();
    // Two 2 MiB chunks freed leave a backlog larger than one of them, so the next 2 MiB
    // allocation takes a dirty chunk and zeroes it itself, unless the worker got there first.
    let buffer = heap.allocate(4 * MIB).expect("allocate");
    dirty(&buffer);
    let (zeroed, hits) = (rsheap_stat("chunks zeroed"), rsheap_stat("pool hits"));
    drop(buffer);
    let buffer = heap.allocate(2 * MIB).expect("allocate");
    assert_zeroed(&buffer, "a dirty chunk zeroed by its allocation");
    // Read after the check, which outlasts a pass the worker may have begun meanwhile.
    if rsheap_stat("chunks zeroed") == zeroed {
        assert!(
            rsheap_stat("pool hits") > hits,
            "the allocation took a dirty chunk from the pool"
        );
    }
}

/// A way to give someone access to a buffer's pages.
type Reach<'a> = &'a dyn Fn(&Buffer);

/// The chunks the pool worker zeroes after `buffer` is freed, counted once it has settled.
fn zeroed_after_freeing(buffer: Buffer) -> u64 {
    wait_for_pool_worker();
    let before = rsheap_stat("chunks zeroed");
    drop(buffer);
    wait_for_pool_worker();
    rsheap_stat("chunks zeroed") - before
}

#[test]
fn a_buffer_nobody_could_write_goes_back_clean_and_is_not_zeroed_again() {
    drain_pools();
    let heap = heap();
    for len in mixed() {
        let buffer = heap.allocate(len).expect("allocate");
        assert_eq!(
            zeroed_after_freeing(buffer),
            0,
            "a {len}-byte buffer never mapped, attached or loaded into was zeroed again"
        );
    }
    assert!(rsheap_stat("pool bytes") > 0, "its chunks were pooled");
    assert_eq!(rsheap_stat("pool pending bytes"), 0);
    allocate_mixed_from_the_pool("chunks pooled clean");
}

#[test]
fn every_way_to_reach_a_buffer_has_its_pages_zeroed_after_release() {
    let len = 64 * 1024 + page_size();
    let file = scratch_path("pool-load");
    write_random_file(&file, len as u64, 19);
    let io = FileIo::open().expect("open the control device");
    let ways: [(&str, Reach); 5] = [
        ("mapped, never written", &|buffer| {
            drop(buffer.map().expect("map"))
        }),
        ("mapped read-only", &|buffer| {
            drop(buffer.map_read_only().expect("map read-only"))
        }),
        ("mapped in the kernel", &|buffer| {
            vmap_probe(&buffer.as_fd(), "time");
        }),
        ("mapped for a device", &|buffer| {
            vmap_probe(&buffer.as_fd(), "bidir");
        }),
        ("loaded from a file", &|buffer| {
            let opened = std::fs::File::open(&file).expect("open the file");
            io.load(&opened, buffer, Span::whole(), IoPath::Auto)
                .expect("load");
        }),
    ];
    drain_pools();
    let heap = heap();
    for (way, reach) in ways {
        let buffer = heap.allocate(len).expect("allocate");
        reach(&buffer);
        assert!(
            zeroed_after_freeing(buffer) > 0,
            "a buffer {way} went back to the pool without being zeroed"
        );
    }
    std::fs::remove_file(&file).expect("remove the file");
}

#[test]
fn shrinker_drains_the_pool_and_pages_stay_zeroed() {
    churn(&mixed());
    assert!(rsheap_stat("pool bytes") > 0);
    let scans = rsheap_stat("shrinker scans");
    drain_pools();
    assert_eq!(
        rsheap_stat("pool bytes"),
        0,
        "the shrinker emptied the pool"
    );
    assert!(rsheap_stat("shrinker scans") > scans);
    let buffer = heap().allocate(8 * MIB).expect("allocate");
    assert_zeroed(&buffer, "pages after the shrinker ran");
}

/// The `/proc/<pid>/stat` fields after the command, from field 3 on, of the one kernel thread
/// called `name`.
fn kernel_thread_stat(name: &str) -> Vec<String> {
    let mut found: Vec<Vec<String>> = std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            let (command, fields) = stat.rsplit_once(") ")?;
            (command.split_once(" (")?.1 == name)
                .then(|| fields.split_whitespace().map(String::from).collect())
        })
        .collect();
    assert_eq!(found.len(), 1, "one {name} thread runs");
    found.remove(0)
}

#[test]
fn the_zeroing_thread_yields_to_every_other_thread() {
    // Fields 3 on: state, ppid, ..., priority (18), nice (19).
    let stat = kernel_thread_stat("rsheap-pool");
    assert_eq!(
        stat[1], "2",
        "rsheap-pool is a kernel thread, a child of kthreadd"
    );
    assert_eq!(stat[16], "19", "rsheap-pool runs at nice 19");
    assert_eq!(
        stat[0], "I",
        "an idle rsheap-pool sleeps without counting as load"
    );
    churn(&mixed());
    assert_eq!(
        rsheap_stat("pool pending bytes"),
        0,
        "the thread zeroed every freed chunk"
    );
}

#[test]
fn pool_stays_within_its_limit() {
    let limit = rsheap_stat("pool limit bytes");
    assert!(limit > 0);
    let chunk = 32 * MIB;
    let count = (limit as usize + limit as usize / 2) / chunk;
    churn(&vec![chunk; count]);
    let pooled = rsheap_stat("pool bytes");
    assert!(
        pooled <= limit,
        "{pooled} pooled bytes exceed the {limit}-byte limit"
    );
    assert!(
        pooled >= limit / 2,
        "the pool filled up to its limit ({pooled} of {limit})"
    );
}

#[test]
fn real_memory_pressure_drains_the_pool_without_an_oom_kill() {
    drain_pools();
    // Up to the pool's limit (a quarter of RAM): the kernel counts only part of reclaimable
    // memory as available, and with 16 KiB pages its watermarks keep about 200 MiB free.
    churn(&[32 * MIB; 32]);
    let pooled = rsheap_stat("pool bytes");
    assert!(pooled >= 256 * MIB as u64, "pool holds {pooled} bytes");
    // Pooled pages count as reclaimable, so they are part of MemAvailable.
    assert!(meminfo("KReclaimable") >= pooled);
    let ooms = vmstat("oom_kill");
    // Ask for more than is free but less than is available: only reclaim, which the pool is
    // a large part of, can satisfy it.
    let (free, available) = (meminfo("MemFree"), meminfo("MemAvailable"));
    assert!(
        available > free + pooled / 4,
        "the pool is a large part of what is available: {free} free, {available} available"
    );
    let want = ((free + available) / 2) as usize;
    let mut memory = vec![0u8; want];
    for page in memory.chunks_mut(page_size()) {
        page[0] = 1;
    }
    drop(memory);
    assert_eq!(vmstat("oom_kill"), ooms, "no process was OOM-killed");
    assert!(
        rsheap_stat("pool bytes") < pooled,
        "reclaim took pages from the pool"
    );
    assert!(rsheap_stat("shrinker freed pages") > 0);
}

#[test]
fn pages_do_not_leak() {
    drain_pools();
    let before = meminfo("MemFree");
    for _ in 0..3 {
        churn(&[
            64 * MIB,
            32 * MIB,
            5 * MIB + page_size(),
            300 * 1024,
            2 * page_size(),
        ]);
    }
    drain_pools();
    let after = meminfo("MemFree");
    let tolerance = 16 * MIB as u64;
    assert!(
        after + tolerance >= before,
        "MemFree went from {before} to {after} after buffers were freed and the pool drained"
    );
}

#[test]
fn live_buffers_are_counted_per_heap() {
    let buffers_before = heap_stat(RSHEAP, 0);
    let bytes_before = heap_stat(RSHEAP, 1);
    let heap = heap();
    let page = page_size();
    let buffers: Vec<Buffer> = [MIB, 3 * MIB, page]
        .iter()
        .map(|&len| heap.allocate(len).expect("allocate"))
        .collect();
    assert_eq!(heap_stat(RSHEAP, 0), buffers_before + 3);
    assert_eq!(heap_stat(RSHEAP, 1), bytes_before + (4 * MIB + page) as u64);
    drop(buffers);
    assert_eq!(heap_stat(RSHEAP, 0), buffers_before);
    assert_eq!(heap_stat(RSHEAP, 1), bytes_before);
}

/// A number from a sysfs file.
fn sysfs_number(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {path}: {err}"))
        .trim()
        .parse()
        .unwrap_or_else(|err| panic!("{path}: {err}"))
}

#[test]
fn pooled_bytes_show_where_android_and_production_tools_read_them() {
    drain_pools();
    churn(&mixed());
    let pooled = rsheap_stat("pool bytes");
    assert!(pooled > 0, "freed chunks were pooled");
    // The dma-heap core's sum over heaps, which dumpsys meminfo and dmabuf_dump read; only
    // rsheap's heaps pool here, and they report their shared pools once.
    assert_eq!(
        sysfs_number("/sys/kernel/dma_heap/total_pools_kb"),
        pooled / 1024,
        "total_pools_kb"
    );
    // The module's own sysfs counters, readable without debugfs.
    assert_eq!(sysfs_number("/sys/kernel/rsheap/pool/bytes"), pooled);
    let per_chunk: u64 = ["2m", "1m", "64k", "page"]
        .iter()
        .map(|size| sysfs_number(&format!("/sys/kernel/rsheap/pool/chunk_{size}_bytes")))
        .sum();
    assert_eq!(per_chunk, pooled, "the pool's bytes per chunk size add up");
    assert_eq!(
        sysfs_number("/sys/kernel/rsheap/pool/limit_bytes"),
        rsheap_stat("pool limit bytes")
    );
    assert_eq!(sysfs_number("/sys/kernel/rsheap/pool/pending_bytes"), 0);
    assert_eq!(
        sysfs_number("/sys/kernel/rsheap/pool/hits"),
        rsheap_stat("pool hits")
    );
    let scans = sysfs_number("/sys/kernel/rsheap/shrinker/scan_calls");
    drain_pools();
    assert!(sysfs_number("/sys/kernel/rsheap/shrinker/scan_calls") > scans);
    assert_eq!(sysfs_number("/sys/kernel/dma_heap/total_pools_kb"), 0);
    assert_eq!(sysfs_number("/sys/kernel/rsheap/pool/bytes"), 0);

    let heap = heap();
    let before = (
        sysfs_number("/sys/kernel/rsheap/heaps/rsheap/buffers"),
        sysfs_number("/sys/kernel/rsheap/heaps/rsheap/bytes"),
    );
    let buffer = heap.allocate(3 * MIB).expect("allocate");
    assert_eq!(
        (
            sysfs_number("/sys/kernel/rsheap/heaps/rsheap/buffers"),
            sysfs_number("/sys/kernel/rsheap/heaps/rsheap/bytes"),
        ),
        (before.0 + 1, before.1 + 3 * MIB as u64)
    );
    drop(buffer);
    let uncached = Heap::open(rsheap_suites::RSHEAP_UNCACHED)
        .expect("open the uncached heap")
        .allocate(MIB)
        .expect("allocate uncached");
    assert!(sysfs_number("/sys/kernel/rsheap/heaps/rsheap-uncached/bytes") >= MIB as u64);
    drop(uncached);
}
