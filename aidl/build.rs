//! Generates the binder code of `vendor.rsheap` from one frozen API version, stamped with that
//! version and its hash, as AOSP's `vendor.rsheap-V<N>-rust` is.
//!
//! The crate `vendor-rsheap-aidl` speaks the newest frozen version; `vendor-rsheap-aidl-v<N>`
//! (under `aidl/v<N>/`, sharing this script) speaks version N, for clients built against it.

use std::path::{Path, PathBuf};

fn main() {
    if let Err(err) = generate() {
        eprintln!("{err}");
        std::process::exit(1);
    }
}

fn generate() -> Result<(), String> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let package = std::env::var("CARGO_PKG_NAME").map_err(|e| e.to_string())?;
    let api = manifest
        .ancestors()
        .map(|dir| dir.join("aidl_api/vendor.rsheap"))
        .find(|dir| dir.is_dir())
        .ok_or("no aidl_api/vendor.rsheap above the crate")?;
    let version = match package.rsplit_once("-v") {
        Some((_, version)) => version
            .parse::<i32>()
            .map_err(|_| format!("{package}: no version in the name"))?,
        None => newest_version(&api)?,
    };
    let frozen = api.join(version.to_string());
    let hash_file = frozen.join(".hash");
    let hash = std::fs::read_to_string(&hash_file)
        .map_err(|err| format!("cannot read {}: {err}", hash_file.display()))?
        .trim()
        .to_owned();
    println!("cargo:rerun-if-changed={}", api.display());
    println!("cargo:rerun-if-changed={}", hash_file.display());
    let package_dir = frozen.join("vendor/rsheap");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&package_dir)
        .map_err(|err| format!("cannot read {}: {err}", package_dir.display()))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .collect();
    files.sort();
    let mut builder = rsbinder_aidl::Builder::new().include_dir(&frozen);
    // The version and hash stamp one source file at a time.
    for file in files {
        builder = builder.source(file).version(version).hash(hash.clone());
    }
    builder
        .output(PathBuf::from("vendor_rsheap.rs"))
        .generate()
        .map_err(|err| format!("AIDL generation failed: {err:?}"))
}

/// The highest numbered version under `api`.
fn newest_version(api: &Path) -> Result<i32, String> {
    std::fs::read_dir(api)
        .map_err(|err| format!("cannot read {}: {err}", api.display()))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .ok_or_else(|| format!("no frozen version in {}", api.display()))
}
