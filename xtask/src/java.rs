//! The Java API's build and its JUnit suite.
//!
//! On the host: builds `rsheap_jni` (debug) and compiles `dev.rsheap` (`sdk/java/src`), its
//! JUnit 4 tests (`sdk/java/tests/src`) and the rig's runner (`tests/junit`) with Debian's
//! JDK 17, `--release 17 -Xlint:all -Werror`, into `target/java`; a failure or a warning fails
//! that check. In the guest: runs every `*Test` class as the suite `java`, through the runner,
//! which reports in libtest's format so the tally counts each test, under the JVM's JNI checks
//! (`-Xcheck:jni`), whose complaints fail a check of their own. The tests start their own
//! rsheapd (`$RSHEAPD`, from the broker suites' set-up) with the shipped configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::Env;
use crate::tally::Tally;

/// The suite's name for `--suite` and in the tally.
pub const SUITE: &str = "java";

/// JUnit 4 and the hamcrest it needs, from Debian's `junit4` and `libhamcrest-java`.
const JUNIT_JARS: [&str; 2] = ["/usr/share/java/junit4.jar", "/usr/share/java/hamcrest.jar"];

/// The runner that reports JUnit results in libtest's format.
const RUNNER: &str = "dev.rsheap.rig.LibtestRunner";

/// What HotSpot's `-Xcheck:jni` prints when native code misuses JNI: a call with an exception
/// pending, more local references than the frame's capacity, a fatal misuse.
const JNI_CHECK_MARKERS: [&str; 3] = [
    "WARNING in native method",
    "JNI local refs",
    "FATAL ERROR in native method",
];

/// What the guest needs to run the suite.
pub struct JavaSuite {
    /// The `java` launcher.
    java: PathBuf,
    /// The class path: the library, the tests with the runner, JUnit.
    classpath: String,
    /// Where `librsheap_jni.so` is.
    library_dir: PathBuf,
    /// The configuration the tests start rsheapd with.
    config: PathBuf,
    /// The test classes, by name.
    tests: Vec<String>,
}

/// Builds `rsheap_jni` and compiles the Java sources, recording one check in `tally`; returns
/// the suite if everything built.
pub fn build(env: &Env, tally: &mut Tally) -> Option<JavaSuite> {
    let check = "java: rsheap_jni, dev.rsheap and its tests build (javac -Xlint:all -Werror)";
    match compile(env) {
        Ok((suite, warnings)) => {
            tally.record(check, warnings.is_empty(), &warnings);
            warnings.is_empty().then_some(suite)
        }
        Err(err) => {
            tally.record(check, false, &format!("{err:#}"));
            None
        }
    }
}

impl JavaSuite {
    /// Guest script lines that run the tests into `suite-java.log`.
    ///
    /// The JVM runs pinned to one vCPU, and so do the JVMs and rsheapds the tests start, which
    /// inherit the affinity. Spread over the guest's two vCPUs, HotSpot under QEMU 7.2's
    /// multi-threaded TCG now and then dies of SIGSEGV or SIGILL at the entry of a method C1
    /// has just compiled, as if that vCPU ran stale code: a plain Java loop over a direct
    /// ByteBuffer, without rsheap, died in 7 of 20 runs (2 of 8 also with `-XX:UseAVX=0`), and
    /// this suite in 7 of 21; pinned, none of 8 and none of 6.
    pub fn script(&self) -> String {
        let tests = self.tests.join(" ");
        format!(
            "echo 'rig: suite {SUITE}'\ntaskset -c 0 {} -Xcheck:jni -Djava.library.path={} \
             -Drsheap.config={} -cp {} {RUNNER} {tests} > suite-{SUITE}.log 2>&1\n",
            self.java.display(),
            self.library_dir.display(),
            self.config.display(),
            self.classpath,
        )
    }
}

/// Records whether the JVM's JNI checks (`-Xcheck:jni`) found misuse in the suite's log.
pub fn check_jni(log: &str, tally: &mut Tally) {
    let misuse: Vec<&str> = log
        .lines()
        .filter(|line| JNI_CHECK_MARKERS.iter().any(|marker| line.contains(marker)))
        .collect();
    tally.record(
        "java: -Xcheck:jni reports no JNI misuse",
        misuse.is_empty(),
        &misuse.join("\n"),
    );
}

/// Debian's JDK 17 for this machine's architecture (package `openjdk-17-jdk-headless`).
fn java_home() -> Result<PathBuf> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("run dpkg --print-architecture")?;
    let arch = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let home = PathBuf::from(format!("/usr/lib/jvm/java-17-openjdk-{arch}"));
    if !home.join("bin/javac").exists() {
        bail!("{} has no javac (openjdk-17-jdk-headless)", home.display());
    }
    Ok(home)
}

