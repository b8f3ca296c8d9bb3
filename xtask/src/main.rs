//! `cargo xtask`: the one entry point for setting up, demonstrating and testing rsheap.
//!
//! Every command first runs [`setup`], which installs what a fresh machine lacks and builds
//! the test kernel once into a cache outside the checkout, so `demo` and `test` work from a
//! fresh clone with nothing else done by hand.

mod aidl_api;
mod android;
mod arm64;
mod bench;
mod capi;
mod demo;
mod guest;
mod java;
mod kernel;
mod kmi;
mod kmod;
mod progress;
mod setup;
mod tally;
mod test;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Set up, demonstrate and test rsheap")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install missing packages and tools, and build the test kernel if it is not cached.
    Setup,
    /// Boot the test kernel, load rsheap.ko and show it working beside the in-tree heap.
    Demo,
    /// Run every test: formatting, lints, host unit tests and the emulator suites.
    Test {
        /// Only the emulator suite of this name (for example `transfer`), without the
        /// kernel selftest.
        #[arg(long)]
        suite: Option<String>,
    },
    /// Rewrite the `current` API dump of vendor.rsheap from the AIDL sources.
    AidlUpdate,
    /// Freeze the AIDL sources as the next version of vendor.rsheap.
    AidlFreeze,
    /// Check the vendor-tree files (Android.bp, AIDL, VINTF, init, SELinux, tests) offline;
    /// `test` runs these checks too.
    AndroidCheck,
    /// Build rsheap.ko for arm64 GKI and check its imports against the android16-6.12 KMI
    /// (`RSHEAP_KMI` names another symbol list) and its entry points against kCFI.
    Kmi {
        /// Record the module's imports in tests/kernel/rsheap-aarch64.imports.
        #[arg(long)]
        record: bool,
    },
    /// Benchmark rsheap beside the in-tree system heap, udmabuf and the raw limit.
    Bench {
        /// Timed runs per workload and variant; medians are reported.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Only workloads whose name contains this, or one of its `|`-separated parts (and
        /// leave README.md alone).
        #[arg(long)]
        only: Option<String>,
        /// Report earlier results (a `bench.jsonl` from the guest) instead of running.
        #[arg(long)]
        from: Option<std::path::PathBuf>,
        /// Run in the arm64 guest (16 KiB pages) and only print and plot the results; without
        /// `--only`, the allocation and mmap workloads.
        #[arg(long)]
        arm64: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::run().map(drop),
        Command::Demo => demo::run(),
        Command::AidlUpdate => aidl_api::update(&setup::workspace_root()?),
        Command::AidlFreeze => aidl_api::freeze(&setup::workspace_root()?),
        Command::Test { suite } => test::run(suite.as_deref()),
        Command::AndroidCheck => android::run(),
        Command::Kmi { record } => kmi::run(record),
        Command::Bench {
            runs,
            only,
            from,
            arm64,
        } => bench::run(runs, only.as_deref(), from.as_deref(), arm64),
    }
}
