//! The benchmark workloads behind `cargo xtask bench`, run inside the test guest with
//! rsheap.ko and the vmap probe loaded.
//!
//! Every workload runs side by side on rsheap (with its page pool cold and warm), the in-tree
//! `system` heap, udmabuf (memfd + `UDMABUF_CREATE`, the upstream answer for user-filled
//! dma-bufs), and, where one exists, the raw limit. Each sample is one timed run; the host
//! takes medians and ratios. Output: one JSON object per line.
//!
//! The file workloads ([`file_load`]) compare the ways of filling dma-bufs from a file instead,
//! the [`lifecycle`] workloads a buffer's whole life on rsheap and the system heap, and the
//! [`broker`] workloads what going through rsheapd costs against doing it directly.

mod broker;
mod file_load;
mod lifecycle;
mod pressure;
mod udmabuf;

use std::ffi::c_void;
use std::io::Write;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use nix::sys::mman::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};
use rsheap::{Buffer, Heap, SyncDirection};
use rsheap_suites::{drain_pools, probe_answer, vmap_probe, wait_for_pool_worker};
use serde::Serialize;

const MIB: usize = 1 << 20;

#[derive(Parser)]
struct Args {
    /// Timed runs per workload and variant.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Only workloads whose name contains this, or one of its `|`-separated parts.
    #[arg(long)]
    only: Option<String>,
}

impl Args {
    /// Whether the workload `name` is to run.
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split('|').any(|part| name.contains(part)))
    }
}

/// One workload on one variant.
#[derive(Serialize)]
struct Sample<'a> {
    workload: &'a str,
    variant: &'a str,
    nanos: Vec<u64>,
    /// Bytes each run moves, for workloads measured as throughput.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// Operations each run makes, for workloads measured as a rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    ops: Option<u64>,
}

/// Writes samples to standard output, one JSON object per line, and progress to the console.
struct Report<W: Write> {
    out: W,
}

impl<W: Write> Report<W> {
    /// Samples of a workload measured by time.
    fn times(&mut self, workload: &str, variant: &str, samples: Vec<Duration>) -> Result<()> {
        self.write(workload, variant, samples, None, None)
    }

    /// Samples of a workload that moves `bytes` per run, reported as throughput too.
    fn throughput(
        &mut self,
        workload: &str,
        variant: &str,
        samples: Vec<Duration>,
        bytes: u64,
    ) -> Result<()> {
        self.write(workload, variant, samples, Some(bytes), None)
    }

    /// Samples of a workload that makes `ops` operations per run, reported as a rate too.
    fn rate(
        &mut self,
        workload: &str,
        variant: &str,
        samples: Vec<Duration>,
        ops: u64,
    ) -> Result<()> {
        self.write(workload, variant, samples, None, Some(ops))
    }

    fn write(
        &mut self,
        workload: &str,
        variant: &str,
        samples: Vec<Duration>,
        bytes: Option<u64>,
        ops: Option<u64>,
    ) -> Result<()> {
        let nanos = samples.iter().map(|d| d.as_nanos() as u64).collect();
        let sample = Sample {
            workload,
            variant,
            nanos,
            bytes,
            ops,
        };
        serde_json::to_writer(&mut self.out, &sample)?;
        writeln!(self.out)?;
        self.out.flush()?;
        eprintln!("rig: bench: {workload}: {variant} done");
        Ok(())
    }
}

/// Where buffers come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// rsheap with its pool emptied before every run.
    RsheapCold,
    /// rsheap with its pool filled by an untimed run first.
    RsheapWarm,
    /// The in-tree system heap.
    System,
    /// memfd + udmabuf.
    Udmabuf,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::RsheapCold,
        Source::RsheapWarm,
        Source::System,
        Source::Udmabuf,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::RsheapCold => "rsheap (cold pool)",
            Self::RsheapWarm => "rsheap (warm pool)",
            Self::System => "system heap",
            Self::Udmabuf => "udmabuf",
        }
    }

    /// Allocates a dma-buf of `len` bytes.
    fn allocate(self, heaps: &Heaps, len: usize) -> Result<OwnedFd> {
        Ok(match self {
            Self::RsheapCold | Self::RsheapWarm => heaps.rsheap.allocate(len)?.into_fd(),
            Self::System => heaps.system.allocate(len)?.into_fd(),
            Self::Udmabuf => udmabuf::create(len)?,
        })
    }

    /// Puts the pool in this variant's state before a timed run of `warmup`.
    fn prepare(self, warmup: impl FnOnce() -> Result<()>) -> Result<()> {
        match self {
            Self::RsheapCold => {
                drain_pools();
                Ok(())
            }
            Self::RsheapWarm => {
                warmup()?;
                wait_for_pool_worker();
                Ok(())
            }
            Self::System | Self::Udmabuf => Ok(()),
        }
    }
}

