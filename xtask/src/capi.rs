//! The C API's build checks and the programs its suite runs.
//!
//! On the host: builds `librsheap_capi.so` (debug, as the other guest programs, linked with the
//! version script as Soong links it), checks that it exports exactly the functions the version
//! script names, each versioned `RSHEAP_1` (the crate's tests check that the script names the
//! functions `include/rsheap/rsheap.h` declares), and compiles the C test program (`sdk/capi/tests/capi_test.c`, C11) and the C++
//! example (`sdk/capi/examples/camera_npu.cpp`, C++17 without exceptions or RTTI, as HALs
//! build) against the header with `-Wall -Wextra -Werror`, into `target/capi`. In the guest,
//! the `capi` suite runs them from `$RSHEAP_CAPI`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::Env;
use crate::tally::Tally;

/// The symbol version of every function of the first API version.
const VERSION: &str = "RSHEAP_1";

/// Builds the library and the programs, recording the checks in `tally`; returns the folder
/// of the programs if they built.
pub fn build(env: &Env, tally: &mut Tally) -> Option<PathBuf> {
    let library = match build_library(env) {
        Ok(library) => library,
        Err(err) => {
            tally.record("capi: librsheap_capi.so builds", false, &format!("{err:#}"));
            return None;
        }
    };
    let exports = exported_symbols(env, &library);
    tally.record(
        &format!("capi: librsheap_capi.so exports exactly rsheap.h's functions, as {VERSION}"),
        exports.as_ref().is_ok_and(Vec::is_empty),
        &match exports {
            Ok(problems) => problems.join("\n"),
            Err(err) => format!("{err:#}"),
        },
    );
    let programs = compile_programs(env, &library);
    let check =
        "capi: the C test and the C++ example build against rsheap.h (-Wall -Wextra -Werror)";
    match programs {
        Ok(dir) => {
            tally.record(check, true, "");
            Some(dir)
        }
        Err(err) => {
            tally.record(check, false, &format!("{err:#}"));
            None
        }
    }
}

/// The system libraries Rust's standard library needs, as `rustc --print native-static-libs`
/// reports them for a static library on Linux.
const NATIVE_LIBS: [&str; 7] = ["gcc_s", "util", "rt", "pthread", "m", "dl", "c"];

/// Where the rig puts the shared library and the programs.
pub fn out_dir(env: &Env) -> PathBuf {
    env.target().join("capi")
}

/// Builds the crate's static library and links `librsheap_capi.so` from it with the version
/// script, as Soong links `rust_ffi`'s shared variant with its `version_script` (rustc's own
/// `cdylib` would export the same functions, unversioned, since its version script comes
/// first).
fn build_library(env: &Env) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&env.root)
        .args(["build", "--quiet", "--package", "rsheap-capi"])
        .status()
        .context("build rsheap-capi")?;
    if !status.success() {
        bail!("building rsheap-capi failed");
    }
    let out = out_dir(env);
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let library = out.join("librsheap_capi.so");
    let output = Command::new("cc")
        .args([
            "-shared",
            "-Wl,-soname,librsheap_capi.so",
            "-Wl,--gc-sections",
            "-o",
        ])
        .arg(&library)
        .arg("-Wl,--whole-archive")
        .arg(env.target().join("debug/librsheap_capi.a"))
        .arg("-Wl,--no-whole-archive")
        .arg(format!(
            "-Wl,--version-script={}",
            env.root.join("sdk/capi/librsheap_capi.map.txt").display()
        ))
        .args(NATIVE_LIBS.map(|lib| format!("-l{lib}")))
        .output()
        .context("run cc")?;
    if !output.status.success() {
        bail!(
            "linking librsheap_capi.so failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(library)
}

/// The functions a version script exports: its `global:` entries.
fn versioned_functions(script: &str) -> BTreeSet<String> {
    script
        .lines()
        .filter_map(|line| line.trim().strip_suffix(';'))
        .filter(|name| name.starts_with("rsheap_"))
        .map(str::to_owned)
        .collect()
}

/// What is wrong with the library's dynamic symbols: functions the version script does not
/// name, named ones missing, and any without the version.
fn exported_symbols(env: &Env, library: &Path) -> Result<Vec<String>> {
    let script = std::fs::read_to_string(env.root.join("sdk/capi/librsheap_capi.map.txt"))
        .context("read librsheap_capi.map.txt")?;
    let declared = versioned_functions(&script);
    let out = Command::new("nm")
        .args(["--dynamic", "--defined-only", "--with-symbol-versions"])
        .arg(library)
        .output()
        .context("run nm")?;
    if !out.status.success() {
        bail!("nm failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut problems = Vec::new();
    let mut exported = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "<address> <type> <name>@@<version>"; the version node itself is an absolute symbol.
        let Some(symbol) = line.split_whitespace().nth(2) else {
            continue;
        };
        let (name, version) = symbol.split_once('@').unwrap_or((symbol, ""));
        if name == VERSION {
            continue;
        }
        if version.trim_start_matches('@') != VERSION {
            problems.push(format!("{symbol} is not versioned {VERSION}"));
        }
        exported.insert(name.to_owned());
    }
    for name in exported.difference(&declared) {
        problems.push(format!("{name} is exported but not in the version script"));
    }
    for name in declared.difference(&exported) {
        problems.push(format!("{name} is in the version script but not exported"));
    }
    Ok(problems)
}

/// Compiles the programs into `target/capi`; fails with the compilers' output.
fn compile_programs(env: &Env, library: &Path) -> Result<PathBuf> {
    let out = out_dir(env);
    let capi = env.root.join("sdk/capi");
    let lib_dir = library.parent().context("the library's folder")?;
    let builds = [
        (
            "cc",
            &["-std=c11", "-pedantic"][..],
            capi.join("tests/capi_test.c"),
            "capi_test",
        ),
        (
            "c++",
            &["-std=c++17", "-fno-exceptions", "-fno-rtti"][..],
            capi.join("examples/camera_npu.cpp"),
            "camera_npu",
        ),
    ];
    for (compiler, flags, source, name) in builds {
        let output = Command::new(compiler)
            .args(flags)
            .args(["-Wall", "-Wextra", "-Werror", "-O1", "-I"])
            .arg(capi.join("include"))
            .arg("-o")
            .arg(out.join(name))
            .arg(&source)
            .arg("-L")
            .arg(lib_dir)
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .arg("-lrsheap_capi")
            .output()
            .with_context(|| format!("run {compiler}"))?;
        if !output.status.success() {
            bail!(
                "{} does not build:\n{}",
                source.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_scripts_functions_are_its_global_entries() {
        let script = "# rsheap_not_this;\nRSHEAP_1 {\n  global:\n    rsheap_page_size;\n    \
                      rsheap_heap_open;\n  local:\n    *;\n};\n";
        let found: Vec<String> = versioned_functions(script).into_iter().collect();
        assert_eq!(found, ["rsheap_heap_open", "rsheap_page_size"]);
    }
}
