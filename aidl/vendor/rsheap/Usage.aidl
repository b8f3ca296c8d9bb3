package vendor.rsheap;

/**
 * What a buffer is for. The broker picks the heap from the usage (see rsheapd.toml) and puts
 * the usage in the buffer's dma-buf name, so memory tools show who holds what.
 */
@VintfStability
@Backing(type="int")
enum Usage {
    /** Frames a camera pipeline produces or consumes. */
    CAMERA_FRAME = 0,
    /** Weights of a model, usually loaded from a file once and then only read. */
    MODEL_WEIGHTS = 1,
    /** A compiled model an accelerator executes. */
    MODEL_EXECUTABLE = 2,
    /** Anything else: intermediate tensors, staging memory. */
    SCRATCH = 3,
}
