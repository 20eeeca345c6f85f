// kvcali: io.hpp's functions (declared there): included at the end of that header (header-only
// use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "../detail/concat.hpp"
#include "../detail/input_file.hpp"
#include "../error.hpp"
#include "../io.hpp"

namespace kvcali {

namespace detail {
KVCALI_DECL std::string errno_text(int e) { return std::strerror(e); }

KVCALI_DECL void throw_io_error(const std::string& file, std::string message) {
    throw error(diagnostic{.severity = severity::error,
                           .category = errc::io_error,
                           .message = std::move(message),
                           .where = {file, 0, 0},
                           .layer = {},
                           .json_path = {}});
}

/// What a file that is neither a regular file, a folder, a FIFO nor a character device is, for messages.
inline const char* special_file_kind(mode_t mode) noexcept {
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISBLK(mode)) return "a block device";
    return "not a regular file";
}
}  // namespace detail

KVCALI_DECL std::string read_file(const std::filesystem::path& path, std::uintmax_t max_size) {
    const std::string name = path.string();
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) {
        detail::throw_io_error(name, detail::concat({"cannot read ", name, ": no such file"}));
    }
    if (std::filesystem::is_directory(status)) {
        detail::throw_io_error(name, detail::concat({"cannot read ", name, ": it is a directory"}));
    }
    detail::input_file in(path.c_str());
    if (!in) {
        detail::throw_io_error(name, detail::concat({"cannot open ", name, ": ", detail::errno_text(errno)}));
    }
    std::string data;
    // Room for the whole of a regular file at once (its size is only a hint: it may change, and
    // other files report none), so a large file is neither copied on growth nor held twice.
    if (std::filesystem::is_regular_file(status)) {
        const std::uintmax_t hint = std::filesystem::file_size(path, ec);
        if (!ec) data.reserve(static_cast<std::size_t>(std::min<std::uintmax_t>(hint, max_size) + 1));
    }
    char buf[1 << 16];
    while (true) {
        const std::size_t got = in.read(buf, sizeof buf);
        data.append(buf, got);
        if (data.size() > max_size) {
            detail::throw_io_error(name, detail::concat({"cannot read ", name, ": larger than the limit of ", max_size, " bytes"}));
        }
        if (got < sizeof buf) break;
    }
    if (in.failed()) {
        detail::throw_io_error(name, detail::concat({"error while reading ", name}));
    }
    return data;
}

KVCALI_DECL atomic_file_writer::atomic_file_writer(const std::filesystem::path& path) : name_(path.string()) {
    if (name_.empty()) fail("empty path");
    struct ::stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) fail("it is a directory");
        if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
            open_as_it_is(path);
            return;
        }
        if (!S_ISREG(st.st_mode)) {
            fail(std::string("it is ") + detail::special_file_kind(st.st_mode) +
                 " (kvcali writes regular files, FIFOs and character devices)");
        }
        target_ = final_target(path);
        // The file the links lead to must be the one stat() saw: a link the kernel resolves
        // itself (/proc/self/fd/N of a deleted file) names no path to write beside.
        struct ::stat found {};
        if (::lstat(target_.c_str(), &found) != 0 || found.st_dev != st.st_dev || found.st_ino != st.st_ino) {
            fail("cannot find the file it leads to");
        }
        create_temporary(static_cast<unsigned>(st.st_mode & 07777));
    } else if (errno == ENOENT || errno == ENOTDIR) {
        target_ = final_target(path);  // no file yet, or a dangling link: create what it names
        create_temporary(std::nullopt);
    } else {
        fail(detail::errno_text(errno));
    }
}

KVCALI_DECL atomic_file_writer::~atomic_file_writer() {
    if (fd_ >= 0) {
        ::close(fd_);
        if (!temp_.empty()) ::unlink(temp_.c_str());
    }
}

KVCALI_DECL void atomic_file_writer::write(std::string_view bytes) {
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

KVCALI_DECL void atomic_file_writer::commit() {
    if (temp_.empty()) {
        if (::close(std::exchange(fd_, -1)) != 0) fail(detail::errno_text(errno));
        return;
    }
    if (::fsync(fd_) != 0) abandon(detail::errno_text(errno));
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(temp_.c_str());
        fail(detail::errno_text(e));
    }
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
        const int e = errno;
        ::unlink(temp_.c_str());
        fail(detail::errno_text(e));
    }
}

KVCALI_DECL void atomic_file_writer::fail(const std::string& why) const {
    detail::throw_io_error(name_, detail::concat({"cannot write ", name_, ": ", why}));
}

KVCALI_DECL void atomic_file_writer::abandon(const std::string& why) {
    ::close(std::exchange(fd_, -1));
    if (!temp_.empty()) ::unlink(temp_.c_str());
    fail(why);
}

KVCALI_DECL std::filesystem::path atomic_file_writer::final_target(std::filesystem::path path) const {
    for (int hops = 0;; ++hops) {
        struct ::stat st {};
        if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
        if (hops == 40) fail(detail::errno_text(ELOOP));
        std::error_code ec;
        const std::filesystem::path next = std::filesystem::read_symlink(path, ec);
        if (ec) fail(detail::concat({"cannot read the link ", path.string(), ": ", ec.message()}));
        path = next.is_absolute() ? next : path.parent_path() / next;
    }
}

KVCALI_DECL void atomic_file_writer::open_as_it_is(const std::filesystem::path& path) {
    do {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) fail(detail::errno_text(errno));
    struct ::stat st {};
    if (::fstat(fd_, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        ::close(std::exchange(fd_, -1));
        fail("it was replaced while being opened");
    }
}

KVCALI_DECL void atomic_file_writer::create_temporary(std::optional<unsigned> mode) {
    const std::filesystem::path parent = target_.has_parent_path() ? target_.parent_path() : std::filesystem::path(".");
    std::error_code ec;
    const auto parent_status = std::filesystem::status(parent, ec);
    if (ec || !std::filesystem::exists(parent_status)) fail(detail::concat({"the folder ", parent.string(), " does not exist"}));
    if (!std::filesystem::is_directory(parent_status)) fail(detail::concat({parent.string(), " is not a folder"}));

    // A per-process counter (shared by threads: hence the atomic add) and the clock make the name;
    // O_EXCL and the retries settle any clash. POSIX calls and a GCC/Clang builtin, like the rest
    // of this file: <chrono> and <atomic> would cost every TU that includes the library.
    static std::uint64_t counter = 0;
    ::timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const std::uint64_t stamp = static_cast<std::uint64_t>(now.tv_sec) * 1000000000u + static_cast<std::uint64_t>(now.tv_nsec);
    // ".<name>.kvcali-<pid>-<number>.tmp" beside the target (its name: what follows the last '/',
    // as filename() gives it, read from the string; npos + 1 is 0).
    const std::string& target = target_.native();
    const std::string_view name_part = std::string_view(target).substr(target.rfind('/') + 1);
    const std::string prefix = detail::concat({".", name_part, ".kvcali-", ::getpid(), "-"});
    for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
        const std::uint64_t number = stamp ^ (__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED) * 0x9E3779B97F4A7C15ull);
        std::string name = prefix;
        detail::append_concat(name, {number, ".tmp"});
        temp_ = parent / name;
        fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd_ < 0 && errno != EEXIST) fail(detail::errno_text(errno));
    }
    if (fd_ < 0) fail("cannot create a temporary file");
    if (mode) ::fchmod(fd_, static_cast<mode_t>(*mode));
}

KVCALI_DECL void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
    atomic_file_writer file(path);
    file.write(bytes);
    file.commit();
}

}  // namespace kvcali
