/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file rsheap/rsheap.h
 * @brief rsheap's C API: dma-buf buffers for camera and NPU HALs written in C
 * and C++.
 *
 * Two ways to get a buffer:
 *
 * - Through rsheapd, the broker (RsheapSession): it picks the heap for a
 *   usage, names and accounts the buffer, loads files into it, and frees what
 *   a client held when the client exits.  A session reconnects by itself when
 *   the broker restarts.
 * - Straight from a heap node in /dev/dma_heap (RsheapHeap), as
 *   libdmabufheap does, for processes allowed to open the heaps.
 *
 * Either gives an RsheapBuffer: a dma-buf file descriptor that can be mapped,
 * bracketed for CPU access, and handed to devices.
 *
 * @section errors Errors
 *
 * Every function that can fail returns 0 on success or a negative errno, and
 * writes its out-parameters only on success (the list functions also on
 * -ENOBUFS).  The errnos each function returns are listed with it; besides
 * those, -EINVAL means a NULL handle or out-parameter, or a string that is not
 * UTF-8.  A failed session call also records its error:
 * rsheap_session_error_code() gives the broker's RSHEAP_ERROR_* code (0 when
 * the failure did not come from the broker) and rsheap_session_error_message()
 * the message.  These are kept per session, not per process: they describe
 * the last failure of any call on that session, from any thread.
 *
 * @section threads Threads
 *
 * Every function may be called from any thread, alongside any other call on
 * the same handles, except the ones that destroy a handle
 * (rsheap_session_destroy(), rsheap_heap_close(), rsheap_buffer_close(), and
 * rsheap_session_free() for its buffer): no other call may use that handle
 * during or after them.  rsheap_session_close() may run alongside calls on the
 * session, which finish before the session ends.
 *
 * @section callbacks Callbacks
 *
 * A progress callback runs on the thread that called the function taking
 * it, inside that call, and never after the call returns.  It may not call
 * into the same session, except rsheap_session_cancel_loads().
 *
 * Symbols are versioned (RSHEAP_1); a later version only adds functions.
 */

#ifndef RSHEAP_RSHEAP_H
#define RSHEAP_RSHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The version of this API; functions of a later version are only added. */
#define RSHEAP_API_VERSION 1

/** A session with the broker.  Thread-safe. */
typedef struct RsheapSession RsheapSession;
/** A dma-buf heap opened directly.  Thread-safe. */
typedef struct RsheapHeap RsheapHeap;
/** A buffer: the broker's or a heap's.  Thread-safe. */
typedef struct RsheapBuffer RsheapBuffer;

/** What a buffer is for; the broker picks its heap by this. */
enum {
	/** Camera frames: written by a device, read by the CPU or another. */
	RSHEAP_USAGE_CAMERA_FRAME = 0,
	/** Model weights, loaded from a file. */
	RSHEAP_USAGE_MODEL_WEIGHTS = 1,
	/** Compiled model code, loaded from a file. */
	RSHEAP_USAGE_MODEL_EXECUTABLE = 2,
	/** Anything else. */
	RSHEAP_USAGE_SCRATCH = 3,
};

/** The broker's error codes (IHeapBroker's ERROR_* constants). */
enum {
	/** A size, offset, name, file or heap is not acceptable. */
	RSHEAP_ERROR_INVALID_ARGUMENT = 1,
	/** No heap had the memory. */
	RSHEAP_ERROR_NO_MEMORY = 2,
	/** The caller's uid would exceed its quota. */
	RSHEAP_ERROR_QUOTA_EXCEEDED = 3,
	/** The session has no buffer with this id. */
	RSHEAP_ERROR_NOT_FOUND = 4,
	/** Reading the file failed. */
	RSHEAP_ERROR_IO = 5,
	/** The device does not offer what was asked for (an unknown heap). */
	RSHEAP_ERROR_UNSUPPORTED = 6,
	/** Too many loads or allocations are queued. */
	RSHEAP_ERROR_BUSY = 7,
	/** The load was cancelled. */
	RSHEAP_ERROR_CANCELLED = 8,
	/** The session has ended. */
	RSHEAP_ERROR_SESSION_CLOSED = 9,
};

