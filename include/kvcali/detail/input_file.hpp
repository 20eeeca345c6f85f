// kvcali internals: a file read with POSIX calls. The library's three readers (read_file, the
// layer list's source, the .npy header) used std::ifstream; <fstream> and the stream code it
// inlines cost every TU that includes the library, for reads that need none of a stream's parts.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <utility>

namespace kvcali::detail {

/// A file opened for reading (closed on destruction); false when it could not be opened, with
/// errno saying why.
class input_file {
public:
    input_file() noexcept = default;
    explicit input_file(const char* path) noexcept : fd_(::open(path, O_RDONLY | O_CLOEXEC)) {}
    input_file(input_file&& other) noexcept : fd_(std::exchange(other.fd_, -1)), failed_(other.failed_) {}
    input_file& operator=(input_file&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
            failed_ = other.failed_;
        }
        return *this;
    }
    input_file(const input_file&) = delete;
    input_file& operator=(const input_file&) = delete;
    ~input_file() { close(); }

    explicit operator bool() const noexcept { return fd_ >= 0; }

    /// Reads up to `n` bytes into `to` and returns how many: fewer only at the end of the file or
    /// on a read error, which failed() then tells.
    std::size_t read(char* to, std::size_t n) noexcept {
        std::size_t got = 0;
        while (got < n && fd_ >= 0 && !failed_) {
            const ::ssize_t r = ::read(fd_, to + got, n - got);
            if (r > 0) {
                got += static_cast<std::size_t>(r);
            } else if (r == 0) {
                break;
            } else if (errno != EINTR) {
                failed_ = true;
            }
        }
        return got;
    }
    bool failed() const noexcept { return failed_; }

private:
    void close() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    int fd_ = -1;
    bool failed_ = false;
};

}  // namespace kvcali::detail
