//! `include/rsheap/rsheap.h` against this crate: the structures' layouts and the constants
//! (from a program compiled against the header), and the functions the header declares
//! against those the version script exports and this crate defines.

use std::collections::BTreeSet;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::types::*;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// The names `rsheap_*` followed by `(` in `text`: declarations or definitions.
fn functions_in(text: &str, prefix: &str) -> BTreeSet<String> {
    text.split(prefix)
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest[name.len()..]
                .starts_with('(')
                .then(|| format!("rsheap_{name}"))
        })
        .collect()
}

#[test]
fn the_header_the_version_script_and_the_crate_name_the_same_functions() {
    let header = read(&crate_dir().join("include/rsheap/rsheap.h"));
    // Declarations start a line, after their return type.
    let declared = functions_in(&header, " rsheap_")
        .union(&functions_in(&header, "*rsheap_"))
        .cloned()
        .collect::<BTreeSet<_>>();
    let script = read(&crate_dir().join("librsheap_capi.map.txt"));
    let versioned: BTreeSet<String> = script
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_suffix(';'))
        .filter(|name| name.starts_with("rsheap_"))
        .map(str::to_owned)
        .collect();
    let mut defined = BTreeSet::new();
    for entry in std::fs::read_dir(crate_dir().join("src")).unwrap() {
        let source = read(&entry.unwrap().path());
        for (at, _) in source.match_indices("extern \"C\" fn rsheap_") {
            let rest = &source[at + "extern \"C\" fn ".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            defined.insert(name);
        }
    }
    assert!(declared.len() > 20, "found the declarations: {declared:?}");
    assert_eq!(
        declared, versioned,
        "rsheap.h and librsheap_capi.map.txt disagree"
    );
    assert_eq!(
        declared, defined,
        "rsheap.h and the crate's functions disagree"
    );
}