/** The direction of CPU access, for rsheap_buffer_begin_cpu_access(). */
enum {
	RSHEAP_SYNC_READ = 1,
	RSHEAP_SYNC_WRITE = 2,
	RSHEAP_SYNC_READ_WRITE = 3,
};

/** How rsheap_buffer_map() maps a buffer. */
enum {
	/** Readable only: the one way a read-only buffer maps. */
	RSHEAP_MAP_READ = 1,
	/** Readable and writable. */
	RSHEAP_MAP_READ_WRITE = 3,
};

/** A span's length meaning "to the end of the file or the buffer". */
#define RSHEAP_TO_END UINT64_MAX

/** The size of the name fields below, their NUL included. */
#define RSHEAP_NAME_SIZE 64

/** How the broker allocates a buffer. */
typedef struct RsheapAllocationOptions {
	/** An RSHEAP_USAGE_* value. */
	int32_t usage;
	/** Whether CPU access goes through the caches. */
	bool cached;
	/** A heap of the broker's to use instead of the usage's, or NULL. */
	const char *heap;
	/** Free text for the broker's listings (up to 63 bytes), or NULL. */
	const char *debug_name;
} RsheapAllocationOptions;

/** Which part of a file goes where in a buffer. */
typedef struct RsheapSpan {
	/** Where in the file the data starts. */
	uint64_t file_offset;
	/** Where in the buffer it goes. */
	uint64_t buffer_offset;
	/** Bytes to move, or RSHEAP_TO_END. */
	uint64_t length;
} RsheapSpan;

/** A buffer the session holds, as rsheap_session_list() reports it. */
typedef struct RsheapBufferInfo {
	/** The broker's id of the buffer. */
	int64_t id;
	/** Its size in bytes. */
	uint64_t size;
	/** Its RSHEAP_USAGE_* value. */
	int32_t usage;
	/** Whether CPU access goes through the caches. */
	bool cached;
	/** The heap it came from; names are cut to fit, NUL-terminated. */
	char heap[RSHEAP_NAME_SIZE];
	/** Its dma-buf name, <usage>-<pid>-<id>. */
	char name[RSHEAP_NAME_SIZE];
	/** The debug name it was allocated with, or "". */
	char debug_name[RSHEAP_NAME_SIZE];
} RsheapBufferInfo;

/** A heap of the broker's, as rsheap_session_heaps() reports it. */
typedef struct RsheapHeapInfo {
	/** The heap's name; cut to fit, NUL-terminated. */
	char name[RSHEAP_NAME_SIZE];
	/** Whether CPU access to its buffers goes through the caches. */
	bool cached;
	/** The usages it serves: bit n set for RSHEAP_USAGE_* value n. */
	uint32_t usages;
	/** Buffers allocated from it and alive now. */
	uint32_t buffers;
	/** Their bytes. */
	uint64_t bytes;
	/** Allocations made from it since the broker started. */
	uint64_t allocations;
	/** Allocations from it that failed. */
	uint64_t failures;
} RsheapHeapInfo;

/**
 * Called as a load goes on, with the bytes loaded so far and the bytes to
 * load; last with done equal to the bytes loaded.  Return true to go on,
 * false to cancel the load.  Runs on the loading thread (see Callbacks).
 */
typedef bool (*RsheapProgressCallback)(void *context, uint64_t done,
				       uint64_t total);

/** The system's page size, which sizes are rounded up to.  Thread-safe. */
size_t rsheap_page_size(void);

/* Sessions with the broker. */

/**
 * Opens a session with vendor.rsheap.IHeapBroker/default, waiting up to 5
 * seconds for the broker to be registered.
 *
 * @return 0, or -ECONNREFUSED if the broker is not there or does not answer.
 */
int rsheap_session_open(RsheapSession **out_session);

/**
 * Ends the session: the broker frees every buffer it still holds for it
 * (their memory returns once each file descriptor and mapping is gone).  The
 * handle stays valid for the error getters, and every later call on it fails
 * with -EPIPE and RSHEAP_ERROR_SESSION_CLOSED.  Calls under way finish before
 * the session ends.  Closing a closed session does nothing.
 */
void rsheap_session_close(RsheapSession *session);

