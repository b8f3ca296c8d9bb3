package dev.rsheap;

import java.nio.ByteBuffer;
import java.util.logging.Level;

/**
 * A CPU mapping of part of a buffer, and the {@link ByteBuffer} made over it: the mapping is
 * given back only after that ByteBuffer, and with it every slice, duplicate and view of it,
 * has been collected.
 *
 * <p>While the buffer is open the mapping is the buffer's memory. When the buffer closes it is
 * retired ({@link #retire()}): anonymous memory of this process takes its place at the same
 * addresses, so a ByteBuffer touched after {@code close()} reads zeros (or what such late
 * writes left) instead of faulting, and never touches the freed buffer. Both OpenJDK and ART
 * (API 27 and later) keep a direct ByteBuffer made by {@code NewDirectByteBuffer} reachable from
 * its slices and duplicates, which is what makes the phantom reference to it a safe signal.
 */
final class Region extends Reclaimer.Tracked<ByteBuffer> {
    private final BufferState owner;
    /** The native region, or 0 once released; guarded by this. */
    private long handle;
    /** Whether anonymous memory replaced the buffer's; guarded by this. */
    private boolean retired;

    /**
     * Tracks {@code view}, the ByteBuffer over the native region {@code handle} of {@code
     * owner}, and owns the region from here on.
     */
    Region(ByteBuffer view, long handle, BufferState owner) {
        super(view);
        this.handle = handle;
        this.owner = owner;
    }

    /** Puts anonymous memory in place of the buffer's, once; the buffer is closing. */
    synchronized void retire() {
        if (handle == 0 || retired) {
            return;
        }
        retired = true;
        try {
            nativeRetire(handle);
        } catch (RsheapException e) {
            // The buffer stays mapped instead, which is safe too: its memory lives on until the
            // ByteBuffer is collected.
            Reclaimer.LOG.log(Level.WARNING, "rsheap: a closed buffer stays mapped", e);
        }
    }

    @Override
    void reclaim() {
        synchronized (this) {
            release(handle);
            handle = 0;
        }
        owner.regionGone(this);
    }

    /** Unmaps a native region that no ByteBuffer reaches; 0 is ignored. */
    static void release(long region) {
        if (region != 0) {
            nativeRelease(region);
        }
    }

    /**
     * A direct ByteBuffer over {@code length} bytes of the native region, from byte {@code
     * offset} of the buffer.
     */
    static native ByteBuffer nativeView(long region, long offset, int length)
            throws RsheapException;

    private static native void nativeRetire(long region) throws RsheapException;

    private static native void nativeRelease(long region);
}
