//! An NPU model load: a buffer for the weights file from the broker, filled by the broker
//! straight from the file (direct I/O, no copy through this process), with progress, then
//! checked through a mapping as an NPU driver would be handed it.
//!
//! ```text
//! cargo run --example model_load -- /data/vendor/npu/model.bin
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rsheap::{AllocationOptions, Broker, Span, SyncDirection, Usage};
use xxhash_rust::xxh3::Xxh3;

/// How much of the buffer is copied out at a time to be checked.
const CHUNK: usize = 1 << 20;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("model_load: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err("usage: model_load <weights file>".into());
    };
    let size = std::fs::metadata(&path)
        .map_err(|err| format!("{}: {err}", path.display()))?
        .len();
    if size == 0 {
        return Err(format!("{} is empty", path.display()).into());
    }
    let broker = Broker::connect()?;
    let options = AllocationOptions {
        debug_name: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned()),
        ..AllocationOptions::usage(Usage::MODEL_WEIGHTS)
    };
    let weights = broker.allocate(usize::try_from(size)?, &options)?;
    println!(
        "{} bytes of weights into {} on heap {}",
        size,
        weights.name(),
        weights.heap()
    );

    let start = Instant::now();
    let mut reported = 0;
    let loaded = broker.load_path(&weights, &path, Span::whole(), &mut |done, total| {
        // A line per quarter, not per report.
        let quarter = done * 4 / total.max(1);
        if quarter > reported {
            reported = quarter;
            println!("  {:>3}% ({done} of {total} bytes)", quarter * 25);
        }
    })?;
    let elapsed = start.elapsed();
    println!(
        "loaded {loaded} bytes in {:.0} ms ({:.0} MiB/s)",
        elapsed.as_secs_f64() * 1e3,
        loaded as f64 / elapsed.as_secs_f64() / (1 << 20) as f64
    );

    // The broker may still hold the buffer for the NPU: read it by copying, a chunk at a
    // time, rather than as a slice that would claim the bytes hold still.
    let mapping = weights.buffer().map()?;
    let access = weights.buffer().cpu_access(SyncDirection::Read)?;
    let mut hasher = Xxh3::new();
    let mut chunk = vec![0; CHUNK];
    let loaded = usize::try_from(loaded)?;
    for offset in (0..loaded).step_by(CHUNK) {
        let bytes = &mut chunk[..CHUNK.min(loaded - offset)];
        mapping.read_at(offset, bytes)?;
        hasher.update(bytes);
    }
    let checksum = hasher.digest();
    access.end()?;
    println!("xxh3 {checksum:016x}");
    drop(mapping);
    broker.free(weights)?;
    Ok(())
}
