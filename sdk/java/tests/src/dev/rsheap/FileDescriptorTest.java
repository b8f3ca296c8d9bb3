package dev.rsheap;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import org.junit.After;
import org.junit.AfterClass;
import org.junit.Before;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * Loads from open files (an asset's range of a larger file, as an AssetFileDescriptor gives
 * it), and a buffer's own file descriptor: duplicated for the caller, and shared read-only.
 */
public class FileDescriptorTest {
    private static final int MIB = 1 << 20;
    /** The asset: where it starts in its pack, and how long it is; odd on purpose. */
    private static final long START = MIB + 123;
    private static final int LENGTH = 5 * MIB + 3;

    private static Path pack;
    private static byte[] assetHash;

    private Daemon daemon;

    @BeforeClass
    public static void writePack() throws Exception {
        pack = TestFiles.scratchPath("java-asset-pack.bin");
        TestFiles.writeRandomFile(pack, 8 * MIB, 31);
        byte[] all = Files.readAllBytes(pack);
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        digest.update(all, (int) START, LENGTH);
        assetHash = digest.digest();
    }

    @AfterClass
    public static void removePack() throws Exception {
        Files.deleteIfExists(pack);
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
    public void anAssetsRangeLoadsFromItsDescriptor() throws Exception {
        AllocationOptions weights = AllocationOptions.forUsage(Usage.MODEL_WEIGHTS);
        try (FileInputStream in = new FileInputStream(pack.toFile());
                HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(LENGTH, weights)) {
            FileDescriptor fd = in.getFD();
            List<Long> reports = new ArrayList<>();
            assertEquals(LENGTH, buffer.loadFile(fd, START, 0, LENGTH,
                    (done, total) -> reports.add(done)));
            assertArrayEquals(assetHash, TestFiles.sha256(buffer.map(), LENGTH));
            assertEquals("the last report counts every byte", LENGTH,
                    (long) reports.get(reports.size() - 1));
            assertEquals("the file's position", 0, in.getChannel().position());

            // Allocate-and-load, alone and in a batch next to a buffer without a load.
            try (Buffer loaded = broker.allocateAndLoad(LENGTH, weights, fd, START, LENGTH)) {
                assertArrayEquals(assetHash, TestFiles.sha256(loaded.map(), LENGTH));
            }
            List<Buffer> batch = broker.allocateBatch(List.of(
                    BufferRequest.of(LENGTH, weights).withLoad(fd, START, 0, LENGTH),
                    BufferRequest.of(MIB, AllocationOptions.forUsage(Usage.SCRATCH))));
            assertArrayEquals(assetHash, TestFiles.sha256(batch.get(0).map(), LENGTH));
            ByteBuffer empty = batch.get(1).map();
            for (int i = 0; i < empty.capacity(); i += 4096) {
                assertEquals(0, empty.get(i));
            }
            broker.freeBatch(batch);

            // A range past the buffer's end fails the whole request, and nothing is kept.
            RsheapException tooLong = assertThrows(RsheapException.class,
                    () -> broker.allocate(BufferRequest.of(MIB, weights).withLoad(fd, 0, 4096,
                            MIB)));
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, tooLong.code());
            assertEquals(1, broker.buffers().size());
        }
    }

    @Test
    public void aClosedDescriptorIsRefusedHere() throws Exception {
        FileInputStream in = new FileInputStream(pack.toFile());
        FileDescriptor fd = in.getFD();
        in.close();
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB, Usage.MODEL_WEIGHTS)) {
            RsheapException e = assertThrows(RsheapException.class,
                    () -> buffer.loadFile(fd, 0, 0, 4096, null));
            assertEquals(RsheapException.ERROR_INVALID_ARGUMENT, e.code());
            assertThrows(NullPointerException.class,
                    () -> buffer.loadFile((FileDescriptor) null, 0, 0, 4096, null));
        }
    }

    @Test
    public void aDuplicatedDescriptorReachesTheSameMemory() throws Exception {
        try (HeapBroker broker = HeapBroker.connect();
                Buffer buffer = broker.allocate(MIB, Usage.CAMERA_FRAME)) {
            ByteBuffer bytes = buffer.map();
            bytes.putLong(0, 0x1122334455667788L);
            bytes.put(MIB - 1, (byte) 9);
            FileDescriptor fd = buffer.dupFileDescriptor();
            assertTrue(fd.valid());
            try (FileInputStream in = new FileInputStream(fd);
                    FileChannel channel = in.getChannel()) {
                assertEquals(buffer.size(), channel.size());
                MappedByteBuffer view = channel.map(FileChannel.MapMode.READ_ONLY, 0, MIB);
                assertEquals(0x1122334455667788L, view.getLong(0));
                assertEquals(9, view.get(MIB - 1));
            }
            // The descriptor was the caller's to close; the buffer is still open.
            assertEquals(0x1122334455667788L, buffer.map().getLong(0));
        }
    }

    @Test
    public void aReadOnlyShareOutlivesItsBuffer() throws Exception {
        try (HeapBroker broker = HeapBroker.connect()) {
            Buffer buffer = broker.allocate(MIB, Usage.MODEL_WEIGHTS);
            buffer.map().putInt(64, 0xcafe);
            FileDescriptor shared = buffer.shareReadOnly();
            buffer.close();
            try (FileInputStream in = new FileInputStream(shared);
                    FileChannel channel = in.getChannel()) {
                assertEquals(MIB, channel.size());
                MappedByteBuffer view = channel.map(FileChannel.MapMode.READ_ONLY, 0, MIB);
                assertEquals(0xcafe, view.getInt(64));
            }
            // Only rsheap's heaps share read-only.
            try (Buffer system = broker.allocate(MIB,
                    AllocationOptions.forUsage(Usage.SCRATCH).withHeap("system"))) {
                RsheapException e = assertThrows(RsheapException.class, system::shareReadOnly);
                assertEquals(RsheapException.ERROR_UNSUPPORTED, e.code());
            }
        }
    }
}
