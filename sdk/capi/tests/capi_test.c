/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The C API against a real rsheapd and real heaps, one case per run:
 *
 *   capi_test broker           allocate, map, write, read, list, heaps, free
 *   capi_test load PATH LEN    load PATH with progress, print its FNV-1a hash
 *   capi_test cancel PATH      cancel a load of PATH (1 GiB, say) from its
 *                              progress callback
 *   capi_test errors           every error path returns its documented errno
 *   capi_test direct           heaps opened directly, the uncached fallback
 *   capi_test hold COUNT       allocate COUNT buffers, say so, wait to be killed
 *
 * Each case prints "ok <case>" when every check held; a failed check prints
 * where and exits with 1.
 */

/* open()'s O_CLOEXEC, outside plain C11. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rsheap/rsheap.h>

#define MIB ((size_t)1 << 20)

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "FAIL: %s:%d: %s\n", __FILE__,      \
				__LINE__, #cond);                           \
			exit(1);                                            \
		}                                                           \
	} while (0)

/* A call that must succeed: its errno and the session's message if not. */
#define MUST(session, call)                                                 \
	do {                                                                \
		int status_ = (call);                                       \
		if (status_ != 0) {                                         \
			char message_[256] = "";                            \
			rsheap_session_error_message((session), message_,   \
						     sizeof(message_));     \
			fprintf(stderr, "FAIL: %s:%d: %s = %d (%s)\n",       \
				__FILE__, __LINE__, #call, status_,         \
				message_);                                  \
			exit(1);                                            \
		}                                                           \
	} while (0)

static uint64_t fnv1a(const unsigned char *bytes, size_t len)
{
	uint64_t hash = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		hash ^= bytes[i];
		hash *= 0x100000001b3ull;
	}
	return hash;
}

static RsheapSession *open_session(void)
{
	RsheapSession *session = NULL;

	MUST(NULL, rsheap_session_open(&session));
	CHECK(session != NULL);
	return session;
}

/* Writes a pattern through one mapping and reads it back through another. */
static void write_and_read_back(const RsheapBuffer *buffer, unsigned seed)
{
	size_t size = rsheap_buffer_size(buffer);
	unsigned char *bytes = NULL;
	const unsigned char *readback = NULL;

	CHECK(rsheap_buffer_map(buffer, RSHEAP_MAP_READ_WRITE,
				(void **)&bytes) == 0);
	CHECK(rsheap_buffer_begin_cpu_access(buffer, RSHEAP_SYNC_WRITE) == 0);
	for (size_t i = 0; i < size; i++)
		bytes[i] = (unsigned char)(i * 31 + seed);
	CHECK(rsheap_buffer_end_cpu_access(buffer, RSHEAP_SYNC_WRITE) == 0);
	CHECK(rsheap_buffer_unmap(buffer, bytes) == 0);

	CHECK(rsheap_buffer_map(buffer, RSHEAP_MAP_READ,
				(void **)&readback) == 0);
	CHECK(rsheap_buffer_begin_cpu_access(buffer, RSHEAP_SYNC_READ) == 0);
	for (size_t i = 0; i < size; i++)
		CHECK(readback[i] == (unsigned char)(i * 31 + seed));
	CHECK(rsheap_buffer_end_cpu_access(buffer, RSHEAP_SYNC_READ) == 0);
	CHECK(rsheap_buffer_unmap(buffer, (void *)readback) == 0);
}

static void case_broker(void)
{
	RsheapSession *session = open_session();
	size_t page = rsheap_page_size();
	RsheapAllocationOptions options = {
		.usage = RSHEAP_USAGE_CAMERA_FRAME,
		.cached = true,
		.heap = NULL,
		.debug_name = "preview",
	};
	RsheapBuffer *buffer = NULL;
	RsheapBufferInfo infos[4];
	RsheapHeapInfo heaps[8];
	size_t count = 0;
	bool rsheap_listed = false;

	MUST(session, rsheap_session_allocate(session, 4 * MIB + 1, &options,
					      &buffer));
	CHECK(rsheap_buffer_size(buffer) == 4 * MIB + page);
	CHECK(rsheap_buffer_id(buffer) > 0);
	CHECK(rsheap_buffer_fd(buffer) >= 0);
	write_and_read_back(buffer, 7);

	MUST(session, rsheap_session_list(session, infos, 4, &count));
	CHECK(count == 1);
	CHECK(infos[0].id == rsheap_buffer_id(buffer));
	CHECK(infos[0].size == rsheap_buffer_size(buffer));
	CHECK(infos[0].usage == RSHEAP_USAGE_CAMERA_FRAME);
	CHECK(strcmp(infos[0].heap, "rsheap") == 0);
	CHECK(strcmp(infos[0].debug_name, "preview") == 0);
	CHECK(strncmp(infos[0].name, "camera-", 7) == 0);

	MUST(session, rsheap_session_heaps(session, heaps, 8, &count));
	for (size_t i = 0; i < count; i++) {
		if (strcmp(heaps[i].name, "rsheap") == 0) {
			rsheap_listed = true;
			CHECK(heaps[i].buffers >= 1);
			CHECK(heaps[i].usages &
			      (1u << RSHEAP_USAGE_CAMERA_FRAME));
		}
	}
	CHECK(rsheap_listed);

	MUST(session, rsheap_session_free(session, buffer));
	MUST(session, rsheap_session_list(session, infos, 4, &count));
	CHECK(count == 0);
	CHECK(rsheap_session_error_code(session) == 0);
	rsheap_session_destroy(session);
}

