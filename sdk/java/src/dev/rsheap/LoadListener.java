package dev.rsheap;

/**
 * Hears the progress of a file load, on the thread that called
 * {@link Buffer#loadFile(String, long, long, long, LoadListener)} or
 * {@link Buffer#loadFile(java.io.FileDescriptor, long, long, long, LoadListener)}.
 *
 * <p>The broker reports as it moves the file, chunk by chunk (sized for about 100 ms each,
 * and at least 32 MiB), and the last report counts every byte loaded; a small file brings only
 * that one. If the listener throws, it hears nothing more, the load still runs to its end, and
 * the exception is thrown from {@code loadFile} instead of its result. A listener must not
 * close the buffer or its broker: that throws {@link IllegalStateException}; to stop the load
 * early, close the buffer or call {@link Buffer#cancelLoads()} from another thread.
 */
@FunctionalInterface
public interface LoadListener {
    /**
     * Reports bytes loaded so far.
     *
     * @param done bytes loaded so far; never less than in an earlier report of the same load
     * @param total bytes the load will bring: the requested length, or what the file holds
     *     from the file offset on, whichever is less
     */
    void onProgress(long done, long total);
}