/// Builds everything; returns the suite and javac's warnings (empty when clean).
fn compile(env: &Env) -> Result<(JavaSuite, String)> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&env.root)
        .args(["build", "--quiet", "--package", "rsheap-jni"])
        .status()
        .context("build rsheap_jni")?;
    if !status.success() {
        bail!("building rsheap_jni failed");
    }
    let home = java_home()?;
    for jar in JUNIT_JARS {
        if !Path::new(jar).exists() {
            bail!("{jar} is missing (junit4, libhamcrest-java)");
        }
    }
    let out = env.target().join("java");
    let classes = out.join("classes");
    let test_classes = out.join("test-classes");
    let library = java_sources(&env.root.join("sdk/java/src"))?;
    let tests_root = env.root.join("sdk/java/tests/src");
    let mut tests = java_sources(&tests_root)?;
    tests.extend(java_sources(&env.root.join("tests/junit"))?);

    let mut warnings = javac(&home, &classes, &[], &library)?;
    if warnings.is_empty() {
        let mut classpath = vec![classes.clone()];
        classpath.extend(JUNIT_JARS.iter().map(PathBuf::from));
        warnings = javac(&home, &test_classes, &classpath, &tests)?;
    }
    let classpath = [classes.as_path(), test_classes.as_path()]
        .into_iter()
        .map(|path| path.display().to_string())
        .chain(JUNIT_JARS.iter().map(|jar| (*jar).to_owned()))
        .collect::<Vec<_>>()
        .join(":");
    let suite = JavaSuite {
        java: home.join("bin/java"),
        classpath,
        library_dir: env.target().join("debug"),
        config: env.root.join("service/rsheapd.toml"),
        tests: test_classes_in(&tests_root)?,
    };
    Ok((suite, warnings))
}

/// Compiles `sources` into a fresh `out`; returns javac's output if it failed or warned.
fn javac(home: &Path, out: &Path, classpath: &[PathBuf], sources: &[PathBuf]) -> Result<String> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("remove {}", out.display()))?;
    }
    std::fs::create_dir_all(out)?;
    let mut command = Command::new(home.join("bin/javac"));
    command
        .args([
            "--release",
            "17",
            "-Xlint:all",
            "-Werror",
            "-proc:none",
            "-encoding",
        ])
        .arg("UTF-8")
        .arg("-d")
        .arg(out);
    if !classpath.is_empty() {
        let joined = classpath
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        command.arg("-cp").arg(joined);
    }
    let output = command.args(sources).output().context("run javac")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Ok(if text.trim().is_empty() {
            format!("javac failed with {}", output.status)
        } else {
            text
        });
    }
    Ok(text.trim().to_owned())
}

/// The `.java` files under `root`, sorted.
fn java_sources(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in
            std::fs::read_dir(&folder).with_context(|| format!("list {}", folder.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "java") {
                found.push(path);
            }
        }
    }
    if found.is_empty() {
        bail!("no Java sources under {}", root.display());
    }
    found.sort();
    Ok(found)
}

/// The names of the `*Test` classes under the test source folder `root`.
fn test_classes_in(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for source in java_sources(root)? {
        let relative = source.strip_prefix(root)?.with_extension("");
        let name = relative
            .to_str()
            .context("a test's path is not UTF-8")?
            .replace('/', ".");
        if name.ends_with("Test") {
            names.push(name);
        }
    }
    if names.is_empty() {
        bail!("no *Test classes under {}", root.display());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jni_check_complaints_fail_the_check() {
        let mut tally = Tally::default();
        check_jni(
            "test A.b ... ok\ntest result: ok. 1 passed; 0 failed\n",
            &mut tally,
        );
        assert!(tally.all_passed());
        check_jni(
            "WARNING in native method: JNI call made without checking exceptions when required to from CallVoidMethod\n",
            &mut tally,
        );
        assert!(!tally.all_passed());
    }

    #[test]
    fn test_classes_are_named_from_their_paths() {
        let root = std::env::temp_dir().join(format!("rsheap-java-{}", std::process::id()));
        let package = root.join("dev/rsheap");
        std::fs::create_dir_all(&package).expect("make the folders");
        for file in ["HeapBrokerTest.java", "Daemon.java"] {
            std::fs::write(package.join(file), "").expect("write a source");
        }
        let names = test_classes_in(&root).expect("find the tests");
        std::fs::remove_dir_all(&root).expect("clean up");
        assert_eq!(names, ["dev.rsheap.HeapBrokerTest"]);
    }
}
