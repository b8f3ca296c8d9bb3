//! `heaps`, `ls`, `dump` and `stat`: what the system and the broker hold, as tables.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use rsheap::{Broker, Heap, HEAP_DIR};

use crate::alloc::usage_name;
use crate::units;

/// rsheap.ko's counters.
const STATS: &str = "/sys/kernel/debug/rsheap/stats";

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    table
}

fn right(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

/// `heaps`.
pub fn heaps() -> Result<()> {
    let names = rsheap::heap_names()?;
    if names.is_empty() {
        bail!("no dma-buf heaps in {HEAP_DIR}: is CONFIG_DMABUF_HEAPS on and rsheap.ko loaded?");
    }
    let mut out = table(&["heap", "cached", "device", "allocates"]);
    for name in names {
        let heap = Heap::open(&name);
        let cached = heap
            .as_ref()
            .map_or("?", |heap| if heap.is_cached() { "yes" } else { "no" });
        let works = heap
            .and_then(|heap| heap.allocate(4096))
            .map_or_else(|err| err.to_string(), |_| "yes".to_owned());
        out.add_row([
            name.clone(),
            cached.to_owned(),
            format!("{HEAP_DIR}/{name}"),
            works,
        ]);
    }
    println!("{out}");
    Ok(())
}

/// One open dma-buf file descriptor, from `/proc/<pid>/fdinfo/<fd>`.
struct DmaBufFd {
    pid: u32,
    process: String,
    fd: u32,
    size: u64,
    exporter: String,
    name: String,
    inode: u64,
}

/// `ls`.
pub fn ls(only: Option<u32>) -> Result<()> {
    let mut fds = Vec::new();
    let processes = std::fs::read_dir("/proc").context("list /proc")?;
    for entry in processes.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if only.is_some_and(|only| only != pid) {
            continue;
        }
        // Processes come and go, and other users' are closed to non-root: skip what fails.
        let _ = dma_buf_fds(pid, &entry.path(), &mut fds);
    }
    fds.sort_by_key(|fd| (fd.pid, fd.fd));
    let mut out = table(&["pid", "process", "fd", "size", "exporter", "name", "inode"]);
    for fd in &fds {
        out.add_row([
            right(fd.pid),
            Cell::new(&fd.process),
            right(fd.fd),
            right(units::bytes(fd.size)),
            Cell::new(&fd.exporter),
            Cell::new(&fd.name),
            right(fd.inode),
        ]);
    }
    let buffers: BTreeSet<u64> = fds.iter().map(|fd| fd.inode).collect();
    let bytes: u64 = fds
        .iter()
        .map(|fd| (fd.inode, fd.size))
        .collect::<BTreeSet<_>>()
        .iter()
        .map(|(_, size)| size)
        .sum();
    if !fds.is_empty() {
        println!("{out}");
    }
    println!(
        "{} dma-buf file descriptors, {} distinct buffers, {}",
        fds.len(),
        buffers.len(),
        units::bytes(bytes)
    );
    Ok(())
}

/// Adds the dma-buf descriptors of process `pid` to `fds`.
fn dma_buf_fds(pid: u32, dir: &Path, fds: &mut Vec<DmaBufFd>) -> std::io::Result<()> {
    let process = std::fs::read_to_string(dir.join("comm"))?.trim().to_owned();
    for entry in std::fs::read_dir(dir.join("fdinfo"))?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |key: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|value| value.trim().to_owned())
        };
        let Some(exporter) = field("exp_name:") else {
            continue;
        };
        fds.push(DmaBufFd {
            pid,
            process: process.clone(),
            fd,
            size: field("size:").and_then(|s| s.parse().ok()).unwrap_or(0),
            exporter,
            name: field("name:").unwrap_or_default(),
            inode: field("ino:").and_then(|s| s.parse().ok()).unwrap_or(0),
        });
    }
    Ok(())
}

/// `dump`.
pub fn dump() -> Result<()> {
    print!("{}", Broker::connect()?.dump()?);
    Ok(())
}

/// `stat`.
pub fn stat() -> Result<()> {
    println!("rsheap.ko ({STATS}):");
    match std::fs::read_to_string(STATS) {
        Ok(text) => {
            for line in text.lines() {
                println!("  {line}");
            }
        }
        Err(err) => println!("  not readable ({err}): needs root, debugfs and rsheap.ko"),
    }
    println!("\nrsheapd:");
    let heaps = match Broker::connect().and_then(|broker| broker.heaps()) {
        Ok(heaps) => heaps,
        Err(err) => {
            println!("  {err}");
            return Ok(());
        }
    };
    let mut out = table(&[
        "heap",
        "cached",
        "first for",
        "buffers",
        "held",
        "allocations",
        "failures",
    ]);
    for heap in heaps {
        let usages: Vec<String> = heap.usages.iter().copied().map(usage_name).collect();
        out.add_row([
            Cell::new(&heap.name),
            Cell::new(if heap.cached { "yes" } else { "no" }),
            Cell::new(usages.join(", ")),
            right(heap.buffers),
            right(units::bytes(heap.bytes.max(0) as u64)),
            right(heap.allocations),
            right(heap.failures),
        ]);
    }
    println!("{out}");
    Ok(())
}
