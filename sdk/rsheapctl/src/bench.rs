//! `bench`: rsheap beside other heaps, one size and stage at a time.
//!
//! Each run allocates, maps, checks the buffer is zeroed, fills it, maps it again to verify
//! the fill, and frees it; medians of the runs are compared. The checks copy the mapping out
//! in small chunks, as a safe client of the `rsheap` crate reads one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use rsheap::{Heap, Mapping, SyncDirection};
use serde_json::{json, Map, Value};

use crate::units;

/// Median timings of one heap at one size.
struct Timings {
    alloc: Duration,
    mmap: Duration,
    fill: Duration,
    verify: Duration,
    free: Duration,
}

/// `bench`: a table of medians, a table of ratios, and with `plot` a chart of the ratios; with
/// `json`, the same as one JSON object.
pub fn run(
    heaps: &[String],
    sizes: &[u64],
    runs: u32,
    plot: Option<&Path>,
    json: bool,
) -> Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "size", "heap", "allocate", "mmap", "fill", "verify", "free", "checks",
    ]);
    let mut results = Vec::new();
    for &size in sizes {
        let size = usize::try_from(size).context("size does not fit this machine")?;
        for name in heaps {
            let heap = Heap::open(name).with_context(|| format!("open heap {name}"))?;
            let timings = measure(&heap, size, runs)?;
            table.add_row([
                Cell::new(units::bytes(size as u64)),
                Cell::new(name),
                ms(timings.alloc),
                ms(timings.mmap),
                ms(timings.fill),
                ms(timings.verify),
                ms(timings.free),
                Cell::new("zeroed, round trip"),
            ]);
            results.push((size, name.clone(), timings));
        }
    }
    let comparison = match (heaps.first(), heaps.len() >= 2) {
        (Some(first), true) => Some((first, ratios(first, heaps, sizes, &results))),
        _ => None,
    };
    if !json {
        println!("median of {runs} runs per cell\n{table}");
        if let Some((first, ratios)) = &comparison {
            print_ratios(first, ratios);
        }
    }
    if let Some(path) = plot {
        let Some((first, ratios)) = &comparison else {
            bail!("a plot compares heaps: name at least two with --heaps");
        };
        crate::plot::speedups(path, first, ratios)?;
        if !json {
            println!("plot: {}", path.display());
        }
    }
    if json {
        return print_json(runs, &results, comparison.as_ref(), plot);
    }
    Ok(())
}

/// `bench --json`: the medians in milliseconds per size and heap, and the speed-ups of the
/// first heap over each other one.
fn print_json(
    runs: u32,
    results: &[(usize, String, Timings)],
    comparison: Option<&(&String, Vec<Ratio>)>,
    plot: Option<&Path>,
) -> Result<()> {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let medians: Vec<Value> = results
        .iter()
        .map(|(size, heap, t)| {
            json!({
                "size": size,
                "heap": heap,
                "allocate_ms": ms(t.alloc),
                "mmap_ms": ms(t.mmap),
                "fill_ms": ms(t.fill),
                "verify_ms": ms(t.verify),
                "free_ms": ms(t.free),
            })
        })
        .collect();
    let speedups: Vec<Value> = comparison
        .map(|(_, ratios)| ratios.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|ratio| {
            let mut stages: Map<String, Value> = STAGES
                .iter()
                .zip(ratio.stages)
                .map(|(stage, x)| ((*stage).to_owned(), Value::from(x)))
                .collect();
            stages.insert("size".into(), ratio.size.into());
            stages.insert("versus".into(), ratio.other.clone().into());
            Value::Object(stages)
        })
        .collect();
    crate::inspect::print_json(&json!({
        "runs": runs,
        "medians": medians,
        "subject": comparison.map(|(first, _)| first),
        "speedups": speedups,
        "plot": plot.map(|path| path.display().to_string()),
    }))
}

fn ms(d: Duration) -> Cell {
    Cell::new(units::ms(d)).set_alignment(CellAlignment::Right)
}

