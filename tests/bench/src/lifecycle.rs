//! A buffer's whole life, part by part, on rsheap and the in-tree system heap: what a camera
//! or NPU pipeline pays per buffer, not only what allocating costs.
//!
//! - **tight alloc+free**: allocate and close at once, in a loop with no pause, on 1 and on 4
//!   threads, so that rsheap's pool worker gets no idle time to zero freed chunks in;
//! - **close**: the closing of the last reference to a buffer that was mapped and written,
//!   which must not make the caller pay for zeroing;
//! - **whole life**: allocate, mmap, touch every page, unmap, close;
//! - **first touch**: writing every page of fresh mappings of fresh buffers, a batch at a time;
//! - **allocation latency**: p50, p99 and max of single allocations while 4 threads allocate
//!   and free concurrently, the stalls that delay a camera's open, and again under anonymous
//!   memory pressure ([`crate::pressure`]) that makes reclaim, and rsheap's shrinker, run;
//! - **libdmabufheap's workload**: Android's heap benchmark allocates 4 KiB, 1, 8 and 32 MiB
//!   buffers 5000 times each; here [`LIBDMABUFHEAP_SCALE`] times fewer, under the emulator.
//!
//! Every run starts with rsheap's pools drained, so that what a run finds in them is only what
//! its own loop freed: these workloads measure the steady state of a pipeline that allocates
//! again and again, not the leftovers of the workloads before.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::Result;
use rsheap::{Buffer, Heap, Mapping};
use rsheap_suites::{drain_pools, rsheap_stat};

use crate::pressure::MemoryPressure;
use crate::{Args, Heaps, Report, MIB};

/// How many times fewer iterations libdmabufheap's workload makes here than its 5000.
const LIBDMABUFHEAP_SCALE: usize = 50;

/// A workload timed over `ops` buffers of `len` bytes from a heap.
type Workload = fn(&Heap, usize, usize) -> Result<Duration>;

/// Threads of the concurrent workloads.
const THREADS: usize = 4;

/// The two heaps every workload here compares.
#[derive(Clone, Copy)]
enum Variant {
    Rsheap,
    System,
}

impl Variant {
    const ALL: [Variant; 2] = [Variant::Rsheap, Variant::System];

    fn name(self) -> &'static str {
        match self {
            Self::Rsheap => "rsheap",
            Self::System => "system heap",
        }
    }

    fn heap(self, heaps: &Heaps) -> &Heap {
        match self {
            Self::Rsheap => &heaps.rsheap,
            Self::System => &heaps.system,
        }
    }
}

/// The sizes the workloads run at: a page, 64 KiB, 1, 8, 32 and 256 MiB.
fn sizes() -> [usize; 6] {
    [
        rsheap::page_size(),
        64 << 10,
        MIB,
        8 * MIB,
        32 * MIB,
        256 * MIB,
    ]
}

fn size_name(len: usize) -> String {
    if len >= MIB {
        format!("{} MiB", len / MIB)
    } else {
        format!("{} KiB", len >> 10)
    }
}

/// Operations per timed run at `len`: enough that one run lasts well beyond the clock's
/// resolution and the emulator's hiccups (a run of 256 page-sized buffers lasts under 10 ms,
/// two or three ticks, and its median over 5 runs moved by a third between boots), few
/// enough for the emulator at the large sizes.
fn iterations(len: usize) -> usize {
    (256 * MIB / len).clamp(4, 2048)
}

pub fn workloads(
    args: &Args,
    heaps: &Heaps,
    report: &mut Report<impl std::io::Write>,
) -> Result<()> {
    for len in sizes() {
        let size = size_name(len);
        let ops = iterations(len);
        let per_buffer: [(String, Workload); 4] = [
            (
                format!("tight alloc+free {size}, 1 thread"),
                alloc_free_loop,
            ),
            (format!("close {size}"), close_after_use),
            (format!("whole life {size}"), whole_lives),
            (format!("first touch {size}"), first_touches),
        ];
        for (name, run) in per_buffer {
            if args.wants(&name) {
                let samples = interleaved(args.runs, heaps, ops, |heap, ops| run(heap, len, ops))?;
                report_rates(report, &name, samples, ops)?;
            }
        }
        let tight = format!("tight alloc+free {size}, {THREADS} threads");
        if args.wants(&tight) {
            let samples = side_by_side(args.runs, heaps, |heap| {
                on_threads(|| alloc_free_loop(heap, len, ops).map(drop))
            })?;
            report_rates(report, &tight, samples, ops * THREADS)?;
        }
    }
    for pressure in [false, true] {
        for len in [MIB, 8 * MIB] {
            let mut name = format!("allocation latency {}, {THREADS} threads", size_name(len));
            if pressure {
                name.push_str(", under memory pressure");
            }
            if args.wants(&name) {
                latencies(args, heaps, report, &name, len, pressure)?;
            }
        }
    }
    let name = format!("libdmabufheap's workload, 1/{LIBDMABUFHEAP_SCALE} of its iterations");
    if args.wants(&name) {
        let sizes = [4 << 10, MIB, 8 * MIB, 32 * MIB];
        let each = 5000 / LIBDMABUFHEAP_SCALE;
        let samples = side_by_side(args.runs, heaps, |heap| {
            let mut took = Duration::ZERO;
            for len in sizes {
                took += alloc_free_loop(heap, len, each)?;
            }
            Ok(took)
        })?;
        report_rates(report, &name, samples, each * sizes.len())?;
    }
    Ok(())
}

