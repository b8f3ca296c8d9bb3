//! `cargo xtask kmi`: builds rsheap.ko for an arm64 GKI-like kernel and checks that every symbol
//! it imports is in the android16-6.12 KMI, and that kCFI covers its entry points.
//!
//! A vendor module may import only the symbols the GKI kernel's KMI symbol lists name; the
//! aarch64 GKI build strips every other export. The module is built with clang against
//! [`kernel::ARM64_KMI`] (the arm64 configuration without the test kernels' checkers, which
//! bring imports no GKI kernel has) and with `RSHEAP_KMI` naming the list, so the build leaves
//! out what the list does not allow. The imports are also recorded in
//! `tests/kernel/rsheap-aarch64.imports`, so a change to them shows in review.
//!
//! kCFI: the kernel calls into a module only through function pointers (ops tables, the
//! module's init), and kCFI checks the type hash stored before each target. The check reads
//! the built objects: every function the module's data points at is a C function carrying a
//! type hash, no C table points at a Rust function, and rustc and clang compute the same hash
//! for the same C type (`int (void)`: the Rust `rsheap_init` and the C init that calls it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind, SymbolKind};

use crate::kernel::{self, Kernel, CLANG_SUFFIX};
use crate::progress::run_logged;
use crate::setup::Env;
use crate::tally::Tally;

/// The union of the android16-6.12 KMI symbol lists, relative to the checkout: `shared/` lies
/// beside it.
const KMI_UNION: &str = "../shared/kmi/android16-6.12-gen5/aarch64-kmi-union.txt";
/// The module's imports as last recorded.
const RECORDED: &str = "tests/kernel/rsheap-aarch64.imports";

/// What the check found.
struct Report {
    imports: Vec<String>,
    /// The KMI list used, or `None` if there is none on this machine.
    kmi: Option<PathBuf>,
    /// Imports the list does not name.
    outside: Vec<String>,
    /// Problems with kCFI coverage.
    cfi: Vec<String>,
}

/// `cargo xtask kmi`: prints the report; `record` rewrites the recorded imports.
pub fn run(record: bool) -> Result<()> {
    let env = crate::setup::run()?;
    let report = build_and_check(&env)?;
    print_report(&report);
    let recorded = env.root.join(RECORDED);
    if record {
        std::fs::write(&recorded, imports_file(&report.imports))?;
        println!("recorded {} imports in {RECORDED}", report.imports.len());
    } else if let Some(diff) = recorded_diff(&recorded, &report.imports)? {
        bail!("{diff}");
    }
    if report.kmi.is_some() && !report.outside.is_empty() {
        bail!("{} imports are outside the KMI", report.outside.len());
    }
    if !report.cfi.is_empty() {
        bail!("kCFI: {}", report.cfi.join("; "));
    }
    Ok(())
}

/// The checks of `cargo xtask test`: the KMI, the recorded imports, and kCFI coverage.
pub fn check(env: &Env, tally: &mut Tally) {
    let report = match build_and_check(env) {
        Ok(report) => report,
        Err(err) => {
            tally.record("rsheap.ko builds for arm64 GKI", false, &format!("{err:#}"));
            return;
        }
    };
    print_report(&report);
    if report.kmi.is_some() {
        tally.record(
            "rsheap.ko imports only android16-6.12 KMI symbols",
            report.outside.is_empty(),
            &report.outside.join("\n"),
        );
    }
    let diff = recorded_diff(&env.root.join(RECORDED), &report.imports);
    tally.record(
        "rsheap.ko's imports are the recorded ones",
        matches!(diff, Ok(None)),
        &match diff {
            Ok(diff) => diff.unwrap_or_default(),
            Err(err) => format!("{err:#}"),
        },
    );
    tally.record(
        "kCFI: the kernel enters rsheap.ko only through type-checked C functions",
        report.cfi.is_empty(),
        &report.cfi.join("\n"),
    );
}