struct progress {
	unsigned calls;
	uint64_t last_done;
	uint64_t total;
	bool went_back;
	/* Calls to answer true to before cancelling; 0 never cancels. */
	unsigned cancel_after;
};

static bool on_progress(void *context, uint64_t done, uint64_t total)
{
	struct progress *progress = context;

	if (done < progress->last_done)
		progress->went_back = true;
	progress->calls++;
	progress->last_done = done;
	progress->total = total;
	return progress->cancel_after == 0 ||
	       progress->calls < progress->cancel_after;
}

static int open_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0);
	return fd;
}

static void case_load(const char *path, uint64_t len)
{
	RsheapSession *session = open_session();
	RsheapAllocationOptions options = {
		.usage = RSHEAP_USAGE_MODEL_WEIGHTS,
		.cached = true,
	};
	RsheapSpan span = { .file_offset = 0, .buffer_offset = 0,
			    .length = RSHEAP_TO_END };
	struct progress progress = { 0 };
	RsheapBuffer *buffer = NULL;
	RsheapBuffer *loaded_at_once = NULL;
	const unsigned char *bytes = NULL;
	uint64_t loaded = 0;
	uint64_t hash;
	int fd = open_file(path);

	MUST(session, rsheap_session_allocate(session, (size_t)len, &options,
					      &buffer));
	MUST(session, rsheap_session_load(session, buffer, fd, &span,
					  on_progress, &progress, &loaded));
	CHECK(loaded == len);
	CHECK(progress.calls >= 1);
	CHECK(progress.last_done == len);
	CHECK(progress.total == len);
	CHECK(!progress.went_back);
	/* The broker reads its own duplicate: this offset did not move. */
	CHECK(lseek(fd, 0, SEEK_CUR) == 0);

	CHECK(rsheap_buffer_map(buffer, RSHEAP_MAP_READ,
				(void **)&bytes) == 0);
	CHECK(rsheap_buffer_begin_cpu_access(buffer, RSHEAP_SYNC_READ) == 0);
	hash = fnv1a(bytes, (size_t)len);
	CHECK(rsheap_buffer_end_cpu_access(buffer, RSHEAP_SYNC_READ) == 0);
	CHECK(rsheap_buffer_unmap(buffer, (void *)bytes) == 0);

	MUST(session, rsheap_session_allocate_and_load(session, (size_t)len,
						       &options, fd, &span,
						       &loaded_at_once));
	CHECK(rsheap_buffer_map(loaded_at_once, RSHEAP_MAP_READ,
				(void **)&bytes) == 0);
	CHECK(fnv1a(bytes, (size_t)len) == hash);
	CHECK(rsheap_buffer_unmap(loaded_at_once, (void *)bytes) == 0);

	printf("hash %016" PRIx64 " after %u progress calls\n", hash,
	       progress.calls);
	MUST(session, rsheap_session_free(session, buffer));
	MUST(session, rsheap_session_free(session, loaded_at_once));
	close(fd);
	rsheap_session_destroy(session);
}

static void case_cancel(const char *path)
{
	RsheapSession *session = open_session();
	RsheapSpan span = { .length = RSHEAP_TO_END };
	struct progress progress = { .cancel_after = 1 };
	RsheapBuffer *buffer = NULL;
	off_t len;
	uint64_t loaded = 12345;
	char message[128] = "";
	int fd = open_file(path);

	len = lseek(fd, 0, SEEK_END);
	CHECK(len > 0);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	MUST(session, rsheap_session_allocate(session, (size_t)len, NULL,
					      &buffer));
	CHECK(rsheap_session_load(session, buffer, fd, &span, on_progress,
				  &progress, &loaded) == -ECANCELED);
	CHECK(loaded == 12345);
	CHECK(progress.calls == 1);
	CHECK(rsheap_session_error_code(session) == RSHEAP_ERROR_CANCELLED);
	CHECK(rsheap_session_error_message(session, message,
					   sizeof(message)) > 0);
	printf("cancelled: %s\n", message);

	CHECK(progress.last_done < (uint64_t)len);

	/* The buffer stays allocated, and loads again. */
	span.length = 4 * MIB;
	MUST(session, rsheap_session_load(session, buffer, fd, &span, NULL,
					  NULL, &loaded));
	CHECK(loaded == 4 * MIB);
	MUST(session, rsheap_session_cancel_loads(session, buffer));
	MUST(session, rsheap_session_free(session, buffer));
	close(fd);
	rsheap_session_destroy(session);
}