/// Allocates, maps, checks zeroing, fills, remaps and verifies, and frees, `runs` times.
fn measure(heap: &Heap, size: usize, runs: u32) -> Result<Timings> {
    let mut samples: [Vec<Duration>; 5] = Default::default();
    for run in 0..runs {
        let pattern = (run as u8).wrapping_mul(37) | 1;
        let t = Instant::now();
        let buffer = heap.allocate(size)?;
        samples[0].push(t.elapsed());

        let t = Instant::now();
        let mut mapping = buffer.map()?;
        samples[1].push(t.elapsed());

        let t = Instant::now();
        {
            let _access = buffer.cpu_access(SyncDirection::ReadWrite)?;
            if first_other(&mapping, 0)?.is_some() {
                bail!(
                    "heap {} returned a {size}-byte buffer that is not zeroed",
                    heap.name()
                );
            }
            mapping.fill(pattern);
        }
        samples[2].push(t.elapsed());
        drop(mapping);

        let t = Instant::now();
        {
            let mapping = buffer.map()?;
            let _access = buffer.cpu_access(SyncDirection::Read)?;
            if let Some(at) = first_other(&mapping, pattern)? {
                bail!(
                    "heap {}: byte {at} of a {size}-byte buffer lost its value after remapping",
                    heap.name()
                );
            }
        }
        samples[3].push(t.elapsed());

        let t = Instant::now();
        drop(buffer);
        samples[4].push(t.elapsed());
    }
    let [alloc, mmap, fill, verify, free] = samples.map(median);
    Ok(Timings {
        alloc,
        mmap,
        fill,
        verify,
        free,
    })
}

/// How much of a mapping [`first_other`] copies out at a time: small enough to stay in the
/// CPU's caches.
const CHECK_CHUNK: usize = 64 << 10;

/// The offset of the first mapped byte that is not `byte`, read as any safe client reads a
/// mapping: by copying it out, a chunk at a time.
fn first_other(mapping: &Mapping<'_>, byte: u8) -> Result<Option<usize>> {
    let mut chunk = vec![0; CHECK_CHUNK.min(mapping.len())];
    for offset in (0..mapping.len()).step_by(CHECK_CHUNK) {
        let len = CHECK_CHUNK.min(mapping.len().saturating_sub(offset));
        let bytes = chunk.get_mut(..len).context("check chunk out of range")?;
        mapping.read_at(offset, bytes)?;
        if let Some(at) = bytes.iter().position(|&b| b != byte) {
            return Ok(Some(offset.saturating_add(at)));
        }
    }
    Ok(None)
}

/// The median of `samples`, zero for none.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// How much faster the subject heap was than another at one size, per stage.
pub struct Ratio {
    /// The buffer size.
    pub size: u64,
    /// The heap compared with.
    pub other: String,
    /// Their median time over the subject's, for allocate, mmap, fill and free.
    pub stages: [f64; 4],
}

/// The names of [`Ratio::stages`].
pub const STAGES: [&str; 4] = ["allocate", "mmap", "fill", "free"];

fn ratios(
    subject: &str,
    heaps: &[String],
    sizes: &[u64],
    results: &[(usize, String, Timings)],
) -> Vec<Ratio> {
    let find = |size: usize, heap: &str| {
        results
            .iter()
            .find(|(s, h, _)| *s == size && h == heap)
            .map(|(_, _, t)| t)
    };
    let mut ratios = Vec::new();
    for &size in sizes {
        let Some(ours) = find(size as usize, subject) else {
            continue;
        };
        for other in heaps.iter().filter(|h| h.as_str() != subject) {
            let Some(theirs) = find(size as usize, other) else {
                continue;
            };
            let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-9);
            ratios.push(Ratio {
                size,
                other: other.clone(),
                stages: [
                    ratio(ours.alloc, theirs.alloc),
                    ratio(ours.mmap, theirs.mmap),
                    ratio(ours.fill, theirs.fill),
                    ratio(ours.free, theirs.free),
                ],
            });
        }
    }
    ratios
}

fn print_ratios(subject: &str, ratios: &[Ratio]) {
    let mut header = vec!["size", "versus"];
    header.extend(STAGES);
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    for ratio in ratios {
        let mut row = vec![Cell::new(units::bytes(ratio.size)), Cell::new(&ratio.other)];
        row.extend(
            ratio
                .stages
                .iter()
                .map(|x| Cell::new(format!("{x:.2}x")).set_alignment(CellAlignment::Right)),
        );
        table.add_row(row);
    }
    println!("\n{subject} speed-up (their median time / {subject}'s; above 1.00x = {subject} faster)\n{table}");
}
