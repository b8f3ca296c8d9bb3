package dev.rsheap;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** Ranged mappings, buffers of 2 GiB and more, and ByteBuffers used after close. */
public class MappingTest {
    private static final int MIB = 1 << 20;
    private static final long GIB = 1L << 30;

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
    private static byte pattern(long offset) {
        return (byte) (offset ^ (offset >>> 12) * 7 ^ 0x33);
    }

    @Test
    public void aRangedMapStartsWhereAskedAtAnyOffset() throws Exception {
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(4 * MIB, Usage.SCRATCH)) {
            ByteBuffer whole = buffer.map();
            for (int i = 0; i < whole.capacity(); i++) {
                whole.put(i, pattern(i));
            }
            // Not page-aligned: the ByteBuffer starts at the offset all the same.
            int offset = 3 * PageSize.bytes() + 123;
            int length = MIB + 7;
            ByteBuffer range = buffer.map(offset, length);
            assertTrue(range.isDirect());
            assertEquals(length, range.capacity());
            for (int i = 0; i < length; i += 4093) {
                assertEquals("byte " + i, pattern(offset + i), range.get(i));
            }
            assertEquals(pattern(offset + length - 1), range.get(length - 1));
            // One memory: what one view writes, the other reads.
            range.put(0, (byte) 0x5a);
            assertEquals(0x5a, whole.get(offset));
            whole.put(offset + 1, (byte) 0x6b);
            assertEquals(0x6b, range.get(1));

            assertThrows(IndexOutOfBoundsException.class, () -> buffer.map(-1, 10));
            assertThrows(IndexOutOfBoundsException.class, () -> buffer.map(0, 0));
            assertThrows(IndexOutOfBoundsException.class, () -> buffer.map(0, -1));
            assertThrows(IndexOutOfBoundsException.class,
                    () -> buffer.map(buffer.size() - 10, 11));
            assertThrows(IndexOutOfBoundsException.class, () -> buffer.map(Long.MAX_VALUE, 1));
            assertEquals(pattern(buffer.size() - 1), buffer.map(buffer.size() - 1, 1).get(0));
        }
    }

    @Test
    public void buffersOf2GibAndMoreMapInRanges() throws Exception {
        // Of the buffer only the windows below are ever touched through a mapping.
        long size = 2 * GIB + 2 * MIB;
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(size, Usage.SCRATCH)) {
            assertEquals(size, buffer.size());
            UnsupportedOperationException whole =
                    assertThrows(UnsupportedOperationException.class, buffer::map);
            assertTrue(whole.getMessage(), whole.getMessage().contains("map(offset, length)"));

            // Past what an int offset reaches, at no page boundary.
            long past = 2 * GIB + 4096 + 17;
            ByteBuffer window = buffer.map(past, MIB);
            window.putLong(0, 0x0123456789abcdefL);
            window.put(MIB - 1, (byte) 7);
            ByteBuffer around = buffer.map(2 * GIB, 2 * MIB);
            assertEquals(0, around.get(0));
            assertEquals(0x0123456789abcdefL, around.getLong(4096 + 17));
            assertEquals(7, around.get(4096 + 17 + MIB - 1));
            ByteBuffer last = buffer.map(size - 1, 1);
            assertEquals(0, last.get(0));
            last.put(0, (byte) 3);
            assertEquals(3, buffer.map(size - 2 * MIB, 2 * MIB).get(2 * MIB - 1));
            // A window as large as a ByteBuffer goes, up to the buffer's end.
            long from = size - Integer.MAX_VALUE;
            ByteBuffer largest = buffer.map(from, Integer.MAX_VALUE);
            assertEquals(Integer.MAX_VALUE, largest.capacity());
            assertEquals(3, largest.get(Integer.MAX_VALUE - 1));
            long inLargest = past - from;
            assertEquals(0x0123456789abcdefL, largest.getLong((int) inLargest));
        }
    }

    @Test
    public void byteBuffersOfAClosedBufferReadZerosAndDoNotCrash() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            long usedBefore = broker.limits().usedBytes();
            Buffer buffer = broker.allocate(4 * MIB, Usage.SCRATCH);
            ByteBuffer whole = buffer.map();
            ByteBuffer slice = whole.duplicate().position(MIB).slice();
            ByteBuffer range = buffer.map(2 * MIB + 5, 4096);
            for (int i = 0; i < whole.capacity(); i += 512) {
                whole.put(i, (byte) 0x77);
            }
            range.put(0, (byte) 0x78);
            assertEquals(0x77, slice.get(0));

            buffer.close();
            // The desktop JVM, like ART, cannot be told the memory went: the views stay usable
            // and now reach zeroed memory of this process instead of the freed buffer.
            for (int i = 0; i < whole.capacity(); i += 512) {
                assertEquals("byte " + i, 0, whole.get(i));
            }
            assertEquals(0, slice.get(0));
            assertEquals(0, range.get(0));
            whole.put(0, (byte) 1);
            range.putLong(8, -1L);
            assertEquals("a late write lands in scratch memory", 1, whole.get(0));
            assertEquals(-1L, range.getLong(8));
            assertThrows(IllegalStateException.class, buffer::map);
            assertThrows(IllegalStateException.class, () -> buffer.map(0, 4096));

            // The views hold none of the buffer's memory: the broker freed it, and the kernel
            // released it.
            assertTrue(broker.buffers().isEmpty());
            long deadline = System.currentTimeMillis() + 20_000;
            while (broker.limits().usedBytes() != usedBefore) {
                if (System.currentTimeMillis() > deadline) {
                    fail("the closed buffer still counts: " + broker.limits());
                }
                Thread.sleep(50);
            }
            try (Buffer fresh = broker.allocate(4 * MIB, Usage.SCRATCH)) {
                ByteBuffer bytes = fresh.map();
                assertEquals(0, bytes.get(0));
                assertEquals(0, bytes.get(2 * MIB + 5 + 8));
            }
            // Still harmless after all that.
            assertEquals(1, whole.get(0));
        }
    }

    @Test
    public void closingTheBrokerMakesItsByteBuffersHarmlessToo() throws Exception {
        HeapBroker broker = HeapBroker.connect();
        Buffer buffer = broker.allocate(MIB, Usage.CAMERA_FRAME);
        ByteBuffer bytes = buffer.map();
        bytes.put(100, (byte) 9);
        broker.close();
        assertEquals(0, bytes.get(100));
        bytes.put(100, (byte) 10);
        assertEquals(10, bytes.get(100));
        buffer.close();
    }
}
