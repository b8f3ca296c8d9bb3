//! The test kernel: Debian's 6.12 source with `tests/kernel/patches/`, configured from
//! `allnoconfig` plus `tests/kernel/rsheap.config`, built once and cached.
//!
//! The cache key covers everything that changes the result: the source package version, the
//! config fragment, the patches, the compilers and bindgen, and [`RECIPE`]. A build that fails
//! leaves no `done` marker, so the next run starts that key over.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::progress::{human_duration, run_logged};
use crate::setup::KERNEL_RUSTC;

/// Bumped whenever the steps below change what they produce.
const RECIPE: &str = "rsheap-kernel-1";
/// The Debian package and tarball holding the source.
const SOURCE_PACKAGE: &str = "linux-source-6.12";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

/// A built test kernel.
pub struct Kernel {
    /// Patched source tree.
    pub src: PathBuf,
    /// Build tree (`O=`), which out-of-tree modules build against.
    pub build: PathBuf,
    /// The kernel image to boot.
    pub bzimage: PathBuf,
    /// The kernel's dmabuf-heaps selftest, built statically from the same source.
    pub selftest: PathBuf,
    /// The bindgen the tree was built with.
    pub bindgen: PathBuf,
    /// The kernel release, e.g. `6.12.117`.
    pub release: String,
}

impl Kernel {
    /// Returns the cached kernel for the current inputs, building it first if needed.
    pub fn ensure(root: &Path, cache: &Path, bindgen: &Path) -> Result<Self> {
        let inputs = root.join("tests/kernel");
        let key = cache_key(&inputs, bindgen)?;
        let dir = cache.join("kernel").join(&key);
        let kernel = Self {
            src: dir.join("src"),
            build: dir.join("build"),
            bzimage: dir.join("build/arch/x86/boot/bzImage"),
            selftest: dir.join("dmabuf-heap"),
            bindgen: bindgen.to_path_buf(),
            release: String::new(),
        };
        let done = dir.join("done");
        if !done.exists() {
            println!("setup: building test kernel {key} (once; about 15 minutes on 2 cores)");
            let start = Instant::now();
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            kernel.extract(&dir)?;
            kernel.patch(&inputs.join("patches"), &dir)?;
            kernel.configure(&inputs.join("rsheap.config"), &dir)?;
            kernel.compile(&dir)?;
            kernel.build_selftest(&dir)?;
            let took = start.elapsed();
            std::fs::write(&done, format!("{}\n", took.as_secs()))?;
            println!("setup: test kernel built in {}", human_duration(took));
            prune_other_keys(&cache.join("kernel"), &key);
        } else {
            println!("setup: test kernel {key} cached");
        }
        let release = std::fs::read_to_string(kernel.build.join("include/config/kernel.release"))
            .context("read kernel.release")?;
        Ok(Self {
            release: release.trim().to_owned(),
            ..kernel
        })
    }

    /// `make` in the source tree with the kernel's Rust toolchain and our build folder.
    pub fn make(&self) -> Command {
        let mut command = Command::new("make");
        command
            .arg("-C")
            .arg(&self.src)
            .arg(format!("O={}", self.build.display()))
            .arg(format!("RUSTC={KERNEL_RUSTC}"))
            .arg(format!("HOSTRUSTC={KERNEL_RUSTC}"))
            .arg(format!("BINDGEN={}", self.bindgen.display()));
        command
    }

    fn extract(&self, dir: &Path) -> Result<()> {
        let unpack = dir.join("unpack");
        std::fs::create_dir_all(&unpack)?;
        run_logged(
            "unpack kernel source",
            Command::new("tar")
                .arg("-xvf")
                .arg(SOURCE_TARBALL)
                .arg("-C")
                .arg(&unpack),
            &dir.join("unpack.log"),
        )?;
        std::fs::rename(unpack.join("linux-source-6.12"), &self.src)?;
        std::fs::remove_dir(&unpack)?;
        Ok(())
    }

    fn patch(&self, patches: &Path, dir: &Path) -> Result<()> {
        for patch in sorted_files(patches, "patch")? {
            let name = patch
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            run_logged(
                &format!("apply {name}"),
                Command::new("patch")
                    .args(["-p1", "--forward", "--batch", "-d"])
                    .arg(&self.src)
                    .arg("-i")
                    .arg(&patch),
                &dir.join("patch.log"),
            )?;
        }
        Ok(())
    }

    fn configure(&self, fragment: &Path, dir: &Path) -> Result<()> {
        run_logged(
            "configure kernel",
            self.make()
                .arg(format!("KCONFIG_ALLCONFIG={}", fragment.display()))
                .arg("allnoconfig"),
            &dir.join("config.log"),
        )?;
        let config = std::fs::read_to_string(self.build.join(".config"))?;
        let wanted = std::fs::read_to_string(fragment)?;
        let lost: Vec<&str> = wanted
            .lines()
            .filter(|line| line.starts_with("CONFIG_"))
            .filter(|line| !config.lines().any(|have| have == *line))
            .collect();
        if !lost.is_empty() {
            bail!(
                "the kernel config dropped {} (a dependency is missing from the fragment)",
                lost.join(", ")
            );
        }
        Ok(())
    }

    fn compile(&self, dir: &Path) -> Result<()> {
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        run_logged(
            "compile kernel",
            self.make().arg(format!("-j{jobs}")).arg("all"),
            &dir.join("build.log"),
        )?;
        run_logged(
            "install kernel uapi headers",
            self.make()
                .arg(format!(
                    "INSTALL_HDR_PATH={}",
                    dir.join("headers").display()
                ))
                .arg("headers_install"),
            &dir.join("headers.log"),
        )?;
        Ok(())
    }

    fn build_selftest(&self, dir: &Path) -> Result<()> {
        let selftests = self.src.join("tools/testing/selftests");
        run_logged(
            "build dmabuf-heaps selftest",
            Command::new("gcc")
                .args(["-static", "-O2", "-Wall", "-isystem"])
                .arg(dir.join("headers/include"))
                .arg("-I")
                .arg(&selftests)
                .arg(selftests.join("dmabuf-heaps/dmabuf-heap.c"))
                .arg("-o")
                .arg(&self.selftest),
            &dir.join("selftest.log"),
        )?;
        Ok(())
    }
}

/// The files in `dir` ending in `.ext`, by name.
fn sorted_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    Ok(files)
}

fn tool_version(program: &Path, arg: &str) -> Result<String> {
    let out = Command::new(program)
        .arg(arg)
        .output()
        .with_context(|| format!("run {}", program.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

fn cache_key(inputs: &Path, bindgen: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(RECIPE);
    let package = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", SOURCE_PACKAGE])
        .output()?;
    hasher.update(&package.stdout);
    hasher.update(std::fs::read(inputs.join("rsheap.config"))?);
    for patch in sorted_files(&inputs.join("patches"), "patch")? {
        hasher.update(std::fs::read(&patch)?);
    }
    hasher.update(tool_version(Path::new(KERNEL_RUSTC), "--version")?);
    hasher.update(tool_version(bindgen, "--version")?);
    hasher.update(tool_version(Path::new("gcc"), "--version")?);
    let mut key = String::new();
    for byte in &hasher.finalize()[..8] {
        write!(key, "{byte:02x}")?;
    }
    Ok(key)
}

/// Removes kernels built for other inputs; each takes a few GB.
fn prune_other_keys(kernels: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(kernels) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name() != keep {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
