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

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk, then
/// renamed over the target. On any failure the target is untouched, the temporary removed, and
/// `kvcali::error` (io_error) says why. A new file gets the usual mode (0666 less the umask); an
/// existing one keeps its mode.
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
    const std::string name = path.string();
    auto fail = [&](const std::string& why) {
        throw error(diagnostic{severity::error, errc::io_error, "cannot write " + name + ": " + why, {name, 0, 0}, {}, {}});
    };
    if (name.empty()) fail("empty path");
    std::error_code ec;
    const auto target_status = std::filesystem::status(path, ec);
    if (!ec && std::filesystem::is_directory(target_status)) fail("it is a directory");
    const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    const auto parent_status = std::filesystem::status(parent, ec);
    if (ec || !std::filesystem::exists(parent_status)) fail("the folder " + parent.string() + " does not exist");
    if (!std::filesystem::is_directory(parent_status)) fail(parent.string() + " is not a folder");

    static std::atomic<std::uint64_t> counter{0};
    const auto stamp = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    int fd = -1;
    std::filesystem::path temp;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        temp = parent / ("." + path.filename().string() + ".kvcali-" + std::to_string(::getpid()) + "-" +
                         std::to_string(stamp ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull)) + ".tmp");
        fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) fail(detail::errno_text(errno));
    }
    if (fd < 0) fail("cannot create a temporary file");
    auto abandon = [&](const std::string& why) {
        ::close(fd);
        ::unlink(temp.c_str());
        fail(why);
    };
    if (!ec && std::filesystem::exists(target_status)) {
        ::fchmod(fd, static_cast<mode_t>(target_status.permissions()) & 07777);
    }
    const char* p = bytes.data();
    std::size_t left = bytes.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            abandon(detail::errno_text(errno));
        }
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) abandon(detail::errno_text(errno));
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(temp.c_str());
        fail(detail::errno_text(e));
    }
    if (::rename(temp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(temp.c_str());
        fail(detail::errno_text(e));
    }
}

}  // namespace kvcali
