//! The frozen API of `vendor.rsheap`, kept as AOSP's `aidl_interface` keeps it.
//!
//! `aidl/aidl_api/vendor.rsheap/current/` is the API the sources declare, with comments left
//! out; each frozen version `N/` is a snapshot of `current` taken by `cargo xtask aidl-freeze`,
//! stamped with a `.hash` computed as AOSP's freeze computes it. Frozen versions never change
//! again: the checks fail if a snapshot no longer matches its hash, if `current` drifts from
//! the sources, or if `current` differs from the newest frozen version without a new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha1::{Digest as _, Sha1};

use crate::tally::Tally;

/// The interface's name, as in its `aidl_interface` module.
const INTERFACE: &str = "vendor.rsheap";

/// The header AOSP writes on every file of an API dump.
const HEADER: &str = "\
///////////////////////////////////////////////////////////////////////////////
// THIS FILE IS IMMUTABLE. DO NOT EDIT IN ANY CASE.                          //
///////////////////////////////////////////////////////////////////////////////

// This file is a snapshot of an AIDL file. Do not edit it manually. There are
// two cases:
// 1). this is a frozen version file - do not edit this in any case.
// 2). this is a 'current' file. If you make a backwards compatible change to
//     the interface (from the latest frozen version), the build system will
//     prompt you to update this file with `m <name>-update-api`.
//
// You must not make a backward incompatible change to any AIDL file built
// with the aidl_interface module type with versions property set. The module
// type is used to build AIDL files in a way that they can be used across
// independently updatable components of the system. If a device is shipped
// with such a backward incompatible change, it has a high risk of breaking
// later when a module using the interface is updated, e.g., Mainline modules.

";

/// An API dump: file path (relative, `vendor/rsheap/X.aidl`) to contents.
type Dump = BTreeMap<PathBuf, String>;

fn api_dir(root: &Path) -> PathBuf {
    root.join("aidl/aidl_api").join(INTERFACE)
}

/// The dump of the sources under `aidl/`: each file without comments, under [`HEADER`].
fn dump_sources(root: &Path) -> Result<Dump> {
    let sources = root.join("aidl");
    let mut dump = Dump::new();
    for entry in std::fs::read_dir(sources.join("vendor/rsheap"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "aidl") {
            let text = std::fs::read_to_string(&path)?;
            let relative = path.strip_prefix(&sources)?.to_path_buf();
            dump.insert(relative, format!("{HEADER}{}", strip_comments(&text)));
        }
    }
    Ok(dump)
}

/// The `.aidl` files under `dir`.
fn read_dump(dir: &Path) -> Result<Dump> {
    let mut dump = Dump::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).with_context(|| format!("{}", folder.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "aidl") {
                let text = std::fs::read_to_string(&path)?;
                dump.insert(path.strip_prefix(dir)?.to_path_buf(), text);
            }
        }
    }
    Ok(dump)
}

fn write_dump(dir: &Path, dump: &Dump) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    for (path, text) in dump {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().context("a dump file has a folder")?)?;
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// AOSP's freeze hash: the SHA-1 of `sha1sum` lines for the dump's files in byte order of
/// their `./`-relative paths, followed by the previous frozen version (`latest-version` for
/// the first).
fn hash(dump: &Dump, previous: Option<u32>) -> String {
    let mut listing = String::new();
    let mut paths: Vec<String> = dump
        .keys()
        .map(|path| format!("./{}", path.display()))
        .collect();
    paths.sort();
    for path in &paths {
        let text = &dump[Path::new(&path[2..])];
        listing += &format!("{:x}  {path}\n", Sha1::digest(text.as_bytes()));
    }
    listing += &previous.map_or("latest-version".to_owned(), |v| v.to_string());
    listing += "\n";
    format!("{:x}", Sha1::digest(listing.as_bytes()))
}

/// The frozen versions, ascending.
fn frozen_versions(root: &Path) -> Result<Vec<u32>> {
    if !api_dir(root).exists() {
        return Ok(Vec::new());
    }
    let mut versions: Vec<u32> = std::fs::read_dir(api_dir(root))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    Ok(versions)
}

/// `cargo xtask aidl-update`: rewrites `current` from the sources.
pub fn update(root: &Path) -> Result<()> {
    let dir = api_dir(root).join("current");
    write_dump(&dir, &dump_sources(root)?)?;
    println!("wrote {}", dir.display());
    Ok(())
}

