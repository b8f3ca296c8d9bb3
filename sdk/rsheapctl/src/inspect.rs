//! `heaps`, `ls`, `dump` and `stat`: what the system and the broker hold, as tables, or with
//! `--json` as JSON for scripts (sizes in bytes, no units).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use rsheap::{Broker, Heap, HEAP_DIR};
use serde_json::{json, Map, Value};

use crate::alloc::usage_name;
use crate::units;

/// rsheap.ko's counters, as one table.
const STATS: &str = "/sys/kernel/debug/rsheap/stats";
/// rsheap.ko's counters, one value per file.
const SYSFS_STATS: &str = "/sys/kernel/rsheap";

/// Prints `value` as indented JSON.
pub fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
    table
}

fn right(text: impl ToString) -> Cell {
    Cell::new(text.to_string()).set_alignment(CellAlignment::Right)
}

/// `heaps`.
pub fn heaps(json: bool) -> Result<()> {
    let names = rsheap::heap_names()?;
    if names.is_empty() {
        bail!("no dma-buf heaps in {HEAP_DIR}: is CONFIG_DMABUF_HEAPS on and rsheap.ko loaded?");
    }
    let mut out = table(&["heap", "cached", "device", "allocates"]);
    let mut rows = Vec::new();
    for name in names {
        let heap = Heap::open(&name);
        let cached = heap.as_ref().ok().map(Heap::is_cached);
        let works = heap.and_then(|heap| heap.allocate(4096)).map(drop);
        let device = format!("{HEAP_DIR}/{name}");
        rows.push(json!({
            "heap": name,
            "cached": cached,
            "device": device,
            "allocates": works.is_ok(),
            "error": works.as_ref().err().map(ToString::to_string),
        }));
        out.add_row([
            name,
            cached.map_or("?", yes_no).to_owned(),
            device,
            works.map_or_else(|err| err.to_string(), |()| "yes".to_owned()),
        ]);
    }
    if json {
        return print_json(&Value::Array(rows));
    }
    println!("{out}");
    Ok(())
}

fn yes_no(yes: bool) -> &'static str {
    if yes {
        "yes"
    } else {
        "no"
    }
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
pub fn ls(only: Option<u32>, json: bool) -> Result<()> {
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
    if json {
        let fds: Vec<Value> = fds
            .iter()
            .map(|fd| {
                json!({
                    "pid": fd.pid,
                    "process": fd.process,
                    "fd": fd.fd,
                    "size": fd.size,
                    "exporter": fd.exporter,
                    "name": fd.name,
                    "inode": fd.inode,
                })
            })
            .collect();
        return print_json(&json!({
            "fds": fds,
            "buffers": buffers.len(),
            "bytes": bytes,
        }));
    }
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

/// `dump`: the broker's own report, as tables or JSON.
pub fn dump(json: bool) -> Result<()> {
    let broker = Broker::connect()?;
    print!(
        "{}",
        if json {
            broker.dump_json()?
        } else {
            broker.dump()?
        }
    );
    Ok(())
}

/// `stat --json`: rsheap.ko's counters from sysfs, as nested objects of numbers, and the
/// broker's heaps; either is `{"error": ...}` where it cannot be read.
fn stat_json() -> Result<()> {
    let kernel = sysfs_tree(Path::new(SYSFS_STATS))
        .unwrap_or_else(|err| json!({ "error": format!("{SYSFS_STATS}: {err}") }));
    let broker = match Broker::connect().and_then(|broker| broker.heaps()) {
        Ok(heaps) => Value::Array(
            heaps
                .iter()
                .map(|heap| {
                    let usages: Vec<String> = heap.usages.iter().copied().map(usage_name).collect();
                    json!({
                        "heap": heap.name,
                        "cached": heap.cached,
                        "first_for": usages,
                        "buffers": heap.buffers,
                        "bytes": heap.bytes,
                        "allocations": heap.allocations,
                        "failures": heap.failures,
                    })
                })
                .collect(),
        ),
        Err(err) => json!({ "error": err.to_string() }),
    };
    print_json(&json!({ "kernel": kernel, "broker": broker }))
}

/// A sysfs folder as an object: a folder per subfolder, a number (or else the text) per file.
fn sysfs_tree(dir: &Path) -> std::io::Result<Value> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut object = Map::new();
    for entry in entries {
        let path = entry.path();
        let value = if path.is_dir() {
            sysfs_tree(&path)?
        } else {
            let text = std::fs::read_to_string(&path)?;
            let text = text.trim();
            text.parse::<u64>()
                .map_or_else(|_| Value::from(text), Value::from)
        };
        object.insert(entry.file_name().to_string_lossy().into_owned(), value);
    }
    Ok(Value::Object(object))
}

/// `stat`.
pub fn stat(json: bool) -> Result<()> {
    if json {
        return stat_json();
    }
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
            Cell::new(yes_no(heap.cached)),
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