/// p50, p99 and max allocation latency at `len` on both heaps, each quantile a median over
/// the runs; with `pressure`, while [`MemoryPressure`] holds the guest near its limit.
fn latencies(
    args: &Args,
    heaps: &Heaps,
    report: &mut Report<impl std::io::Write>,
    name: &str,
    len: usize,
    pressure: bool,
) -> Result<()> {
    for variant in Variant::ALL {
        let heap = variant.heap(heaps);
        let pressure = pressure.then(MemoryPressure::start).transpose()?;
        let mut quantiles = [const { Vec::new() }; 3];
        // The shrinker's runs during the timed runs, not those that drained the pools.
        let mut scans = 0;
        for _ in 0..args.runs {
            drain_pools();
            let before = rsheap_stat("shrinker scans");
            for (samples, value) in quantiles.iter_mut().zip(concurrent_latencies(heap, len)?) {
                samples.push(value);
            }
            scans += rsheap_stat("shrinker scans") - before;
        }
        if let Some(pressure) = pressure {
            pressure.stop()?;
            eprintln!(
                "{name}, {}: rsheap's shrinker ran {scans} times",
                variant.name()
            );
        }
        for (quantile, samples) in ["p50", "p99", "max"].iter().zip(quantiles) {
            report.times(&format!("{name}: {quantile}"), variant.name(), samples)?;
        }
    }
    Ok(())
}

/// `runs` timed runs of `run` on each heap, each from drained pools, the heaps taking turns
/// and going first in turn: a drift of the emulator's speed during the boot, or a cost the
/// first of two runs pays for both, then weighs on both heaps alike. The samples are in the
/// order of [`Variant::ALL`].
fn side_by_side(
    runs: usize,
    heaps: &Heaps,
    mut run: impl FnMut(&Heap) -> Result<Duration>,
) -> Result<[Vec<Duration>; 2]> {
    let mut samples = [const { Vec::new() }; 2];
    for turn in 0..runs {
        for i in [turn % 2, (turn + 1) % 2] {
            drain_pools();
            samples[i].push(run(Variant::ALL[i].heap(heaps))?);
        }
    }
    Ok(samples)
}

/// Slices [`interleaved`] cuts each run into.
const SLICES: usize = 16;

/// `runs` timed runs of `run` over `ops` buffers on each heap, each run from drained pools,
/// the heaps taking turns a slice of `ops / SLICES` buffers at a time and going first in
/// turn; a heap's sample is the sum of its slices. The emulator's speed drifts within the
/// fraction of a second one run lasts: with whole runs taking turns, steps of a page-sized
/// buffer's life that run no heap code (`munmap()`, the touch) measured 0.68x and 0.67x in
/// one boot, 0.98x and 1.64x in the next. Slices of a few milliseconds spread that drift over both
/// heaps. Each heap keeps its pools from one of its slices to the next, as one run would.
/// The samples are in the order of [`Variant::ALL`].
fn interleaved(
    runs: usize,
    heaps: &Heaps,
    ops: usize,
    mut run: impl FnMut(&Heap, usize) -> Result<Duration>,
) -> Result<[Vec<Duration>; 2]> {
    let slice = ops.div_ceil(SLICES);
    let mut samples = [const { Vec::new() }; 2];
    for turn in 0..runs {
        drain_pools();
        let mut took = [Duration::ZERO; 2];
        let mut left = ops;
        let mut first = turn;
        while left > 0 {
            let count = left.min(slice);
            for i in [first % 2, (first + 1) % 2] {
                took[i] += run(Variant::ALL[i].heap(heaps), count)?;
            }
            left -= count;
            first += 1;
        }
        for (samples, took) in samples.iter_mut().zip(took) {
            samples.push(took);
        }
    }
    Ok(samples)
}