/**
 * Closes the session if it is open, and frees the handle.  No other call on
 * the session may run alongside it.  NULL is ignored.
 */
void rsheap_session_destroy(RsheapSession *session);

/**
 * The RSHEAP_ERROR_* code of the session's last failure, 0 if that failure
 * did not come from the broker or nothing has failed yet.
 */
int32_t rsheap_session_error_code(const RsheapSession *session);

/**
 * Copies the message of the session's last failure into message (size
 * bytes, NUL-terminated, cut to fit; nothing is written if size is 0) and
 * returns the message's full length without the NUL, 0 if nothing failed.
 */
size_t rsheap_session_error_message(const RsheapSession *session,
				    char *message, size_t size);

/**
 * Allocates size bytes (rounded up to pages) as options says; NULL options
 * are cached scratch memory on the usage's heap.
 *
 * @return 0; -EINVAL for a size of 0 or a bad option (RSHEAP_ERROR_INVALID_
 * ARGUMENT), -EOPNOTSUPP for an unknown heap (RSHEAP_ERROR_UNSUPPORTED),
 * -ENOMEM, -EDQUOT over the uid's quota, -EBUSY, -EPIPE for a closed
 * session, -ECONNREFUSED if the broker is gone.
 */
int rsheap_session_allocate(RsheapSession *session, size_t size,
			    const RsheapAllocationOptions *options,
			    RsheapBuffer **out_buffer);

/**
 * Allocates as rsheap_session_allocate() does and loads span of file_fd into
 * the new buffer, in one call: the buffer comes back loaded, or the call
 * fails and the broker keeps nothing of it.  The broker reads its own
 * duplicate of file_fd, whose offset stays as it was.
 *
 * @return as rsheap_session_allocate(), and -EBADF for a file_fd that is not
 * open, -EIO when reading fails (RSHEAP_ERROR_IO).
 */
int rsheap_session_allocate_and_load(RsheapSession *session, size_t size,
				     const RsheapAllocationOptions *options,
				     int file_fd, const RsheapSpan *span,
				     RsheapBuffer **out_buffer);

/**
 * Loads span of file_fd into buffer, a buffer of this session, by direct I/O
 * where the file allows, and stores the bytes loaded in *out_loaded (fewer
 * than span->length if the file ends first).
 *
 * progress, if not NULL, is called with context about every 100 ms of
 * loading and once at the end (see Callbacks).  When it returns false, the
 * load is cancelled: the call returns -ECANCELED (RSHEAP_ERROR_CANCELLED)
 * once it has stopped, within about 100 ms, and what was loaded until then
 * stays in the buffer.  rsheap_session_cancel_loads() cancels the same way
 * from any thread.
 *
 * @return 0; -EBADF for a file_fd that is not open, -EINVAL for a span
 * outside the buffer, -ENOENT for a buffer the session does not hold, -EIO,
 * -ECANCELED, -EPIPE, -ECONNREFUSED.
 */
int rsheap_session_load(RsheapSession *session, const RsheapBuffer *buffer,
			int file_fd, const RsheapSpan *span,
			RsheapProgressCallback progress, void *context,
			uint64_t *out_loaded);

/**
 * Cancels the loads into buffer, queued and running, from any thread,
 * progress callbacks included; buffer stays allocated.
 *
 * @return 0; -ENOENT for a buffer the session does not hold, -EPIPE.
 */
int rsheap_session_cancel_loads(RsheapSession *session,
				const RsheapBuffer *buffer);

/**
 * Frees buffer, a buffer of this session: the broker stops accounting it,
 * and its memory returns once every file descriptor and mapping of it is
 * gone.  The handle is closed whether or not the call succeeds.
 *
 * @return 0; -ENOENT for a buffer the session does not hold (one of a broker
 * that has since restarted), -EPIPE, -ECONNREFUSED.
 */
int rsheap_session_free(RsheapSession *session, RsheapBuffer *buffer);

/**
 * Lists the session's buffers, oldest first: writes up to capacity of them
 * to infos (which may be NULL if capacity is 0) and their number to
 * *out_count.
 *
 * @return 0; -ENOBUFS if there were more than capacity (*out_count says how
 * many), -EPIPE, -ECONNREFUSED.
 */
