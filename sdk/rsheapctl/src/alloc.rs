//! `alloc`, and where every command that needs a buffer gets it: from rsheapd by default, or
//! straight from a heap with `--direct`.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use rsheap::{AllocationOptions, Broker, BrokerBuffer, Buffer, Heap, Usage};

use crate::units;

/// What a buffer is for, as the broker's usages.
#[derive(Clone, Copy, ValueEnum)]
pub enum UsageArg {
    /// Camera frames.
    CameraFrame,
    /// Model weights.
    ModelWeights,
    /// A compiled model.
    ModelExecutable,
    /// Anything else.
    Scratch,
}

impl From<UsageArg> for Usage {
    fn from(usage: UsageArg) -> Self {
        match usage {
            UsageArg::CameraFrame => Usage::CAMERA_FRAME,
            UsageArg::ModelWeights => Usage::MODEL_WEIGHTS,
            UsageArg::ModelExecutable => Usage::MODEL_EXECUTABLE,
            UsageArg::Scratch => Usage::SCRATCH,
        }
    }
}

/// The command line's name of a usage.
pub fn usage_name(usage: Usage) -> String {
    match usage {
        Usage::CAMERA_FRAME => "camera-frame".into(),
        Usage::MODEL_WEIGHTS => "model-weights".into(),
        Usage::MODEL_EXECUTABLE => "model-executable".into(),
        Usage::SCRATCH => "scratch".into(),
        other => format!("usage {}", other.0),
    }
}

/// Where a buffer comes from.
#[derive(Args)]
pub struct SourceArgs {
    /// What the buffer is for; the broker picks the heap from it.
    #[arg(long, value_enum, default_value = "scratch")]
    usage: UsageArg,
    /// Uncached CPU access (write-combined mappings).
    #[arg(long)]
    uncached: bool,
    /// This heap instead of the usage's.
    #[arg(long)]
    heap: Option<String>,
    /// Allocate from the heap node itself, without rsheapd (default heap: rsheap).
    #[arg(long)]
    direct: bool,
    /// A name for the buffer: the broker's debug name, or with `--direct` the dma-buf name.
    #[arg(long)]
    name: Option<String>,
}

impl SourceArgs {
    /// Straight from `heap`, unnamed.
    pub fn direct(heap: &str) -> Self {
        Self {
            usage: UsageArg::Scratch,
            uncached: false,
            heap: Some(heap.to_owned()),
            direct: true,
            name: None,
        }
    }
}

/// `alloc`'s arguments.
#[derive(Args)]
pub struct AllocArgs {
    /// Bytes to allocate (binary units: 4K, 1M, 2G); rounded up to whole pages.
    #[arg(value_parser = units::parse_size)]
    size: u64,
    #[command(flatten)]
    source: SourceArgs,
    /// Keep the buffer until standard input ends (Enter or Ctrl-D), to inspect it meanwhile
    /// with `rsheapctl ls` or `rsheapctl dump`.
    #[arg(long)]
    hold: bool,
}

/// A buffer and what it came from.
pub enum Allocated {
    /// From rsheapd, which must be told when it is freed.
    Broker(Broker, BrokerBuffer),
    /// Straight from a heap.
    Direct {
        /// The buffer.
        buffer: Buffer,
        /// Its heap.
        heap: String,
        /// Its dma-buf name, if it was given one.
        name: String,
    },
}

impl Allocated {
    /// Allocates `size` bytes as `source` says.
    pub fn new(size: u64, source: &SourceArgs) -> Result<Self> {
        let size = usize::try_from(size).context("the size does not fit this machine")?;
        if source.direct {
            let name = source.heap.as_deref().unwrap_or("rsheap");
            let heap = if source.uncached {
                Heap::open_uncached(name)
            } else {
                Heap::open(name)
            }?;
            let buffer = heap.allocate(size)?;
            let label = source.name.clone().unwrap_or_default();
            if !label.is_empty() {
                buffer.set_name(&label)?;
            }
            return Ok(Self::Direct {
                buffer,
                heap: heap.name().to_owned(),
                name: label,
            });
        }
        let broker = Broker::connect()?;
        let options = AllocationOptions {
            usage: source.usage.into(),
            cached: !source.uncached,
            heap: source.heap.clone(),
            debug_name: source.name.clone(),
        };
        let buffer = broker.allocate(size, &options)?;
        Ok(Self::Broker(broker, buffer))
    }

    /// The dma-buf.
    pub fn buffer(&self) -> &Buffer {
        match self {
            Self::Broker(_, buffer) => buffer.buffer(),
            Self::Direct { buffer, .. } => buffer,
        }
    }

    /// The heap it came from.
    pub fn heap(&self) -> &str {
        match self {
            Self::Broker(_, buffer) => buffer.heap(),
            Self::Direct { heap, .. } => heap,
        }
    }

    /// Its dma-buf name.
    pub fn name(&self) -> &str {
        match self {
            Self::Broker(_, buffer) => buffer.name(),
            Self::Direct { name, .. } => name,
        }
    }

    /// The broker's id, if the broker allocated it.
    pub fn id(&self) -> Option<i64> {
        match self {
            Self::Broker(_, buffer) => Some(buffer.id()),
            Self::Direct { .. } => None,
        }
    }

    /// Frees the buffer, telling the broker if it has one.
    pub fn free(self) -> Result<()> {
        if let Self::Broker(broker, buffer) = self {
            broker.free(buffer)?;
        }
        Ok(())
    }
}

/// `alloc`.
pub fn run(args: &AllocArgs) -> Result<()> {
    let start = Instant::now();
    let allocated = Allocated::new(args.size, &args.source)?;
    let took = start.elapsed();
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(["id", "name", "heap", "size", "took"]);
    table.add_row([
        allocated.id().map_or("-".to_owned(), |id| id.to_string()),
        allocated.name().to_owned(),
        allocated.heap().to_owned(),
        units::bytes(allocated.buffer().len() as u64),
        units::ms(took),
    ]);
    println!("{table}");
    if args.hold {
        println!("holding the buffer: press Enter to free it");
        // Enter, end of input or a read error all end the hold.
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    allocated.free()
}
