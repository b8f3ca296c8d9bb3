//! Memory-cgroup accounting, with rsheap.ko loaded as `mem_accounting=1` (`cargo xtask test`
//! runs this suite in a boot of its own): buffer pages are charged to the allocating cgroup
//! and uncharged when freed, and nothing is pooled.

use std::path::Path;

use rsheap::Heap;
use rsheap_suites::{rsheap_stat, RSHEAP};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn read_number(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        .trim()
        .parse()
        .expect("a number")
}

/// Puts this process in a fresh memory cgroup and returns its folder.
fn enter_cgroup() -> std::path::PathBuf {
    if !Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
        nix::mount::mount(
            Some("cgroup2"),
            CGROUP_ROOT,
            Some("cgroup2"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount cgroup2");
    }
    std::fs::write(
        Path::new(CGROUP_ROOT).join("cgroup.subtree_control"),
        "+memory",
    )
    .expect("enable memory");
    let group = Path::new(CGROUP_ROOT).join("rsheap-accounting");
    std::fs::create_dir_all(&group).expect("create cgroup");
    std::fs::write(group.join("cgroup.procs"), std::process::id().to_string())
        .expect("join cgroup");
    group
}

#[test]
fn buffers_are_charged_to_the_allocating_cgroup() {
    assert_eq!(
        std::fs::read_to_string("/sys/module/rsheap/parameters/mem_accounting")
            .expect("param")
            .trim(),
        "Y"
    );
    assert_eq!(
        rsheap_stat("pool limit bytes"),
        0,
        "nothing is pooled while pages are charged"
    );
    let group = enter_cgroup();
    let current = group.join("memory.current");
    let before = read_number(&current);
    let buffer = Heap::open(RSHEAP)
        .expect("open")
        .allocate(64 << 20)
        .expect("allocate");
    let charged = read_number(&current);
    assert!(
        charged >= before + (60 << 20),
        "memory.current went from {before} to {charged}"
    );
    drop(buffer);
    let after = read_number(&current);
    assert!(
        after + (60 << 20) <= charged,
        "freeing uncharged: {charged} -> {after}"
    );
}
