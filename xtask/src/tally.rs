//! Counting test results across host checks, libtest binaries, the kernel selftest and the
//! dmesg gate, and the closing `N passed, N failed` line.

use std::process::Command;

/// Passed and failed tests, with the names of the failures.
#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Records one check.
    pub fn record(&mut self, name: &str, ok: bool, detail: &str) {
        if ok {
            self.passed += 1;
            println!("  ok    {name}");
        } else {
            self.failed += 1;
            println!("  FAIL  {name}");
            if !detail.is_empty() {
                for line in detail.lines().take(60) {
                    println!("        {line}");
                }
            }
            self.failures.push(name.to_owned());
        }
    }

    /// Runs `command` as one check that passes when it exits successfully.
    pub fn check_command(&mut self, name: &str, command: &mut Command) {
        match command.output() {
            Ok(out) => {
                let detail = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                self.record(name, out.status.success(), &detail);
            }
            Err(err) => self.record(name, false, &format!("could not run: {err}")),
        }
    }

    /// Adds the results of libtest output (`test result: ok. 3 passed; 0 failed; ...`), naming
    /// each failed test, also one whose own output came between its name and its `FAILED`.
    /// Returns whether any summary was found.
    pub fn add_libtest(&mut self, suite: &str, output: &str) -> bool {
        let mut found = false;
        // The test whose verdict has not been printed yet.
        let mut running: Option<&str> = None;
        for line in output.lines() {
            if let Some((name, rest)) = line
                .strip_prefix("test ")
                .and_then(|line| line.split_once(" ... "))
            {
                // `rest` is the verdict, or the start of the test's own output.
                running = (!rest.starts_with("ok") && !rest.starts_with("ignored")).then_some(name);
            }
            if line.ends_with("FAILED") && !line.starts_with("test result: ") {
                if let Some(name) = running.take() {
                    self.failures.push(format!("{suite}: {name}"));
                }
            }
            let Some(summary) = line.strip_prefix("test result: ") else {
                continue;
            };
            found = true;
            self.passed += count(summary, " passed");
            self.failed += count(summary, " failed");
            self.skipped += count(summary, " ignored");
        }
        found
    }

    /// Adds the results of TAP output (`ok 3 ...`, `not ok 4 ...`), prefixing names with the
    /// heap each `# Testing heap: NAME` line announces.
    pub fn add_kselftest(&mut self, output: &str) -> Vec<(String, usize, usize)> {
        let mut per_heap: Vec<(String, usize, usize)> = Vec::new();
        for line in output.lines() {
            if let Some(heap) = line.strip_prefix("# Testing heap: ") {
                per_heap.push((heap.trim().to_owned(), 0, 0));
                continue;
            }
            let (ok, rest) = if let Some(rest) = line.strip_prefix("not ok ") {
                (false, rest)
            } else if let Some(rest) = line.strip_prefix("ok ") {
                (true, rest)
            } else {
                continue;
            };
            let heap = per_heap
                .last()
                .map_or("?", |(heap, _, _)| heap.as_str())
                .to_owned();
            if rest.contains("# SKIP") {
                self.skipped += 1;
                self.failures
                    .push(format!("selftest[{heap}] skipped: {rest}"));
                continue;
            }
            self.record(&format!("selftest[{heap}] {}", rest.trim()), ok, "");
            if let Some((_, passed, failed)) = per_heap.last_mut() {
                if ok {
                    *passed += 1;
                } else {
                    *failed += 1;
                }
            }
        }
        per_heap
    }

    /// Whether everything passed.
    pub fn all_passed(&self) -> bool {
        self.failed == 0
    }

    /// Prints the failures and the closing line.
    pub fn finish(&self) {
        if !self.failures.is_empty() {
            println!("\nnot passed:");
            for failure in &self.failures {
                println!("  {failure}");
            }
        }
        println!();
        if self.skipped > 0 {
            println!(
                "{} passed, {} failed, {} skipped",
                self.passed, self.failed, self.skipped
            );
        } else {
            println!("{} passed, {} failed", self.passed, self.failed);
        }
    }
}

/// The number before `label` in a libtest summary.
fn count(summary: &str, label: &str) -> usize {
    summary
        .split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label.trim_start())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_summaries_add_up() {
        let mut tally = Tally::default();
        let output = "test a ... ok\ntest b ... FAILED\n\
                      test result: FAILED. 5 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out\n\
                      test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert!(tally.add_libtest("suite", output));
        assert_eq!((tally.passed, tally.failed, tally.skipped), (8, 1, 2));
        assert_eq!(tally.failures, ["suite: b"]);
    }

    #[test]
    fn a_failure_after_the_tests_own_output_is_named() {
        let mut tally = Tally::default();
        let output = "test golden ... Testing a.trycmd:4 ... ok 5ms\n\
                      Testing b.trycmd:2 ... failed 3ms\nUpdate snapshots\nFAILED\n\
                      test quiet ... Testing c.trycmd:1 ... ok 1ms\nok\n\
                      test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert!(tally.add_libtest("cli", output));
        assert_eq!(tally.failures, ["cli: golden"]);
    }

    #[test]
    fn kselftest_results_are_counted_per_heap() {
        let mut tally = Tally::default();
        let tap = "# Testing heap: rsheap\nok 1 Import buffer 0\nnot ok 2 sync failed\n\
                   # Testing heap: system\nok 3 Import buffer 0\nok 4 Could not open vgem # SKIP\n";
        let per_heap = tally.add_kselftest(tap);
        assert_eq!(
            per_heap,
            [("rsheap".to_owned(), 1, 1), ("system".to_owned(), 1, 0)]
        );
        assert_eq!((tally.passed, tally.failed, tally.skipped), (2, 1, 1));
    }
}
