package dev.rsheap;

import static org.junit.Assert.assertFalse;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.concurrent.TimeUnit;

/**
 * An rsheapd the test started, so every test begins with an empty broker and may kill it.
 *
 * <p>The rig starts the service manager and names the rsheapd binary in {@code $RSHEAPD}; the
 * shipped configuration's path comes in the system property {@code rsheap.config}.
 */
final class Daemon {
    /** How long a starting rsheapd may take to serve, under TCG. */
    private static final long START_TIMEOUT_MS = 60_000;

    private final Process process;
    private final Path config;
    private final Path log;

    private Daemon(Process process, Path config, Path log) {
        this.process = process;
        this.config = config;
        this.log = log;
    }

    /** The configuration the tree ships, {@code service/rsheapd.toml}. */
    static String shippedConfig() throws IOException {
        String path = System.getProperty("rsheap.config");
        if (path == null) {
            throw new IllegalStateException(
                    "-Drsheap.config names service/rsheapd.toml (run with cargo xtask test)");
        }
        return new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8);
    }

    /** The shipped configuration with a quota of {@code mib} MiB in {@code buffers} for uid 0. */
    static String rootQuota(int mib, int buffers) throws IOException {
        String marker = "# Per-uid overrides";
        String config = shippedConfig();
        if (!config.contains(marker)) {
            throw new IllegalStateException("the configuration has no " + marker);
        }
        return config.replace(marker, "[quota.uid.0]\nmib = " + mib + "\nbuffers = " + buffers
                + "\n\n" + marker);
    }

    /** Starts rsheapd with {@code config} and waits until a client can connect to it. */
    static Daemon start(String config) throws IOException, InterruptedException {
        String binary = System.getenv("RSHEAPD");
        if (binary == null) {
            throw new IllegalStateException("$RSHEAPD names the rsheapd binary");
        }
        Path configFile = Files.createTempFile("rsheapd-", ".toml");
        Files.write(configFile, config.getBytes(StandardCharsets.UTF_8));
        Path log = Files.createTempFile("rsheapd-", ".log");
        Process process = new ProcessBuilder(binary, "--config", configFile.toString())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.to(new File("/dev/null")))
                .redirectError(log.toFile())
                .start();
        Daemon daemon = new Daemon(process, configFile, log);
        daemon.awaitServing();
        return daemon;
    }

    private void awaitServing() throws IOException, InterruptedException {
        long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
        while (true) {
            if (!process.isAlive()) {
                fail("rsheapd exited with " + process.exitValue() + ":\n" + log());
            }
            // connect() itself waits up to 5 s for the broker to be registered.
            try (HeapBroker broker = HeapBroker.connect()) {
                broker.heaps();
                return;
            } catch (RsheapException notYet) {
                if (System.currentTimeMillis() > deadline) {
                    fail("rsheapd did not serve within " + START_TIMEOUT_MS + " ms: " + notYet
                            + "\n" + log());
                }
                Thread.sleep(100);
            }
        }
    }

    /** What rsheapd logged so far. */
    String log() throws IOException {
        return new String(Files.readAllBytes(log), StandardCharsets.UTF_8);
    }

    /** Kills rsheapd with SIGKILL and reaps it; fails if it had panicked. */
    void stop() throws IOException, InterruptedException {
        if (process.isAlive()) {
            process.destroyForcibly();
        }
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            fail("rsheapd did not die");
        }
        String text = log();
        Files.deleteIfExists(config);
        Files.deleteIfExists(log);
        assertFalse("rsheapd panicked:\n" + text, text.contains("panicked"));
    }
}