#[test]
fn the_header_lays_out_structures_and_constants_as_the_crate_does() {
    let include = crate_dir().join("include");
    let out = std::env::temp_dir().join(format!("rsheap-capi-layout-{}", std::process::id()));
    let program = r#"
        #include <stdio.h>
        #include <rsheap/rsheap.h>
        #define LAYOUT(s, f) printf("%zu ", offsetof(s, f))
        int main(void) {
            printf("%d %d %d %d ", RSHEAP_USAGE_CAMERA_FRAME, RSHEAP_USAGE_MODEL_WEIGHTS,
                   RSHEAP_USAGE_MODEL_EXECUTABLE, RSHEAP_USAGE_SCRATCH);
            printf("%d %d %d %d %d %d %d %d %d ", RSHEAP_ERROR_INVALID_ARGUMENT,
                   RSHEAP_ERROR_NO_MEMORY, RSHEAP_ERROR_QUOTA_EXCEEDED, RSHEAP_ERROR_NOT_FOUND,
                   RSHEAP_ERROR_IO, RSHEAP_ERROR_UNSUPPORTED, RSHEAP_ERROR_BUSY,
                   RSHEAP_ERROR_CANCELLED, RSHEAP_ERROR_SESSION_CLOSED);
            printf("%d %d %d %d %d %d ", RSHEAP_SYNC_READ, RSHEAP_SYNC_WRITE,
                   RSHEAP_SYNC_READ_WRITE, RSHEAP_MAP_READ, RSHEAP_MAP_READ_WRITE,
                   RSHEAP_NAME_SIZE);
            printf("%llu ", (unsigned long long)RSHEAP_TO_END);
            printf("%zu ", sizeof(RsheapAllocationOptions));
            LAYOUT(RsheapAllocationOptions, usage); LAYOUT(RsheapAllocationOptions, cached);
            LAYOUT(RsheapAllocationOptions, heap); LAYOUT(RsheapAllocationOptions, debug_name);
            printf("%zu ", sizeof(RsheapSpan));
            LAYOUT(RsheapSpan, file_offset); LAYOUT(RsheapSpan, buffer_offset);
            LAYOUT(RsheapSpan, length);
            printf("%zu ", sizeof(RsheapBufferInfo));
            LAYOUT(RsheapBufferInfo, id); LAYOUT(RsheapBufferInfo, size);
            LAYOUT(RsheapBufferInfo, usage); LAYOUT(RsheapBufferInfo, cached);
            LAYOUT(RsheapBufferInfo, heap); LAYOUT(RsheapBufferInfo, name);
            LAYOUT(RsheapBufferInfo, debug_name);
            printf("%zu ", sizeof(RsheapHeapInfo));
            LAYOUT(RsheapHeapInfo, name); LAYOUT(RsheapHeapInfo, cached);
            LAYOUT(RsheapHeapInfo, usages); LAYOUT(RsheapHeapInfo, buffers);
            LAYOUT(RsheapHeapInfo, bytes); LAYOUT(RsheapHeapInfo, allocations);
            LAYOUT(RsheapHeapInfo, failures);
            printf("\n");
            return 0;
        }
    "#;
    let source = out.with_extension("c");
    std::fs::write(&source, program).unwrap();
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status()
        .expect("run cc");
    assert!(
        status.success(),
        "a program against rsheap.h does not compile"
    );
    let printed = Command::new(&out).output().expect("run the layout program");
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&out);
    let c: Vec<u64> = String::from_utf8_lossy(&printed.stdout)
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let codes = [
        rsheap::BrokerErrorCode::InvalidArgument,
        rsheap::BrokerErrorCode::NoMemory,
        rsheap::BrokerErrorCode::QuotaExceeded,
        rsheap::BrokerErrorCode::NotFound,
        rsheap::BrokerErrorCode::Io,
        rsheap::BrokerErrorCode::Unsupported,
        rsheap::BrokerErrorCode::Busy,
        rsheap::BrokerErrorCode::Cancelled,
        rsheap::BrokerErrorCode::SessionClosed,
    ];
    let mut rust: Vec<u64> = [
        USAGE_CAMERA_FRAME,
        USAGE_MODEL_WEIGHTS,
        USAGE_MODEL_EXECUTABLE,
        USAGE_SCRATCH,
    ]
    .into_iter()
    .chain(codes.map(rsheap::BrokerErrorCode::code))
    .chain([
        SYNC_READ,
        SYNC_WRITE,
        SYNC_READ_WRITE,
        MAP_READ,
        MAP_READ_WRITE,
    ])
    .map(|value| value as u64)
    .collect();
    rust.extend([NAME_SIZE as u64, rsheap::Span::TO_END]);
    rust.extend(
        [
            size_of::<RsheapAllocationOptions>(),
            offset_of!(RsheapAllocationOptions, usage),
            offset_of!(RsheapAllocationOptions, cached),
            offset_of!(RsheapAllocationOptions, heap),
            offset_of!(RsheapAllocationOptions, debug_name),
            size_of::<RsheapSpan>(),
            offset_of!(RsheapSpan, file_offset),
            offset_of!(RsheapSpan, buffer_offset),
            offset_of!(RsheapSpan, length),
            size_of::<RsheapBufferInfo>(),
            offset_of!(RsheapBufferInfo, id),
            offset_of!(RsheapBufferInfo, size),
            offset_of!(RsheapBufferInfo, usage),
            offset_of!(RsheapBufferInfo, cached),
            offset_of!(RsheapBufferInfo, heap),
            offset_of!(RsheapBufferInfo, name),
            offset_of!(RsheapBufferInfo, debug_name),
            size_of::<RsheapHeapInfo>(),
            offset_of!(RsheapHeapInfo, name),
            offset_of!(RsheapHeapInfo, cached),
            offset_of!(RsheapHeapInfo, usages),
            offset_of!(RsheapHeapInfo, buffers),
            offset_of!(RsheapHeapInfo, bytes),
            offset_of!(RsheapHeapInfo, allocations),
            offset_of!(RsheapHeapInfo, failures),
        ]
        .map(|value| value as u64),
    );
    assert_eq!(rust, c, "types.rs and rsheap.h disagree");
}
