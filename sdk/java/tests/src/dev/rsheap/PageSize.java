package dev.rsheap;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Paths;

/** The CPU's base page size, to which heaps round every buffer's size up. */
final class PageSize {
    private PageSize() {}

    /**
     * The page size in bytes, from the kernel's account of this process's first mapping (its
     * executable, which is never in huge pages), as on the host JVM and on Android alike.
     */
    static int bytes() throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/self/smaps"))) {
            String[] fields = line.trim().split("\\s+");
            if (fields.length == 3 && fields[0].equals("KernelPageSize:")
                    && fields[2].equals("kB")) {
                return Integer.parseInt(fields[1]) * 1024;
            }
        }
        throw new IOException("/proc/self/smaps names no KernelPageSize");
    }
}
