//! Workload families: the workloads of one kind at different sizes (`close 8 MiB` and
//! `close 1 MiB` are the family `close`), as the plot draws them and the summary tables list
//! them.

use super::{Results, BASELINE};

/// Workloads of one family: the speed-up of each variant at each size.
pub(super) struct Family {
    pub(super) name: String,
    /// Sizes in the order the workloads ran; `""` for a workload without one.
    pub(super) sizes: Vec<String>,
    /// Variants other than the baseline, in the order they first appear.
    pub(super) variants: Vec<String>,
    /// (size index, variant index, speed-up).
    pub(super) bars: Vec<(usize, usize, f64)>,
}

/// Splits a workload's name into its family and its size: `"close 8 MiB"` into `"close"` and
/// `"8 MiB"`, `"alloc+free 1 x 32 MiB"` into `"alloc+free"` and `"1 x 32 MiB"`, and
/// `"tight alloc+free 1 MiB, 4 threads"` into `"tight alloc+free, 4 threads"` and `"1 MiB"`. A
/// name without a size is its own family.
fn family_and_size(workload: &str) -> (String, String) {
    let words: Vec<&str> = workload.split(' ').collect();
    let is_number = |word: &str| !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    let is_unit = |word: &str| matches!(word.trim_end_matches([',', ':']), "KiB" | "MiB" | "GiB");
    let Some(at) =
        (0..words.len().saturating_sub(1)).find(|&i| is_number(words[i]) && is_unit(words[i + 1]))
    else {
        return (workload.to_owned(), String::new());
    };
    let start = if at >= 2 && words[at - 1] == "x" && is_number(words[at - 2]) {
        at - 2
    } else {
        at
    };
    let unit_word = words[at + 1];
    let unit = unit_word.trim_end_matches([',', ':']);
    let size = format!("{} {unit}", words[start..=at].join(" "));
    // What followed the unit (a comma, a colon) stays with the words before the size.
    let punctuation = &unit_word[unit.len()..];
    let family = format!(
        "{}{punctuation} {}",
        words[..start].join(" "),
        words[at + 2..].join(" ")
    );
    (family.trim().to_owned(), size)
}

impl Results {
    /// The workloads grouped into families, in the order each family first ran; workloads
    /// without the baseline have no speed-up and are left out.
    pub(super) fn families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = Vec::new();
        for workload in &self.workloads {
            let Some(baseline) = workload.medians.get(BASELINE) else {
                continue;
            };
            let (name, size) = family_and_size(&workload.name);
            let index = match families.iter().position(|family| family.name == name) {
                Some(index) => index,
                None => {
                    families.push(Family {
                        name,
                        sizes: Vec::new(),
                        variants: Vec::new(),
                        bars: Vec::new(),
                    });
                    families.len() - 1
                }
            };
            let family = &mut families[index];
            let size = match family.sizes.iter().position(|s| *s == size) {
                Some(at) => at,
                None => {
                    family.sizes.push(size);
                    family.sizes.len() - 1
                }
            };
            for (variant, ms) in &workload.medians {
                if variant == BASELINE {
                    continue;
                }
                let at = match family.variants.iter().position(|v| v == variant) {
                    Some(at) => at,
                    None => {
                        family.variants.push(variant.clone());
                        family.variants.len() - 1
                    }
                };
                family.bars.push((size, at, baseline / ms));
            }
        }
        families.retain(|family| !family.bars.is_empty());
        families
    }

    /// Markdown tables of the families measured at several sizes on one variant (rsheap), a
    /// row each, a column per size, one table per set of sizes; losses in bold.
    pub(super) fn size_tables(&self) -> String {
        let families: Vec<Family> = self
            .families()
            .into_iter()
            .filter(|family| family.sizes.len() > 1 && family.variants.len() == 1)
            .collect();
        let mut text = String::new();
        let mut listed = vec![false; families.len()];
        for (first, family) in families.iter().enumerate() {
            if listed[first] {
                continue;
            }
            let sizes = &family.sizes;
            text += &format!(
                "| {} vs {BASELINE} | {} |\n| --- |{}\n",
                family.variants[0],
                sizes.join(" | "),
                " ---: |".repeat(sizes.len())
            );
            for (at, other) in families.iter().enumerate().skip(first) {
                if listed[at] || other.sizes != *sizes {
                    continue;
                }
                listed[at] = true;
                let cells: Vec<String> = (0..sizes.len())
                    .map(|size| {
                        other
                            .bars
                            .iter()
                            .find(|&&(at, _, _)| at == size)
                            .map_or_else(String::new, |&(_, _, x)| {
                                // A loss as printed: 0.996 reads 1.00x and is not one.
                                if x < 0.995 {
                                    format!("**{x:.2}x**")
                                } else {
                                    format!("{x:.2}x")
                                }
                            })
                    })
                    .collect();
                text += &format!("| {} | {} |\n", other.name, cells.join(" | "));
            }
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_at_several_sizes_make_a_table_with_losses_in_bold() {
        let line = |workload: &str, variant: &str, ms: u64| {
            format!(
                "{{\"workload\":\"{workload}\",\"variant\":\"{variant}\",\"nanos\":[{}]}}\n",
                ms * 1_000_000
            )
        };
        let mut jsonl = String::new();
        for (workload, rsheap) in [
            ("close 4 KiB", 20),
            ("close 1 MiB", 5),
            ("whole life 4 KiB", 10),
            ("whole life 1 MiB", 2),
        ] {
            jsonl += &line(workload, "rsheap", rsheap);
            jsonl += &line(workload, BASELINE, 10);
        }
        // One size only, or several variants: in the full table, not here.
        jsonl += &line("close 8 MiB", "rsheap", 1001);
        jsonl += &line("close 8 MiB", BASELINE, 1000);
        jsonl += &line("whole life 8 MiB", "rsheap", 10);
        jsonl += &line("whole life 8 MiB", BASELINE, 10);
        jsonl += &line("mmap 512 MiB", "rsheap", 1);
        jsonl += &line("mmap 512 MiB", BASELINE, 10);
        let results = Results::parse(&jsonl).expect("parse");
        assert_eq!(
            results.size_tables(),
            "| rsheap vs system heap | 4 KiB | 1 MiB | 8 MiB |\n| --- | ---: | ---: | ---: |\n\
             | close | **0.50x** | 2.00x | 1.00x |\n| whole life | 1.00x | 5.00x | 1.00x |\n\n"
        );
    }

    #[test]
    fn a_workloads_size_comes_out_of_its_name() {
        let split = |name| family_and_size(name);
        assert_eq!(split("close 8 MiB"), ("close".into(), "8 MiB".into()));
        assert_eq!(
            split("tight alloc+free 64 KiB, 4 threads"),
            ("tight alloc+free, 4 threads".into(), "64 KiB".into())
        );
        assert_eq!(
            split("alloc+free 32 x 32 MiB"),
            ("alloc+free".into(), "32 x 32 MiB".into())
        );
        assert_eq!(
            split("allocation latency 1 MiB, 4 threads: p99"),
            ("allocation latency, 4 threads: p99".into(), "1 MiB".into())
        );
        assert_eq!(
            split("dma_buf_vmap 2048 MiB, fresh buffer"),
            ("dma_buf_vmap, fresh buffer".into(), "2048 MiB".into())
        );
        assert_eq!(
            split("libdmabufheap's workload, 1/50 of its iterations"),
            (
                "libdmabufheap's workload, 1/50 of its iterations".into(),
                String::new()
            )
        );
    }
}
