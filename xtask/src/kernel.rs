//! The kernels rsheap.ko is built against: Debian's 6.12 source with `tests/kernel/patches/`,
//! configured from `allnoconfig` plus fragments of `tests/kernel/`, each built once and cached.
//!
//! - [`X86_64`]: the x86 test kernel, built with gcc, with `CONFIG_RUST` (the module coexists
//!   with the kernel's own Rust) and the checkers the suites' dmesg gate relies on.
//! - [`ARM64`]: the arm64 test kernel with 16 KiB pages, built as GKI builds what matters to a
//!   vendor module: clang with kCFI and `CONFIG_MODVERSIONS`, which in this source rules out
//!   `CONFIG_RUST`, so rsheap.ko loading there proves it needs no Rust from the kernel.
//! - [`ARM64_KMI`]: the arm64 configuration without the checkers, prepared for module builds
//!   only (`modules_prepare`), against which the KMI check builds the module: the checkers
//!   make a module import symbols a GKI kernel never exports.
//!
//! The cache key covers everything that changes the result: the source package version, the
//! config fragments, the patches, the compilers and bindgen, and [`RECIPE`]. A build that fails
//! leaves no `done` marker, so the next run starts that key over.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::progress::{human_duration, run_logged};
use crate::setup::KERNEL_RUSTC;

/// Bumped whenever the steps below change what they produce.
const RECIPE: &str = "rsheap-kernel-2";
/// The Debian package and tarball holding the source.
const SOURCE_PACKAGE: &str = "linux-source-6.12";
const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

/// How far a kernel tree is built.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Build {
    /// The kernel image, its modules' symbol versions and the selftest.
    Full,
    /// Only what building modules against the tree needs.
    ModulesPrepare,
}

/// One kind of kernel: architecture, configuration and compilers.
pub struct Flavour {
    /// The cache folder's name and what progress lines call it.
    pub name: &'static str,
    /// `ARCH=`, or `None` to build for the host.
    arch: Option<&'static str>,
    /// Fragments of `tests/kernel/`, applied in order on top of `allnoconfig`.
    fragments: &'static [&'static str],
    /// `LLVM=` (the version suffix of Debian's clang, lld and llvm tools), or `None` for gcc.
    llvm: Option<&'static str>,
    /// The C compiler that builds the selftest, statically, for the kernel's architecture.
    user_cc: &'static str,
    build: Build,
    /// The image to boot, in the build folder.
    image: &'static str,
    /// How long a build takes on 2 cores, for the progress line.
    minutes: u32,
}

/// The x86_64 test kernel.
pub const X86_64: Flavour = Flavour {
    name: "x86_64",
    arch: None,
    fragments: &["rsheap.config", "debug.config", "x86_64.config"],
    llvm: None,
    user_cc: "gcc",
    build: Build::Full,
    image: "arch/x86/boot/bzImage",
    minutes: 6,
};

/// The x86_64 benchmark kernel: the test kernel's source and patches, configured as a
/// device's is for the paths the benchmarks time (no checkers, no Rust debug assertions or
/// overflow checks). Only `cargo xtask bench` and the demo's benchmark boot it.
pub const X86_64_BENCH: Flavour = Flavour {
    name: "x86_64-bench",
    arch: None,
    fragments: &["rsheap.config", "x86_64.config", "bench.config"],
    llvm: None,
    user_cc: "gcc",
    build: Build::Full,
    image: "arch/x86/boot/bzImage",
    minutes: 5,
};

/// The arm64 test kernel: 16 KiB pages, clang, kCFI, MODVERSIONS, no Rust.
pub const ARM64: Flavour = Flavour {
    name: "arm64",
    arch: Some("arm64"),
    fragments: &["rsheap.config", "debug.config", "arm64.config"],
    llvm: Some(CLANG_SUFFIX),
    user_cc: "aarch64-linux-gnu-gcc",
    build: Build::Full,
    image: "arch/arm64/boot/Image",
    minutes: 10,
};

/// The arm64 configuration without the checkers, prepared for the KMI check's module build.
pub const ARM64_KMI: Flavour = Flavour {
    name: "arm64-kmi",
    arch: Some("arm64"),
    fragments: &["rsheap.config", "arm64.config"],
    llvm: Some(CLANG_SUFFIX),
    user_cc: "aarch64-linux-gnu-gcc",
    build: Build::ModulesPrepare,
    image: "",
    minutes: 2,
};

/// The clang the arm64 kernels are built with: with Debian's default clang 14 kCFI silently
/// drops out; 19 has it.
pub const CLANG_SUFFIX: &str = "-19";

