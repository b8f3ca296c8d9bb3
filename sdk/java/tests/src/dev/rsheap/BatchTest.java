package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Collectors;
import org.junit.After;
import org.junit.Test;

/** Batch allocation and freeing, and the session's limits. */
public class BatchTest {
    private static final int MIB = 1 << 20;

    private Daemon daemon;

    @After
    public void stopBroker() throws Exception {
        if (daemon != null) {
            daemon.stop();
        }
    }

    @Test
    public void batchesAllocateInOrderAndFreeInOneCall() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
        try (HeapBroker broker = HeapBroker.connect()) {
            List<Buffer> made = broker.allocateBatch(List.of(
                    BufferRequest.of(MIB, AllocationOptions.forUsage(Usage.CAMERA_FRAME)
                            .withDebugName("first")),
                    BufferRequest.of(2 * MIB + 1, AllocationOptions.forUsage(Usage.SCRATCH)
                            .withCached(false).withDebugName("second"))));
            assertEquals(List.of("first", "second"), made.stream()
                    .map(buffer -> buffer.info().debugName()).collect(Collectors.toList()));
            assertEquals(2 * MIB + PageSize.bytes(), made.get(1).size());
            assertEquals("rsheap-uncached", made.get(1).heap());
            made.get(0).map().put(0, (byte) 1);
            assertEquals(2, broker.buffers().size());
            broker.freeBatch(made);
            assertTrue(broker.buffers().isEmpty());
            assertThrows(IllegalStateException.class, made.get(0)::map);
            // Freeing closed buffers again does nothing.
            broker.freeBatch(made);

            // The broker takes at most MAX_BATCH requests, and allocates none of too many.
            List<BufferRequest> many = Collections.nCopies(HeapBroker.MAX_BATCH + 1,
                    BufferRequest.of(4096, AllocationOptions.forUsage(Usage.SCRATCH)));
            RsheapException e =
                    assertThrows(RsheapException.class, () -> broker.allocateBatch(many));
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, e.code());
            assertTrue(broker.buffers().isEmpty());

            // Too many to free at once are refused here, and nothing is closed.
            List<Buffer> full = new ArrayList<>(
                    broker.allocateBatch(many.subList(0, HeapBroker.MAX_BATCH)));
            full.add(broker.allocate(4096, Usage.SCRATCH));
            assertThrows(IllegalArgumentException.class, () -> broker.freeBatch(full));
            assertEquals(HeapBroker.MAX_BATCH + 1, broker.buffers().size());
            broker.freeBatch(full.subList(0, HeapBroker.MAX_BATCH));
            assertEquals(1, broker.buffers().size());
            full.get(HeapBroker.MAX_BATCH).close();

            // Another connection's buffers are not this one's to free.
            try (HeapBroker other = HeapBroker.connect();
                    Buffer theirs = other.allocate(4096, Usage.SCRATCH)) {
                assertThrows(IllegalArgumentException.class,
                        () -> broker.freeBatch(List.of(theirs)));
                assertEquals(1, other.buffers().size());
            }
            assertTrue(broker.buffers().isEmpty());
        }
    }

    @Test
    public void limitsReportTheQuotaAndWhatCountsAgainstIt() throws Exception {
        daemon = Daemon.start(Daemon.rootQuota(256, 10));
        try (HeapBroker broker = HeapBroker.connect()) {
            SessionLimits before = broker.limits();
            assertEquals(before.toString(), 256L * MIB, before.quotaBytes());
            assertEquals(before.toString(), 10, before.quotaBuffers());
            assertEquals(before.toString(), 4096L * MIB, before.maxBufferSize());
            assertEquals(before.toString(), HeapBroker.MAX_BATCH, before.maxBatch());
            assertEquals(before.toString(), PageSize.bytes(), before.pageSize());
            assertEquals(before.toString(), 32, before.maxSessions());
            assertTrue(before.toString(), before.sessions() >= 1);
            assertTrue(before.toString(), before.directLoads() && before.readOnlySharing());

            try (Buffer buffer = broker.allocate(MIB, Usage.SCRATCH)) {
                SessionLimits during = broker.limits();
                assertEquals(during.toString(), before.usedBytes() + MIB, during.usedBytes());
                assertEquals(during.toString(), before.usedBuffers() + 1, during.usedBuffers());
                assertEquals(MIB, buffer.size());
            }
            long deadline = System.currentTimeMillis() + 20_000;
            while (broker.limits().usedBytes() != before.usedBytes()) {
                if (System.currentTimeMillis() > deadline) {
                    fail("the closed buffer still counts: " + broker.limits());
                }
                Thread.sleep(50);
            }
            try (HeapBroker other = HeapBroker.connect()) {
                assertEquals(before.sessions() + 1, broker.limits().sessions());
                assertEquals(other.limits().sessions(), broker.limits().sessions());
            }
        }
    }
}
