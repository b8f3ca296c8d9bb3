//! `cargo xtask bench`: the benchmark workloads of `tests/bench` in one boot of the benchmark
//! kernel ([`kernel::X86_64_BENCH`]: the test kernel without its checkers), side by side on
//! rsheap, the in-tree system heap, udmabuf and the raw limit.
//!
//! Prints medians and ratios, draws `docs/bench.png`, and rewrites the results section of
//! README.md between its `bench:begin`/`bench:end` markers. With `--arm64` the workloads run
//! in the arm64 guest (16 KiB pages, kCFI, base-page faults only: see [`crate::arm64`]) and
//! are only printed and plotted, to `target/bench-arm64.png`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde::Deserialize;

use crate::arm64::{self, Arm64};
use crate::guest::{self, Echo};
use crate::{kernel, kmod, setup, test};

mod family;
mod plot;

/// The variant every ratio is taken against.
const BASELINE: &str = "system heap";
/// What the results section names as the command that produced it.
const COMMAND: &str = "cargo xtask bench";

#[derive(Deserialize)]
struct Sample {
    workload: String,
    variant: String,
    nanos: Vec<u64>,
    /// Bytes each run moves, for workloads measured as throughput.
    bytes: Option<u64>,
    /// Operations each run makes, for workloads measured as a rate.
    ops: Option<u64>,
}

/// One workload's median times in milliseconds, per variant.
struct Workload {
    name: String,
    /// Bytes each run moves, if the workload is measured as throughput.
    bytes: Option<u64>,
    /// Operations each run makes, if the workload is measured as a rate.
    ops: Option<u64>,
    medians: BTreeMap<String, f64>,
}

impl Workload {
    /// A median as text: milliseconds, and MB/s or operations per second where they apply.
    fn median_text(&self, ms: f64) -> String {
        match (self.bytes, self.ops) {
            (Some(bytes), _) => {
                format!("{ms:.2} ms ({:.0} MB/s)", bytes as f64 / 1e6 / (ms / 1e3))
            }
            (None, Some(ops)) => format!("{ms:.2} ms ({:.0}/s)", ops as f64 / (ms / 1e3)),
            (None, None) => format!("{ms:.2} ms"),
        }
    }
}

/// Medians per workload, in the order the workloads ran.
struct Results {
    workloads: Vec<Workload>,
}

pub fn run(runs: usize, only: Option<&str>, from: Option<&Path>, on_arm64: bool) -> Result<()> {
    if let Some(results) = from {
        let results = Results::parse(&std::fs::read_to_string(results)?)?;
        return results.report(&setup::workspace_root()?, runs, only.is_none());
    }
    if on_arm64 {
        return run_arm64(&setup::run()?, runs, only);
    }
    let env = setup::run_for(&kernel::X86_64_BENCH)?;
    let (rsheap, _) = kmod::build(&env, &kmod::RSHEAP)?;
    let (probe, _) = kmod::build(&env, &kmod::VMAP_PROBE)?;
    let bench = env.build_release("rsheap-bench", "rsheap-bench")?;
    let rsheapd = env.build_release("rsheap-broker", "rsheapd")?;
    let filter = only
        .map(|only| format!(" --only '{only}'"))
        .unwrap_or_default();
    // udmabuf refuses buffers over 64 MiB unless its size limit is raised. The broker
    // workloads need the service manager and rsheapd with the shipped configuration.
    let script = format!(
        "insmod {} && insmod {} || exit 1\n\
         echo 4096 > /sys/module/udmabuf/parameters/size_limit_mb\n\
         {}\
         $RSHEAPD --config {} 2> rsheapd.log &\n\
         {} --runs {runs}{filter} > bench.jsonl\n",
        rsheap.display(),
        probe.display(),
        test::binder_script(&env.binder_tools, &rsheapd),
        env.root.join("service/rsheapd.toml").display(),
        bench.display()
    );
    println!(
        "\nbenchmarks: {runs} runs each, one boot of the benchmark kernel {}",
        env.kernel.release
    );
    let run = guest::run(
        &env,
        "bench",
        &script,
        Duration::from_secs(60 * 60),
        Echo::Spinner,
    )?;
    run.ensure_clean("benchmark")?;
    let results = Results::parse(&run.read("bench.jsonl"))?;
    println!("results: {}", run.dir.join("bench.jsonl").display());
    results.report(&env.root, runs, only.is_none())
}

/// The workloads that need neither udmabuf's limit nor the broker, in the arm64 guest.
fn run_arm64(env: &setup::Env, runs: usize, only: Option<&str>) -> Result<()> {
    let arm = Arm64::ensure(env)?;
    let flavour = crate::kernel::ARM64.name;
    let (rsheap, _) = kmod::build_against(env, &arm.kernel, flavour, &kmod::RSHEAP)?;
    let (probe, _) = kmod::build_against(env, &arm.kernel, flavour, &kmod::VMAP_PROBE)?;
    let status = arm64::cargo(env)
        .args(["build", "--release", "--quiet", "--target", arm64::TARGET])
        .args(["--package", "rsheap-bench"])
        .status()
        .context("build rsheap-bench for arm64")?;
    if !status.success() {
        bail!("building rsheap-bench for arm64 failed");
    }
    let bench = arm64::target_dir(env)
        .join(arm64::TARGET)
        .join("release/rsheap-bench");
    let only = only.unwrap_or("alloc+free|mmap");
    let script = format!(
        "insmod ./rsheap.ko && insmod ./rsheap_vmap_probe.ko || exit 1\n\
         echo 4096 > /sys/module/udmabuf/parameters/size_limit_mb\n\
         ./rsheap-bench --runs {runs} --only '{only}' > bench.jsonl\n"
    );
    println!(
        "\nbenchmarks on arm64 (16 KiB pages): {runs} runs each, one boot of kernel {}",
        arm.kernel.release
    );
    let machine = arm.machine(&[&rsheap, &probe, &bench]);
    let run = guest::run_on(
        env,
        &machine,
        "bench-arm64",
        &script,
        Duration::from_secs(60 * 60),
        Echo::Spinner,
    )?;
    run.ensure_clean("arm64 benchmark")?;
    let results = Results::parse(&run.read("bench.jsonl"))?;
    println!("results: {}", run.dir.join("bench.jsonl").display());
    results.print_and_plot(runs, &env.target().join("bench-arm64.png"))
}

