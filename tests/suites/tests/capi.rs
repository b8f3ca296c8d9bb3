//! The C API (`sdk/capi`) as C and C++ HALs use it: the rig builds the C test program
//! (`sdk/capi/tests/capi_test.c`) and the C++ example (`sdk/capi/examples/camera_npu.cpp`)
//! against `<rsheap/rsheap.h>` with `-Wall -Wextra -Werror`, and these tests run them against
//! a real rsheapd and the real heaps.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rsheap_suites::broker::{eventually, heap_buffers, Daemon, SHIPPED_CONFIG};
use rsheap_suites::{scratch_path, write_random_file};

const MIB: u64 = 1 << 20;

/// A program the rig built, from the folder `$RSHEAP_CAPI` names.
fn program(name: &str) -> Command {
    let dir = std::env::var_os("RSHEAP_CAPI").expect("$RSHEAP_CAPI names the C programs");
    Command::new(Path::new(&dir).join(name))
}

/// Runs `command`; whether it succeeded, and what it printed.
fn run(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("run the program");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs one case of the C test program, which checks everything itself.
fn c_case(args: &[&str]) -> String {
    let (ok, text) = run(program("capi_test").args(args));
    assert!(ok, "capi_test {args:?}:\n{text}");
    assert!(text.contains(&format!("ok {}", args[0])), "{text}");
    text
}

/// The 64-bit FNV-1a hash the C programs print.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The hash printed after `marker` in `text`.
fn printed_hash(text: &str, marker: &str) -> u64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"));
    let hex: String = text[at + marker.len()..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    u64::from_str_radix(&hex, 16).expect("a hash")
}

#[test]
fn c_allocates_maps_writes_reads_lists_and_frees() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    c_case(&["broker"]);
}

#[test]
fn c_loads_a_file_with_progress_and_the_hash_matches() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let path = scratch_path("capi-load.bin");
    let len = 24 * MIB + 77;
    write_random_file(&path, len, 20);
    let text = c_case(&[
        "load",
        path.to_str().expect("a UTF-8 path"),
        &len.to_string(),
    ]);
    let expected = fnv1a(&std::fs::read(&path).expect("read the file"));
    assert_eq!(printed_hash(&text, "hash "), expected, "{text}");
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn c_cancels_a_load_from_its_progress_callback() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    // A hole of 1 GiB: the first report comes long before the end.
    let path = scratch_path("capi-cancel.bin");
    std::fs::File::create(&path)
        .and_then(|file| file.set_len(1 << 30))
        .expect("make a sparse file");
    let text = c_case(&["cancel", path.to_str().expect("a UTF-8 path")]);
    assert!(text.contains("cancelled: "), "{text}");
    std::fs::remove_file(&path).expect("remove");
}

#[test]
fn c_error_paths_return_the_documented_errnos() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    c_case(&["errors"]);
}

#[test]
fn c_opens_heaps_directly_with_the_uncached_fallback() {
    c_case(&["direct"]);
}

#[test]
fn the_broker_frees_what_a_c_client_that_dies_held() {
    let (_daemon, broker) = Daemon::start(SHIPPED_CONFIG);
    let (before, _) = heap_buffers(&broker, "rsheap");
    let mut child = program("capi_test")
        .args(["hold", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start capi_test");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read capi_test");
    assert_eq!(line.trim(), "held 3");
    assert_eq!(heap_buffers(&broker, "rsheap").0, before + 3);
    child.kill().expect("kill capi_test");
    child.wait().expect("reap capi_test");
    eventually(10, "the broker freeing a dead client's buffers", || {
        heap_buffers(&broker, "rsheap").0 == before
    });
}

#[test]
fn the_cpp_example_fills_frames_and_loads_a_model() {
    let (_daemon, _) = Daemon::start(SHIPPED_CONFIG);
    let path = scratch_path("capi-model.bin");
    write_random_file(&path, 8 * MIB + 5, 21);
    let (ok, text) = run(program("camera_npu").arg("40").arg(&path));
    assert!(ok, "{text}");
    assert!(
        text.contains("ring of 4 1920x1080 NV12 frames") && text.contains("first camera-"),
        "{text}"
    );
    assert!(text.contains("40 frames produced and checked"), "{text}");
    assert!(text.contains("loading: 100%"), "{text}");
    let expected = fnv1a(&std::fs::read(&path).expect("read the model"));
    assert!(
        text.contains(&format!("model loaded: {} bytes", 8 * MIB + 5)),
        "{text}"
    );
    assert_eq!(printed_hash(&text, ", hash "), expected, "{text}");
    std::fs::remove_file(&path).expect("remove");
}