struct Heaps {
    rsheap: Heap,
    system: Heap,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let heaps = Heaps {
        rsheap: Heap::open("rsheap")?,
        system: Heap::open("system")?,
    };
    let wanted = |name: &str| args.wants(name);
    let mut report = Report {
        out: std::io::stdout().lock(),
    };

    if wanted("alloc+free 32 x 32 MiB") {
        for source in Source::ALL {
            let samples = repeat(args.runs, source, || {
                alloc_free(source, &heaps, &[32 * MIB; 32])
            })?;
            report.times("alloc+free 32 x 32 MiB", source.name(), samples)?;
        }
    }
    for size in [MIB, 8 * MIB, 32 * MIB] {
        let workload = format!("alloc+free 1 x {} MiB", size / MIB);
        if wanted(&workload) {
            for source in Source::ALL {
                let samples = repeat(args.runs, source, || alloc_free(source, &heaps, &[size]))?;
                report.times(&workload, source.name(), samples)?;
            }
        }
    }
    if wanted("mmap 512 MiB") {
        for source in [Source::RsheapWarm, Source::System, Source::Udmabuf] {
            let fd = source.allocate(&heaps, 512 * MIB)?;
            let samples = (0..args.runs)
                .map(|_| time_mmap(&fd))
                .collect::<Result<_>>()?;
            report.times(
                "mmap 512 MiB",
                source.name().trim_end_matches(" (warm pool)"),
                samples,
            )?;
        }
    }
    if wanted("mmap+write+verify 512 MiB") {
        for source in [Source::RsheapWarm, Source::System, Source::Udmabuf] {
            let fd = source.allocate(&heaps, 512 * MIB)?;
            let samples = (0..args.runs)
                .map(|_| mmap_write_verify(&fd, 512 * MIB))
                .collect::<Result<_>>()?;
            report.times(
                "mmap+write+verify 512 MiB",
                source.name().trim_end_matches(" (warm pool)"),
                samples,
            )?;
        }
        let samples = (0..args.runs)
            .map(|_| anonymous_write_verify(512 * MIB))
            .collect::<Result<_>>()?;
        report.times(
            "mmap+write+verify 512 MiB",
            "limit: populated anonymous memory",
            samples,
        )?;
    }
    for size in [128 * MIB, 2048 * MIB] {
        // First kernel mapping of a fresh buffer, then again on a buffer mapped before.
        let fresh = format!("dma_buf_vmap {} MiB, fresh buffer", size / MIB);
        let again = format!("dma_buf_vmap {} MiB, mapped before", size / MIB);
        for source in [Source::RsheapWarm, Source::System, Source::Udmabuf] {
            let name = source.name().trim_end_matches(" (warm pool)");
            if wanted(&fresh) {
                let samples = (0..args.runs)
                    .map(|_| {
                        let fd = source.allocate(&heaps, size)?;
                        // Let the pool worker finish zeroing the last buffer first.
                        wait_for_pool_worker();
                        time_vmap(&fd)
                    })
                    .collect::<Result<_>>()?;
                report.times(&fresh, name, samples)?;
            }
            if wanted(&again) {
                let fd = source.allocate(&heaps, size)?;
                time_vmap(&fd)?;
                let samples = (0..args.runs)
                    .map(|_| time_vmap(&fd))
                    .collect::<Result<_>>()?;
                report.times(&again, name, samples)?;
            }
        }
    }
    lifecycle::workloads(&args, &heaps, &mut report)?;
    file_workloads(&args, &mut report)?;
    broker::workloads(&args, &mut report)?;
    Ok(())
}

/// The file-to-buffer workloads of [`file_load`].
fn file_workloads(args: &Args, report: &mut Report<impl Write>) -> Result<()> {
    const WHOLE: &str = "load a 1 GiB file, cold cache";
    const PARTS: &str = "make 32 x 32 MiB buffers and fill them from a 1 GiB file, cold cache";
    if !args.wants(WHOLE) && !args.wants(PARTS) {
        return Ok(());
    }
    let bench = file_load::Bench::new()?;
    let bytes = file_load::FILE_LEN as u64;
    type Run = fn(&file_load::Bench, file_load::Loader) -> Result<Duration>;
    let workloads: [(&str, &[file_load::Loader], Run, bool); 2] = [
        (
            WHOLE,
            &file_load::Loader::PREALLOCATED,
            file_load::Bench::load_whole_file,
            false,
        ),
        (
            PARTS,
            &file_load::Loader::ALLOCATING,
            file_load::Bench::fill_32_buffers,
            true,
        ),
    ];
    for (workload, loaders, run, allocating) in workloads {
        if !args.wants(workload) {
            continue;
        }
        // Round by round, every loader in turn, so that drift in the emulator's speed over
        // the minutes a round takes affects them alike.
        let mut samples = vec![Vec::with_capacity(args.runs); loaders.len()];
        for round in 1..=args.runs {
            eprintln!("rig: bench: {workload}: round {round} of {}", args.runs);
            for (loader, samples) in loaders.iter().zip(&mut samples) {
                samples.push(run(&bench, *loader)?);
            }
        }
        for (loader, samples) in loaders.iter().zip(samples) {
            report.throughput(workload, loader.name(allocating), samples, bytes)?;
        }
    }
    Ok(())
}