impl Results {
    /// Prints the table, draws the plot and, for a full run, updates README.md.
    fn report(&self, root: &Path, runs: usize, full: bool) -> Result<()> {
        // A partial run must not replace the plot README.md shows.
        let plot = if full {
            root.join("docs/bench.png")
        } else {
            root.join("target/bench-partial.png")
        };
        self.print_and_plot(runs, &plot)?;
        if full {
            update_readme(&root.join("README.md"), &self.markdown(runs))?;
            println!("README.md: results section updated");
        }
        Ok(())
    }

    /// Prints the table of medians and draws the plot into `plot`.
    fn print_and_plot(&self, runs: usize, plot: &Path) -> Result<()> {
        let table = self.table();
        println!("\nmedian of {runs} runs; speed-up = {BASELINE} time / this time\n{table}");
        self.plot(plot)?;
        println!("plot: {}", plot.display());
        Ok(())
    }

    fn parse(jsonl: &str) -> Result<Self> {
        let mut workloads: Vec<Workload> = Vec::new();
        for line in jsonl.lines().filter(|line| !line.trim().is_empty()) {
            let sample: Sample =
                serde_json::from_str(line).with_context(|| format!("bad result line {line:?}"))?;
            let mut nanos = sample.nanos;
            nanos.sort_unstable();
            let median = *nanos
                .get(nanos.len() / 2)
                .context("a workload with no samples")? as f64
                / 1e6;
            match workloads
                .iter_mut()
                .find(|workload| workload.name == sample.workload)
            {
                Some(workload) => {
                    workload.medians.insert(sample.variant, median);
                }
                None => workloads.push(Workload {
                    name: sample.workload,
                    bytes: sample.bytes,
                    ops: sample.ops,
                    medians: BTreeMap::from([(sample.variant, median)]),
                }),
            }
        }
        if workloads.is_empty() {
            bail!("the benchmark produced no results");
        }
        Ok(Self { workloads })
    }

    /// `baseline / time`: above 1 means faster than the baseline.
    fn speedup(variants: &BTreeMap<String, f64>, variant: &str, baseline: &str) -> Option<f64> {
        Some(variants.get(baseline)? / variants.get(variant)?)
    }

    fn rows(&self) -> Vec<[String; 5]> {
        let mut rows = Vec::new();
        for workload in &self.workloads {
            let variants = &workload.medians;
            for (variant, ms) in variants {
                let vs = |baseline: &str| {
                    Self::speedup(variants, variant, baseline)
                        .filter(|_| variant != baseline)
                        .map_or_else(String::new, |x| format!("{x:.2}x"))
                };
                let limit = variants
                    .iter()
                    .find(|(name, _)| name.starts_with("limit"))
                    .filter(|(name, _)| *name != variant)
                    .map_or_else(String::new, |(_, limit)| {
                        format!("{:.0}%", 100.0 * limit / ms)
                    });
                rows.push([
                    workload.name.clone(),
                    variant.clone(),
                    workload.median_text(*ms),
                    vs(BASELINE),
                    limit,
                ]);
            }
        }
        rows
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "workload",
            "variant",
            "median",
            "speed-up vs system",
            "of limit",
        ]);
        for row in self.rows() {
            table.add_row(row);
        }
        table
    }

    fn markdown(&self, runs: usize) -> String {
        let mut text = format!(
            "Produced by `{COMMAND}` (one boot of the benchmark kernel under QEMU/TCG, median of {runs} runs; \
             the benchmark kernel is the test kernel's source configured without its checkers, \
             Rust debug assertions or overflow checks: `tests/kernel/bench.config`). \
             Speed-up is the in-tree system heap's median time divided by the variant's; \
             \"of limit\" is the raw limit's time as a share of the variant's. \
             In the file workloads the system heap is filled by `read()` into its mapping, \
             through the page cache: the buffered path.\n\n\
             rsheap's speed-up at each size, losses in bold:\n\n{}\
             Every workload and variant:\n\n\
             | workload | variant | median | speed-up vs system | of limit |\n| --- | --- | ---: | ---: | ---: |\n",
            self.size_tables()
        );
        for [workload, variant, median, speedup, limit] in self.rows() {
            let _ = writeln!(
                text,
                "| {workload} | {variant} | {median} | {speedup} | {limit} |"
            );
        }
        text + "\n![rsheap benchmark: speed-up over the in-tree system heap](docs/bench.png)\n"
    }
}

/// Replaces the text between the README's bench markers.
fn update_readme(readme: &Path, section: &str) -> Result<()> {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let text = std::fs::read_to_string(readme)?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        bail!("README.md has no {BEGIN} ... {END} section");
    };
    let updated = format!("{}{BEGIN}\n{section}{}", &text[..begin], &text[end..]);
    std::fs::write(readme, updated)?;
    Ok(())
}
