//! `load` and `store`: files into and out of buffers, with a progress bar and the throughput.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use rsheap::{FileIo, Mapping, Span, SyncDirection};
use xxhash_rust::xxh3::Xxh3;

use crate::alloc::{Allocated, SourceArgs};
use crate::progress::Progress;
use crate::units;

/// `load`'s arguments.
#[derive(Args)]
pub struct LoadArgs {
    /// The file to load.
    file: PathBuf,
    /// Where in the file to start.
    #[arg(long, default_value = "0", value_parser = units::parse_offset)]
    offset: u64,
    /// Bytes to load (default: to the end of the file).
    #[arg(long, value_parser = units::parse_size)]
    length: Option<u64>,
    #[command(flatten)]
    source: SourceArgs,
    /// Also print the XXH3-64 checksum of the loaded bytes, read back through a mapping.
    #[arg(long)]
    checksum: bool,
}

/// `store`'s arguments.
#[derive(Args)]
pub struct StoreArgs {
    /// The file to write; created, or truncated if it exists.
    file: PathBuf,
    /// The buffer's size (binary units: 4K, 1M, 2G).
    #[arg(long, value_parser = units::parse_size)]
    size: u64,
    /// Fill the buffer from this file first (else with a byte pattern).
    #[arg(long)]
    from: Option<PathBuf>,
    /// The heap of rsheap's to allocate from.
    #[arg(long, default_value = "rsheap")]
    heap: String,
}

/// `load`.
pub fn load(args: &LoadArgs) -> Result<()> {
    let file_len = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    if args.offset >= file_len {
        bail!(
            "{} has {file_len} bytes: nothing to load at offset {}",
            args.file.display(),
            args.offset
        );
    }
    let len = args.length.unwrap_or(file_len.saturating_sub(args.offset));
    let allocated = Allocated::new(len, &args.source)?;
    let span = Span {
        file_offset: args.offset,
        buffer_offset: 0,
        len,
    };
    let mut bar = Progress::new(len, "loading");
    let mut progress = |done: u64, _total: u64| bar.set(done);
    let start = Instant::now();
    let (loaded, direct) = match &allocated {
        Allocated::Broker(broker, buffer) => (
            broker.load_path(buffer, &args.file, span, &mut progress)?,
            None,
        ),
        Allocated::Direct { buffer, .. } => {
            let moved = FileIo::open()?.load_path(&args.file, buffer, span, &mut progress)?;
            (moved.bytes, Some(moved.direct_bytes))
        }
    };
    let took = start.elapsed();
    bar.finish();
    let via = direct.map_or(String::new(), |direct| {
        format!(", {} by direct I/O", units::bytes(direct))
    });
    println!(
        "loaded {} ({loaded} bytes{via}) into {} on heap {} in {}: {}",
        units::bytes(loaded),
        display_name(&allocated),
        allocated.heap(),
        units::ms(took),
        units::rate(loaded, took)
    );
    if args.checksum {
        let buffer = allocated.buffer();
        let mapping = buffer.map()?;
        let access = buffer.cpu_access(SyncDirection::Read)?;
        let checksum = checksum(&mapping, loaded)?;
        access.end()?;
        println!("xxh3 {checksum:016x}");
    }
    allocated.free()
}

/// `store`.
pub fn store(args: &StoreArgs) -> Result<()> {
    let source = SourceArgs::direct(&args.heap);
    let allocated = Allocated::new(args.size, &source)?;
    let buffer = allocated.buffer();
    let io = FileIo::open()?;
    let len = args.size;
    match &args.from {
        Some(from) => {
            let filled = io.load_path(from, buffer, Span::start(len), &mut |_, _| {})?;
            if filled.bytes < len {
                bail!(
                    "{} has only {} bytes, fewer than --size {len}",
                    from.display(),
                    filled.bytes
                );
            }
        }
        None => {
            let mut mapping = buffer.map()?;
            let access = buffer.cpu_access(SyncDirection::Write)?;
            // Byte `at` is `at / 4096`: each 4 KiB block is one value, written a block at a
            // time.
            let mut block = [0; PATTERN_BLOCK];
            for offset in (0..mapping.len()).step_by(PATTERN_BLOCK) {
                block.fill((offset / PATTERN_BLOCK) as u8);
                let len = PATTERN_BLOCK.min(mapping.len().saturating_sub(offset));
                let bytes = block.get(..len).context("pattern block out of range")?;
                mapping.write_at(offset, bytes)?;
            }
            access.end()?;
        }
    }
    let mut bar = Progress::new(len, "storing");
    let start = Instant::now();
    let moved = io.store_path(&args.file, buffer, Span::start(len), &mut |done, _| {
        bar.set(done)
    })?;
    let took = start.elapsed();
    bar.finish();
    println!(
        "stored {} ({} bytes, {} by direct I/O) from heap {} to {} in {}: {}",
        units::bytes(moved.bytes),
        moved.bytes,
        units::bytes(moved.direct_bytes),
        allocated.heap(),
        args.file.display(),
        units::ms(took),
        units::rate(moved.bytes, took)
    );
    allocated.free()
}

/// The block of `store`'s fill pattern, whose bytes all hold the block's number.
const PATTERN_BLOCK: usize = 4096;

/// How much of a buffer [`checksum`] copies out at a time.
const CHECKSUM_CHUNK: usize = 1 << 20;

/// The XXH3-64 of the first `len` mapped bytes, copied out a chunk at a time.
fn checksum(mapping: &Mapping<'_>, len: u64) -> Result<u64> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&len| len <= mapping.len())
        .with_context(|| format!("loaded {len} bytes into a smaller buffer"))?;
    let mut hasher = Xxh3::new();
    let mut chunk = vec![0; CHECKSUM_CHUNK.min(len)];
    for offset in (0..len).step_by(CHECKSUM_CHUNK) {
        let part = CHECKSUM_CHUNK.min(len.saturating_sub(offset));
        let bytes = chunk
            .get_mut(..part)
            .context("checksum chunk out of range")?;
        mapping.read_at(offset, bytes)?;
        hasher.update(bytes);
    }
    Ok(hasher.digest())
}

fn display_name(allocated: &Allocated) -> &str {
    match allocated.name() {
        "" => "an unnamed buffer",
        name => name,
    }
}
