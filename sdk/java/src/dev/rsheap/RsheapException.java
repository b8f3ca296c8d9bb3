package dev.rsheap;

import java.io.IOException;

/**
 * A failure of the broker or of the system: an allocation the broker refused, a file it could
 * not load, a broker that cannot be reached.
 *
 * <p>It is an {@link IOException}, a checked exception: like I/O, these failures come from
 * outside the program (memory, quotas, files, a service that restarts) and a correct program
 * still meets them, so callers should decide what to do about them. Misuse of the API itself
 * (a closed object, a null argument) throws unchecked exceptions instead.
 *
 * <p>{@link #errno()} says what failed in errno terms, for every failure. {@link #code()} is the
 * broker's {@code ERROR_} code from {@code vendor.rsheap.IHeapBroker}, or 0 when the failure did
 * not come with one (a system call, a file, an unreachable broker). Arguments this library
 * rejects before asking the broker (a negative size) carry {@link #ERROR_INVALID_ARGUMENT} and
 * {@code EINVAL}, as the broker's own refusal would.
 */
public class RsheapException extends IOException {
    private static final long serialVersionUID = 1L;

    /** A size, offset, name, file or heap is not acceptable ({@code EINVAL}). */
    public static final int ERROR_INVALID_ARGUMENT = 1;
    /** No configured heap had the memory ({@code ENOMEM}). */
    public static final int ERROR_NO_MEMORY = 2;
    /** The caller's uid would exceed its quota of bytes or buffers ({@code EDQUOT}). */
    public static final int ERROR_QUOTA_EXCEEDED = 3;
    /** The broker knows no buffer with this id for this client ({@code ENOENT}). */
    public static final int ERROR_NOT_FOUND = 4;
    /** Reading the file failed ({@code EIO}). */
    public static final int ERROR_IO = 5;
    /** The device does not offer this, such as a heap it does not have ({@code EOPNOTSUPP}). */
    public static final int ERROR_UNSUPPORTED = 6;
    /** Too many loads are queued or waiting ({@code EBUSY}). */
    public static final int ERROR_BUSY = 7;
    /**
     * The load was cancelled ({@code ECANCELED}): its buffer was closed, or its loads
     * cancelled ({@link Buffer#cancelLoads()}), while it ran.
     */
    public static final int ERROR_CANCELLED = 8;
    /** The session with the broker has ended ({@code EPIPE}). */
    public static final int ERROR_SESSION_CLOSED = 9;

    /** The errno; see {@link #errno()}. */
    private final int errno;
    /** The broker's code; see {@link #code()}. */
    private final int code;

    /**
     * Made by the native library.
     *
     * @param message what failed
     * @param errno the errno
     * @param code the broker's error code, or 0
     */
    RsheapException(String message, int errno, int code) {
        super(message);
        this.errno = errno;
        this.code = code;
    }

    /**
     * The error number behind the failure: the kernel's for system calls and file errors, the
     * one matching the broker's code for its refusals, {@code EPIPE} (binder's dead object)
     * when the broker cannot be reached.
     *
     * @return a positive Linux errno value
     */
    public int errno() {
        return errno;
    }

    /**
     * The broker's error code.
     *
     * @return one of the {@code ERROR_} constants, or 0 when the failure has no broker code
     */
    public int code() {
        return code;
    }
}