/// A built test kernel.
pub struct Kernel {
    /// Patched source tree.
    pub src: PathBuf,
    /// Build tree (`O=`), which out-of-tree modules build against.
    pub build: PathBuf,
    /// The kernel image to boot (none for a tree prepared for modules only).
    pub image: PathBuf,
    /// The kernel's dmabuf-heaps selftest, built statically from the same source.
    pub selftest: PathBuf,
    /// The bindgen the tree was built with.
    pub bindgen: PathBuf,
    /// The kernel release, e.g. `6.12.117`.
    pub release: String,
    /// `ARCH=` for module builds against this tree.
    pub arch: Option<&'static str>,
    /// `LLVM=` for module builds against this tree.
    pub llvm: Option<&'static str>,
}

impl Kernel {
    /// Returns the cached kernel for the current inputs, building it first if needed.
    pub fn ensure(flavour: &Flavour, root: &Path, cache: &Path, bindgen: &Path) -> Result<Self> {
        let inputs = root.join("tests/kernel");
        let key = cache_key(flavour, &inputs, bindgen)?;
        let dir = cache.join("kernel").join(flavour.name).join(&key);
        let kernel = Self {
            src: dir.join("src"),
            build: dir.join("build"),
            image: dir.join("build").join(flavour.image),
            selftest: dir.join("dmabuf-heap"),
            bindgen: bindgen.to_path_buf(),
            release: String::new(),
            arch: flavour.arch,
            llvm: flavour.llvm,
        };
        let done = dir.join("done");
        let name = flavour.name;
        if !done.exists() {
            println!(
                "setup: building the {name} kernel {key} (once; about {} minutes on 2 cores)",
                flavour.minutes
            );
            let start = Instant::now();
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            kernel.extract(&dir)?;
            kernel.patch(&inputs.join("patches"), &dir)?;
            kernel.configure(flavour, &inputs, &dir)?;
            match flavour.build {
                Build::Full => {
                    kernel.compile(&dir)?;
                    kernel.build_selftest(flavour, &dir)?;
                }
                Build::ModulesPrepare => kernel.prepare_modules(&dir)?,
            }
            let took = start.elapsed();
            std::fs::write(&done, format!("{}\n", took.as_secs()))?;
            println!("setup: {name} kernel built in {}", human_duration(took));
            prune_other_keys(&cache.join("kernel").join(name), &key);
            prune_other_flavours(&cache.join("kernel"));
        } else {
            println!("setup: {name} kernel {key} cached");
        }
        let release = std::fs::read_to_string(kernel.build.join("include/config/kernel.release"))
            .context("read kernel.release")?;
        Ok(Self {
            release: release.trim().to_owned(),
            ..kernel
        })
    }

