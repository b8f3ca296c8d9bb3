//! The benchmark plot: one panel per workload family ([`Family`]), the sizes along the
//! bottom, a bar per variant at each size giving its speed-up over the
//! baseline on a log scale, and the 1x line, where a variant is as fast as the baseline.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::family::Family;
use super::{Results, BASELINE};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Panels per row.
const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (640, 380);
const TITLE_HEIGHT: u32 = 44;
const LEGEND_ROW: u32 = 24;

impl Results {
    /// Draws every family's panel into a PNG at `path`.
    pub(super) fn plot(&self, path: &Path) -> Result<()> {
        let font =
            std::fs::read(FONT).with_context(|| format!("read {FONT} (fonts-dejavu-core)"))?;
        let font: &'static [u8] = Box::leak(font.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, font)
            .map_err(|_| anyhow::anyhow!("cannot load {FONT}"))?;
        let families = self.families();
        // One colour per variant across all panels.
        let mut variants: Vec<&str> = Vec::new();
        for family in &families {
            for variant in &family.variants {
                if !variants.contains(&variant.as_str()) {
                    variants.push(variant);
                }
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let rows = families.len().div_ceil(COLUMNS).max(1);
        let width = PANEL.0 * COLUMNS as u32;
        let legend = legend_layout(&variants, width);
        let legend_height =
            LEGEND_ROW * (legend.iter().map(|&(_, row, _)| row).max().unwrap_or(0) + 1);
        let size = (width, TITLE_HEIGHT + legend_height + PANEL.1 * rows as u32);
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE)?;
        let (title, rest) = root.split_vertically(TITLE_HEIGHT);
        let (key, panels) = rest.split_vertically(legend_height);
        title.titled(
            &format!(
                "speed-up over the in-tree {BASELINE} (log scale; the black line is 1x, above it is faster)"
            ),
            ("sans-serif", 24),
        )?;
        let colour = |variant: &str| {
            Palette99::pick(variants.iter().position(|v| *v == variant).unwrap_or(0))
        };
        for (variant, &(x, row, _)) in variants.iter().zip(&legend) {
            let y = (row * LEGEND_ROW) as i32 + 4;
            key.draw(&Rectangle::new(
                [(x, y), (x + 16, y + 14)],
                colour(variant).filled(),
            ))?;
            key.draw(&Text::new(*variant, (x + 22, y), ("sans-serif", 15)))?;
        }
        for (family, area) in families.iter().zip(panels.split_evenly((rows, COLUMNS))) {
            draw_panel(&area, family, &colour)?;
        }
        root.present()?;
        Ok(())
    }
}

/// Where each variant's legend entry goes: (x, row, width), wrapping at `width`.
fn legend_layout(variants: &[&str], width: u32) -> Vec<(i32, u32, i32)> {
    // DejaVu Sans at 15 px averages under 9 px a character.
    let mut x = 20;
    let mut row = 0;
    variants
        .iter()
        .map(|variant| {
            let entry = 22 + 9 * variant.chars().count() as i32 + 28;
            if x + entry > width as i32 && x > 20 {
                x = 20;
                row += 1;
            }
            let at = (x, row, entry);
            x += entry;
            at
        })
        .collect()
}

/// One family's panel: per size, a bar per variant, with its value, and the 1x line.
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    family: &Family,
    colour: &impl Fn(&str) -> PaletteColor<Palette99>,
) -> Result<()> {
    let (lo, hi) = family
        .bars
        .iter()
        .fold((1.0f64, 1.0f64), |(lo, hi), &(_, _, x)| {
            (lo.min(x), hi.max(x))
        });
    // Room below the lowest bar, and above the highest for its label.
    let (bottom, top) = (lo / 2.0, hi * 2.0);
    // Each size takes one slot per variant and one for the gap before the next size.
    let per_size = family.variants.len() + 1;
    let slots = family.sizes.len() * per_size - 1;
    // A segmented range includes its end: this one's segments are the slots (at least two,
    // so that a lone bar keeps its width).
    let last = (slots - 1).max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&family.name, ("sans-serif", 17))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d((0..last).into_segmented(), (bottom..top).log_scale())?;
    let sizes = &family.sizes;
    let middle = (per_size - 1) / 2;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(slots)
        .x_label_formatter(&|slot| match slot {
            SegmentValue::CenterOf(slot) if slot % per_size == middle => {
                sizes.get(slot / per_size).cloned().unwrap_or_default()
            }
            _ => String::new(),
        })
        .y_label_formatter(&|x| {
            // At most two decimals, without trailing zeros: 0.7x, not 0.7000000000000001x.
            let text = format!("{x:.2}");
            format!("{}x", text.trim_end_matches('0').trim_end_matches('.'))
        })
        .label_style(("sans-serif", 13))
        .draw()?;
    for (at, variant) in family.variants.iter().enumerate() {
        let fill = colour(variant).filled();
        let bars: Vec<_> = family
            .bars
            .iter()
            .filter(|&&(_, v, _)| v == at)
            .map(|&(size, _, x)| (size * per_size + at, x))
            .collect();
        chart.draw_series(bars.iter().map(|&(slot, x)| {
            Rectangle::new(
                [
                    (SegmentValue::Exact(slot), bottom),
                    (SegmentValue::Exact(slot + 1), x),
                ],
                fill,
            )
        }))?;
        chart.draw_series(bars.iter().map(|&(slot, x)| {
            Text::new(
                format!("{x:.2}x"),
                (SegmentValue::Exact(slot), x * 1.15),
                ("sans-serif", 12).into_font(),
            )
        }))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        [(SegmentValue::Exact(0), 1.0), (SegmentValue::Last, 1.0)],
        BLACK.stroke_width(2),
    )))?;
    Ok(())
}
