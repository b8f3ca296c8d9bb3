package dev.rsheap;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.SplittableRandom;

/** Files of known content on the rig's scratch file system, and their hashes. */
final class TestFiles {
    /** The guest's ext4 scratch file system, on a virtio disk. */
    private static final Path SCRATCH = Paths.get("/run/scratch");

    private TestFiles() {}

    /** {@code name} under the scratch file system, which must be mounted. */
    static Path scratchPath(String name) throws IOException {
        List<String> mounts = Files.readAllLines(Paths.get("/proc/mounts"));
        boolean mounted = mounts.stream()
                .map(line -> line.split(" "))
                .anyMatch(fields -> fields.length > 1 && fields[1].equals(SCRATCH.toString()));
        if (!mounted) {
            throw new IllegalStateException(
                    SCRATCH + " is not mounted (run the tests with cargo xtask test)");
        }
        return SCRATCH.resolve(name);
    }

    /**
     * Writes {@code length} random bytes drawn from {@code seed} to {@code path}, syncs them to
     * the disk and returns their SHA-256.
     */
    static byte[] writeRandomFile(Path path, long length, long seed) throws IOException {
        SplittableRandom random = new SplittableRandom(seed);
        MessageDigest digest = sha256();
        byte[] piece = new byte[1 << 20];
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
            long left = length;
            while (left > 0) {
                int n = (int) Math.min(left, piece.length);
                random.nextBytes(piece);
                digest.update(piece, 0, n);
                ByteBuffer bytes = ByteBuffer.wrap(piece, 0, n);
                while (bytes.hasRemaining()) {
                    channel.write(bytes);
                }
                left -= n;
            }
            channel.force(true);
        }
        return digest.digest();
    }

    /**
     * Writes {@code length} bytes to {@code path} that repeat one random MiB drawn from
     * {@code seed}, syncs them to the disk and returns that MiB: byte {@code i} of the file is
     * byte {@code i % 2^20} of it. Cheaper than {@link #writeRandomFile} where the content
     * matters less than the size.
     */
    static byte[] writeRepeatingFile(Path path, long length, long seed) throws IOException {
        byte[] piece = new byte[1 << 20];
        new SplittableRandom(seed).nextBytes(piece);
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
            long left = length;
            while (left > 0) {
                ByteBuffer bytes = ByteBuffer.wrap(piece, 0, (int) Math.min(left, piece.length));
                left -= bytes.remaining();
                while (bytes.hasRemaining()) {
                    channel.write(bytes);
                }
            }
            channel.force(true);
        }
        return piece;
    }

    /** The SHA-256 of the first {@code length} bytes of {@code bytes}. */
    static byte[] sha256(ByteBuffer bytes, int length) {
        ByteBuffer view = bytes.duplicate();
        view.position(0).limit(length);
        MessageDigest digest = sha256();
        digest.update(view);
        return digest.digest();
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }
}
