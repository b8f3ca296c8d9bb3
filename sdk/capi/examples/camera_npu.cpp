// SPDX-License-Identifier: Apache-2.0
//
// rsheap from C++, as a HAL uses it: RAII wrappers over the C handles, a
// camera-style producer filling a ring of frames, and an NPU-style model load.
//
//   camera_npu FRAMES MODEL_FILE
//
// Built without exceptions or RTTI, as HALs are: failures are return values.

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <rsheap/rsheap.h>

namespace rsheap {

struct SessionDeleter {
    void operator()(RsheapSession* session) const { rsheap_session_destroy(session); }
};
struct BufferDeleter {
    void operator()(RsheapBuffer* buffer) const { rsheap_buffer_close(buffer); }
};

// A session with the broker; destroying it ends the session.
using UniqueSession = std::unique_ptr<RsheapSession, SessionDeleter>;
// A buffer handle; destroying it closes the handle (the session frees the buffer).
using UniqueBuffer = std::unique_ptr<RsheapBuffer, BufferDeleter>;

// The session's last failure, for logs.
std::string LastError(const RsheapSession* session) {
    char message[256];
    rsheap_session_error_message(session, message, sizeof(message));
    return message;
}

// A CPU mapping of a whole buffer, unmapped when destroyed.
class Mapping {
  public:
    static Mapping Map(const RsheapBuffer* buffer, int access, int* error) {
        void* address = nullptr;
        *error = rsheap_buffer_map(buffer, access, &address);
        return *error == 0 ? Mapping(buffer, static_cast<uint8_t*>(address)) : Mapping();
    }

    Mapping() = default;
    Mapping(Mapping&& other) noexcept
        : buffer_(other.buffer_), data_(std::exchange(other.data_, nullptr)) {}
    Mapping& operator=(Mapping&& other) noexcept {
        std::swap(buffer_, other.buffer_);
        std::swap(data_, other.data_);
        return *this;
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() {
        if (data_ != nullptr) rsheap_buffer_unmap(buffer_, data_);
    }

    uint8_t* data() const { return data_; }
    size_t size() const { return rsheap_buffer_size(buffer_); }
    explicit operator bool() const { return data_ != nullptr; }

  private:
    Mapping(const RsheapBuffer* buffer, uint8_t* data) : buffer_(buffer), data_(data) {}

    const RsheapBuffer* buffer_ = nullptr;
    uint8_t* data_ = nullptr;
};

// A CPU-access bracket: begun when made, ended when destroyed.
class CpuAccess {
  public:
    CpuAccess(const RsheapBuffer* buffer, int direction)
        : buffer_(buffer),
          direction_(direction),
          status_(rsheap_buffer_begin_cpu_access(buffer, direction)) {}
    CpuAccess(const CpuAccess&) = delete;
    CpuAccess& operator=(const CpuAccess&) = delete;
    ~CpuAccess() {
        if (status_ == 0) rsheap_buffer_end_cpu_access(buffer_, direction_);
    }

    int status() const { return status_; }