/* Checks that the session's last failure has code and a message. */
static void check_failure(const RsheapSession *session, int32_t code)
{
	char message[128] = "";

	CHECK(rsheap_session_error_code(session) == code);
	CHECK(rsheap_session_error_message(session, message,
					   sizeof(message)) > 0);
	CHECK(message[0] != '\0');
}

static void case_errors(void)
{
	RsheapSession *session = open_session();
	RsheapAllocationOptions carveout = { .usage = RSHEAP_USAGE_SCRATCH,
					     .cached = true,
					     .heap = "carveout" };
	RsheapSpan span = { .length = RSHEAP_TO_END };
	RsheapBuffer *buffer = NULL;
	RsheapBuffer *other = NULL;
	RsheapHeap *heap = NULL;
	RsheapBufferInfo info;
	size_t count = 99;
	uint64_t loaded = 0;
	void *address = NULL;
	int fd;

	/* Bad sizes. */
	CHECK(rsheap_session_allocate(session, 0, NULL, &buffer) == -EINVAL);
	check_failure(session, RSHEAP_ERROR_INVALID_ARGUMENT);
	CHECK(rsheap_session_allocate(session, SIZE_MAX, NULL, &buffer) ==
	      -EINVAL);
	CHECK(buffer == NULL);

	/* An unknown heap. */
	CHECK(rsheap_session_allocate(session, MIB, &carveout, &buffer) ==
	      -EOPNOTSUPP);
	check_failure(session, RSHEAP_ERROR_UNSUPPORTED);

	/* NULL handles and out-parameters. */
	CHECK(rsheap_session_allocate(NULL, MIB, NULL, &buffer) == -EINVAL);
	CHECK(rsheap_session_allocate(session, MIB, NULL, NULL) == -EINVAL);
	/* A refusal before the broker has no broker code, but a message. */
	check_failure(session, 0);
	CHECK(rsheap_session_list(session, NULL, 0, NULL) == -EINVAL);
	CHECK(rsheap_session_free(session, NULL) == -EINVAL);
	CHECK(rsheap_buffer_map(NULL, RSHEAP_MAP_READ, &address) == -EINVAL);
	CHECK(rsheap_buffer_size(NULL) == 0);
	CHECK(rsheap_buffer_fd(NULL) == -1);

	MUST(session, rsheap_session_allocate(session, MIB, NULL, &buffer));

	/* Bad file descriptors. */
	CHECK(rsheap_session_load(session, buffer, -1, &span, NULL, NULL,
				  &loaded) == -EBADF);
	check_failure(session, 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	close(fd);
	CHECK(rsheap_session_load(session, buffer, fd, &span, NULL, NULL,
				  &loaded) == -EBADF);
	CHECK(rsheap_session_allocate_and_load(session, MIB, NULL, fd, &span,
					       &other) == -EBADF);
	CHECK(other == NULL);

	/* Bad map access and sync direction, bad unmap addresses. */
	CHECK(rsheap_buffer_map(buffer, 2, &address) == -EINVAL);
	CHECK(rsheap_buffer_begin_cpu_access(buffer, 0) == -EINVAL);
	CHECK(rsheap_buffer_end_cpu_access(buffer, 4) == -EINVAL);
	CHECK(rsheap_buffer_unmap(buffer, NULL) == -EINVAL);
	CHECK(rsheap_buffer_unmap(buffer, (char *)&info + 1) == -EINVAL);

	/* A list longer than the room given. */
	CHECK(rsheap_session_list(session, NULL, 0, &count) == -ENOBUFS);
	CHECK(count == 1);

	/* A heap's buffer where a session's is wanted. */
	MUST(session, rsheap_heap_open("rsheap", &heap));
	CHECK(rsheap_heap_allocate(heap, MIB, &other) == 0);
	CHECK(rsheap_buffer_id(other) == -1);
	CHECK(rsheap_session_load(session, other, 0, &span, NULL, NULL,
				  &loaded) == -ENOENT);
	check_failure(session, RSHEAP_ERROR_NOT_FOUND);
	CHECK(rsheap_session_free(session, other) == -ENOENT);
	rsheap_heap_close(heap);

	/* Direct heaps: unknown, bad names, bad sizes. */
	CHECK(rsheap_heap_open("no-such-heap", &heap) == -ENOENT);
	CHECK(rsheap_heap_open("a/b", &heap) == -EINVAL);
	CHECK(rsheap_heap_open("", &heap) == -EINVAL);
	CHECK(rsheap_heap_open(NULL, &heap) == -EINVAL);
	MUST(session, rsheap_heap_open_uncached("rsheap", &heap));
	CHECK(rsheap_heap_allocate(heap, 0, &other) == -EINVAL);
	CHECK(rsheap_heap_allocate(heap, MIB, NULL) == -EINVAL);
	rsheap_heap_close(heap);

	/* A closed session. */
	rsheap_session_close(session);
	rsheap_session_close(session);
	CHECK(rsheap_session_allocate(session, MIB, NULL, &other) == -EPIPE);
	check_failure(session, RSHEAP_ERROR_SESSION_CLOSED);
	CHECK(rsheap_session_list(session, &info, 1, &count) == -EPIPE);
	CHECK(rsheap_session_free(session, buffer) == -EPIPE);
	rsheap_session_destroy(session);
	rsheap_session_destroy(NULL);
	rsheap_buffer_close(NULL);
	rsheap_heap_close(NULL);
}

static void case_direct(void)
{
	RsheapHeap *heap = NULL;
	RsheapBuffer *buffer = NULL;
	size_t page = rsheap_page_size();

	CHECK(page >= 4096 && (page & (page - 1)) == 0);
	CHECK(rsheap_heap_open("rsheap", &heap) == 0);
	CHECK(strcmp(rsheap_heap_name(heap), "rsheap") == 0);
	CHECK(rsheap_heap_is_cached(heap));
	CHECK(rsheap_heap_allocate(heap, 3 * page + 1, &buffer) == 0);
	CHECK(rsheap_buffer_size(buffer) == 4 * page);
	rsheap_heap_close(heap);
	/* A buffer outlives its heap's handle. */
	write_and_read_back(buffer, 3);
	rsheap_buffer_close(buffer);

	/* rsheap has an uncached variant: it is the one opened. */
	CHECK(rsheap_heap_open_uncached("rsheap", &heap) == 0);
	CHECK(strcmp(rsheap_heap_name(heap), "rsheap-uncached") == 0);
	CHECK(!rsheap_heap_is_cached(heap));
	CHECK(rsheap_heap_allocate(heap, 2 * MIB, &buffer) == 0);
	write_and_read_back(buffer, 5);
	rsheap_buffer_close(buffer);
	rsheap_heap_close(heap);

	/* The in-tree system heap has none: the fallback is system itself. */
	CHECK(rsheap_heap_open_uncached("system", &heap) == 0);
	CHECK(strcmp(rsheap_heap_name(heap), "system") == 0);
	CHECK(rsheap_heap_is_cached(heap));
	CHECK(rsheap_heap_allocate(heap, MIB, &buffer) == 0);
	write_and_read_back(buffer, 9);
	rsheap_buffer_close(buffer);
	rsheap_heap_close(heap);
}

static void case_hold(unsigned count)
{
	RsheapSession *session = open_session();
	char line[8];

	for (unsigned i = 0; i < count; i++) {
		RsheapBuffer *buffer = NULL;

		MUST(session, rsheap_session_allocate(session, MIB, NULL,
						      &buffer));
		/* Closing the handle leaves the buffer to the session. */
		rsheap_buffer_close(buffer);
	}
	printf("held %u\n", count);
	fflush(stdout);
	/* Until killed: the broker cleans up after a client that dies. */
	while (fgets(line, sizeof(line), stdin))
		;
	exit(0);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";

	if (strcmp(name, "broker") == 0 && argc == 2)
		case_broker();
	else if (strcmp(name, "load") == 0 && argc == 4)
		case_load(argv[2], strtoull(argv[3], NULL, 10));
	else if (strcmp(name, "cancel") == 0 && argc == 3)
		case_cancel(argv[2]);
	else if (strcmp(name, "errors") == 0 && argc == 2)
		case_errors();
	else if (strcmp(name, "direct") == 0 && argc == 2)
		case_direct();
	else if (strcmp(name, "hold") == 0 && argc == 3)
		case_hold((unsigned)strtoul(argv[2], NULL, 10));
	else {
		fprintf(stderr,
			"usage: capi_test broker|errors|direct|load PATH LEN|cancel PATH|hold COUNT\n");
		return 2;
	}
	printf("ok %s\n", name);
	return 0;
}
