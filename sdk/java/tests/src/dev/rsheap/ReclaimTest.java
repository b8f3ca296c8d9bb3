package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** Buffers that become unreachable without close() are freed at the broker. */
public class ReclaimTest {
    private static final int MIB = 1 << 20;
    /** How long the collector and the reclaimer may take, under TCG. */
    private static final long TIMEOUT_MS = 60_000;

    private Daemon daemon;

    @Before
    public void startBroker() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
    }

    @After
    public void stopBroker() throws Exception {
        daemon.stop();
    }

    /**
     * Allocates {@code count} buffers, maps and writes every other one, and keeps none: in a
     * method of its own, so that no local variable of the test's frame still holds one.
     */
    private static void allocateAndForget(HeapBroker broker, int count) throws RsheapException {
        for (int i = 0; i < count; i++) {
            Buffer buffer = broker.allocate(MIB, Usage.SCRATCH);
            if (i % 2 == 0) {
                buffer.map().put(0, (byte) i);
            }
        }
    }

    /** Allocates a buffer, writes it, and keeps only a ByteBuffer over it. */
    private static ByteBuffer mapAndForget(HeapBroker broker) throws RsheapException {
        Buffer buffer = broker.allocate(MIB, Usage.SCRATCH);
        ByteBuffer bytes = buffer.map();
        bytes.put(100, (byte) 42);
        return bytes;
    }

    /** Collects garbage until the broker lists {@code count} buffers of this client. */
    private static void collectUntil(HeapBroker broker, int count) throws Exception {
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        while (broker.buffers().size() != count) {
            if (System.currentTimeMillis() > deadline) {
                fail("the broker still lists " + broker.buffers().size() + " buffers, not "
                        + count);
            }
            System.gc();
            Thread.sleep(100);
        }
    }

    @Test
    public void forgottenBuffersAreFreedAtTheBroker() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            allocateAndForget(broker, 8);
            collectUntil(broker, 0);
            // The connection still serves.
            try (Buffer buffer = broker.allocate(MIB, Usage.SCRATCH)) {
                assertEquals(1, broker.buffers().size());
                buffer.map().put(0, (byte) 1);
            }
        }
    }

    @Test
    public void aForgottenBufferLivesWhileAByteBufferOfItDoes() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            ByteBuffer kept = mapAndForget(broker);
            allocateAndForget(broker, 2);
            collectUntil(broker, 1);
            for (int i = 0; i < 5; i++) {
                System.gc();
                Thread.sleep(100);
            }
            assertEquals("the buffer behind the ByteBuffer", 1, broker.buffers().size());
            assertEquals(42, kept.get(100));
            kept = null;
            collectUntil(broker, 0);
        }
    }
}
