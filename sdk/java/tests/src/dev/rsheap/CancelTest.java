package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.Before;
import org.junit.BeforeClass;
import org.junit.Test;

/** close() and cancelLoads() stop a running load instead of waiting for its end. */
public class CancelTest {
    private static final long GIB = 1L << 30;
    private static final int ECANCELED = 125;

    /**
     * A 1 GiB hole: it reads as zeros at memory speed. The broker moves 32 MiB before its
     * first report, then chunks that double while they are fast, so a cancel made at the first
     * report stops the load long before its end.
     */
    private static Path hole;

    private Daemon daemon;
    private ExecutorService pool;

    @BeforeClass
    public static void makeHole() throws Exception {
        hole = TestFiles.scratchPath("java-cancel-hole.bin");
        try (RandomAccessFile file = new RandomAccessFile(hole.toFile(), "rw")) {
            file.setLength(GIB);
        }
    }

    @AfterClass
    public static void removeHole() throws Exception {
        Files.deleteIfExists(hole);
    }

    @Before
    public void startBroker() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        pool = Executors.newSingleThreadExecutor();
    }

    @After
    public void stopBroker() throws Exception {
        pool.shutdownNow();
        daemon.stop();
    }

    /** Starts loading the hole into {@code buffer} on the pool; returns once it reported. */
    private Future<Long> startLoad(Buffer buffer) throws Exception {
        CountDownLatch reported = new CountDownLatch(1);
        Future<Long> load = pool.submit(() -> buffer.loadFile(hole.toString(), 0, 0, -1,
                (done, total) -> reported.countDown()));
        assertTrue("the load reports", reported.await(120, TimeUnit.SECONDS));
        return load;
    }

    /** The RsheapException a load ended with, which must be a cancellation. */
    private static void assertCancelled(Future<Long> load) {
        ExecutionException failed =
                assertThrows(ExecutionException.class, () -> load.get(60, TimeUnit.SECONDS));
        assertTrue(String.valueOf(failed.getCause()),
                failed.getCause() instanceof RsheapException);
        RsheapException cancelled = (RsheapException) failed.getCause();
        assertEquals(cancelled.getMessage(), RsheapException.ERROR_CANCELLED, cancelled.code());
        assertEquals(ECANCELED, cancelled.errno());
    }

    @Test
    public void closingABufferCancelsItsLoad() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            Buffer buffer = broker.allocate(GIB, Usage.MODEL_WEIGHTS);
            Future<Long> load = startLoad(buffer);
            buffer.close();
            assertCancelled(load);
            assertTrue(broker.buffers().isEmpty());
            assertThrows(IllegalStateException.class, buffer::map);
        }
    }

    @Test
    public void closingTheBrokerCancelsItsBuffersLoads() throws Exception {
        HeapBroker broker = HeapBroker.connect();
        Buffer buffer = broker.allocate(GIB, Usage.MODEL_WEIGHTS);
        Future<Long> load = startLoad(buffer);
        broker.close();
        assertCancelled(load);
        assertThrows(IllegalStateException.class, buffer::map);
        try (HeapBroker other = HeapBroker.connect()) {
            assertEquals(0, HeapBrokerTest.heap(other.heaps(), "rsheap").buffers());
        }
    }

    @Test
    public void cancelLoadsStopsALoadAndKeepsTheBuffer() throws Exception {
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(GIB, Usage.MODEL_WEIGHTS)) {
            Future<Long> load = startLoad(buffer);
            buffer.cancelLoads();
            assertCancelled(load);
            assertEquals(1, broker.buffers().size());
            // Nothing runs now: cancelling again does nothing, and a new load runs to its end.
            buffer.cancelLoads();
            assertEquals(4096, buffer.loadFile(hole.toString(), 0, 0, 4096, null));
        }
    }
}
