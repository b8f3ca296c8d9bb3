package dev.rsheap;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.Before;
import org.junit.BeforeClass;
import org.junit.Test;

/** Loading files into buffers through the broker, with progress. */
public class LoadFileTest {
    private static final int MIB = 1 << 20;
    /** Odd on purpose: the file ends inside a page and inside a load chunk. */
    private static final int LENGTH = 24 * MIB + 77;

    private static Path file;
    private static byte[] fileHash;

    private Daemon daemon;

    @BeforeClass
    public static void writeFile() throws Exception {
        file = TestFiles.scratchPath("java-load.bin");
        fileHash = TestFiles.writeRandomFile(file, LENGTH, 21);
    }

    @AfterClass
    public static void removeFile() throws Exception {
        Files.deleteIfExists(file);
    }

    @Before
    public void startBroker() throws Exception {
        daemon = Daemon.start(Daemon.shippedConfig());
    }

    @After
    public void stopBroker() throws Exception {
        daemon.stop();
    }

    @Test
    public void aLoadedFileHasTheFilesHash() throws Exception {
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(LENGTH, Usage.MODEL_WEIGHTS)) {
            assertEquals(LENGTH, buffer.loadFile(file.toString()));
            assertArrayEquals(fileHash, TestFiles.sha256(buffer.map(), LENGTH));
        }
    }

    @Test
    public void progressCountsUpToTheFilesLength() throws Exception {
        // The broker reports between chunks of 32 MiB or more: three whole chunks and a bit
        // bring at least two reports from it and the last one, at the end.
        int length = 3 * 32 * MIB + 77;
        Path big = TestFiles.scratchPath("java-load-progress.bin");
        byte[] piece = TestFiles.writeRepeatingFile(big, length, 22);
        List<long[]> reports = new ArrayList<>();
        Thread caller = Thread.currentThread();
        List<Thread> threads = new ArrayList<>();
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(length, Usage.MODEL_WEIGHTS)) {
            long loaded = buffer.loadFile(big.toString(), 0, 0, -1, (done, total) -> {
                reports.add(new long[] {done, total});
                threads.add(Thread.currentThread());
            });
            assertEquals(length, loaded);
            ByteBuffer bytes = buffer.map();
            for (int at : new int[] {0, 32 * MIB - 1, 32 * MIB, 64 * MIB + 4097, length - 1}) {
                assertEquals("byte " + at, piece[at % piece.length], bytes.get(at));
            }
            assertEquals("past the file", 0, bytes.get(length));
        } finally {
            Files.deleteIfExists(big);
        }
        assertTrue("reports: " + reports.size(), reports.size() >= 3);
        long previous = 0;
        for (long[] report : reports) {
            assertTrue("done went back: " + report[0] + " after " + previous,
                    report[0] >= previous);
            assertEquals("total", length, report[1]);
            previous = report[0];
        }
        assertEquals("the last report counts every byte", length, previous);
        for (Thread thread : threads) {
            assertSame("the listener runs on the calling thread", caller, thread);
        }
    }

    @Test
    public void aRangeLandsWhereAsked() throws Exception {
        int fileOffset = 3 * 4096;
        int bufferOffset = 8192;
        int length = 12345;
        ByteBuffer expected = ByteBuffer.allocate(length);
        try (FileChannel channel = FileChannel.open(file)) {
            while (expected.hasRemaining()) {
                channel.read(expected, fileOffset + expected.position());
            }
        }
        expected.flip();
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB, Usage.MODEL_WEIGHTS)) {
            assertEquals(length, buffer.loadFile(file.toString(), fileOffset, bufferOffset,
                    length, null));
            ByteBuffer bytes = buffer.map();
            for (int i = 0; i < bufferOffset; i++) {
                assertEquals("byte " + i + " before the range", 0, bytes.get(i));
            }
            bytes.position(bufferOffset).limit(bufferOffset + length);
            assertEquals(expected, bytes.slice());
            bytes.clear();
            assertEquals("the byte after the range", 0, bytes.get(bufferOffset + length));
        }
    }

    @Test
    public void aListenersExceptionComesOutOfLoadFile() throws Exception {
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(LENGTH, Usage.MODEL_WEIGHTS)) {
            int[] calls = {0};
            IllegalArgumentException thrown = assertThrows(IllegalArgumentException.class,
                    () -> buffer.loadFile(file.toString(), 0, 0, -1, (done, total) -> {
                        calls[0]++;
                        throw new IllegalArgumentException("stop at " + done);
                    }));
            assertTrue(thrown.getMessage(), thrown.getMessage().startsWith("stop at "));
            assertEquals("the listener hears nothing after it threw", 1, calls[0]);
            // The load ran to its end, and the objects still work.
            assertArrayEquals(fileHash, TestFiles.sha256(buffer.map(), LENGTH));
            assertEquals(LENGTH, buffer.loadFile(file.toString()));
            assertEquals(1, broker.buffers().size());
        }
    }

    @Test
    public void aListenerCannotCloseWhatItReportsOn() throws Exception {
        HeapBroker broker = HeapBroker.connect();
        Buffer buffer = broker.allocate(LENGTH, Usage.MODEL_WEIGHTS);
        try {
            assertThrows(IllegalStateException.class,
                    () -> buffer.loadFile(file.toString(), 0, 0, -1, (done, total) -> {
                        buffer.close();
                    }));
            assertThrows(IllegalStateException.class,
                    () -> buffer.loadFile(file.toString(), 0, 0, -1, (done, total) -> {
                        broker.close();
                    }));
            assertEquals(LENGTH, buffer.loadFile(file.toString()));
        } finally {
            buffer.close();
            broker.close();
        }
    }
}
