//! `bench --plot`: the speed-ups as horizontal bars, one per size, heap compared with and
//! stage, drawn as an SVG file.
//!
//! SVG because it needs nothing to render: AOSP's `libplotters` has no bitmap backend and no
//! font rendering, and a chart of bars and labels is a few lines of SVG, which the viewer
//! renders with its own fonts. So the chart is the same under cargo and in a platform build,
//! with no plotting crate whose features other workspace members could change.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::bench::{Ratio, STAGES};
use crate::units;

/// The chart's width in pixels, and its parts': the labels left of the bars, the margins.
const WIDTH: f64 = 1000.0;
const LABELS: f64 = 260.0;
const MARGIN: f64 = 16.0;
/// The height of one bar's row, and of the caption above the bars and the axis below them.
const ROW: f64 = 24.0;
const CAPTION: f64 = 44.0;
const AXIS: f64 = 36.0;
/// One colour per stage, in [`STAGES`]'s order.
const COLOURS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];

/// Draws `ratios` into the SVG file at `path`.
pub fn speedups(path: &Path, subject: &str, ratios: &[Ratio]) -> Result<()> {
    std::fs::write(path, svg(subject, ratios)).with_context(|| format!("write {}", path.display()))
}

/// The chart of `ratios` as an SVG document.
fn svg(subject: &str, ratios: &[Ratio]) -> String {
    // One bar per size, heap compared with, and stage, top to bottom.
    let bars: Vec<(String, &str, f64)> = ratios
        .iter()
        .flat_map(|ratio| {
            STAGES
                .iter()
                .zip(COLOURS)
                .zip(ratio.stages)
                .map(move |((stage, colour), x)| {
                    let label = format!("{} vs {}: {stage}", units::bytes(ratio.size), ratio.other);
                    (label, colour, x)
                })
        })
        .collect();
    let right = bars.iter().map(|(_, _, x)| *x).fold(2.0f64, f64::max) * 1.15;
    let plot_width = WIDTH - LABELS - 2.0 * MARGIN;
    let at = |x: f64| LABELS + MARGIN + x / right * plot_width;
    let bottom = CAPTION + ROW * bars.len() as f64;
    let height = bottom + AXIS;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="26" font-size="18" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(&format!(
            "{subject} speed-up (their median time / {subject}'s; right of 1x is faster)"
        ))
    );
    for (row, (label, colour, x)) in bars.iter().enumerate() {
        let top = CAPTION + ROW * row as f64;
        let middle = top + ROW / 2.0 + 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{middle}" text-anchor="end">{}</text>"#,
            LABELS,
            escape(label)
        );
        let _ = writeln!(
            out,
            r#"<rect x="{}" y="{}" width="{:.1}" height="{}" fill="{colour}"/>"#,
            at(0.0),
            top + 3.0,
            at(*x) - at(0.0),
            ROW - 6.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{middle}"> {x:.2}x</text>"#,
            at(*x)
        );
    }
    // The axis, a tick every half (or whole, past 8x), and the line at 1x.
    let _ = writeln!(
        out,
        r#"<line x1="{0}" y1="{bottom}" x2="{1}" y2="{bottom}" stroke="black"/>"#,
        at(0.0),
        at(right)
    );
    let step = if right > 8.0 { 1.0 } else { 0.5 };
    for tick in (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|tick| *tick <= right)
    {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{tick:.1}x</text>"#,
            at(tick),
            bottom + 20.0
        );
    }
    let _ = writeln!(
        out,
        r#"<line x1="{0:.1}" y1="{CAPTION}" x2="{0:.1}" y2="{bottom}" stroke="black" stroke-width="2"/>"#,
        at(1.0)
    );
    out.push_str("</svg>\n");
    out
}

/// `text` with the characters XML reserves escaped: heap names come from the command line.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_svg_with_a_bar_per_size_heap_and_stage() {
        let ratios = [Ratio {
            size: 8 << 20,
            other: "sys<tem>".into(),
            stages: [1.5, 0.8, 2.25, 1.0],
        }];
        let svg = svg("rsheap", &ratios);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(svg.contains("rsheap speed-up"), "{svg}");
        for stage in STAGES {
            let label = format!("8.0 MiB vs sys&lt;tem&gt;: {stage}");
            assert!(svg.contains(&label), "{stage}: {svg}");
        }
        assert!(svg.contains(" 2.25x"), "the fill bar's value");
        assert_eq!(svg.matches("<rect").count(), 1 + STAGES.len(), "{svg}");
    }
}
