//! `bench --plot`: the speed-ups as grouped bars, one group per size and heap compared with.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

use crate::bench::{Ratio, STAGES};
use crate::units;

/// Fonts tried in order for the labels: Debian's DejaVu, then Android's Roboto.
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/system/fonts/Roboto-Regular.ttf",
];

/// Draws `ratios` into the PNG at `path`.
pub fn speedups(path: &Path, subject: &str, ratios: &[Ratio]) -> Result<()> {
    let font = FONTS
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .with_context(|| format!("no font for the plot's labels: tried {}", FONTS.join(", ")))?;
    // The font registry keeps fonts for the life of the process.
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow!("the plot's font is not usable"))?;

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
    let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
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
