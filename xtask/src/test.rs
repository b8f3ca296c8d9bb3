//! `cargo xtask test`: every check, each counted, ending with `N passed, N failed`.
//!
//! Host: rustfmt and clippy over the workspace and the kernel module, the workspace's unit and
//! doc tests, a warning-free module build, a warning-free build of the Java API, and the
//! module's KMI and kCFI check for arm64 GKI (see [`kmi`]). x86_64 guest: the kernel's
//! dmabuf-heaps selftest, the `rsheap-suites` test binaries and the Java tests (see [`java`]),
//! in one boot, then the dmesg gate; a second boot with `mem_accounting=1` and a third with a
//! pool limit above RAM. arm64 guest (16 KiB pages, see [`arm64`]): the selftest and
//! [`ARM64_SUITES`], with the same gates.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::arm64::{self, Arm64};
use crate::guest::{self, Echo};
use crate::java::{self, JavaSuite};
use crate::progress::human_duration;
use crate::setup::{self, Env};
use crate::tally::Tally;
use crate::{aidl_api, android, capi};
use crate::{kmi, kmod};

/// The package holding the emulator suites.
const SUITES_PACKAGE: &str = "rsheap-suites";
/// The suites that need binder and rsheapd.
const BROKER_SUITES: [&str; 6] = [
    "broker",
    "session",
    "cli",
    "sdk_broker",
    "capi",
    SYSTEM_BROKER_SUITE,
];

/// The suite that uses the broker the system runs: the rig starts one with the shipped
/// configuration before it, as init would, and stops it after.
const SYSTEM_BROKER_SUITE: &str = "system_broker";
/// The suites that also run on arm64 with 16 KiB pages: those of the kernel module, and one
/// with the broker.
const ARM64_SUITES: [&str; 12] = [
    "heap",
    "pool",
    "transfer",
    "transfer_faults",
    "readonly",
    "uncached",
    "vgem",
    "vmap",
    "fuzz",
    "stress",
    "broker",
    "session",
];

/// How long the guest may take for all suites under TCG.
const GUEST_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// One boot of the guest: how rsheap.ko is loaded and which suites run.
struct Boot {
    label: &'static str,
    what: &'static str,
    module_args: &'static str,
    /// Suites that run only in this boot; the default boot runs every other suite.
    only: &'static [&'static str],
    selftest: bool,
}

impl Boot {
    fn runs(&self, suite: &str) -> bool {
        if self.only.is_empty() {
            !BOOTS.iter().any(|boot| boot.only.contains(&suite))
        } else {
            self.only.contains(&suite)
        }
    }
}

const BOOTS: [Boot; 3] = [
    Boot {
        label: "test",
        what: "default parameters",
        module_args: "",
        only: &[],
        selftest: true,
    },
    Boot {
        label: "memcg",
        what: "mem_accounting=1",
        module_args: "mem_accounting=1",
        only: &["memcg"],
        selftest: false,
    },
    Boot {
        label: "pool-limit",
        what: "pool_limit_mb=1000000, more than RAM",
        module_args: "pool_limit_mb=1000000",
        only: &["pool_limit"],
        selftest: false,
    },
];

