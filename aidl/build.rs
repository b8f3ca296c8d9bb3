//! Generates the binder code of `vendor.rsheap` from its newest frozen API version, stamped
//! with that version and its hash, as AOSP's `vendor.rsheap-V<N>-rust` is.

use std::path::{Path, PathBuf};

/// The frozen version the crate speaks; `aidl_api/vendor.rsheap/<VERSION>/` holds it.
const VERSION: i32 = 1;

fn main() {
    let frozen = Path::new("aidl_api/vendor.rsheap").join(VERSION.to_string());
    let hash = match std::fs::read_to_string(frozen.join(".hash")) {
        Ok(hash) => hash.trim().to_owned(),
        Err(err) => {
            eprintln!("cannot read {}: {err}", frozen.join(".hash").display());
            std::process::exit(1);
        }
    };
    println!("cargo:rerun-if-changed={}", frozen.join(".hash").display());
    let package = frozen.join("vendor/rsheap");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&package) {
        Ok(entries) => entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .collect(),
        Err(err) => {
            eprintln!("cannot read {}: {err}", package.display());
            std::process::exit(1);
        }
    };
    files.sort();
    let mut builder = rsbinder_aidl::Builder::new().include_dir(&frozen);
    // The version and hash stamp one source file at a time.
    for file in files {
        builder = builder.source(file).version(VERSION).hash(hash.clone());
    }
    let generated = builder.output(PathBuf::from("vendor_rsheap.rs")).generate();
    if let Err(err) = generated {
        eprintln!("AIDL generation failed: {err:?}");
        std::process::exit(1);
    }
}