/// `cargo xtask aidl-freeze`: snapshots `current` as the next version, with its hash.
pub fn freeze(root: &Path) -> Result<()> {
    let current = dump_sources(root)?;
    let versions = frozen_versions(root)?;
    if let Some(&latest) = versions.last() {
        if read_dump(&api_dir(root).join(latest.to_string()))? == current {
            bail!("the API has not changed since version {latest}");
        }
    }
    let previous = versions.last().copied();
    let version = previous.map_or(1, |v| v + 1);
    let dir = api_dir(root).join(version.to_string());
    write_dump(&dir, &current)?;
    std::fs::write(dir.join(".hash"), format!("{}\n", hash(&current, previous)))?;
    write_dump(&api_dir(root).join("current"), &current)?;
    println!("froze {INTERFACE} version {version} in {}", dir.display());
    Ok(())
}

/// The host checks: frozen snapshots match their hashes, `current` matches the sources, and
/// the newest frozen version is `current` (the interface crate builds from it).
pub fn check(root: &Path, tally: &mut Tally) {
    let outcome = (|| -> Result<()> {
        let versions = frozen_versions(root)?;
        let mut previous = None;
        for &version in &versions {
            let dir = api_dir(root).join(version.to_string());
            let recorded = std::fs::read_to_string(dir.join(".hash"))?;
            let computed = hash(&read_dump(&dir)?, previous);
            if recorded.trim() != computed {
                bail!("version {version} was edited after freezing: its .hash is {}, its files hash to {computed}", recorded.trim());
            }
            previous = Some(version);
        }
        let sources = dump_sources(root)?;
        if read_dump(&api_dir(root).join("current"))? != sources {
            bail!("aidl_api/{INTERFACE}/current differs from the sources: run `cargo xtask aidl-update`");
        }
        match versions.last() {
            Some(latest) if read_dump(&api_dir(root).join(latest.to_string()))? == sources => {
                Ok(())
            }
            Some(latest) => {
                bail!("the API changed since version {latest}: run `cargo xtask aidl-freeze`")
            }
            None => bail!("no frozen version: run `cargo xtask aidl-freeze`"),
        }
    })();
    let detail = outcome
        .as_ref()
        .err()
        .map(|err| format!("{err:#}"))
        .unwrap_or_default();
    tally.record(
        "aidl: frozen vendor.rsheap versions match their hashes, current and the sources",
        outcome.is_ok(),
        &detail,
    );
}

/// `text` without `//` and `/* */` comments (string literals kept): lines that held only a
/// comment go, as do trailing spaces and runs of blank lines.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                out.push(COMMENT);
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(COMMENT);
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            _ => out.push(c),
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        let text = line.replace(COMMENT, "").trim_end().to_owned();
        if text.is_empty() && (line.contains(COMMENT) || lines.last().is_none_or(String::is_empty))
        {
            continue;
        }
        lines.push(text);
    }
    while lines.last().is_some_and(|line| line.is_empty()) {
        lines.pop();
    }
    lines.join("\n") + "\n"
}

/// Marks where a comment was, while [`strip_comments`] decides which lines to drop.
const COMMENT: char = '\u{1}';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_go_and_strings_stay() {
        let text = "/** doc */\npackage a;\n\n\n// line\nconst String S = \"/* x */\"; // end\n";
        assert_eq!(
            strip_comments(text),
            "package a;\n\nconst String S = \"/* x */\";\n"
        );
        let text =
            "parcelable P {\n    /** doc\n      more */\n    long a;\n    long b; /* x */\n}\n";
        assert_eq!(
            strip_comments(text),
            "parcelable P {\n    long a;\n    long b;\n}\n"
        );
    }

    #[test]
    fn hash_follows_the_freeze_formula() {
        // In a folder holding only `a.aidl` with the one byte `x`:
        // (find ./ -name "*.aidl" -print0 | LC_ALL=C sort -z | xargs -0 sha1sum &&
        //  echo latest-version) | sha1sum
        let dump = Dump::from([(PathBuf::from("a.aidl"), "x".to_owned())]);
        assert_eq!(
            hash(&dump, None),
            "bb0808324c936e00750245ceff1b67136bef28b8"
        );
    }
}
