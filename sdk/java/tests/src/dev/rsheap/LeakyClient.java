package dev.rsheap;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * A client process that dies holding buffers, for {@link ClientLifecycleTest}: allocates
 * {@code count} buffers of {@code size} bytes, touches them, prints {@code allocated}, waits
 * until its standard input closes, and halts without closing anything.
 */
public final class LeakyClient {
    private LeakyClient() {}

    /**
     * Runs the client.
     *
     * @param args the buffer count and the size of each buffer in bytes
     * @throws IOException if the broker refuses or standard input fails
     */
    public static void main(String[] args) throws IOException {
        int count = Integer.parseInt(args[0]);
        long size = Long.parseLong(args[1]);
        HeapBroker broker = HeapBroker.connect();
        // Held to the end: a Buffer collected unclosed would be freed before the process dies.
        List<Buffer> held = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Buffer buffer = broker.allocate(size, Usage.SCRATCH);
            buffer.map().put(0, (byte) i);
            held.add(buffer);
        }
        System.out.println("allocated " + count);
        System.out.flush();
        while (System.in.read() != -1) {
            // Wait for the parent to close our input.
        }
        // No close, no shutdown hooks: as if the process were killed.
        System.out.println("holding " + held.size());
        Runtime.getRuntime().halt(0);
    }
}
