//! Installs what the project needs on a fresh machine: Debian packages, `bindgen-cli`,
//! rsbinder's tools (the `rsb_hub` service manager the guest runs), and the test kernel (see
//! [`crate::kernel`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernel::Kernel;
use crate::progress::run_logged;

/// Debian packages the build and the emulator rig use.
const APT_PACKAGES: &[&str] = &[
    // Kernel source and its build.
    "linux-source-6.12",
    "bc",
    "bison",
    "flex",
    "cpio",
    "patch",
    "xz-utils",
    "libelf-dev",
    "libssl-dev",
    // Kernel Rust: the compiler the kernel's Rust crates are built with, its library source,
    // its clippy, and libclang for bindgen.
    "rustc-web",
    "rust-web-src",
    "rust-web-clippy",
    "libclang-dev",
    // The emulator, the guest's init, and module loading in the guest.
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    // The guest's scratch file system.
    "e2fsprogs",
    // The benchmark plot's font.
    "fonts-dejavu-core",
    // The Java API: javac and the JVM (host and guest run the same one), and JUnit 4 with the
    // hamcrest it needs for the Java tests.
    "openjdk-17-jdk-headless",
    "junit4",
    "libhamcrest-java",
    // The offline checks of the vendor-tree files: Blueprint's formatter, Android 10's AIDL
    // compiler, SELinux's linter and file-contexts tools, and AOSP's table of user ids.
    "blueprint-tools",
    "aidl",
    "selint",
    "selinux-utils",
    "android-platform-system-core-headers",
];

/// The bindgen the 6.12 kernel's Rust build is known to work with; Debian's is too old.
const BINDGEN_VERSION: &str = "0.72.1";

/// The rsbinder tools matching the workspace's rsbinder: `rsb_hub` serves as the guest's
/// service manager.
const RSBINDER_TOOLS_VERSION: &str = "0.12.0";

/// The rustc and clippy the kernel's Rust crates are built with (Debian's `rustc-web`).
pub const KERNEL_RUSTC: &str = "/usr/bin/rustc";
/// The clippy matching [`KERNEL_RUSTC`].
pub const KERNEL_CLIPPY: &str = "/usr/bin/clippy-driver";

/// Where things are, once setup has run.
pub struct Env {
    /// The checkout.
    pub root: PathBuf,
    /// The cache outside the checkout: tools, kernels, initramfs.
    pub cache: PathBuf,
    /// The built test kernel.
    pub kernel: Kernel,
    /// The folder holding rsbinder's `rsb_hub` (the service manager) and `rsb_service`.
    pub binder_tools: PathBuf,
}

impl Env {
    /// Scratch space for build products inside the checkout's (ignored) target folder.
    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// Builds `package` in release mode and returns the path of its binary `binary`.
    pub fn build_release(&self, package: &str, binary: &str) -> Result<PathBuf> {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&self.root)
            .args(["build", "--release", "--quiet", "--package", package])
            .status()?;
        if !status.success() {
            bail!("building {package} failed");
        }
        Ok(self.target().join("release").join(binary))
    }
}

/// Runs every setup step and returns where things are.
pub fn run() -> Result<Env> {
    let root = workspace_root()?;
    let cache = cache_dir()?;
    println!("setup: cache in {}", cache.display());
    install_packages()?;
    let bindgen = install_tool(&cache, "bindgen-cli", BINDGEN_VERSION, "bindgen")?;
    let binder_tools = install_tool(&cache, "rsbinder-tools", RSBINDER_TOOLS_VERSION, "rsb_hub")?
        .parent()
        .context("a tool has a folder")?
        .to_path_buf();
    let kernel = Kernel::ensure(&root, &cache, &bindgen)?;
    Ok(Env {
        root,
        cache,
        kernel,
        binder_tools,
    })
}

/// The checkout this xtask belongs to.
pub fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask has a parent folder")?
        .to_path_buf())
}

/// `$RSHEAP_CACHE`, else `$XDG_CACHE_HOME/rsheap`, else `~/.cache/rsheap`.
fn cache_dir() -> Result<PathBuf> {
    let dir = if let Some(dir) = std::env::var_os("RSHEAP_CACHE") {
        PathBuf::from(dir)
    } else if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(dir).join("rsheap")
    } else {
        PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/rsheap")
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", package])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout == b"installed")
}

/// Prefixes a command with sudo unless we are root.
fn privileged(program: &str) -> Command {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if is_root {
        Command::new(program)
    } else {
        let mut command = Command::new("sudo");
        command.arg(program);
        command
    }
}

pub fn install_packages() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        println!("setup: Debian packages present");
        return Ok(());
    }
    println!("setup: installing {}", missing.join(" "));
    let log = std::env::temp_dir().join("rsheap-apt.log");
    run_logged(
        "apt-get update",
        privileged("apt-get").args(["update", "-q"]),
        &log,
    )?;
    run_logged(
        "apt-get install",
        privileged("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q"])
            .args(&missing),
        &log,
    )?;
    Ok(())
}

/// Installs `krate` at `version` into the cache's `tools/` with `cargo install`, unless it is
/// there already, and returns the path of its binary `binary`.
fn install_tool(cache: &Path, krate: &str, version: &str, binary: &str) -> Result<PathBuf> {
    let root = cache.join("tools");
    let path = root.join("bin").join(binary);
    // cargo's record of what it installed into `root`.
    let record = std::fs::read_to_string(root.join(".crates.toml")).unwrap_or_default();
    if path.exists() && record.contains(&format!("\"{krate} {version} ")) {
        println!("setup: {krate} {version} present");
        return Ok(path);
    }
    println!("setup: building {krate} {version} (a few minutes, once)");
    let log = cache.join(format!("{krate}-install.log"));
    run_logged(
        &format!("cargo install {krate}"),
        Command::new("cargo")
            .args([
                "install",
                "--locked",
                "--force",
                krate,
                "--version",
                version,
                "--root",
            ])
            .arg(&root),
        &log,
    )?;
    if !path.exists() {
        bail!("cargo install did not produce {}", path.display());
    }
    Ok(path)
}
