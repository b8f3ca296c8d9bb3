//! The emulator rig: boots a test kernel under QEMU (TCG) with a busybox initramfs whose init
//! (`tests/rig/init`) runs a shell script with a run folder shared read-write for results.
//!
//! On the host's architecture ([`Machine::x86_64`], q35) init chroots into the host's root
//! folder shared read-only over 9p: paths inside the guest equal the host's, so the script can
//! name host binaries and the run folder directly. On arm64 ([`Machine::arm64`], `virt`) host
//! binaries cannot run, so the script runs in the initramfs with an arm64 busybox, and its
//! programs are static arm64 binaries in the run folder or the cache. Fresh ext4 file systems
//! on two virtio-blk disks give file I/O real block devices and file systems: a large one at
//! `/run/scratch` (`/dev/vda`) and a small one at `/run/small` (`/dev/vdb`) for the suites
//! that fill a file system up or make its disk fail. When the script ends, init saves its exit
//! status and dmesg and powers off.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::Digest as _;
use wait_timeout::ChildExt;

use crate::progress::spinner;
use crate::setup::Env;

/// Guest memory: enough for 2 GB buffers next to the page cache and the test programs.
const GUEST_MEMORY: &str = "4G";

/// The scratch disk: sparse on the host, large enough for the 1 GB files of the suites and
/// the benchmark, with room for their copies.
const SCRATCH_SIZE: &str = "6G";

/// The small disk, an ext4 file system that the suites fill up or make fail (`/run/small`),
/// so that nothing else on the scratch disk suffers.
const SMALL_SIZE: &str = "64M";

/// Kernel log lines that mean something went wrong in the kernel.
const SPLAT_MARKERS: &[&str] = &[
    "WARNING:",
    "BUG:",
    "Oops",
    "kernel BUG",
    "Kernel panic",
    "general protection fault",
    "Call Trace:",
    // lockdep
    "possible circular locking dependency",
    "possible recursive locking",
    "inconsistent lock state",
    "possible irq lock inversion",
    "bad unlock balance",
    "lock held when returning to user space",
    "suspicious RCU usage",
    "lockdep is turned off",
    // kmemleak, sanitizers, watchdogs (DMA-API debugging reports through WARN)
    "suspected memory leaks",
    "unreferenced object",
    "KASAN:",
    "UBSAN:",
    "soft lockup",
    "blocked for more than",
    // binder: buffers freed twice or never sent, and transaction buffer exhaustion
    "BC_FREE_BUFFER",
    "binder_alloc:",
    // kCFI: an indirect call whose target has another type
    "CFI failure",
    // rsheap's own reports of importer misuse
    "rsheap: vunmap of a buffer",
    "rsheap: release of a buffer",
];

/// What one boot produced.
pub struct GuestRun {
    /// The run folder, shared with the guest.
    pub dir: PathBuf,
    /// The serial console: kernel warnings and the script's output.
    pub console: String,
    /// The guest's whole kernel log, saved after the script.
    pub dmesg: String,
    /// The script's exit status, if the guest got as far as saving it.
    pub exit_status: Option<i32>,
    /// Seconds from kernel start to the script's first command, as the guest's clock saw it.
    pub boot_seconds: Option<f64>,
    /// Host time from starting QEMU to its exit.
    pub wall: Duration,
}

impl GuestRun {
    /// A file the script wrote into the run folder, or an empty string.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Fails unless the script exited 0 and the kernel reported no splat.
    pub fn ensure_clean(&self, what: &str) -> Result<()> {
        let splats = self.splats();
        if !splats.is_empty() {
            bail!(
                "the guest kernel reported problems during the {what}:\n{}",
                splats.join("\n")
            );
        }
        if self.exit_status != Some(0) {
            bail!(
                "the {what} failed in the guest (exit status {:?}):\n{}",
                self.exit_status,
                tail(&self.console, 30)
            );
        }
        Ok(())
    }

    /// Kernel log lines showing a warning, bug, lockdep or leak report, from dmesg and the
    /// console (which still has them if the guest died before saving dmesg).
    pub fn splats(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .dmesg
            .lines()
            .chain(self.console.lines())
            .filter(|line| SPLAT_MARKERS.iter().any(|marker| line.contains(marker)))
            .map(|line| line.trim().to_owned())
            .collect();
        lines.dedup();
        lines
    }
}

/// Where the console shows up while the guest runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// A spinner with the latest console line.
    Spinner,
    /// The script's output, as it comes.
    Script,
}

/// The emulated machine a guest boots on.
pub struct Machine {
    /// The QEMU program.
    qemu: &'static str,
    /// Machine, accelerator and CPU options.
    machine: &'static [&'static str],
    /// The console device's name in the guest.
    console: &'static str,
    /// The kernel image.
    kernel: PathBuf,
    /// A static busybox for the machine's architecture.
    busybox: PathBuf,
    /// Whether init chroots into the host's root folder (see the module's doc).
    host_root: bool,
    /// Files copied into the run folder before the boot, for a guest without the host's root.
    files: Vec<PathBuf>,
}

