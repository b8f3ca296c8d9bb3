package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** Allocating, mapping, listing and freeing through rsheapd, and the objects' life cycle. */
public class HeapBrokerTest {
    private static final int MIB = 1 << 20;

    private Daemon daemon;

    @Before
    public void startBroker() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
    }

    @After
    public void stopBroker() throws Exception {
        daemon.stop();
    }

    /** A byte that differs for every offset, so misplaced pages show up. */
    private static byte pattern(int seed, int offset) {
        return (byte) (offset ^ (offset >>> 12) * 7 ^ seed);
    }

    @Test
    public void allocateMapWriteReadFree() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            AllocationOptions options = AllocationOptions.forUsage(Usage.CAMERA_FRAME)
                    .withDebugName("preview");
            Buffer buffer = broker.allocate(4 * MIB + 1, options);
            assertEquals(4 * MIB + PageSize.bytes(), buffer.size());
            assertEquals("rsheap", buffer.heap());
            String prefix = "camera-" + ProcessHandle.current().pid() + "-";
            assertTrue(buffer.name(), buffer.name().startsWith(prefix));
            assertEquals(Usage.CAMERA_FRAME, buffer.info().usage());
            assertTrue(buffer.info().cached());

            ByteBuffer bytes = buffer.map();
            assertTrue(bytes.isDirect());
            assertEquals(buffer.size(), bytes.capacity());
            for (int i = 0; i < bytes.capacity(); i++) {
                bytes.put(i, pattern(5, i));
            }
            // A second view over the same mapping sees what the first wrote.
            ByteBuffer again = buffer.map();
            int wrong = 0;
            for (int i = 0; i < again.capacity(); i++) {
                if (again.get(i) != pattern(5, i)) {
                    wrong++;
                }
            }
            assertEquals("bytes that differ", 0, wrong);

            List<BufferInfo> listed = broker.buffers();
            assertEquals(1, listed.size());
            assertEquals(buffer.info(), listed.get(0));
            assertEquals("preview", listed.get(0).debugName());

            buffer.close();
            assertTrue(broker.buffers().isEmpty());
        }
    }

    @Test
    public void cpuAccessBracketsWritesAndReads() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            for (boolean cached : new boolean[] {true, false}) {
                Buffer buffer = broker.allocate(MIB,
                        AllocationOptions.forUsage(Usage.CAMERA_FRAME).withCached(cached));
                ByteBuffer bytes = buffer.map();
                try (CpuAccess access = buffer.beginCpuAccess(CpuAccess.Direction.WRITE)) {
                    assertEquals(CpuAccess.Direction.WRITE, access.direction());
                    for (int i = 0; i < bytes.capacity(); i++) {
                        bytes.put(i, pattern(9, i));
                    }
                }
                int wrong = 0;
                try (CpuAccess access = buffer.beginCpuAccess(CpuAccess.Direction.READ)) {
                    assertEquals(CpuAccess.Direction.READ, access.direction());
                    for (int i = 0; i < bytes.capacity(); i++) {
                        if (bytes.get(i) != pattern(9, i)) {
                            wrong++;
                        }
                    }
                }
                assertEquals(buffer.heap() + ": bytes that differ", 0, wrong);
                // An access still open when the buffer closes ends with it, and ending it
                // afterwards does nothing.
                CpuAccess open = buffer.beginCpuAccess(CpuAccess.Direction.READ_WRITE);
                buffer.close();
                open.close();
                assertThrows(IllegalStateException.class,
                        () -> buffer.beginCpuAccess(CpuAccess.Direction.READ));
                assertThrows(NullPointerException.class, () -> {
                    try (Buffer other = broker.allocate(4096, Usage.SCRATCH)) {
                        other.beginCpuAccess(null);
                    }
                });
            }
        }
    }

    @Test
    public void heapsReportTheBrokersAccounting() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            HeapInfo before = heap(broker.heaps(), "rsheap");
            assertTrue(before.cached());
            assertTrue(before.usages().contains(Usage.MODEL_WEIGHTS));
            try (Buffer a = broker.allocate(MIB, Usage.MODEL_WEIGHTS);
                    Buffer b = broker.allocate(2 * MIB, Usage.SCRATCH)) {
                HeapInfo during = heap(broker.heaps(), "rsheap");
                assertEquals(before.buffers() + 2, during.buffers());
                assertEquals(before.bytes() + a.size() + b.size(), during.bytes());
                assertEquals(before.allocations() + 2, during.allocations());
            }
            HeapInfo after = heap(broker.heaps(), "rsheap");
            assertEquals(before.buffers(), after.buffers());
            assertEquals(before.bytes(), after.bytes());
        }
    }

    @Test
    public void uncachedBuffersComeFromTheUncachedHeap() throws Exception {
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB,
                        AllocationOptions.forUsage(Usage.CAMERA_FRAME).withCached(false))) {
            assertEquals("rsheap-uncached", buffer.heap());
            assertFalse(buffer.info().cached());
            ByteBuffer bytes = buffer.map();
            bytes.putLong(0, 0x0123456789abcdefL);
            assertEquals(0x0123456789abcdefL, bytes.getLong(0));
        }
    }

    @Test
    public void aClosedBufferRefusesUseAndClosesOnce() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            Buffer buffer = broker.allocate(MIB, Usage.SCRATCH);
            long id = buffer.id();
            buffer.close();
            buffer.close();
            assertThrows(IllegalStateException.class, buffer::map);
            assertThrows(IllegalStateException.class, () -> buffer.loadFile("/dev/null"));
            // What the broker reported stays readable.
            assertEquals(id, buffer.id());
            assertTrue(broker.buffers().isEmpty());
        }
    }

    @Test
    public void closingTheBrokerClosesItsBuffers() throws Exception {
        HeapBroker broker = HeapBroker.connect();
        Buffer buffer = broker.allocate(MIB, Usage.SCRATCH);
        buffer.map().put(0, (byte) 1);
        broker.close();
        broker.close();
        assertThrows(IllegalStateException.class, buffer::map);
        assertThrows(IllegalStateException.class, () -> broker.allocate(MIB, Usage.SCRATCH));
        assertThrows(IllegalStateException.class, broker::heaps);
        assertThrows(IllegalStateException.class, broker::buffers);
        buffer.close();
        // The broker freed the buffer when the connection closed it.
        try (HeapBroker other = HeapBroker.connect()) {
            assertEquals(0, heap(other.heaps(), "rsheap").buffers());
        }
    }

    @Test
    public void threadsAllocateAndFreeAtOnce() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            ExecutorService pool = Executors.newFixedThreadPool(4);
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                int seed = t;
                results.add(pool.submit(() -> {
                    for (int i = 0; i < 8; i++) {
                        try (Buffer buffer = broker.allocate(64 * 1024, Usage.SCRATCH)) {
                            ByteBuffer bytes = buffer.map();
                            bytes.put(100, (byte) seed);
                            assertEquals(seed, bytes.get(100));
                        }
                    }
                    return seed;
                }));
            }
            for (Future<Integer> result : results) {
                result.get(120, TimeUnit.SECONDS);
            }
            pool.shutdown();
            assertTrue(broker.buffers().isEmpty());
        }
    }

    static HeapInfo heap(List<HeapInfo> heaps, String name) {
        return heaps.stream()
                .filter(heap -> heap.name().equals(name))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no heap " + name + " in " + heaps));
    }
}