/// Runs every check, or with `only_suite` the host checks and that one emulator suite.
pub fn run(only_suite: Option<&str>) -> Result<()> {
    let start = Instant::now();
    let env = setup::run()?;
    let mut tally = Tally::default();

    println!("\nhost checks");
    host_checks(&env, &mut tally);
    let java = java::build(&env, &mut tally);
    let capi_programs = capi::build(&env, &mut tally);

    println!("\nkernel modules");
    let mut modules = Vec::new();
    for module in [&kmod::RSHEAP, &kmod::VMAP_PROBE] {
        match kmod::build(&env, module) {
            Ok((ko, warnings)) => {
                let name = format!(
                    "{}.ko builds without warnings (gcc W=1, rustc, clippy)",
                    module.name
                );
                tally.record(&name, warnings.is_empty(), &warnings.join("\n"));
                modules.push(ko);
            }
            Err(err) => tally.record(
                &format!("{}.ko builds", module.name),
                false,
                &format!("{err:#}"),
            ),
        }
    }
    println!("\nKMI and kCFI (arm64 GKI)");
    kmi::check(&env, &mut tally);
    let suites = suite_binaries(cargo(&env).arg("test"))
        .and_then(|suites| Ok((suites, guest_programs(&env, capi_programs)?)));
    if let Err(err) = &suites {
        tally.record("emulator suites build", false, &format!("{err:#}"));
    }
    if let Ok((_, programs)) = &suites {
        check_panic_abort(&env, programs, &mut tally);
    }

    if let ([rsheap, probe], Ok((suites, programs))) = (modules.as_slice(), &suites) {
        for boot in &BOOTS {
            let suites: Vec<_> = suites
                .iter()
                .filter(|(name, _)| boot.runs(name) && only_suite.is_none_or(|only| only == name))
                .cloned()
                .collect();
            let java = java.as_ref().filter(|_| {
                boot.runs(java::SUITE) && only_suite.is_none_or(|only| only == java::SUITE)
            });
            if suites.is_empty() && java.is_none() && only_suite.is_some() {
                continue;
            }
            println!("\nemulator: {} (kernel {})", boot.what, env.kernel.release);
            let selftest = boot.selftest && only_suite.is_none();
            let binaries = GuestBinaries {
                rsheap,
                probe,
                programs,
                selftest: &env.kernel.selftest,
                binder_tools: &env.binder_tools,
            };
            let platform = Platform {
                machine: guest::Machine::x86_64(&env),
                prefix: "",
                chunk_orders: Some(&[9, 8, 4, 0]),
                env: String::new(),
            };
            guest_suites(
                &env, &platform, boot, selftest, &binaries, &suites, java, &mut tally,
            )?;
        }
    }

    println!("\narm64, 16 KiB pages: clang, kCFI, MODVERSIONS, no Rust in the kernel");
    if let Err(err) = arm64_boot(&env, only_suite, &mut tally) {
        tally.record("arm64 rig runs", false, &format!("{err:#}"));
    }

    println!("\ntook {}", human_duration(start.elapsed()));
    tally.finish();
    // The closing line stays the last one: no error report after it.
    std::process::exit(if tally.all_passed() { 0 } else { 1 });
}

fn cargo(env: &Env) -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command.current_dir(&env.root);
    command
}

fn host_checks(env: &Env, tally: &mut Tally) {
    aidl_api::check(&env.root, tally);
    android::check(&env.root, tally);
    tally.check_command(
        "rustfmt: workspace",
        cargo(env).args(["fmt", "--all", "--check"]),
    );
    tally.check_command(
        "rustfmt: kmod (kernel style)",
        Command::new("rustfmt")
            .args(["--check", "--edition", "2021", "--config-path"])
            .arg(env.kernel.src.join(".rustfmt.toml"))
            .arg(env.root.join("kmod/rsheap_main.rs")),
    );
    tally.check_command(
        "clippy: workspace, all targets, -D warnings",
        cargo(env).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]),
    );
    let unit = cargo(env)
        .args(["test", "--workspace", "--exclude", SUITES_PACKAGE])
        .output();
    match unit {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let found = tally.add_libtest("host", &text);
            if !found || !out.status.success() {
                tally.record("host unit tests", false, &guest::tail(&text, 40));
            } else {
                println!("  ok    host unit and doc tests");
            }
        }
        Err(err) => tally.record(
            "host unit tests",
            false,
            &format!("could not run cargo: {err}"),
        ),
    }
}