/// Times `run` `runs` times, each after `source.prepare`.
fn repeat(
    runs: usize,
    source: Source,
    mut run: impl FnMut() -> Result<Duration>,
) -> Result<Vec<Duration>> {
    (0..runs)
        .map(|_| {
            source.prepare(|| run().map(drop))?;
            run()
        })
        .collect()
}

/// Allocates buffers of `sizes`, then frees them all.
fn alloc_free(source: Source, heaps: &Heaps, sizes: &[usize]) -> Result<Duration> {
    let start = Instant::now();
    let buffers = sizes
        .iter()
        .map(|&len| source.allocate(heaps, len))
        .collect::<Result<Vec<_>>>()?;
    drop(buffers);
    Ok(start.elapsed())
}

/// Times `mmap()` of a whole buffer alone, untouched, placed as the SDK places mappings.
fn time_mmap(fd: &OwnedFd) -> Result<Duration> {
    let buffer = Buffer::from_fd(fd.try_clone()?)?;
    let start = Instant::now();
    let mapping = buffer.map()?;
    let took = start.elapsed();
    drop(mapping);
    Ok(took)
}

/// Maps `len` bytes of `fd` shared and writable; the caller unmaps them.
fn map_shared(fd: BorrowedFd<'_>, len: usize) -> Result<NonNull<c_void>> {
    let size = NonZeroUsize::new(len).context("empty mapping")?;
    // SAFETY: A fresh shared mapping, which replaces nothing.
    let ptr = unsafe {
        mmap(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }?;
    Ok(ptr)
}

/// Maps a buffer, writes one word in every page, and reads them back, with CPU-access sync.
fn mmap_write_verify(fd: &OwnedFd, len: usize) -> Result<Duration> {
    let buffer = Buffer::from_fd(fd.try_clone()?)?;
    let start = Instant::now();
    let mut mapping = buffer.map()?;
    {
        let _access = buffer.cpu_access(SyncDirection::ReadWrite)?;
        // The same slice code as the anonymous baseline, so that only the mapping differs.
        // SAFETY: The buffer is this benchmark's own: allocated for it, attached to no device,
        // shared with no process, and mapped nowhere else while the slice lives.
        touch_and_verify(unsafe { mapping.as_mut_slice() }, len)?;
    }
    drop(mapping);
    Ok(start.elapsed())
}

/// The same on anonymous memory faulted in beforehand: what writing and reading costs with no
/// mapping work at all.
fn anonymous_write_verify(len: usize) -> Result<Duration> {
    let nonzero = NonZeroUsize::new(len).context("empty")?;
    let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE;
    // SAFETY: A fresh private mapping, unmapped below.
    let ptr = unsafe {
        mmap_anonymous(
            None,
            nonzero,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            flags,
        )
    }?;
    // SAFETY: `ptr` maps `len` writable bytes that nothing else uses.
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr().cast::<u8>(), len) };
    let start = Instant::now();
    touch_and_verify(bytes, len)?;
    let took = start.elapsed();
    // SAFETY: `ptr` maps `len` bytes, and `bytes` is no longer used.
    unsafe { munmap(ptr, len) }?;
    Ok(took)
}

fn touch_and_verify(bytes: &mut [u8], len: usize) -> Result<()> {
    let page_size = rsheap::page_size();
    for (i, page) in bytes.chunks_mut(page_size).enumerate() {
        page[..8].copy_from_slice(&(i as u64).to_ne_bytes());
    }
    for (i, page) in bytes.chunks(page_size).enumerate() {
        anyhow::ensure!(
            page[..8] == (i as u64).to_ne_bytes(),
            "page {i} of {len} bytes lost its value"
        );
    }
    Ok(())
}

/// Asks the vmap probe to time `dma_buf_vmap()` of the buffer.
fn time_vmap(fd: &OwnedFd) -> Result<Duration> {
    let answers = vmap_probe(&fd.as_fd().as_raw_fd(), "time");
    Ok(Duration::from_nanos(
        probe_answer(&answers, "vmap_ns").parse()?,
    ))
}
