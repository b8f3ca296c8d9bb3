//! Progress of a long transfer on standard error: a bar on a terminal that draws one, a plain
//! line every few seconds anywhere else.
//!
//! A serial console (the emulator's, where `cargo xtask demo` runs) is a terminal to `isatty`
//! but draws nothing: a bar's escape sequences only fill its log. Such consoles come without
//! `TERM`, or with `TERM=dumb`, so a bar needs both a terminal and a `TERM` that can draw.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::units;

/// How often a plain line may report.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// A byte count's progress toward `total`.
pub enum Progress {
    /// A bar, redrawn in place.
    Bar(ProgressBar),
    /// Lines, at most one per [`LINE_EVERY`]; none for a transfer that ends sooner.
    Lines {
        verb: String,
        total: u64,
        last: Instant,
    },
}

impl Progress {
    /// Progress of `verb` ("loading", "storing") over `total` bytes.
    pub fn new(total: u64, verb: &str) -> Self {
        if !draws_bars() {
            return Self::Lines {
                verb: verb.to_owned(),
                total,
                last: Instant::now(),
            };
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{verb} [{{bar:40}}] {{binary_bytes}}/{{binary_total_bytes}} {{binary_bytes_per_sec}} eta {{eta}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self::Bar(bar)
    }

    /// Reports `done` bytes.
    pub fn set(&mut self, done: u64) {
        match self {
            Self::Bar(bar) => bar.set_position(done),
            Self::Lines { verb, total, last } => {
                if last.elapsed() >= LINE_EVERY {
                    *last = Instant::now();
                    eprintln!("{}", line(verb, done, *total));
                }
            }
        }
    }

    /// Clears the bar; the command's own summary follows.
    pub fn finish(self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Whether standard error is a terminal that draws a bar.
fn draws_bars() -> bool {
    let term = std::env::var_os("TERM");
    std::io::stderr().is_terminal() && term.is_some_and(|term| !term.is_empty() && term != "dumb")
}

/// `loading: 48.0 MiB of 96.0 MiB (50%)`.
fn line(verb: &str, done: u64, total: u64) -> String {
    let percent = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    format!(
        "{verb}: {} of {} ({percent}%)",
        units::bytes(done),
        units::bytes(total)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_far_in_bytes_and_percent() {
        assert_eq!(
            line("loading", 48 << 20, 96 << 20),
            "loading: 48.0 MiB of 96.0 MiB (50%)"
        );
        assert_eq!(line("storing", 0, 0), "storing: 0 B of 0 B (100%)");
    }
}