/// The programs the suites run, besides their own binaries.
struct GuestPrograms {
    /// The broker, started by the broker suites.
    rsheapd: PathBuf,
    /// The command-line tool, run by the `cli` suite.
    rsheapctl: PathBuf,
    /// The folder of the `rsheap` crate's examples, run by the `sdk_broker` suite.
    examples: PathBuf,
    /// The folder of the C API's test program and C++ example, run by the `capi` suite, if
    /// they built.
    capi: Option<PathBuf>,
}

/// Builds rsheapd, rsheapctl and the SDK's examples; `capi` is where the C API's programs
/// were built, if they were.
fn guest_programs(env: &Env, capi: Option<PathBuf>) -> Result<GuestPrograms> {
    let status = cargo(env)
        .args([
            "build",
            "--quiet",
            "--package",
            "rsheap-broker",
            "--package",
            "rsheapctl",
            "--package",
            "rsheap",
            "--bins",
            "--examples",
        ])
        .status()
        .context("build rsheapd, rsheapctl and the SDK's examples")?;
    if !status.success() {
        bail!("building rsheapd, rsheapctl or the SDK's examples failed");
    }
    let debug = env.target().join("debug");
    Ok(GuestPrograms {
        rsheapd: debug.join("rsheapd"),
        rsheapctl: debug.join("rsheapctl"),
        examples: debug.join("examples"),
        capi,
    })
}

