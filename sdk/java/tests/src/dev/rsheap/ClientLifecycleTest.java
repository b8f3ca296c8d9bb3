package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** What the broker does when a Java client dies, and what a client sees when the broker does. */
public class ClientLifecycleTest {
    private static final int MIB = 1 << 20;
    private static final int ENOENT = 2;

    private Daemon daemon;

    @Before
    public void startBroker() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
    }

    @After
    public void stopBroker() throws Exception {
        daemon.stop();
    }

    /** Buffers and bytes per heap, as the broker accounts them for all clients. */
    private static Map<String, List<Long>> accounting(HeapBroker broker) throws Exception {
        Map<String, List<Long>> held = new TreeMap<>();
        for (HeapInfo heap : broker.heaps()) {
            held.put(heap.name(), List.of((long) heap.buffers(), heap.bytes()));
        }
        return held;
    }

    @Test
    public void theBrokerFreesWhatADeadJavaProcessHeld() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            Map<String, List<Long>> baseline = accounting(broker);
            String java = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
            Process child = new ProcessBuilder(java,
                    "-cp", System.getProperty("java.class.path"),
                    "-Djava.library.path=" + System.getProperty("java.library.path"),
                    LeakyClient.class.getName(), "4", String.valueOf(8 * MIB))
                    .redirectErrorStream(true)
                    .start();
            try {
                BufferedReader output = new BufferedReader(
                        new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
                // The child's JVM starts slowly under TCG; readLine returns null if it dies.
                String line = output.readLine();
                assertEquals("the child's first line", "allocated 4", line);
                Map<String, List<Long>> held = accounting(broker);
                List<Long> rsheap = held.get("rsheap");
                assertEquals(baseline.get("rsheap").get(0) + 4, (long) rsheap.get(0));
                assertEquals(baseline.get("rsheap").get(1) + 32L * MIB, (long) rsheap.get(1));
                // Let it die without closing anything.
                child.getOutputStream().close();
                assertTrue("the child exits", child.waitFor(60, TimeUnit.SECONDS));
                assertEquals(0, child.exitValue());
            } finally {
                child.destroyForcibly();
            }
            long deadline = System.currentTimeMillis() + 20_000;
            while (!accounting(broker).equals(baseline)) {
                if (System.currentTimeMillis() > deadline) {
                    fail("the broker still accounts " + accounting(broker) + ", not " + baseline);
                }
                Thread.sleep(100);
            }
        }
    }

    @Test
    public void theSameBrokerServesAfterARestart() throws Exception {
        Path file = TestFiles.scratchPath("java-restart.bin");
        TestFiles.writeRandomFile(file, 64 * 1024, 9);
        try (HeapBroker broker = HeapBroker.connect()) {
            Buffer old = broker.allocate(MIB, Usage.SCRATCH);
            old.map().put(0, (byte) 42);

            daemon.stop();
            daemon = Daemon.start(Daemon.shippedConfig());

            try (Buffer fresh = broker.allocate(MIB, Usage.SCRATCH)) {
                assertNotEquals(old.id(), fresh.id());
                ByteBuffer bytes = fresh.map();
                bytes.put(0, (byte) 7);
                assertEquals(7, bytes.get(0));
                assertEquals(64 * 1024, fresh.loadFile(file.toString()));
                assertEquals(1, broker.buffers().size());
            }
            // The old buffer's memory is still this process's, but the new broker does not
            // know its id.
            assertEquals(42, old.map().get(0));
            RsheapException e = assertThrows(RsheapException.class,
                    () -> old.loadFile(file.toString()));
            assertEquals(RsheapException.ERROR_NOT_FOUND, e.code());
            assertEquals(ENOENT, e.errno());
            old.close();
            assertTrue(broker.buffers().isEmpty());
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
