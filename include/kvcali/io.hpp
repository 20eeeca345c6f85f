// kvcali: reading files whole and writing them atomically.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>

#include "error.hpp"

namespace kvcali {

/// Files larger than this are refused (a config or model description is never near it).
inline constexpr std::uintmax_t max_input_file_size = std::uintmax_t{1} << 31;

namespace detail {
inline std::string errno_text(int e) { return std::strerror(e); }
}  // namespace detail

/// Reads a whole file; throws `kvcali::error` (io_error) naming the path and the reason.
inline std::string read_file(const std::filesystem::path& path, std::uintmax_t max_size = max_input_file_size) {
    const std::string name = path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) {
        throw error(diagnostic{severity::error, errc::io_error, "cannot read " + name + ": no such file", {name, 0, 0}, {}, {}});
    }
    if (std::filesystem::is_directory(status)) {
        throw error(diagnostic{severity::error, errc::io_error, "cannot read " + name + ": it is a directory", {name, 0, 0}, {}, {}});
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw error(diagnostic{severity::error, errc::io_error, "cannot open " + name + ": " + detail::errno_text(errno), {name, 0, 0}, {}, {}});
    }
    std::string data;
    // Room for the whole of a regular file at once (its size is only a hint: it may change, and
    // other files report none), so a large file is neither copied on growth nor held twice.
    if (std::filesystem::is_regular_file(status)) {
        const std::uintmax_t hint = std::filesystem::file_size(path, ec);
        if (!ec) data.reserve(static_cast<std::size_t>(std::min<std::uintmax_t>(hint, max_size) + 1));
    }
    char buf[1 << 16];
    while (in) {
        in.read(buf, sizeof buf);
        data.append(buf, static_cast<std::size_t>(in.gcount()));
        if (data.size() > max_size) {
            throw error(diagnostic{severity::error, errc::io_error,
                                   "cannot read " + name + ": larger than the limit of " + std::to_string(max_size) + " bytes",
                                   {name, 0, 0}, {}, {}});
        }
    }
    if (in.bad()) {
        throw error(diagnostic{severity::error, errc::io_error, "error while reading " + name, {name, 0, 0}, {}, {}});
    }
    return data;
}

/// Writes a file atomically, in pieces: a temporary file in the same folder receives the bytes,
/// commit() flushes it to disk and renames it over the target. On any failure (or when destroyed
/// without commit()) the target is untouched and the temporary removed; failures throw
/// `kvcali::error` (io_error) saying why. A new file gets the usual mode (0666 less the umask); an
/// existing one keeps its mode.
class atomic_file_writer {
public:
    explicit atomic_file_writer(const std::filesystem::path& path) : path_(path), name_(path.string()) {
        if (name_.empty()) fail("empty path");
        std::error_code ec;
        const auto target_status = std::filesystem::status(path, ec);
        if (!ec && std::filesystem::is_directory(target_status)) fail("it is a directory");
        const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
        const auto parent_status = std::filesystem::status(parent, ec);
        if (ec || !std::filesystem::exists(parent_status)) fail("the folder " + parent.string() + " does not exist");
        if (!std::filesystem::is_directory(parent_status)) fail(parent.string() + " is not a folder");

        static std::atomic<std::uint64_t> counter{0};
        const auto stamp = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
        for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
            temp_ = parent / ("." + path.filename().string() + ".kvcali-" + std::to_string(::getpid()) + "-" +
                              std::to_string(stamp ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull)) + ".tmp");
            fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd_ < 0 && errno != EEXIST) fail(detail::errno_text(errno));
        }
        if (fd_ < 0) fail("cannot create a temporary file");
        if (!ec && std::filesystem::exists(target_status)) {
            ::fchmod(fd_, static_cast<mode_t>(target_status.permissions()) & 07777);
        }
    }
    atomic_file_writer(const atomic_file_writer&) = delete;
    atomic_file_writer& operator=(const atomic_file_writer&) = delete;
    ~atomic_file_writer() {
        if (fd_ >= 0) {
            ::close(fd_);
            ::unlink(temp_.c_str());
        }
    }

    /// Appends bytes to the temporary file.
    void write(std::string_view bytes) {
        const char* p = bytes.data();
        std::size_t left = bytes.size();
        while (left > 0) {
            const ssize_t n = ::write(fd_, p, left);
            if (n < 0) {
                if (errno == EINTR) continue;
                abandon(detail::errno_text(errno));
            }
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }

    /// Flushes the temporary file to disk and renames it over the target.
    void commit() {
        if (::fsync(fd_) != 0) abandon(detail::errno_text(errno));
        const int fd = std::exchange(fd_, -1);
        if (::close(fd) != 0) {
            const int e = errno;
            ::unlink(temp_.c_str());
            fail(detail::errno_text(e));
        }
        if (::rename(temp_.c_str(), path_.c_str()) != 0) {
            const int e = errno;
            ::unlink(temp_.c_str());
            fail(detail::errno_text(e));
        }
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw error(diagnostic{severity::error, errc::io_error, "cannot write " + name_ + ": " + why, {name_, 0, 0}, {}, {}});
    }
    [[noreturn]] void abandon(const std::string& why) {
        ::close(std::exchange(fd_, -1));
        ::unlink(temp_.c_str());
        fail(why);
    }

    std::filesystem::path path_;
    std::string name_;
    std::filesystem::path temp_;
    int fd_ = -1;
};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk, then
/// renamed over the target. On any failure the target is untouched, the temporary removed, and
/// `kvcali::error` (io_error) says why. A new file gets the usual mode (0666 less the umask); an
/// existing one keeps its mode.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
    atomic_file_writer file(path);
    file.write(bytes);
    file.commit();
}

}  // namespace kvcali