impl Machine {
    /// The x86_64 test kernel on q35, running host binaries.
    pub fn x86_64(env: &Env) -> Self {
        Self {
            qemu: "qemu-system-x86_64",
            machine: &["-machine", "q35", "-accel", "tcg", "-cpu", "max"],
            console: "ttyS0",
            kernel: env.kernel.image.clone(),
            busybox: PathBuf::from("/bin/busybox"),
            host_root: true,
            files: Vec::new(),
        }
    }

    /// An arm64 kernel on `virt` with a GICv3, running `busybox` (arm64) and static programs.
    pub fn arm64(kernel: &Path, busybox: &Path) -> Self {
        Self {
            qemu: "qemu-system-aarch64",
            machine: &[
                "-machine",
                "virt,gic-version=3",
                "-accel",
                "tcg",
                "-cpu",
                "max",
            ],
            console: "ttyAMA0",
            kernel: kernel.to_path_buf(),
            busybox: busybox.to_path_buf(),
            host_root: false,
            files: Vec::new(),
        }
    }

    /// Copies `files` into the run folder, by name, before each boot.
    pub fn with_files(mut self, files: &[&Path]) -> Self {
        self.files = files.iter().map(|file| file.to_path_buf()).collect();
        self
    }
}

/// Boots the x86_64 guest, runs `script` (a POSIX shell script, run with the run folder as
/// working directory and `$RUN` naming it), and returns what it produced.
pub fn run(
    env: &Env,
    label: &str,
    script: &str,
    timeout: Duration,
    echo: Echo,
) -> Result<GuestRun> {
    run_on(env, &Machine::x86_64(env), label, script, timeout, echo)
}

/// Boots `machine` and runs `script` there, as [`run`] does.
pub fn run_on(
    env: &Env,
    machine: &Machine,
    label: &str,
    script: &str,
    timeout: Duration,
    echo: Echo,
) -> Result<GuestRun> {
    let dir = env.target().join("rig").join(label);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let dir = dir.canonicalize()?;
    for file in &machine.files {
        let name = file.file_name().context("a file to copy has a name")?;
        std::fs::copy(file, dir.join(name))
            .with_context(|| format!("copy {} into the run folder", file.display()))?;
    }
    std::fs::write(
        dir.join("guest.sh"),
        format!(
            "set -u\ncd \"$RUN\"\necho \"rig: ready after $(cut -d' ' -f1 /proc/uptime) s\"\n{script}\n"
        ),
    )?;
    let initramfs = initramfs(env, &machine.busybox)?;
    let scratch = ext4_disk(&dir.join("scratch.img"), SCRATCH_SIZE, "scratch")?;
    let small = ext4_disk(&dir.join("small.img"), SMALL_SIZE, "small")?;
    let console_path = dir.join("console.log");
    let start = Instant::now();
    let mut qemu = Command::new(machine.qemu);
    qemu.args(machine.machine)
        .args(["-smp", "2", "-m", GUEST_MEMORY])
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-serial")
        .arg(format!("file:{}", console_path.display()))
        .arg("-kernel")
        .arg(&machine.kernel)
        .arg("-initrd")
        .arg(&initramfs)
        .arg("-append")
        .arg(format!(
            "console={} quiet rdinit=/init panic=-1 rsheap_root={} rsheap_run={}",
            machine.console,
            if machine.host_root {
                "host"
            } else {
                "initramfs"
            },
            dir.display()
        ))
        // The guest's file system journal flushes need not reach the host's disk.
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe",
            scratch.display()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,cache=unsafe",
            small.display()
        ))
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=run,security_model=none,multidevs=remap",
            dir.display()
        ));
    if machine.host_root {
        qemu.arg("-virtfs")
            .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap");
    }
    let mut child = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", machine.qemu))?;

    let bar = (echo == Echo::Spinner).then(|| spinner(&format!("guest: {label}")));
    let mut follower = ConsoleFollower::new(&console_path);
    let deadline = start + timeout;
    let status = loop {
        if let Some(status) = child.wait_timeout(Duration::from_millis(250))? {
            break Some(status);
        }
        for line in follower.new_lines() {
            match &bar {
                // Without a terminal the spinner is hidden; the rig's own step lines still show.
                Some(bar) if bar.is_hidden() && line.starts_with("rig: ") => println!("  {line}"),
                Some(bar) => bar.set_message(line),
                None if !line.starts_with('[') => println!("{line}"),
                None => {}
            }
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            break None;
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if echo == Echo::Script {
        for line in follower
            .new_lines()
            .into_iter()
            .filter(|line| !line.starts_with('['))
        {
            println!("{line}");
        }
    }
    // Gigabytes of test files nobody reads afterwards.
    let _ = std::fs::remove_file(&scratch);
    let _ = std::fs::remove_file(&small);
    let console = std::fs::read_to_string(&console_path).unwrap_or_default();
    if status.is_none() {
        bail!(
            "guest {label} timed out after {}s; console tail:\n{}",
            timeout.as_secs(),
            tail(&console, 40)
        );
    }
    let mut qemu_err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut qemu_err)?;
    }
    let run = GuestRun {
        exit_status: std::fs::read_to_string(dir.join("exit-status"))
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        dmesg: std::fs::read_to_string(dir.join("dmesg.txt")).unwrap_or_default(),
        boot_seconds: console.lines().find_map(|line| {
            line.strip_prefix("rig: ready after ")?
                .strip_suffix(" s")?
                .parse()
                .ok()
        }),
        console,
        dir,
        wall: start.elapsed(),
    };
    if run.exit_status.is_none() {
        bail!(
            "guest {label} stopped before its script finished: {qemu_err}\nconsole tail:\n{}",
            tail(&run.console, 40)
        );
    }
    Ok(run)
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Reads lines appended to the console file since the last call.
struct ConsoleFollower {
    path: PathBuf,
    offset: u64,
}

