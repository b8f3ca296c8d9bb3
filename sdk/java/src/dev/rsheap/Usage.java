package dev.rsheap;

/**
 * What a buffer is for: the broker picks the heap from the usage and puts it in the buffer's
 * name, so memory tools show who holds what. The values are those of the AIDL enum
 * {@code vendor.rsheap.Usage}.
 */
public enum Usage {
    /** Frames a camera pipeline produces or consumes. */
    CAMERA_FRAME(0),
    /** Weights of a model, usually loaded from a file once and then only read. */
    MODEL_WEIGHTS(1),
    /** A compiled model an accelerator executes. */
    MODEL_EXECUTABLE(2),
    /** Anything else: intermediate tensors, staging memory. */
    SCRATCH(3);

    private final int value;

    Usage(int value) {
        this.value = value;
    }

    /**
     * The AIDL value of this usage.
     *
     * @return the value of {@code vendor.rsheap.Usage} with this name
     */
    public int value() {
        return value;
    }

    /**
     * The usage with an AIDL value.
     *
     * @param value a value of {@code vendor.rsheap.Usage}
     * @return the usage, or {@code null} for a value newer than this library
     */
    static Usage fromValue(int value) {
        for (Usage usage : values()) {
            if (usage.value == value) {
                return usage;
            }
        }
        return null;
    }
}
