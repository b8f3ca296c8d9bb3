//! `rsheapctl`'s output and exit status for every subcommand, good arguments and bad, against
//! the real heaps and a real rsheapd: golden transcripts under `cli/`, where `[..]` stands for
//! what changes from run to run (ids, pids, times), `...` for lines that do, and `[PAGE]` for
//! the size of one page.
//!
//! The rig names the binary in `$RSHEAPCTL`. In the guest, `TRYCMD=dump` writes what each
//! command printed under the run folder's `dump/`, to start a new transcript from.

use std::path::PathBuf;
use std::time::Duration;

use rsheap::Heap;
use rsheap_suites::broker::{Daemon, SHIPPED_CONFIG};
use rsheap_suites::scratch_path;

const MIB: u64 = 1 << 20;

fn rsheapctl() -> PathBuf {
    std::env::var_os("RSHEAPCTL")
        .expect("$RSHEAPCTL names the rsheapctl binary")
        .into()
}

fn transcripts(glob: &str) -> trycmd::TestCases {
    // The transcripts inspect system-wide state: one at a time.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let cases = trycmd::TestCases::new();
    // A buffer of one page, as rsheapctl prints its size.
    let page = format!("{:.1} KiB", rsheap_suites::page_size() as f64 / 1024.0);
    cases
        .insert_var("[PAGE]", page)
        .expect("[PAGE] is a valid redaction");
    cases
        .register_bin("rsheapctl", rsheapctl())
        .timeout(Duration::from_secs(300))
        .case(format!("{}/tests/cli/{glob}", env!("CARGO_MANIFEST_DIR")));
    cases
}

/// Writes `len` bytes where byte `i` is `i % 251`: content whose checksum the transcripts
/// can state.
fn write_known_file(name: &str, len: u64) -> PathBuf {
    let path = scratch_path(name);
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, bytes).expect("write the file");
    path
}

#[test]
fn every_subcommand_with_rsheapd_running() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    write_known_file("cli-weights.bin", 24 * MIB + 77);
    std::fs::create_dir_all(scratch_path("cli-dir")).expect("mkdir");
    // A buffer this process holds, for `ls` to find.
    let heap = Heap::open("rsheap").expect("open rsheap");
    let held = heap.allocate(2 * MIB as usize).expect("allocate");
    held.set_name("cli-held").expect("name");
    transcripts("with-broker/*.trycmd").run();
    drop(held);

    // The stored file holds what the buffer held: the load transcript's content, or the
    // pattern `store` fills with.
    let stored = std::fs::read(scratch_path("cli-copy.bin")).expect("read the stored copy");
    let original = std::fs::read(scratch_path("cli-weights.bin")).expect("read the original");
    assert_eq!(stored.len() as u64, 8 * MIB);
    assert!(stored == original[..8 * MIB as usize], "the copy differs");
    let pattern = std::fs::read(scratch_path("cli-pattern.bin")).expect("read the pattern");
    assert!(pattern
        .iter()
        .enumerate()
        .all(|(at, &byte)| byte == (at / 4096) as u8));
    // The plot is an SVG chart with its caption and a bar label per stage.
    let plot = std::fs::read_to_string(scratch_path("cli-bench.svg")).expect("read the plot");
    assert!(
        plot.starts_with("<svg"),
        "not an SVG: {}",
        &plot[..plot.len().min(80)]
    );
    assert!(plot.contains("rsheap speed-up"), "no caption");
    for stage in ["allocate", "mmap", "fill", "free"] {
        assert!(
            plot.contains(&format!("1.0 MiB vs system: {stage}")),
            "no {stage} bar"
        );
    }
}

#[test]
fn without_rsheapd_broker_commands_exit_3_and_direct_ones_work() {
    transcripts("without-broker/*.trycmd").run();
}
