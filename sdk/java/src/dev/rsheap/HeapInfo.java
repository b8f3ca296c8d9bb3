package dev.rsheap;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * A heap the broker allocates from, with what the broker holds there for all its clients.
 * Immutable: a snapshot taken by {@link HeapBroker#heaps()}.
 */
public final class HeapInfo {
    private final String name;
    private final boolean cached;
    private final List<Usage> usages;
    private final int buffers;
    private final long bytes;
    private final long allocations;
    private final long failures;

    /**
     * Made by the native library from the broker's {@code vendor.rsheap.HeapInfo}.
     *
     * @param name the heap's name
     * @param cached whether CPU access to its buffers is cached
     * @param usages AIDL values of the usages that pick it first
     * @param buffers buffers the broker holds there
     * @param bytes bytes of those buffers
     * @param allocations allocations it served
     * @param failures allocations it could not serve
     */
    HeapInfo(String name, boolean cached, int[] usages, int buffers, long bytes,
            long allocations, long failures) {
        this.name = name;
        this.cached = cached;
        List<Usage> known = new ArrayList<>(usages.length);
        for (int value : usages) {
            Usage usage = Usage.fromValue(value);
            if (usage != null) {
                known.add(usage);
            }
        }
        this.usages = Collections.unmodifiableList(known);
        this.buffers = buffers;
        this.bytes = bytes;
        this.allocations = allocations;
        this.failures = failures;
    }

    /**
     * The heap's name.
     *
     * @return the name under {@code /dev/dma_heap}
     */
    public String name() {
        return name;
    }

    /**
     * Whether CPU access to its buffers is cached.
     *
     * @return {@code true} for a cached heap
     */
    public boolean cached() {
        return cached;
    }

    /**
     * The usages that pick this heap first (usages newer than this library left out).
     *
     * @return an unmodifiable list
     */
    public List<Usage> usages() {
        return usages;
    }

    /**
     * Buffers the broker holds in this heap now, for all clients.
     *
     * @return the number of buffers
     */
    public int buffers() {
        return buffers;
    }

    /**
     * Bytes of the buffers the broker holds in this heap now.
     *
     * @return bytes
     */
    public long bytes() {
        return bytes;
    }

    /**
     * Allocations this heap served since the broker started.
     *
     * @return the count
     */
    public long allocations() {
        return allocations;
    }

    /**
     * Allocations this heap could not serve (and that fell back to another heap or failed).
     *
     * @return the count
     */
    public long failures() {
        return failures;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof HeapInfo)) {
            return false;
        }
        HeapInfo that = (HeapInfo) other;
        return name.equals(that.name)
                && cached == that.cached
                && usages.equals(that.usages)
                && buffers == that.buffers
                && bytes == that.bytes
                && allocations == that.allocations
                && failures == that.failures;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, cached, usages, buffers, bytes, allocations, failures);
    }

    @Override
    public String toString() {
        return "HeapInfo[name=" + name + ", cached=" + cached + ", usages=" + usages
                + ", buffers=" + buffers + ", bytes=" + bytes + ", allocations=" + allocations
                + ", failures=" + failures + "]";
    }
}