impl ConsoleFollower {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            offset: 0,
        }
    }

    fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut lines = Vec::new();
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        // Only whole lines: a partial last line is read again next time.
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
            self.offset += line.len() as u64;
            lines.push(line.trim_end().to_owned());
            line.clear();
        }
        lines
    }
}

/// Makes an empty ext4 file system labelled `label` in a sparse image of `size` at `image`.
/// Inode tables and the journal are written now, so the guest's kernel has no lazy
/// initialisation to do in the background of the tests and benchmarks.
fn ext4_disk(image: &Path, size: &str, label: &str) -> Result<PathBuf> {
    let image = image.to_path_buf();
    let status = Command::new("truncate")
        .args(["-s", size])
        .arg(&image)
        .status()
        .context("run truncate")?;
    if !status.success() {
        bail!("truncate could not make {}", image.display());
    }
    let out = Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            label,
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
        ])
        .arg(&image)
        .output()
        .context("run mkfs.ext4 (e2fsprogs)")?;
    if !out.status.success() {
        bail!(
            "mkfs.ext4 failed on {}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(image)
}

/// Builds the initramfs (static busybox plus our init) into the cache, once per init script
/// and busybox.
fn initramfs(env: &Env, busybox: &Path) -> Result<PathBuf> {
    let init = std::fs::read(env.root.join("tests/rig/init"))?;
    let busybox = std::fs::read(busybox)
        .with_context(|| format!("read {} (busybox-static)", busybox.display()))?;
    let key = format!(
        "{:x}",
        sha2::Sha256::digest([init.as_slice(), busybox.as_slice()].concat())
    );
    let cpio = env.cache.join(format!("initramfs-{}.cpio", &key[..16]));
    if cpio.exists() {
        return Ok(cpio);
    }
    let staging = env.cache.join("initramfs-staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(staging.join("bin"))?;
    std::fs::write(staging.join("bin/busybox"), &busybox)?;
    std::fs::write(staging.join("init"), &init)?;
    for file in ["bin/busybox", "init"] {
        Command::new("chmod")
            .arg("755")
            .arg(staging.join(file))
            .status()?;
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find . | cpio --quiet -o -H newc > '{}'",
            cpio.display()
        ))
        .current_dir(&staging)
        .status()?;
    if !status.success() {
        bail!("cpio failed building {}", cpio.display());
    }
    std::fs::remove_dir_all(&staging)?;
    Ok(cpio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with_dmesg(dmesg: &str) -> GuestRun {
        GuestRun {
            dir: PathBuf::new(),
            console: String::new(),
            dmesg: dmesg.to_owned(),
            exit_status: Some(0),
            boot_seconds: None,
            wall: Duration::ZERO,
        }
    }

    #[test]
    fn boot_messages_of_the_checkers_are_not_splats() {
        let dmesg = "[    1.0] rcu: \tRCU lockdep checking is enabled.\n\
                     [    1.9] DMA-API: preallocated 65536 debug entries\n\
                     [    1.9] DMA-API: debugging enabled by kernel config\n\
                     [    4.2] kmemleak: Kernel memory leak detector initialized (mem pool available: 15788)\n";
        assert!(run_with_dmesg(dmesg).splats().is_empty());
    }

    #[test]
    fn warnings_lockdep_and_leaks_are_splats() {
        for line in [
            "[   10.0] WARNING: CPU: 1 PID: 80 at kernel/dma/debug.c:1061 check_unmap+0x6b/0x8f0",
            "[   10.0] WARNING: possible circular locking dependency detected",
            "[   10.0] BUG: sleeping function called from invalid context at mm/page_alloc.c:4500",
            "[   10.0] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
            "[   10.0] binder: 81:81 BC_FREE_BUFFER u0000000000000000 no match",
            "[   10.0] CFI failure at op_mmap+0x1c/0x30 (target: rsheap_buffer_mmap+0x0/0x8; expected type: 0x0b3c4a2d)",
        ] {
            assert_eq!(run_with_dmesg(line).splats().len(), 1, "{line}");
        }
    }
}
