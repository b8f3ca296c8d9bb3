//! `bench --plot`: the speed-ups as grouped bars, one group per size and heap compared with.
//!
//! The chart is an SVG file: AOSP builds `libplotters` with its SVG backend only (no bitmap
//! backend, no font rendering), so SVG is what draws the same chart under cargo and in a
//! platform build. The viewer renders the labels with its own fonts; plotters estimates their
//! widths to lay the chart out.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::bench::{Ratio, STAGES};
use crate::units;

/// Draws `ratios` into the SVG file at `path`.
pub fn speedups(path: &Path, subject: &str, ratios: &[Ratio]) -> Result<()> {
    // One bar per size, heap compared with, and stage, top to bottom.
    let bars: Vec<(String, usize, f64)> = ratios
        .iter()
        .flat_map(|ratio| {
            STAGES.iter().enumerate().map(move |(stage, name)| {
                let label = format!("{} vs {}: {name}", units::bytes(ratio.size), ratio.other);
                (
                    label,
                    stage,
                    ratio.stages.get(stage).copied().unwrap_or(0.0),
                )
            })
        })
        .collect();
    let right = bars.iter().map(|(_, _, x)| *x).fold(2.0f64, f64::max) * 1.15;
    let rows = u32::try_from(bars.len()).unwrap_or(u32::MAX);
    let height = rows.saturating_mul(24).saturating_add(110);
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{subject} speed-up (their median time / {subject}'s; right of 1x is faster)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(260)
        .build_cartesian_2d(0f64..right, (0..bars.len()).into_segmented())?;
    chart
        .configure_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|value| match value {
            SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{x:.1}x"))
        .disable_y_mesh()
        .draw()?;
    for (i, (_, stage, x)) in bars.iter().enumerate() {
        let bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*x, SegmentValue::Exact(i.saturating_add(1))),
            ],
            Palette99::pick(*stage).filled(),
        );
        chart.draw_series(std::iter::once(bar))?;
        chart.draw_series(std::iter::once(Text::new(
            format!(" {x:.2}x"),
            (*x, SegmentValue::CenterOf(i)),
            ("sans-serif", 13).into_font(),
        )))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        [
            (1.0, SegmentValue::Exact(0)),
            (1.0, SegmentValue::Exact(bars.len())),
        ],
        BLACK.stroke_width(2),
    )))?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_is_svg_with_a_bar_per_size_heap_and_stage() {
        let path = std::env::temp_dir().join(format!("rsheapctl-plot-{}.svg", std::process::id()));
        let ratios = [Ratio {
            size: 8 << 20,
            other: "system".into(),
            stages: [1.5, 0.8, 2.25, 1.0],
        }];
        speedups(&path, "rsheap", &ratios).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("read the plot");
        std::fs::remove_file(&path).expect("remove the plot");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("rsheap speed-up"), "{svg}");
        for stage in STAGES {
            assert!(
                svg.contains(&format!("8.0 MiB vs system: {stage}")),
                "{stage}"
            );
        }
        assert!(svg.contains(" 2.25x"), "the fill bar's value");
    }
}
