//! `cargo xtask demo`: boots the test kernel, loads rsheap.ko and shows rsheap at work beside
//! the in-tree `system` heap, using the `rsheapctl` tool a user would.

use std::time::Duration;

use anyhow::Result;

use crate::guest::{self, Echo};
use crate::{kmod, setup};

pub fn run() -> Result<()> {
    let env = setup::run()?;
    let (module, _) = kmod::build(&env, &kmod::RSHEAP)?;
    let ctl = env.build_release("rsheapctl", "rsheapctl")?;
    let script = format!(
        "insmod {module} || exit 1\n\
         echo\n\
         echo '$ rsheapctl heaps'\n\
         {ctl} heaps\n\
         echo\n\
         echo '$ rsheapctl bench --heaps rsheap,system --sizes 1M,8M,32M,256M'\n\
         {ctl} bench --heaps rsheap,system --sizes 1M,8M,32M,256M\n\
         echo\n\
         echo '$ cat /sys/kernel/debug/rsheap/stats'\n\
         sleep 1; cat /sys/kernel/debug/rsheap/stats\n",
        module = module.display(),
        ctl = ctl.display(),
    );
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
