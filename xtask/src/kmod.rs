//! Builds out-of-tree kernel modules against the test kernel: rsheap.ko, and the test-only
//! vmap probe.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

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

/// Builds `module` with gcc's W=1 and the kernel's clippy on; returns the `.ko` and every
/// compiler warning.
pub fn build(env: &Env, module: &Module) -> Result<(PathBuf, Vec<String>)> {
    let dir = env.root.join(module.dir);
    let log = env.target().join(format!("{}-build.log", module.name));
    std::fs::create_dir_all(env.target())?;
    run_logged(
        &format!("build {}.ko", module.name),
        env.kernel
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
