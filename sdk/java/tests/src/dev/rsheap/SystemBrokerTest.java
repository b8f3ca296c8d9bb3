package dev.rsheap;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The API against the broker the system runs: init's rsheapd on a device, where this class is
 * the instrumentation test {@code RsheapJavaTests}, or one the rig starts for the class.
 *
 * <p>Other clients may use the same broker at the same time, so the tests assert only what
 * this client does: its own buffers, contents and errors.
 */
public class SystemBrokerTest {
    private static final int MIB = 1 << 20;
    private static final int ENOENT = 2;
    private static final int EINVAL = 22;
    private static final int EOPNOTSUPP = 95;

    /** The rig's broker for this class; none on a device, where init runs rsheapd. */
    private static Daemon daemon;

    @BeforeClass
    public static void startBrokerOffDevice() throws Exception {
        if (System.getenv("RSHEAPD") != null) {
            daemon = Daemon.start(Daemon.shippedConfig());
        }
    }

    @AfterClass
    public static void stopBrokerOffDevice() throws Exception {
        if (daemon != null) {
            daemon.stop();
        }
    }

    @Test
    public void allocatesMapsAndFrees() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            List<String> heaps =
                    broker.heaps().stream().map(HeapInfo::name).collect(Collectors.toList());
            assertFalse("the broker serves no heap", heaps.isEmpty());

            Buffer buffer = broker.allocate(MIB + 1, AllocationOptions
                    .forUsage(Usage.MODEL_WEIGHTS).withDebugName("system-broker-test"));
            int page = PageSize.bytes();
            assertEquals(MIB + page, buffer.size());
            assertTrue(buffer.heap() + " is not one of " + heaps, heaps.contains(buffer.heap()));

            ByteBuffer bytes = buffer.map();
            for (int i = 0; i < bytes.capacity(); i += page) {
                bytes.putInt(i, i ^ 0x5a5a5a5a);
            }
            for (int i = 0; i < bytes.capacity(); i += page) {
                assertEquals(i ^ 0x5a5a5a5a, bytes.getInt(i));
            }

            List<BufferInfo> mine = broker.buffers();
            assertEquals(1, mine.size());
            assertEquals(buffer.id(), mine.get(0).id());
            assertEquals("system-broker-test", mine.get(0).debugName());

            buffer.close();
            assertTrue(broker.buffers().isEmpty());
        }
    }

    @Test
    public void loadsAFileWhereAsked() throws Exception {
        Path file = Files.createTempFile("rsheap-system-broker-", ".bin");
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(4 * MIB, Usage.MODEL_WEIGHTS)) {
            byte[] content = new byte[3 * MIB + 123];
            new SplittableRandom(8).nextBytes(content);
            Files.write(file, content);

            assertEquals(content.length, buffer.loadFile(file.toString()));
            byte[] loaded = new byte[content.length];
            buffer.map().get(loaded);
            assertArrayEquals(content, loaded);

            // The second MiB of the file, one page into the buffer.
            int page = PageSize.bytes();
            assertEquals(MIB, buffer.loadFile(file.toString(), MIB, page, MIB, null));
            byte[] slice = new byte[MIB];
            ByteBuffer view = buffer.map();
            view.position(page);
            view.get(slice);
            byte[] expected = new byte[MIB];
            System.arraycopy(content, MIB, expected, 0, MIB);
            assertArrayEquals(expected, slice);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    public void errorsCarryTheErrnoAndTheBrokersCode() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            RsheapException zero = assertThrows(RsheapException.class,
                    () -> broker.allocate(0, Usage.SCRATCH));
            assertEquals(EINVAL, zero.errno());
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, zero.code());

            RsheapException heap = assertThrows(RsheapException.class, () -> broker.allocate(MIB,
                    AllocationOptions.forUsage(Usage.SCRATCH).withHeap("no-such-heap")));
            assertEquals(EOPNOTSUPP, heap.errno());
            assertEquals(RsheapException.ERROR_UNSUPPORTED, heap.code());

            try (Buffer buffer = broker.allocate(MIB, Usage.SCRATCH)) {
                RsheapException missing = assertThrows(RsheapException.class,
                        () -> buffer.loadFile("/nonexistent/rsheap-weights.bin"));
                assertEquals(ENOENT, missing.errno());
            }
            assertTrue(broker.buffers().isEmpty());
        }
    }
}
