//! Installs what the project needs on a fresh machine: Debian packages, `bindgen-cli`,
//! rsbinder's tools (the `rsb_hub` service manager the guest runs), and the test kernel (see
//! [`crate::kernel`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kernel::{self, Kernel};
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
    // The arm64 kernels and the module's KMI check: clang, lld and llvm 19 (Debian's default
    // clang 14 lacks what kCFI needs), and gcc for arm64 user programs.
    "clang-19",
    "lld-19",
    "llvm-19",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    // The C API's C test program and C++ example.
    "g++",
    // The emulators, the guest's init, and module loading in the guest.
    "qemu-system-x86",
    "qemu-system-arm",
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
    /// The built x86_64 kernel: the test kernel, or the benchmark kernel for `bench`.
    pub kernel: Kernel,
    /// Its flavour's name, which names the folders modules are built in for it.
    pub flavour: &'static str,
    /// The folder holding rsbinder's `rsb_hub` (the service manager) and `rsb_service`.
    pub binder_tools: PathBuf,
    /// The bindgen the kernels' Rust is built with.
    pub bindgen: PathBuf,
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

/// Runs every setup step, the x86_64 test kernel included, and returns where things are.
pub fn run() -> Result<Env> {
    run_for(&kernel::X86_64)
}

/// Runs every setup step with the x86_64 kernel of `flavour`.
pub fn run_for(flavour: &kernel::Flavour) -> Result<Env> {
    let root = workspace_root()?;
    let cache = cache_dir()?;
    println!("setup: cache in {}", cache.display());
    install_packages()?;
    let bindgen = install_tool(&cache, "bindgen-cli", BINDGEN_VERSION, "bindgen")?;
    let binder_tools = install_tool(&cache, "rsbinder-tools", RSBINDER_TOOLS_VERSION, "rsb_hub")?
        .parent()
        .context("a tool has a folder")?
        .to_path_buf();
    let kernel = Kernel::ensure(flavour, &root, &cache, &bindgen)?;
    Ok(Env {
        root,
        cache,
        kernel,
        flavour: flavour.name,
        binder_tools,
        bindgen,
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

/// The Debian release newer emulators come from, on machines whose qemu-utils does.
const BACKPORTS: &str = "bookworm-backports";

/// Whether the installed qemu-utils is a bookworm backport: some machine images carry one,
/// and bookworm's own emulators then cannot be installed beside it.
fn backported_qemu_utils() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "qemu-utils"])
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.windows(5).any(|w| w == b"~bpo1"))
}

/// Adds bookworm-backports to apt's sources, unless a source lists it already.
fn add_backports_source() -> Result<()> {
    let listed = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .chain([PathBuf::from("/etc/apt/sources.list")])
        .any(|path| std::fs::read_to_string(path).is_ok_and(|text| text.contains(BACKPORTS)));
    if listed {
        return Ok(());
    }
    let source = format!(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {BACKPORTS}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    );
    let path = format!("/etc/apt/sources.list.d/rsheap-{BACKPORTS}.sources");
    let mut tee = privileged("tee");
    tee.arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = tee.spawn().with_context(|| format!("write {path}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin.write_all(source.as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("cannot write {path}");
    }
    Ok(())
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

/// Debian packages of the arm64 guest's programs, from the arm64 architecture: the Rust
/// standard library for `aarch64-unknown-linux-gnu` of Debian's rustc (Multi-Arch: same, so it
/// installs beside the amd64 one).
const APT_ARM64_PACKAGES: &[&str] = &["libstd-rust-web-dev:arm64"];

/// Adds the arm64 architecture to dpkg, whose packages the arm64 rig needs.
fn add_arm64_architecture() -> Result<()> {
    let foreign = Command::new("dpkg")
        .arg("--print-foreign-architectures")
        .output()
        .context("run dpkg")?;
    if String::from_utf8_lossy(&foreign.stdout)
        .lines()
        .any(|arch| arch == "arm64")
    {
        return Ok(());
    }
    let status = privileged("dpkg")
        .args(["--add-architecture", "arm64"])
        .status()
        .context("run dpkg --add-architecture arm64")?;
    if !status.success() {
        bail!("dpkg --add-architecture arm64 failed");
    }
    Ok(())
}

pub fn install_packages() -> Result<()> {
    add_arm64_architecture()?;
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .chain(APT_ARM64_PACKAGES)
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        println!("setup: Debian packages present");
        return Ok(());
    }
    println!("setup: installing {}", missing.join(" "));
    let log = std::env::temp_dir().join("rsheap-apt.log");
    let backported = backported_qemu_utils();
    if backported {
        println!("setup: qemu-utils comes from bookworm-backports; so will the emulators");
        add_backports_source()?;
    }
    run_logged(
        "apt-get update",
        privileged("apt-get").args(["update", "-q"]),
        &log,
    )?;
    let emulators: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|p| p.starts_with("qemu-system-"))
        .collect();
    if backported && !emulators.is_empty() {
        // Bookworm's emulators cannot sit beside the newer qemu-utils (it breaks their
        // qemu-system-common): take them, and only what they need, from the same release.
        run_logged(
            "apt-get install (emulators from bookworm-backports)",
            privileged("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(["-t", BACKPORTS])
                .args(&emulators),
            &log,
        )?;
    }
    let missing: Vec<&str> = missing
        .into_iter()
        .filter(|p| !(backported && p.starts_with("qemu-system-")))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
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

/// rsbinder's tools built for the arm64 guest, installed into the cache's `tools-aarch64/`;
/// returns their folder.
pub fn arm64_binder_tools(env: &Env) -> Result<PathBuf> {
    let mut cargo = crate::arm64::cargo(env);
    cargo.args(["install", "--target", crate::arm64::TARGET]);
    let root = env.cache.join("tools-aarch64");
    let rsb_hub = install_tool_with(
        cargo,
        &root,
        &env.cache,
        "rsbinder-tools",
        RSBINDER_TOOLS_VERSION,
        "rsb_hub",
    )?;
    Ok(rsb_hub
        .parent()
        .context("a tool has a folder")?
        .to_path_buf())
}

/// Installs `krate` at `version` into the cache's `tools/` with `cargo install`, unless it is
/// there already, and returns the path of its binary `binary`.
fn install_tool(cache: &Path, krate: &str, version: &str, binary: &str) -> Result<PathBuf> {
    let mut cargo = Command::new("cargo");
    cargo.arg("install");
    install_tool_with(cargo, &cache.join("tools"), cache, krate, version, binary)
}

/// Installs `krate` at `version` into `root` with `cargo_install` (a `cargo install` command),
/// unless it is there already, and returns the path of its binary `binary`.
fn install_tool_with(
    mut cargo_install: Command,
    root: &Path,
    cache: &Path,
    krate: &str,
    version: &str,
    binary: &str,
) -> Result<PathBuf> {
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
        cargo_install
            .args(["--locked", "--force", krate, "--version", version, "--root"])
            .arg(root),
        &log,
    )?;
    if !path.exists() {
        bail!("cargo install did not produce {}", path.display());
    }
    Ok(path)
}
