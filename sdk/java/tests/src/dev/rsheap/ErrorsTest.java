package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.After;
import org.junit.Test;

/** Failures surface as RsheapException with errno and the broker's code. */
public class ErrorsTest {
    private static final int MIB = 1 << 20;
    private static final int ENOENT = 2;
    private static final int EINVAL = 22;
    private static final int EOPNOTSUPP = 95;
    private static final int EDQUOT = 122;

    private Daemon daemon;

    @After
    public void stopBroker() throws Exception {
        if (daemon != null) {
            daemon.stop();
        }
    }

    @Test
    public void sizesThatAreNotPositiveAreInvalid() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        try (HeapBroker broker = HeapBroker.connect()) {
            RsheapException zero = assertThrows(RsheapException.class,
                    () -> broker.allocate(0, Usage.SCRATCH));
            assertEquals(EINVAL, zero.errno());
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, zero.code());
            assertTrue(zero.getMessage(), zero.getMessage().contains("size 0"));

            RsheapException negative = assertThrows(RsheapException.class,
                    () -> broker.allocate(-4096, Usage.SCRATCH));
            assertEquals(EINVAL, negative.errno());
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, negative.code());
            assertTrue(broker.buffers().isEmpty());
        }
    }

    @Test
    public void anUnknownHeapIsUnsupported() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        try (HeapBroker broker = HeapBroker.connect()) {
            RsheapException e = assertThrows(RsheapException.class, () -> broker.allocate(MIB,
                    AllocationOptions.forUsage(Usage.SCRATCH).withHeap("carveout")));
            assertEquals(EOPNOTSUPP, e.errno());
            assertEquals(RsheapException.ERROR_UNSUPPORTED, e.code());
            assertTrue(e.getMessage(), e.getMessage().contains("carveout"));
        }
    }

    @Test
    public void theQuotaIsEnforced() throws Exception {
        daemon = Daemon.start(Daemon.rootQuota(64, 2));
        try (HeapBroker broker = HeapBroker.connect();
                Buffer first = broker.allocate(MIB, Usage.SCRATCH);
                Buffer second = broker.allocate(MIB, Usage.SCRATCH)) {
            RsheapException e = assertThrows(RsheapException.class,
                    () -> broker.allocate(MIB, Usage.SCRATCH));
            assertEquals(EDQUOT, e.errno());
            assertEquals(RsheapException.ERROR_QUOTA_EXCEEDED, e.code());
            assertEquals(List.of(first.info(), second.info()), broker.buffers());
        }
    }

    @Test
    public void aMissingFileIsNotFound() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        Path missing = TestFiles.scratchPath("java-no-such-file.bin");
        Files.deleteIfExists(missing);
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB, Usage.MODEL_WEIGHTS)) {
            RsheapException e = assertThrows(RsheapException.class,
                    () -> buffer.loadFile(missing.toString()));
            assertEquals(ENOENT, e.errno());
            // The file failed to open here, not in the broker.
            assertEquals(0, e.code());
            assertTrue(e.getMessage(), e.getMessage().contains(missing.toString()));
        }
    }

    @Test
    public void rangesOutsideTheBufferAreInvalid() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        Path file = TestFiles.scratchPath("java-errors-range.bin");
        TestFiles.writeRandomFile(file, 2 * MIB, 3);
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB, Usage.MODEL_WEIGHTS)) {
            RsheapException negative = assertThrows(RsheapException.class,
                    () -> buffer.loadFile(file.toString(), -1, 0, 4096, null));
            assertEquals(EINVAL, negative.errno());
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, negative.code());

            RsheapException tooLong = assertThrows(RsheapException.class,
                    () -> buffer.loadFile(file.toString(), 0, 0, 2 * MIB, null));
            assertEquals(EINVAL, tooLong.errno());
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, tooLong.code());
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    public void nullArgumentsAreRefusedInJava() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB, Usage.SCRATCH)) {
            assertThrows(NullPointerException.class,
                    () -> broker.allocate(MIB, (AllocationOptions) null));
            assertThrows(NullPointerException.class, () -> buffer.loadFile(null));
        }
    }
}
