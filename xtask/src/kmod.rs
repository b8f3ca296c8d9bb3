//! Builds out-of-tree kernel modules against the test kernels: rsheap.ko, and the test-only
//! vmap probe.
//!
//! A 6.12 module build writes its objects into the module's folder, so each kernel builds from
//! its own copy of the sources under `target/kmod/`, and the checkout stays clean.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::progress::run_logged;
use crate::setup::{Env, KERNEL_CLIPPY};

/// A module to build: its folder in the checkout and the `.ko` it produces.
pub struct Module {
    pub dir: &'static str,
    pub name: &'static str,
}

/// rsheap.ko.
pub const RSHEAP: Module = Module {
    dir: "kmod",
    name: "rsheap",
};
/// The test-only probe that calls `dma_buf_vmap()` for the suites and benchmarks.
pub const VMAP_PROBE: Module = Module {
    dir: "tests/vmap_probe",
    name: "rsheap_vmap_probe",
};

/// Builds `module` against the setup's x86_64 kernel (the test kernel, or the benchmark
/// kernel for `bench`) with the C compiler's W=1 and clippy on;
/// returns the `.ko` and every compiler warning.
pub fn build(env: &Env, module: &Module) -> Result<(PathBuf, Vec<String>)> {
    build_against(env, &env.kernel, env.flavour, module)
}

/// Builds `module` against `kernel` of flavour `flavour`, as [`build`] does.
pub fn build_against(
    env: &Env,
    kernel: &Kernel,
    flavour: &str,
    module: &Module,
) -> Result<(PathBuf, Vec<String>)> {
    let dir = copy_sources(env, module, flavour)?;
    let log = env
        .target()
        .join(format!("{}-{flavour}-build.log", module.name));
    std::fs::create_dir_all(env.target())?;
    run_logged(
        &format!("build {}.ko for {flavour}", module.name),
        kernel
            .make()
            .arg(format!("M={}", dir.display()))
            .arg("CLIPPY=1")
            .arg(format!("CLIPPY_DRIVER={KERNEL_CLIPPY}"))
            .arg("W=1")
            .arg("modules"),
        &log,
    )?;
    let ko = dir.join(format!("{}.ko", module.name));
    if !ko.exists() {
        bail!("the module build did not produce {}", ko.display());
    }
    Ok((ko, warnings(&log)?))
}

fn warnings(log: &Path) -> Result<Vec<String>> {
    Ok(std::fs::read_to_string(log)?
        .lines()
        .filter(|line| line.contains("warning:") || line.contains("error:"))
        .map(str::to_owned)
        .collect())
}

/// Copies `module`'s sources (not its build products) into a fresh folder for builds against
/// kernel `flavour`, and returns it.
pub fn copy_sources(env: &Env, module: &Module, flavour: &str) -> Result<PathBuf> {
    let from = env.root.join(module.dir);
    let to = env.target().join("kmod").join(flavour).join(module.name);
    if to.exists() {
        std::fs::remove_dir_all(&to)?;
    }
    copy_tree(&from, &to)?;
    Ok(to)
}

/// Whether `name` is a source file of a module, not something its build made.
fn is_source(name: &str) -> bool {
    // kernel/consts.rs is generated from kernel/consts.c.
    name == "Kbuild"
        || name == "Makefile"
        || name == "COPYING"
        || (name.ends_with(".rs") && name != "consts.rs")
        || name.ends_with(".c") && !name.ends_with(".mod.c")
        || name.ends_with(".h")
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else if is_source(&name) {
            std::fs::copy(&path, to.join(&name))
                .with_context(|| format!("copy {}", path.display()))?;
        }
    }
    Ok(())
}