int rsheap_session_list(RsheapSession *session, RsheapBufferInfo *infos,
			size_t capacity, size_t *out_count);

/**
 * Lists the broker's heaps as rsheap_session_list() lists buffers.
 *
 * @return as rsheap_session_list().
 */
int rsheap_session_heaps(RsheapSession *session, RsheapHeapInfo *heaps,
			 size_t capacity, size_t *out_count);

/* Heaps opened directly, without the broker. */

/**
 * Opens /dev/dma_heap/<name>.
 *
 * @return 0; -ENOENT if the system has no such heap, -EACCES if this process
 * may not open it, -EINVAL for a name that is empty or holds '/'.
 */
int rsheap_heap_open(const char *name, RsheapHeap **out_heap);

/**
 * Opens <name>-uncached if the system has it, else <name>, as libdmabufheap
 * falls back from system-uncached to system; rsheap_heap_is_cached() tells
 * which one was opened.
 *
 * @return as rsheap_heap_open().
 */
int rsheap_heap_open_uncached(const char *name, RsheapHeap **out_heap);

/** The heap's name, valid until the heap is closed. */
const char *rsheap_heap_name(const RsheapHeap *heap);

/** Whether CPU access goes through the caches: false for *-uncached heaps. */
bool rsheap_heap_is_cached(const RsheapHeap *heap);

/**
 * Allocates size bytes (rounded up to pages), readable and writable, with a
 * close-on-exec file descriptor.
 *
 * @return 0; -EINVAL for a size of 0, -ENOMEM when the heap has no memory.
 */
int rsheap_heap_allocate(const RsheapHeap *heap, size_t size,
			 RsheapBuffer **out_buffer);

/** Closes the heap; its buffers live on.  NULL is ignored. */
void rsheap_heap_close(RsheapHeap *heap);

/* Buffers. */

/**
 * The buffer's dma-buf file descriptor, owned by the buffer: dup() it to
 * keep it past rsheap_buffer_close().
 */
int rsheap_buffer_fd(const RsheapBuffer *buffer);

/** The buffer's size in bytes, a multiple of the page size. */
size_t rsheap_buffer_size(const RsheapBuffer *buffer);

/** The broker's id of the buffer, or -1 for a buffer of a heap. */
int64_t rsheap_buffer_id(const RsheapBuffer *buffer);

/**
 * Maps the whole buffer, RSHEAP_MAP_READ or RSHEAP_MAP_READ_WRITE, and stores
 * the address in *out_address.  Mappings of 2 MiB or more are placed so that
 * rsheap can map each 2 MiB chunk with one page-table entry.  The mapping
 * outlives the buffer's file descriptor; unmap it with rsheap_buffer_unmap().
 *
 * @return 0; -EINVAL for another access, -ENOMEM.
 */
int rsheap_buffer_map(const RsheapBuffer *buffer, int access,
		      void **out_address);

/**
 * Unmaps a mapping that rsheap_buffer_map() made of buffer.
 *
 * @return 0; -EINVAL for an address that is NULL or not page-aligned.
 */
int rsheap_buffer_unmap(const RsheapBuffer *buffer, void *address);

/**
 * Begins CPU access in direction (RSHEAP_SYNC_*): caches are made to agree
 * with what devices wrote.  Bracket every CPU read or write of a buffer that
 * devices share with begin and end.
 *
 * @return 0; -EINVAL for another direction.
 */
int rsheap_buffer_begin_cpu_access(const RsheapBuffer *buffer, int direction);

/**
 * Ends CPU access in direction, begun by rsheap_buffer_begin_cpu_access():
 * what the CPU wrote is made visible to devices.
 *
 * @return 0; -EINVAL for another direction.
 */
int rsheap_buffer_end_cpu_access(const RsheapBuffer *buffer, int direction);

/**
 * Closes the handle and its file descriptor; mappings stay.  A buffer of a
 * session stays allocated, and accounted, until rsheap_session_free() frees
 * it or the session ends; use rsheap_session_free() to free it sooner.  NULL
 * is ignored.
 */
void rsheap_buffer_close(RsheapBuffer *buffer);

#ifdef __cplusplus
}
#endif

#endif /* RSHEAP_RSHEAP_H */
