//! Progress display for long steps: a spinner with the step's latest output line.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// How often a step without a terminal reports that it is still going.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// A spinner for a step that takes a while.
pub fn spinner(message: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix} {wide_msg}")
            .expect("static template"),
    );
    bar.set_prefix(message.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `command` behind a spinner that shows its latest output line, logging all output to
/// `log`. Fails with the log's tail if the command fails.
pub fn run_logged(what: &str, command: &mut Command, log: &Path) -> Result<Duration> {
    let start = Instant::now();
    let bar = spinner(what);
    let mut file =
        std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {what}"))?;
    let stderr = child.stderr.take().expect("piped");
    let err_thread = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut lines = 0u64;
    // Without a terminal (CI logs) the spinner is hidden: print a line a minute instead.
    let mut next_report = Instant::now() + REPORT_EVERY;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        lines += 1;
        writeln!(file, "{line}")?;
        bar.set_message(format!("{lines:>6} | {}", line.trim()));
        if bar.is_hidden() && Instant::now() > next_report {
            println!(
                "  {what}: {} so far, {lines} lines | {}",
                human_duration(start.elapsed()),
                line.trim()
            );
            next_report += REPORT_EVERY;
        }
    }
    let stderr_lines = err_thread.join().unwrap_or_default();
    for line in &stderr_lines {
        writeln!(file, "{line}")?;
    }
    let status = child.wait()?;
    bar.finish_and_clear();
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    let took = start.elapsed();
    println!("  {what}: done in {}", human_duration(took));
    Ok(took)
}

/// A duration as a person reads it: `42.1 s` or `12 min 03 s`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
