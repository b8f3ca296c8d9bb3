//! `cargo xtask demo`: boots the test kernel, loads rsheap.ko and shows rsheap at work beside
//! the in-tree `system` heap, using the `rsheapctl` tool a user would.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::guest::{self, Echo};
use crate::{kmod, setup};

pub fn run() -> Result<()> {
    let env = setup::run()?;
    let (module, _) = kmod::build(&env, &kmod::RSHEAP)?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&env.root)
        .args(["build", "--release", "--quiet", "--package", "rsheapctl"])
        .status()?;
    if !status.success() {
        bail!("building rsheapctl failed");
    }
    let ctl = env.target().join("release/rsheapctl");
    let script = format!(
        "insmod {module} || exit 1\n\
         echo\n\
         echo '$ rsheapctl heaps'\n\
         {ctl} heaps\n\
         echo\n\
         echo '$ rsheapctl bench --heaps rsheap,system --sizes 1M,8M,32M,256M'\n\
         {ctl} bench --heaps rsheap,system --sizes 1M,8M,32M,256M\n",
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
    let splats = run.splats();
    if !splats.is_empty() {
        bail!("the guest kernel reported problems:\n{}", splats.join("\n"));
    }
    if run.exit_status != Some(0) {
        bail!(
            "the demo script failed in the guest (exit status {:?})",
            run.exit_status
        );
    }
    Ok(())
}