/// Checks that what ships was built to abort on a panic, as Soong builds it: no part of the
/// unwinding runtime (`panic_unwind`) is linked in.
fn check_panic_abort(env: &Env, programs: &GuestPrograms, tally: &mut Tally) {
    let jni = env.target().join("debug/librsheap_jni.so");
    let capi = capi::out_dir(env).join("librsheap_capi.so");
    let mut unwinding = Vec::new();
    for binary in [&programs.rsheapd, &programs.rsheapctl, &jni, &capi] {
        match Command::new("nm")
            .arg("--defined-only")
            .arg(binary)
            .output()
        {
            Ok(out) if out.status.success() => {
                if String::from_utf8_lossy(&out.stdout).contains("panic_unwind") {
                    unwinding.push(binary.display().to_string());
                }
            }
            Ok(out) => unwinding.push(format!(
                "{}: nm failed: {}",
                binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(err) => unwinding.push(format!("{}: cannot run nm: {err}", binary.display())),
        }
    }
    tally.record(
        "rsheapd, rsheapctl, librsheap_jni.so and librsheap_capi.so abort on a panic (panic = \"abort\")",
        unwinding.is_empty(),
        &format!("built to unwind: {}", unwinding.join(", ")),
    );
}

/// What the guest runs besides the suites, as paths the guest sees.
struct GuestBinaries<'a> {
    rsheap: &'a Path,
    probe: &'a Path,
    programs: &'a GuestPrograms,
    /// The kernel's dmabuf-heaps selftest.
    selftest: &'a Path,
    /// The folder of rsbinder's `rsb_hub` and `rsb_service`.
    binder_tools: &'a Path,
}

/// Guest script lines that start rsbinder's service manager on the guest's binderfs and wait
/// until it answers, for the broker's suites and benchmarks; `$RSHEAPD` names the broker.
pub fn binder_script(tools: &Path, rsheapd: &Path) -> String {
    let tools = tools.display();
    [
        format!("export RSHEAPD={}", rsheapd.display()),
        format!("{tools}/rsb_hub --insecure-allow-all > rsb_hub.log 2>&1 &"),
        wait_script(
            &format!("{tools}/rsb_service list"),
            300,
            "rsb_hub did not start",
        ),
    ]
    .join("\n")
}

/// Guest script lines that run `suite` while an rsheapd with the shipped configuration
/// serves `instance`, as init's would on a device.
fn system_broker_script(env: &Env, tools: &Path, instance: &str, suite: &str) -> String {
    let tools = tools.display();
    let config = env.root.join("service/rsheapd.toml");
    [
        format!(
            "$RSHEAPD --config {} > rsheapd-system.log 2>&1 &",
            config.display()
        ),
        "rsheapd=$!".to_owned(),
        wait_script(
            &format!("{tools}/rsb_service check {instance}"),
            600,
            "rsheapd did not register",
        ),
        suite.to_owned(),
        "kill $rsheapd; wait $rsheapd\n".to_owned(),
    ]
    .join("\n")
}

/// Guest script lines that wait, in tenths of a second up to `tries`, until `command`
/// succeeds, and say `failure` if it never does.
fn wait_script(command: &str, tries: u32, failure: &str) -> String {
    [
        "tries=0".to_owned(),
        format!("until {command} > /dev/null 2>&1; do"),
        "    tries=$((tries + 1))".to_owned(),
        format!("    [ $tries -gt {tries} ] && echo 'rig: {failure}' && break"),
        "    sleep 0.1".to_owned(),
        "done\n".to_owned(),
    ]
    .join("\n")
}

/// Builds the suites' test binaries with `cargo test` (a `cargo test` command, for the host
/// or another target) and returns (name, path) for each.
fn suite_binaries(cargo_test: &mut Command) -> Result<Vec<(String, PathBuf)>> {
    let out = cargo_test
        .args([
            "--package",
            SUITES_PACKAGE,
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .context("build the emulator suites")?;
    if !out.status.success() {
        bail!(
            "cargo test --no-run failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(path), Some(name)) = (
            message["executable"].as_str(),
            message["target"]["name"].as_str(),
        ) else {
            continue;
        };
        if message["target"]["kind"][0] == "test" {
            binaries.push((name.to_owned(), PathBuf::from(path)));
        }
    }
    if binaries.is_empty() {
        bail!("{SUITES_PACKAGE} has no test binaries");
    }
    binaries.sort();
    Ok(binaries)
}

/// Where a boot's suites run: the machine, and how results are named.
struct Platform {
    machine: guest::Machine,
    /// Prefixed to the names of results, to tell the architectures apart.
    prefix: &'static str,
    /// The chunk orders rsheap must report for this platform's page size, if checked.
    chunk_orders: Option<&'static [u32]>,
    /// Script lines run before the suites: where they find what the host's paths would name.
    env: String,
}

/// The orders of the pools in rsheap's debugfs stats, in the order listed.
fn pool_orders(stats: &str) -> Vec<u32> {
    stats
        .lines()
        .skip_while(|line| !line.starts_with("pool (order)"))
        .skip(1)
        .map_while(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn guest_suites(
    env: &Env,
    platform: &Platform,
    boot: &Boot,
    selftest: bool,
    binaries: &GuestBinaries,
    suites: &[(String, PathBuf)],
    java: Option<&JavaSuite>,
    tally: &mut Tally,
) -> Result<()> {
    let prefix = platform.prefix;
    let mut script = platform.env.clone();
    script += &format!(
        "insmod {} {} > insmod.log 2>&1 && insmod {} >> insmod.log 2>&1; echo $? > insmod.status\n",
        binaries.rsheap.display(),
        boot.module_args,
        binaries.probe.display()
    );
    if java.is_some()
        || suites
            .iter()
            .any(|(name, _)| BROKER_SUITES.contains(&name.as_str()))
    {
        script += &binder_script(binaries.binder_tools, &binaries.programs.rsheapd);
    }
    script += &format!(
        "export RSHEAPCTL={} RSHEAP_EXAMPLES={}\n",
        binaries.programs.rsheapctl.display(),
        binaries.programs.examples.display()
    );
    if let Some(capi) = &binaries.programs.capi {
        script += &format!("export RSHEAP_CAPI={}\n", capi.display());
    }
    if selftest {
        script += &format!(
            "echo 'rig: kselftest dmabuf-heaps'\n{} > selftest.tap 2>&1\n",
            binaries.selftest.display()
        );
    }
    for (name, path) in suites {
        let run = format!(
            "echo 'rig: suite {name}'\n{} --test-threads=1 > suite-{name}.log 2>&1\n",
            path.display()
        );
        if name == SYSTEM_BROKER_SUITE {
            let instance = android::broker_instance(&env.root)?;
            script += &system_broker_script(env, binaries.binder_tools, &instance, &run);
        } else {
            script += &run;
        }
    }
    if let Some(java) = java {
        script += &java.script();
    }
    // kmemleak only reports objects older than five seconds.
    script += "sleep 6; echo scan > /sys/kernel/debug/kmemleak; cat /sys/kernel/debug/kmemleak > kmemleak.txt\n";
    script += "cat /sys/kernel/debug/dma-api/error_count > dma-api-errors.txt\n";
    script += "cat /sys/kernel/debug/rsheap/stats > rsheap-stats.txt\n";

    // The run folder's name, which the kernel command line carries: no spaces.
    let label = match prefix.trim() {
        "" => boot.label.to_owned(),
        platform => format!("{platform}-{}", boot.label),
    };
    let run = guest::run_on(
        env,
        &platform.machine,
        &label,
        &script,
        GUEST_TIMEOUT,
        Echo::Spinner,
    )?;
    if let Some(boot) = run.boot_seconds {
        println!(
            "  guest booted to its first command in {boot:.1} s (guest clock); whole run {}",
            human_duration(run.wall)
        );
    }
    let insmod_ok = run.read("insmod.status").trim() == "0";
    let insmod = format!("[{label}] insmod rsheap.ko {}", boot.module_args);
    tally.record(insmod.trim_end(), insmod_ok, &run.read("insmod.log"));

    if selftest {
        let per_heap = tally.add_kselftest(&run.read("selftest.tap"));
        for (heap, passed, failed) in &per_heap {
            println!("  selftest summary: heap {heap}: {passed} passed, {failed} failed");
        }
        for ours in ["rsheap", "rsheap-uncached"] {
            if !per_heap
                .iter()
                .any(|(heap, passed, failed)| heap == ours && *passed > 0 && *failed == 0)
            {
                tally.record(
                    &format!("{prefix}kselftest dmabuf-heaps passes on {ours}"),
                    false,
                    &run.read("selftest.tap"),
                );
            }
        }
    }

    let names = suites
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(java.map(|_| java::SUITE));
    for name in names {
        let log = run.read(&format!("suite-{name}.log"));
        if !tally.add_libtest(&format!("{prefix}{name}"), &log) {
            tally.record(
                &format!("{prefix}suite {name} ran"),
                false,
                &guest::tail(&log, 40),
            );
        } else {
            print_libtest_lines(&log);
        }
    }
    if java.is_some() {
        java::check_jni(&run.read(&format!("suite-{}.log", java::SUITE)), tally);
    }
    let dma_errors = run.read("dma-api-errors.txt");
    tally.record(
        &format!("[{label}] DMA-API debugging counts no errors"),
        dma_errors.trim() == "0",
        &dma_errors,
    );
    let kmemleak = run.read("kmemleak.txt");
    tally.record(
        &format!("[{label}] kmemleak reports nothing"),
        kmemleak.trim().is_empty(),
        &kmemleak,
    );
    let splats = run.splats();
    tally.record(
        &format!("[{label}] guest kernel log has no splat"),
        splats.is_empty(),
        &splats.join("\n"),
    );
    if let Some(expected) = platform.chunk_orders {
        let stats = run.read("rsheap-stats.txt");
        let orders = pool_orders(&stats);
        tally.record(
            &format!("[{label}] chunk orders on this page size are {expected:?}"),
            orders == expected,
            &stats,
        );
    }
    Ok(())
}

/// Echoes each libtest result line (`test name ... ok`).
fn print_libtest_lines(log: &str) {
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some(name) = rest.strip_suffix(" ... ok") {
                println!("  ok    {name}");
            } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
                println!("  FAIL  {name}");
            }
        }
    }
}

/// Builds rsheap.ko, the probe and the suites for arm64, and runs [`ARM64_SUITES`] (and the
/// selftest) in one boot of the arm64 kernel.
fn arm64_boot(env: &Env, only_suite: Option<&str>, tally: &mut Tally) -> Result<()> {
    let wanted: Vec<&str> = ARM64_SUITES
        .into_iter()
        .filter(|name| only_suite.is_none_or(|only| only == *name))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let arm = Arm64::ensure(env)?;
    let mut modules = Vec::new();
    for module in [&kmod::RSHEAP, &kmod::VMAP_PROBE] {
        let (ko, warnings) =
            kmod::build_against(env, &arm.kernel, crate::kernel::ARM64.name, module)?;
        tally.record(
            &format!(
                "[arm64] {}.ko builds without warnings (clang W=1, rustc, clippy)",
                module.name
            ),
            warnings.is_empty(),
            &warnings.join("\n"),
        );
        modules.push(ko);
    }
    let suites: Vec<(String, PathBuf)> =
        suite_binaries(arm64::cargo(env).args(["test", "--target", arm64::TARGET]))?
            .into_iter()
            .filter(|(name, _)| wanted.contains(&name.as_str()))
            .collect();
    let mut files: Vec<PathBuf> = modules.clone();
    files.push(arm.kernel.selftest.clone());
    files.extend(suites.iter().map(|(_, path)| path.clone()));
    let brokered = suites
        .iter()
        .any(|(name, _)| BROKER_SUITES.contains(&name.as_str()));
    let mut env_lines = String::new();
    if brokered {
        // The broker suite's client processes, which it finds through cargo on the host.
        let client = arm64::target_dir(env)
            .join(arm64::TARGET)
            .join("debug/broker_client");
        env_lines += "export RSHEAP_BROKER_CLIENT=\"$RUN/broker_client\"\n";
        files.push(client);
        let status = arm64::cargo(env)
            .args(["build", "--quiet", "--target", arm64::TARGET])
            .args(["--package", "rsheap-broker", "--bins"])
            .status()
            .context("build rsheapd for arm64")?;
        if !status.success() {
            bail!("building rsheapd for arm64 failed");
        }
        files.push(
            arm64::target_dir(env)
                .join(arm64::TARGET)
                .join("debug/rsheapd"),
        );
        let tools = setup::arm64_binder_tools(env)?;
        files.push(tools.join("rsb_hub"));
        files.push(tools.join("rsb_service"));
    }
    let name_of =
        |path: &Path| -> PathBuf { Path::new(".").join(path.file_name().unwrap_or_default()) };
    let guest_suites_list: Vec<(String, PathBuf)> = suites
        .iter()
        .map(|(name, path)| (name.clone(), name_of(path)))
        .collect();
    let programs = GuestPrograms {
        rsheapd: PathBuf::from("./rsheapd"),
        rsheapctl: PathBuf::from("./rsheapctl"),
        examples: PathBuf::from("."),
        capi: None,
    };
    let [rsheap, probe] = [&modules[0], &modules[1]].map(|ko| name_of(ko));
    let selftest = name_of(&arm.kernel.selftest);
    let binaries = GuestBinaries {
        rsheap: &rsheap,
        probe: &probe,
        programs: &programs,
        selftest: &selftest,
        binder_tools: Path::new("."),
    };
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let platform = Platform {
        machine: arm.machine(&files),
        prefix: "arm64 ",
        chunk_orders: Some(&[7, 6, 2, 0]),
        env: env_lines,
    };
    println!("\nemulator: arm64 (kernel {})", arm.kernel.release);
    guest_suites(
        env,
        &platform,
        &BOOTS[0],
        only_suite.is_none(),
        &binaries,
        &guest_suites_list,
        None,
        tally,
    )
}
