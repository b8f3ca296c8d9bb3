//! Builds rsheap.ko against the test kernel.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::progress::run_logged;
use crate::setup::{Env, KERNEL_CLIPPY};

/// Builds `kmod/` with the kernel's clippy on; returns the module and any compiler warnings.
pub fn build(env: &Env) -> Result<(PathBuf, Vec<String>)> {
    let kmod = env.root.join("kmod");
    let log = env.target().join("kmod-build.log");
    std::fs::create_dir_all(env.target())?;
    run_logged(
        "build rsheap.ko",
        env.kernel
            .make()
            .arg(format!("M={}", kmod.display()))
            .arg("CLIPPY=1")
            .arg(format!("CLIPPY_DRIVER={KERNEL_CLIPPY}"))
            .arg("W=1")
            .arg("modules"),
        &log,
    )?;
    let module = kmod.join("rsheap.ko");
    if !module.exists() {
        bail!("the module build did not produce {}", module.display());
    }
    let warnings = std::fs::read_to_string(&log)?
        .lines()
        .filter(|line| line.contains("warning:") || line.contains("error:"))
        .map(str::to_owned)
        .collect();
    Ok((module, warnings))
}