  private:
    const RsheapBuffer* buffer_;
    int direction_;
    int status_;
};

}  // namespace rsheap

namespace {

constexpr int kWidth = 1920;
constexpr int kHeight = 1080;
constexpr size_t kFrameSize = kWidth * kHeight * 3 / 2;  // NV12
constexpr int kRingSize = 4;

uint64_t Fnv1a(const uint8_t* bytes, size_t len) {
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ull;
    }
    return hash;
}

// The camera side: a ring of frames the "sensor" writes and the consumer checks.
bool RunCamera(RsheapSession* session, int frames) {
    struct Slot {
        rsheap::UniqueBuffer buffer;
        rsheap::Mapping mapping;
    };
    std::vector<Slot> ring;
    for (int i = 0; i < kRingSize; i++) {
        char name[32];
        snprintf(name, sizeof(name), "preview%d", i);
        RsheapAllocationOptions options = {RSHEAP_USAGE_CAMERA_FRAME, true, nullptr, name};
        RsheapBuffer* raw = nullptr;
        if (int error = rsheap_session_allocate(session, kFrameSize, &options, &raw)) {
            fprintf(stderr, "allocate frame: %s (%d)\n",
                    rsheap::LastError(session).c_str(), error);
            return false;
        }
        rsheap::UniqueBuffer buffer(raw);
        int error = 0;
        rsheap::Mapping mapping =
                rsheap::Mapping::Map(buffer.get(), RSHEAP_MAP_READ_WRITE, &error);
        if (!mapping) {
            fprintf(stderr, "map frame: %s\n", strerror(-error));
            return false;
        }
        ring.push_back(Slot{std::move(buffer), std::move(mapping)});
    }
    RsheapBufferInfo infos[kRingSize];
    size_t count = 0;
    if (rsheap_session_list(session, infos, kRingSize, &count) != 0 ||
        count != static_cast<size_t>(kRingSize)) {
        fprintf(stderr, "list: %s\n", rsheap::LastError(session).c_str());
        return false;
    }
    printf("ring of %d %dx%d NV12 frames (%zu bytes each), first %s on heap %s\n", kRingSize,
           kWidth, kHeight, rsheap_buffer_size(ring[0].buffer.get()), infos[0].name,
           infos[0].heap);

    for (int frame = 0; frame < frames; frame++) {
        Slot& slot = ring[frame % kRingSize];
        uint8_t* pixels = slot.mapping.data();
        {
            rsheap::CpuAccess write(slot.buffer.get(), RSHEAP_SYNC_WRITE);
            if (write.status() != 0) return false;
            // A frame counter in every line: luma, then chroma.
            for (size_t line = 0; line < kFrameSize / kWidth; line++) {
                memset(pixels + line * kWidth, (frame + static_cast<int>(line)) & 0xff, kWidth);
            }
        }
        rsheap::CpuAccess read(slot.buffer.get(), RSHEAP_SYNC_READ);
        if (read.status() != 0) return false;
        for (size_t line = 0; line < kFrameSize / kWidth; line++) {
            uint8_t expected = (frame + static_cast<int>(line)) & 0xff;
            if (pixels[line * kWidth] != expected || pixels[line * kWidth + kWidth - 1] != expected) {
                fprintf(stderr, "frame %d line %zu: wrong pixels\n", frame, line);
                return false;
            }
        }
    }
    printf("%d frames produced and checked\n", frames);
    // The ring's buffers go back with the session; free one now, as a HAL that shrinks its
    // ring would.
    Slot last = std::move(ring.back());
    ring.pop_back();
    last.mapping = rsheap::Mapping();
    if (rsheap_session_free(session, last.buffer.release()) != 0) {
        fprintf(stderr, "free: %s\n", rsheap::LastError(session).c_str());
        return false;
    }
    return true;
}

struct LoadProgress {
    int last_percent = -1;
};

bool OnProgress(void* context, uint64_t done, uint64_t total) {
    auto* progress = static_cast<LoadProgress*>(context);
    int percent = total > 0 ? static_cast<int>(done * 100 / total) : 100;
    if (percent / 25 != progress->last_percent / 25) {
        printf("  loading: %d%%\n", percent);
        progress->last_percent = percent;
    }
    return true;
}

// The NPU side: the weights loaded as they are allocated, the executable loaded with
// progress, both checked by hash.
bool RunModelLoad(RsheapSession* session, const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror(path);
        return false;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || lseek(fd, 0, SEEK_SET) != 0) {
        fprintf(stderr, "%s: empty or not seekable\n", path);
        close(fd);
        return false;
    }
    RsheapSpan whole = {0, 0, RSHEAP_TO_END};
    RsheapAllocationOptions weights_options = {RSHEAP_USAGE_MODEL_WEIGHTS, true, nullptr,
                                               "weights"};
    RsheapBuffer* raw = nullptr;
    if (rsheap_session_allocate_and_load(session, size, &weights_options, fd, &whole, &raw)) {
        fprintf(stderr, "allocate and load: %s\n", rsheap::LastError(session).c_str());
        close(fd);
        return false;
    }
    rsheap::UniqueBuffer weights(raw);

    RsheapAllocationOptions code_options = {RSHEAP_USAGE_MODEL_EXECUTABLE, true, nullptr,
                                            "executable"};
    if (rsheap_session_allocate(session, size, &code_options, &raw)) {
        fprintf(stderr, "allocate: %s\n", rsheap::LastError(session).c_str());
        close(fd);
        return false;
    }
    rsheap::UniqueBuffer executable(raw);
    LoadProgress progress;
    uint64_t loaded = 0;
    int error = rsheap_session_load(session, executable.get(), fd, &whole, OnProgress,
                                    &progress, &loaded);
    close(fd);
    if (error != 0) {
        fprintf(stderr, "load: %s\n", rsheap::LastError(session).c_str());
        return false;
    }

    uint64_t hashes[2];
    const RsheapBuffer* loaded_buffers[2] = {weights.get(), executable.get()};
    for (int i = 0; i < 2; i++) {
        rsheap::Mapping mapping = rsheap::Mapping::Map(loaded_buffers[i], RSHEAP_MAP_READ, &error);
        if (!mapping) return false;
        rsheap::CpuAccess read(loaded_buffers[i], RSHEAP_SYNC_READ);
        hashes[i] = Fnv1a(mapping.data(), static_cast<size_t>(size));
    }
    if (hashes[0] != hashes[1]) {
        fprintf(stderr, "the two loads differ\n");
        return false;
    }
    printf("model loaded: %" PRIu64 " bytes, hash %016" PRIx64 "\n", loaded, hashes[0]);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: camera_npu FRAMES MODEL_FILE\n");
        return 2;
    }
    RsheapSession* raw = nullptr;
    if (int error = rsheap_session_open(&raw)) {
        fprintf(stderr, "no broker: %s\n", strerror(-error));
        return 1;
    }
    rsheap::UniqueSession session(raw);
    bool ok = RunCamera(session.get(), atoi(argv[1])) && RunModelLoad(session.get(), argv[2]);
    return ok ? 0 : 1;
}
