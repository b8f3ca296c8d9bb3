/**
 * Java API of rsheap: dma-buf buffers for camera and NPU pipelines, from rsheapd, the broker.
 *
 * <p>{@link dev.rsheap.HeapBroker#connect()} connects to the broker. The broker picks the heap
 * for each {@link dev.rsheap.Usage}, names and accounts the buffers it allocates, loads files
 * into them, and frees what a client holds when the client's process dies. A
 * {@link dev.rsheap.Buffer} is one allocation: map it as a direct {@link java.nio.ByteBuffer}
 * (whole, or in ranges for buffers of 2 GiB and more), load a file or a file descriptor's range
 * into it, hand a duplicate of its file descriptor (or a read-only one) to a device or another
 * process, and close it to free it. Closing cancels its running loads, and leaves its
 * ByteBuffers harmless (reading zeros) rather than dangling; a Buffer nobody closed is freed
 * once it and its ByteBuffers are collected.
 *
 * <pre>{@code
 * try (HeapBroker broker = HeapBroker.connect();
 *         Buffer weights = broker.allocate(modelSize, Usage.MODEL_WEIGHTS)) {
 *     weights.loadFile("/vendor/etc/model.bin", 0, 0, -1,
 *             (done, total) -> Log.i(TAG, done + " of " + total));
 *     ByteBuffer bytes = weights.map();
 *     ...
 * }
 * }</pre>
 *
 * <p>Failures of the broker or of the system come as {@link dev.rsheap.RsheapException}, with
 * an errno and the broker's error code. The classes are safe for use by several threads. The
 * native part is the library {@code rsheap_jni}, loaded when {@code HeapBroker} is first used.
 */
package dev.rsheap;