fn print_report(report: &Report) {
    match &report.kmi {
        Some(list) => {
            println!(
                "KMI: {} imports, {} outside (list: {})",
                report.imports.len(),
                report.outside.len(),
                list.display()
            );
            for symbol in &report.outside {
                println!("  outside: {symbol}");
            }
        }
        None => println!(
            "KMI: no symbol list (neither RSHEAP_KMI nor {KMI_UNION}); would check the module's \
             {} imports against the union of the android16-6.12 KMI symbol lists",
            report.imports.len()
        ),
    }
}

/// The KMI list to check against: `$RSHEAP_KMI`, else the shared union, if it exists.
fn kmi_list(root: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("RSHEAP_KMI")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(KMI_UNION));
    path.is_file().then_some(path)
}

fn build_and_check(env: &Env) -> Result<Report> {
    let kernel = Kernel::ensure(&kernel::ARM64_KMI, &env.root, &env.cache, &env.bindgen)?;
    let kmi = kmi_list(&env.root);
    let dir = crate::kmod::copy_sources(env, &crate::kmod::RSHEAP, kernel::ARM64_KMI.name)?;
    let mut make = kernel.make();
    make.arg(format!("M={}", dir.display()))
        // A tree prepared for modules has no Module.symvers to resolve imports against.
        .arg("KBUILD_MODPOST_WARN=1")
        .arg("modules");
    if let Some(list) = &kmi {
        make.arg(format!("RSHEAP_KMI={}", list.display()));
    }
    let log = env.target().join("rsheap-kmi-build.log");
    run_logged("build rsheap.ko for arm64 GKI", &mut make, &log)?;

    let ko = std::fs::read(dir.join("rsheap.ko")).context("read the arm64 rsheap.ko")?;
    let ko = object::File::parse(&*ko).context("parse the arm64 rsheap.ko")?;
    let imports: BTreeSet<String> = ko
        .symbols()
        .filter(|symbol| symbol.is_undefined() && symbol.is_global())
        .filter_map(|symbol| symbol.name().ok().map(str::to_owned))
        .filter(|name| !name.is_empty())
        .collect();
    let imports: Vec<String> = imports.into_iter().collect();
    let outside = match &kmi {
        Some(list) => {
            let listed: BTreeSet<String> = std::fs::read_to_string(list)?
                .lines()
                .map(|line| line.trim().to_owned())
                .collect();
            imports
                .iter()
                .filter(|symbol| !listed.contains(*symbol))
                .cloned()
                .collect()
        }
        None => Vec::new(),
    };
    let read = |name: &str| std::fs::read(dir.join(name)).with_context(|| format!("read {name}"));
    let c_data = [
        ("rsheap_shim.o", read("rsheap_shim.o")?),
        ("kernel/support.o", read("kernel/support.o")?),
        ("rsheap.mod.o", read("rsheap.mod.o")?),
    ];
    let mut c_objects = Vec::new();
    for (name, data) in &c_data {
        let file = object::File::parse(data.as_slice()).with_context(|| format!("parse {name}"))?;
        c_objects.push((name.to_string(), file));
    }
    let rust = read("rsheap_rust.o")?;
    let rust = object::File::parse(&*rust).context("parse rsheap_rust.o")?;
    let cfi = cfi_problems(&c_objects, &rust);
    Ok(Report {
        imports,
        kmi,
        outside,
        cfi,
    })
}

