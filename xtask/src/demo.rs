//! `cargo xtask demo`: boots the benchmark kernel (configured as a device's, without the test
//! kernel's checkers, so that its figures are a device's), loads rsheap.ko, starts rsheapd, and
//! shows the stack at work with the `rsheapctl` tool a user would: heaps, a model file loaded
//! through the broker and straight from the heap, who holds what, the counters, and rsheap
//! beside the in-tree `system` heap.

use std::time::Duration;

use anyhow::Result;

use crate::guest::{self, Echo};
use crate::{kernel, kmod, setup, test};

pub fn run() -> Result<()> {
    let env = setup::run_for(&kernel::X86_64_BENCH)?;
    let (module, _) = kmod::build(&env, &kmod::RSHEAP)?;
    let ctl = env.build_release("rsheapctl", "rsheapctl")?;
    let rsheapd = env.build_release("rsheap-broker", "rsheapd")?;
    let config = env.root.join("service/rsheapd.toml");
    let mut script = format!("insmod {} || exit 1\n", module.display());
    script += &test::binder_script(&env.binder_tools, &rsheapd);
    script += &format!(
        "$RSHEAPD --config {} > rsheapd.log 2>&1 &\n\
         dd if=/dev/urandom of=/run/scratch/weights.bin bs=1M count=96 status=none && sync\n\
         # rsheapctl waits 5 s for the broker; rsheapd may take longer to start under TCG.\n\
         for try in 1 2 3 4; do {ctl} dump > /dev/null 2>&1 && break; done\n",
        config.display(),
        ctl = ctl.display()
    );
    for command in [
        "heaps",
        "load /run/scratch/weights.bin --usage model-weights --checksum",
        "load /run/scratch/weights.bin --direct --checksum",
        "alloc 8M --usage camera-frame --name preview",
        "stat",
        "bench --heaps rsheap,system --sizes 1M,8M,32M,256M",
    ] {
        script += &format!(
            "echo\necho '$ rsheapctl {command}'\n{} {command}\n",
            ctl.display()
        );
    }
    println!(
        "\nbooting kernel {} under QEMU (TCG) ...",
        env.kernel.release
    );
    let run = guest::run(
        &env,
        "demo",
        &script,
        Duration::from_secs(15 * 60),
        Echo::Script,
    )?;
    run.ensure_clean("demo")
}