/// Reports each heap's samples from [`side_by_side`] or [`interleaved`] as a rate of `ops` per run.
fn report_rates(
    report: &mut Report<impl std::io::Write>,
    name: &str,
    samples: [Vec<Duration>; 2],
    ops: usize,
) -> Result<()> {
    for (variant, samples) in Variant::ALL.into_iter().zip(samples) {
        report.rate(name, variant.name(), samples, ops as u64)?;
    }
    Ok(())
}

/// Runs `work` on [`THREADS`] threads started together; the time until the last finishes.
fn on_threads(work: impl Fn() -> Result<()> + Sync) -> Result<Duration> {
    let start_line = Barrier::new(THREADS + 1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    start_line.wait();
                    work()
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
        }
        Ok(start.elapsed())
    })
}

/// Allocates and closes a buffer of `len` bytes `ops` times, with no pause.
fn alloc_free_loop(heap: &Heap, len: usize, ops: usize) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..ops {
        drop(heap.allocate(len)?);
    }
    Ok(start.elapsed())
}

/// Writes one word in every page of `mapping`.
fn touch_pages(mapping: &mut Mapping<'_>) {
    let page = rsheap::page_size();
    let base = mapping.as_mut_ptr().cast::<u64>();
    for offset in (0..mapping.len()).step_by(page) {
        // SAFETY: `offset` lies within the mapping, page-aligned, and the buffer is this
        // benchmark's own: attached to no device and mapped nowhere else.
        unsafe { base.byte_add(offset).write_volatile(offset as u64) };
    }
}

/// Maps `buffer` as the SDK places mappings, writes every page, unmaps.
fn map_touch_unmap(buffer: &Buffer) -> Result<()> {
    touch_pages(&mut buffer.map()?);
    Ok(())
}

/// The time `close()` of the last reference takes, summed over `ops` buffers that were
/// mapped and written first.
fn close_after_use(heap: &Heap, len: usize, ops: usize) -> Result<Duration> {
    let mut took = Duration::ZERO;
    for _ in 0..ops {
        let buffer = heap.allocate(len)?;
        map_touch_unmap(&buffer)?;
        let start = Instant::now();
        drop(buffer);
        took += start.elapsed();
    }
    Ok(took)
}

/// `ops` whole lives: allocate, mmap, touch every page, unmap, close.
fn whole_lives(heap: &Heap, len: usize, ops: usize) -> Result<Duration> {
    let start = Instant::now();
    for _ in 0..ops {
        let buffer = heap.allocate(len)?;
        map_touch_unmap(&buffer)?;
        drop(buffer);
    }
    Ok(start.elapsed())
}

/// Most buffers [`first_touches`] maps at once, and most bytes.
const FIRST_TOUCH_BATCH: (usize, usize) = (256, 64 * MIB);

/// The time writing every page of fresh mappings of fresh buffers takes, over `ops` buffers
/// mapped a batch at a time ([`FIRST_TOUCH_BATCH`]) and timed a batch at a time: touching a
/// page-sized buffer takes a fraction of a microsecond, which a clock read per buffer would
/// drown.
fn first_touches(heap: &Heap, len: usize, ops: usize) -> Result<Duration> {
    let (most_buffers, most_bytes) = FIRST_TOUCH_BATCH;
    let per_batch = (most_bytes / len).clamp(1, most_buffers);
    let mut took = Duration::ZERO;
    let mut left = ops;
    while left > 0 {
        let batch = left.min(per_batch);
        let buffers = (0..batch)
            .map(|_| heap.allocate(len))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mappings = buffers
            .iter()
            .map(Buffer::map)
            .collect::<Result<Vec<_>, _>>()?;
        let start = Instant::now();
        for mapping in &mut mappings {
            touch_pages(mapping);
        }
        took += start.elapsed();
        left -= batch;
    }
    Ok(took)
}

/// p50, p99 and max of the allocations [`THREADS`] threads make, each allocating and freeing
/// buffers of `len` bytes in a loop.
fn concurrent_latencies(heap: &Heap, len: usize) -> Result<[Duration; 3]> {
    let per_thread = iterations(len).max(64);
    let latencies = std::sync::Mutex::new(Vec::with_capacity(per_thread * THREADS));
    on_threads(|| {
        let mut mine = Vec::with_capacity(per_thread);
        for _ in 0..per_thread {
            let start = Instant::now();
            let buffer = heap.allocate(len)?;
            mine.push(start.elapsed());
            drop(buffer);
        }
        latencies
            .lock()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?
            .extend(mine);
        Ok(())
    })?;
    let mut latencies = latencies
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?;
    latencies.sort_unstable();
    let at = |quantile: f64| latencies[((latencies.len() - 1) as f64 * quantile) as usize];
    Ok([at(0.5), at(0.99), at(1.0)])
}
