package dev.rsheap;

/**
 * A window of CPU access to a {@link Buffer}, opened by {@link Buffer#beginCpuAccess} and
 * ended by {@link #close()}: the dma-buf sync ioctl's start and end. Between them, what devices
 * wrote is visible through {@link Buffer#map()}, and at the end what the CPU wrote becomes
 * visible to devices. Coherent machines need nothing more; on others (most ARM SoCs with cached
 * buffers) access outside such a window may read stale data or lose writes.
 *
 * <pre>{@code
 * try (CpuAccess access = buffer.beginCpuAccess(CpuAccess.Direction.WRITE)) {
 *     bytes.put(0, (byte) 1);
 * }
 * }</pre>
 */
public final class CpuAccess implements AutoCloseable {
    /** What the CPU does with the buffer during the access. */
    public enum Direction {
        /** The CPU only reads. */
        READ(1),
        /** The CPU only writes. */
        WRITE(2),
        /** The CPU reads and writes. */
        READ_WRITE(3);

        private final int flags;

        Direction(int flags) {
            this.flags = flags;
        }

        /** The {@code DMA_BUF_SYNC_READ} and {@code DMA_BUF_SYNC_WRITE} flags. */
        int flags() {
            return flags;
        }
    }

    private final Buffer buffer;
    private final Direction direction;
    private boolean ended;

    CpuAccess(Buffer buffer, Direction direction) {
        this.buffer = buffer;
        this.direction = direction;
    }

    /**
     * The direction the access was opened in.
     *
     * @return the direction
     */
    public Direction direction() {
        return direction;
    }

    /**
     * Ends the access. Does nothing if it ended already, or if the buffer was closed meanwhile
     * (unmapping ended it).
     *
     * @throws RsheapException if the kernel refuses the end
     */
    @Override
    public synchronized void close() throws RsheapException {
        if (!ended) {
            ended = true;
            buffer.endCpuAccess(direction);
        }
    }
}
