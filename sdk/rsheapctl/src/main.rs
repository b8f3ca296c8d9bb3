//! `rsheapctl`: inspect and exercise dma-buf heaps from the command line.
//!
//! `heaps` lists the heaps this system offers; `bench` allocates, maps, fills and verifies
//! buffers on several heaps side by side and reports median times and ratios.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytesize::ByteSize;
use clap::{Parser, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use rsheap::{Heap, SyncDirection, HEAP_DIR};

#[derive(Parser)]
#[command(version, about = "Inspect and exercise dma-buf heaps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the dma-buf heaps on this system.
    Heaps,
    /// Allocate, map, fill, verify and free buffers on heaps side by side.
    Bench {
        /// Heaps to compare; the first is the one the ratios speak of.
        #[arg(long, value_delimiter = ',', default_value = "rsheap,system")]
        heaps: Vec<String>,
        /// Buffer sizes (binary units: 4K, 1M, 2G).
        #[arg(long, value_delimiter = ',', default_value = "1M,8M,32M", value_parser = parse_size)]
        sizes: Vec<u64>,
        /// Runs per heap and size; medians are reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
    },
}

fn parse_size(text: &str) -> Result<u64, String> {
    let size = parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .map_err(|err| format!("{text:?} is not a size: {err}"))?;
    if size == 0 {
        return Err("sizes must be larger than zero".into());
    }
    Ok(size)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Heaps => list_heaps(),
        Command::Bench { heaps, sizes, runs } => bench(&heaps, &sizes, runs),
    }
}

fn list_heaps() -> Result<()> {
    let names = rsheap::heap_names()?;
    if names.is_empty() {
        bail!("no dma-buf heaps in {HEAP_DIR}: is CONFIG_DMABUF_HEAPS on and rsheap.ko loaded?");
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["heap", "device", "allocates"]);
    for name in names {
        let works = Heap::open(&name)
            .and_then(|heap| heap.allocate(4096))
            .map(|_| "yes".to_owned());
        table.add_row([
            name.clone(),
            format!("{HEAP_DIR}/{name}"),
            works.unwrap_or_else(|err| err.to_string()),
        ]);
    }
    println!("{table}");
    Ok(())
}

/// Median timings of one heap at one size.
struct Timings {
    alloc: Duration,
    mmap: Duration,
    fill: Duration,
    verify: Duration,
    free: Duration,
}

fn bench(heaps: &[String], sizes: &[u64], runs: u32) -> Result<()> {
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
                Cell::new(ByteSize::b(size as u64).to_string_as(true)),
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
    println!("median of {runs} runs per cell\n{table}");
    if heaps.len() >= 2 {
        print_ratios(&heaps[0], heaps, sizes, &results);
    }
    Ok(())
}

fn ms(d: Duration) -> Cell {
    Cell::new(format!("{:.2} ms", d.as_secs_f64() * 1e3)).set_alignment(CellAlignment::Right)
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
            if mapping.as_slice().iter().any(|&b| b != 0) {
                bail!(
                    "heap {} returned a {size}-byte buffer that is not zeroed",
                    heap.name()
                );
            }
            mapping.as_mut_slice().fill(pattern);
        }
        samples[2].push(t.elapsed());
        drop(mapping);

        let t = Instant::now();
        {
            let mapping = buffer.map()?;
            let _access = buffer.cpu_access(SyncDirection::Read)?;
            if let Some(at) = mapping.as_slice().iter().position(|&b| b != pattern) {
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

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn print_ratios(
    subject: &str,
    heaps: &[String],
    sizes: &[u64],
    results: &[(usize, String, Timings)],
) {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["size", "versus", "allocate", "mmap", "fill", "free"]);
    let find = |size: usize, heap: &str| {
        results
            .iter()
            .find(|(s, h, _)| *s == size && h == heap)
            .map(|(_, _, t)| t)
    };
    for &size in sizes {
        let size = size as usize;
        let Some(ours) = find(size, subject) else {
            continue;
        };
        for other in heaps.iter().filter(|h| h.as_str() != subject) {
            let Some(theirs) = find(size, other) else {
                continue;
            };
            let ratio = |a: Duration, b: Duration| {
                Cell::new(format!(
                    "{:.2}x",
                    b.as_secs_f64() / a.as_secs_f64().max(1e-9)
                ))
                .set_alignment(CellAlignment::Right)
            };
            table.add_row([
                Cell::new(ByteSize::b(size as u64).to_string_as(true)),
                Cell::new(other),
                ratio(ours.alloc, theirs.alloc),
                ratio(ours.mmap, theirs.mmap),
                ratio(ours.fill, theirs.fill),
                ratio(ours.free, theirs.free),
            ]);
        }
    }
    println!("\n{subject} speed-up (their median time / {subject}'s; above 1.00x = {subject} faster)\n{table}");
}