    /// `make` in the source tree with the kernel's architecture, compilers and Rust toolchain,
    /// and our build folder.
    pub fn make(&self) -> Command {
        let mut command = Command::new("make");
        command
            .arg("-C")
            .arg(&self.src)
            .arg(format!("O={}", self.build.display()))
            .arg(format!("RUSTC={KERNEL_RUSTC}"))
            .arg(format!("HOSTRUSTC={KERNEL_RUSTC}"))
            .arg(format!("BINDGEN={}", self.bindgen.display()));
        if let Some(arch) = self.arch {
            command.arg(format!("ARCH={arch}"));
        }
        if let Some(llvm) = self.llvm {
            command.arg(format!("LLVM={llvm}"));
        }
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

    /// Configures from `allnoconfig` plus the flavour's fragments, and fails if the result
    /// lost any line of them: Kconfig drops an option silently when a dependency is missing.
    fn configure(&self, flavour: &Flavour, inputs: &Path, dir: &Path) -> Result<()> {
        let mut wanted = String::new();
        for fragment in flavour.fragments {
            wanted += &std::fs::read_to_string(inputs.join(fragment))
                .with_context(|| format!("read tests/kernel/{fragment}"))?;
        }
        let fragment = dir.join("fragment.config");
        std::fs::write(&fragment, &wanted)?;
        run_logged(
            "configure kernel",
            self.make()
                .arg(format!("KCONFIG_ALLCONFIG={}", fragment.display()))
                .arg("allnoconfig"),
            &dir.join("config.log"),
        )?;
        let config = std::fs::read_to_string(self.build.join(".config"))?;
        let lost: Vec<String> = requested(&wanted)
            .into_iter()
            .filter(|(option, value)| match value {
                Some(value) => !config
                    .lines()
                    .any(|have| have == format!("{option}={value}")),
                // `# CONFIG_X is not set`: X must not be on.
                None => config.lines().any(|have| {
                    have.strip_prefix(option.as_str())
                        .is_some_and(|value| value.starts_with('='))
                }),
            })
            .map(|(option, value)| match value {
                Some(value) => format!("{option}={value}"),
                None => format!("# {option} is not set"),
            })
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

    fn prepare_modules(&self, dir: &Path) -> Result<()> {
        run_logged(
            "prepare kernel for modules",
            self.make().arg("modules_prepare"),
            &dir.join("build.log"),
        )?;
        Ok(())
    }

    fn build_selftest(&self, flavour: &Flavour, dir: &Path) -> Result<()> {
        let selftests = self.src.join("tools/testing/selftests");
        run_logged(
            "build dmabuf-heaps selftest",
            Command::new(flavour.user_cc)
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

fn cache_key(flavour: &Flavour, inputs: &Path, bindgen: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(RECIPE);
    hasher.update(flavour.name);
    let package = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", SOURCE_PACKAGE])
        .output()?;
    hasher.update(&package.stdout);
    for fragment in flavour.fragments {
        hasher.update(std::fs::read(inputs.join(fragment))?);
    }
    for patch in sorted_files(&inputs.join("patches"), "patch")? {
        hasher.update(std::fs::read(&patch)?);
    }
    hasher.update(tool_version(Path::new(KERNEL_RUSTC), "--version")?);
    hasher.update(tool_version(bindgen, "--version")?);
    let cc = match flavour.llvm {
        Some(suffix) => format!("clang{suffix}"),
        None => "gcc".to_owned(),
    };
    hasher.update(tool_version(Path::new(&cc), "--version")?);
    hasher.update(tool_version(Path::new(flavour.user_cc), "--version")?);
    let mut key = String::new();
    for byte in &hasher.finalize()[..8] {
        write!(key, "{byte:02x}")?;
    }
    Ok(key)
}

/// What configuration fragments ask for, option by option: a value, or `None` for
/// `# CONFIG_X is not set`. A later fragment overrides an earlier one, as Kconfig reads them.
fn requested(fragments: &str) -> BTreeMap<String, Option<String>> {
    let mut options = BTreeMap::new();
    for line in fragments.lines() {
        if let Some((option, value)) = line.split_once('=').filter(|_| line.starts_with("CONFIG_"))
        {
            options.insert(option.to_owned(), Some(value.to_owned()));
        } else if let Some(option) = line
            .strip_prefix("# ")
            .and_then(|rest| rest.strip_suffix(" is not set"))
        {
            options.insert(option.to_owned(), None);
        }
    }
    options
}

/// Removes what is neither a flavour's folder nor in use: kernels cached in an older layout,
/// each a few GB.
fn prune_other_flavours(kernels: &Path) {
    let Ok(entries) = std::fs::read_dir(kernels) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if ![X86_64.name, X86_64_BENCH.name, ARM64.name, ARM64_KMI.name]
            .iter()
            .any(|flavour| name == *flavour)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_fragment_overrides_an_earlier_one() {
        let fragments = "# The test kernel.\nCONFIG_RUST=y\nCONFIG_RUST_OVERFLOW_CHECKS=y\n\
                         # CONFIG_KASAN is not set\n\
                         # The benchmark kernel.\n# CONFIG_RUST_OVERFLOW_CHECKS is not set\n\
                         CONFIG_NR_CPUS=8\n";
        let asked = requested(fragments);
        assert_eq!(asked["CONFIG_RUST"].as_deref(), Some("y"));
        assert_eq!(asked["CONFIG_RUST_OVERFLOW_CHECKS"], None);
        assert_eq!(asked["CONFIG_KASAN"], None);
        assert_eq!(asked["CONFIG_NR_CPUS"].as_deref(), Some("8"));
        assert_eq!(asked.len(), 4);
    }

    #[test]
    fn the_benchmark_kernel_drops_every_checker_the_tests_have() {
        let inputs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/kernel");
        let read = |flavour: &Flavour| {
            let text: String = flavour
                .fragments
                .iter()
                .map(|f| std::fs::read_to_string(inputs.join(f)).expect("fragment"))
                .collect();
            requested(&text)
        };
        let (test, bench) = (read(&X86_64), read(&X86_64_BENCH));
        let checkers =
            requested(&std::fs::read_to_string(inputs.join("debug.config")).expect("fragment"));
        assert!(checkers.contains_key("CONFIG_PROVE_LOCKING"));
        for option in checkers.keys() {
            assert!(test.contains_key(option));
            assert!(
                !bench.contains_key(option),
                "the benchmark kernel asks for {option}"
            );
        }
        for option in [
            "CONFIG_RUST_OVERFLOW_CHECKS",
            "CONFIG_RUST_DEBUG_ASSERTIONS",
        ] {
            assert_eq!(test[option].as_deref(), Some("y"));
            assert_eq!(bench[option], None, "{option}");
        }
        assert_eq!(bench["CONFIG_MEMCG"].as_deref(), Some("y"));
        assert_eq!(bench["CONFIG_TRANSPARENT_HUGEPAGE"].as_deref(), Some("y"));
        // The benchmarks drain rsheap's pools through the shrinker's debugfs file.
        for kernel in [&test, &bench] {
            assert_eq!(kernel["CONFIG_SHRINKER_DEBUG"].as_deref(), Some("y"));
        }
    }
}
