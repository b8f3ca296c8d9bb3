//! `rsheapctl`: rsheap from the command line.
//!
//! For the people who bring up and debug camera and NPU pipelines: which heaps a device has,
//! what a buffer costs, how fast a file loads into one, who holds which dma-buf, what the
//! broker accounts, and how rsheap compares with the other heaps, each in one command.

// Devices build Rust with `-C panic=abort`, and so does this workspace: a panic ends the
// process. No input may reach one, so the operations that can panic are refused here.
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unwrap_used
    )
)]

mod alloc;
mod bench;
mod inspect;
mod plot;
mod progress;
mod transfer;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit codes a script can act on (clap exits with 2 for usage errors).
const EXIT_FAILED: u8 = 1;
const EXIT_UNREACHABLE: u8 = 3;

#[derive(Parser)]
#[command(
    version,
    about = "Inspect and exercise rsheap's dma-buf heaps and its broker, rsheapd",
    after_help = "Exit status: 0 done, 1 the operation failed, 2 bad arguments, \
                  3 rsheapd unreachable."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the dma-buf heaps on this system and whether each allocates.
    Heaps {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Allocate a buffer through rsheapd (or straight from a heap) and show it.
    Alloc(alloc::AllocArgs),
    /// Load a file into a new buffer, with a progress bar, and report the throughput.
    Load(transfer::LoadArgs),
    /// Write a buffer of rsheap's heap to a file, with a progress bar.
    Store(transfer::StoreArgs),
    /// List every dma-buf the processes on this system hold (needs root for other users').
    Ls {
        /// Only this process's buffers.
        #[arg(long)]
        pid: Option<u32>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show rsheapd's heaps, clients and buffers (root, system and shell only).
    Dump {
        /// Print rsheapd's report as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Show rsheap.ko's buffer and pool counters and rsheapd's per-heap accounting.
    Stat {
        /// Print JSON (rsheap.ko's counters from sysfs, rsheapd's heaps) instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Allocate, map, fill, verify and free buffers on heaps side by side.
    Bench {
        /// Heaps to compare; the first is the one the ratios speak of.
        #[arg(long, value_delimiter = ',', default_value = "rsheap,system")]
        heaps: Vec<String>,
        /// Buffer sizes (binary units: 4K, 1M, 2G).
        #[arg(long, value_delimiter = ',', default_value = "1M,8M,32M", value_parser = units::parse_size)]
        sizes: Vec<u64>,
        /// Runs per heap and size; medians are reported.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
        runs: u32,
        /// Also draw the speed-ups into this SVG file.
        #[arg(long, value_name = "FILE.svg")]
        plot: Option<PathBuf>,
        /// Print JSON (medians in milliseconds, and the speed-ups) instead of tables.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Heaps { json } => inspect::heaps(json),
        Command::Alloc(args) => alloc::run(&args),
        Command::Load(args) => transfer::load(&args),
        Command::Store(args) => transfer::store(&args),
        Command::Ls { pid, json } => inspect::ls(pid, json),
        Command::Dump { json } => inspect::dump(json),
        Command::Stat { json } => inspect::stat(json),
        Command::Bench {
            heaps,
            sizes,
            runs,
            plot,
            json,
        } => bench::run(&heaps, &sizes, runs, plot.as_deref(), json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rsheapctl: {err:#}");
            let unreachable = err
                .chain()
                .any(|cause| matches!(cause.downcast_ref(), Some(rsheap::Error::Unreachable(_))));
            if let Some(hint) = hint(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(if unreachable {
                EXIT_UNREACHABLE
            } else {
                EXIT_FAILED
            })
        }
    }
}

/// What a person can do about an error, where the error alone does not say.
fn hint(err: &anyhow::Error) -> Option<&'static str> {
    use nix::errno::Errno;
    use rsheap::{BrokerErrorCode, Error};
    let cause = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<Error>())?;
    Some(match cause {
        Error::Unreachable(_) => {
            "is rsheapd running? `--direct` allocates from the heap without it"
        }
        Error::Broker {
            code: BrokerErrorCode::QuotaExceeded,
            ..
        } => "free buffers this uid holds, or raise its quota in rsheapd.toml",
        Error::Broker {
            code: BrokerErrorCode::Unsupported,
            ..
        } => {
            "`rsheapctl heaps` lists the heaps there are; rsheapd serves those in its rsheapd.toml"
        }
        Error::Os {
            errno: Errno::ENOENT,
            what,
        } if what.contains("/dev/dma_heap") => {
            "`rsheapctl heaps` lists the heaps there are; is rsheap.ko loaded?"
        }
        Error::Os {
            errno: Errno::ENOENT,
            what,
        } if what.contains("/dev/rsheap") => "is rsheap.ko loaded?",
        Error::Os {
            errno: Errno::EACCES | Errno::EPERM,
            ..
        } => "run as root, or as a user the device's permissions admit",
        Error::Os {
            errno: Errno::EXDEV,
            ..
        } => "file transfers take buffers of rsheap's heaps only",
        _ => return None,
    })
}
