//! The pool limit with rsheap.ko loaded as `pool_limit_mb=1000000` (`cargo xtask test` runs
//! this suite in a boot of its own): a budget above RAM is clamped to RAM, with a warning, so
//! the pools can never hold more memory than the machine has.

use rsheap_suites::{meminfo, rsheap_stat};

#[test]
fn a_pool_limit_above_ram_is_clamped_to_ram() {
    let parameter = std::fs::read_to_string("/sys/module/rsheap/parameters/pool_limit_mb")
        .expect("read the parameter");
    assert_eq!(parameter.trim(), "1000000", "the boot's parameter");
    let limit = rsheap_stat("pool limit bytes");
    let ram = meminfo("MemTotal");
    assert!(limit > 0, "pooling is on");
    assert!(
        limit <= ram,
        "a {limit}-byte pool limit exceeds the {ram} bytes of RAM"
    );
    let sysfs: u64 = std::fs::read_to_string("/sys/kernel/rsheap/pool/limit_bytes")
        .expect("read the limit")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(sysfs, limit);
    let log = std::process::Command::new("dmesg")
        .output()
        .expect("run dmesg");
    assert!(
        String::from_utf8_lossy(&log.stdout).contains("pool_limit_mb is more than RAM"),
        "the module warned of the clamp"
    );
}
