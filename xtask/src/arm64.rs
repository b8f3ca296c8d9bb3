//! The arm64 rig: the suites on the arm64 kernel with 16 KiB pages ([`kernel::ARM64`]).
//!
//! The phones rsheap is for are arm64 with GKI kernels, built with clang and kCFI, with
//! symbol versions and possibly 16 KiB pages. The arm64 test kernel has all of these and no
//! Rust, so this boot shows the module loads and works where its users are. Host binaries
//! cannot run there: the programs are cross-built for `aarch64-unknown-linux-gnu` with
//! Debian's arm64 Rust standard library, linked statically, and copied into the run folder;
//! the guest's shell is an arm64 busybox.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::guest::Machine;
use crate::kernel::{self, Kernel};
use crate::progress::run_logged;
use crate::setup::{Env, KERNEL_RUSTC};

/// The Rust target of the guest's programs.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The C compiler and linker for that target.
const CC: &str = "aarch64-linux-gnu-gcc";

/// What an arm64 boot needs from the host.
pub struct Arm64 {
    /// The arm64 test kernel.
    pub kernel: Kernel,
    /// The arm64 static busybox.
    pub busybox: PathBuf,
}

impl Arm64 {
    /// Builds (or finds cached) the arm64 kernel and fetches the arm64 busybox.
    pub fn ensure(env: &Env) -> Result<Self> {
        let kernel = Kernel::ensure(&kernel::ARM64, &env.root, &env.cache, &env.bindgen)?;
        let busybox = busybox(&env.cache)?;
        Ok(Self { kernel, busybox })
    }

    /// The machine to boot, with `files` copied into its run folder.
    pub fn machine(&self, files: &[&Path]) -> Machine {
        Machine::arm64(&self.kernel.image, &self.busybox).with_files(files)
    }
}

/// Debian's static busybox for arm64, unpacked into the cache: installing it would replace
/// the host's amd64 busybox, which the x86 rig uses.
fn busybox(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("busybox-arm64");
    let busybox = dir.join("bin/busybox");
    if busybox.exists() {
        return Ok(busybox);
    }
    std::fs::create_dir_all(&dir)?;
    let log = cache.join("busybox-arm64.log");
    run_logged(
        "download busybox-static:arm64",
        Command::new("apt-get")
            .args(["download", "busybox-static:arm64"])
            .current_dir(&dir),
        &log,
    )?;
    let deb = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .context("apt-get download left no .deb")?;
    run_logged(
        "unpack busybox-static:arm64",
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dir),
        &log,
    )?;
    if !busybox.exists() {
        bail!("busybox-static:arm64 has no bin/busybox");
    }
    Ok(busybox)
}

/// `cargo` building for the guest: Debian's toolchain (whose arm64 standard library is
/// installed), static linking, and a target folder of its own, since the host's builds use
/// another compiler.
pub fn cargo(env: &Env) -> Command {
    let mut command = Command::new("cargo");
    let target_env = TARGET.replace('-', "_");
    command
        .current_dir(&env.root)
        .env("RUSTC", KERNEL_RUSTC)
        .env(
            format!("CARGO_TARGET_{}_LINKER", target_env.to_uppercase()),
            CC,
        )
        .env(
            format!("CARGO_TARGET_{}_RUSTFLAGS", target_env.to_uppercase()),
            "-C target-feature=+crt-static",
        )
        .env(format!("CC_{target_env}"), CC)
        .env("CARGO_TARGET_DIR", target_dir(env));
    command
}

/// Where the guest's programs are built.
pub fn target_dir(env: &Env) -> PathBuf {
    env.target().join(TARGET)
}