/// The kCFI type hash stored in the four bytes before function `name`'s entry in `file`.
fn type_hash(file: &object::File<'_>, name: &str) -> Option<u32> {
    let symbol = file.symbols().find(|symbol| {
        symbol.kind() == SymbolKind::Text
            && symbol.is_definition()
            && symbol.name().is_ok_and(|n| n == name)
    })?;
    let section = file.section_by_index(symbol.section_index()?).ok()?;
    let data = section.data().ok()?;
    let at = usize::try_from(symbol.address().checked_sub(section.address())?).ok()?;
    let bytes = data.get(at.checked_sub(4)?..at)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The functions whose addresses `file` stores in its data (ops tables, the module's init),
/// each with whether `file` defines it.
fn function_pointers(file: &object::File<'_>) -> BTreeSet<(String, bool)> {
    let mut pointers = BTreeSet::new();
    for section in file.sections() {
        if section.kind() == SectionKind::Text {
            continue;
        }
        for (_, relocation) in section.relocations() {
            let RelocationTarget::Symbol(index) = relocation.target() else {
                continue;
            };
            let Ok(symbol) = file.symbol_by_index(index) else {
                continue;
            };
            // A pointer to a static function may name its section plus an offset.
            let target = if symbol.kind() == SymbolKind::Section {
                let offset = u64::try_from(relocation.addend()).ok();
                file.symbols().find(|candidate| {
                    candidate.kind() == SymbolKind::Text
                        && candidate.section_index() == symbol.section_index()
                        && Some(candidate.address()) == offset
                })
            } else {
                Some(symbol)
            };
            let Some(target) = target else { continue };
            let Ok(name) = target.name() else { continue };
            if target.kind() == SymbolKind::Text && target.is_definition() {
                pointers.insert((name.to_owned(), true));
            } else if target.is_undefined() {
                pointers.insert((name.to_owned(), false));
            }
        }
    }
    pointers
}

/// What keeps kCFI from covering the module's entry points, if anything: `c` are the C
/// objects, `rust` the Rust one.
fn cfi_problems(c: &[(String, object::File<'_>)], rust: &object::File<'_>) -> Vec<String> {
    let rust_functions: BTreeSet<&str> = rust
        .symbols()
        .filter(|symbol| symbol.kind() == SymbolKind::Text && symbol.is_definition())
        .filter_map(|symbol| symbol.name().ok())
        .collect();
    let mut problems = Vec::new();
    let mut entries = 0;
    for (object_name, file) in c {
        for (function, defined) in function_pointers(file) {
            if !defined {
                if rust_functions.contains(function.as_str()) {
                    problems.push(format!(
                        "{object_name} stores a pointer to Rust function {function}"
                    ));
                }
                continue;
            }
            entries += 1;
            if type_hash(file, &function).is_none_or(|hash| hash == 0) {
                problems.push(format!("{object_name}: {function} has no kCFI type hash"));
            }
        }
    }
    if entries == 0 {
        problems.push("no function pointers found in the C objects' data".to_owned());
    }
    // `int (void)`: the Rust init and the C one that calls it (`module_init` names it
    // `init_module`).
    let support = c.iter().find(|(name, _)| name.ends_with("support.o"));
    let c_hash = support.and_then(|(_, file)| type_hash(file, "init_module"));
    match (type_hash(rust, "rsheap_init"), c_hash) {
        (Some(rust), Some(c)) if rust == c && rust != 0 => {}
        (rust, c) => problems.push(format!(
            "rustc and clang disagree on the type hash of int (void): rsheap_init {rust:x?}, \
             init_module {c:x?}"
        )),
    }
    problems
}

/// The recorded imports' file: one symbol a line, under a header saying what it is.
fn imports_file(imports: &[String]) -> String {
    let mut text = format!(
        "# The symbols rsheap.ko imports when built for arm64 GKI (android16-6.12, clang{CLANG_SUFFIX}),\n\
         # as `cargo xtask kmi --record` wrote them. Each must be in the KMI.\n"
    );
    for symbol in imports {
        text += symbol;
        text.push('\n');
    }
    text
}

/// How the recorded imports differ from `imports`, or `None` if they do not.
fn recorded_diff(path: &Path, imports: &[String]) -> Result<Option<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let recorded: BTreeSet<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    let built: BTreeSet<&str> = imports.iter().map(String::as_str).collect();
    let added: Vec<&str> = built.difference(&recorded).copied().collect();
    let removed: Vec<&str> = recorded.difference(&built).copied().collect();
    if added.is_empty() && removed.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "rsheap.ko's imports changed (new: {}; gone: {}); run `cargo xtask kmi --record` and \
         commit {RECORDED}",
        if added.is_empty() {
            "none".to_owned()
        } else {
            added.join(", ")
        },
        if removed.is_empty() {
            "none".to_owned()
        } else {
            removed.join(", ")
        },
    )))
}
