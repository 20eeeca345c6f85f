// kvcali calibration: NumPy .npy files (format versions 1.0 to 3.0) of little-endian float32 or
// float16, C order, as `kvcali calibrate` reads activations. Every header field is checked; the
// header alone can be read and checked (read_npy_header) before any data is.
#pragma once

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "../detail/config.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "scale.hpp"

#if __has_include(<sys/mman.h>) && __has_include(<unistd.h>)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define KVCALI_NPY_MMAP 1
#endif

namespace kvcali {

/// An array read from a .npy file.
struct npy_array {
    dtype type = dtype::float32;
    std::vector<std::int64_t> shape;
    std::vector<unsigned char> bytes;  ///< the elements, little-endian, C order

    std::size_t size() const noexcept { return bytes.size() / size_of(type); }
};

namespace detail {

class npy_header_parser {
public:
    npy_header_parser(std::string_view text, std::size_t base, std::string file) : t_(text), base_(base), file_(std::move(file)) {}

    [[noreturn]] KVCALI_COLD void fail(const std::string& what) const {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = what,
                               .where = {file_, 1, static_cast<std::uint32_t>(base_ + i_ + 1)},
                               .layer = {},
                               .json_path = {}});
    }
    void ws() {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t')) ++i_;
    }
    bool eat(char c) {
        ws();
        if (i_ < t_.size() && t_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void expect(char c, const char* what) {
        if (!eat(c)) fail(std::string("npy header: expected ") + what);
    }
    std::string string_literal() {
        ws();
        if (i_ >= t_.size() || (t_[i_] != '\'' && t_[i_] != '"')) fail("npy header: expected a quoted string");
        const char q = t_[i_++];
        const std::size_t start = i_;
        while (i_ < t_.size() && t_[i_] != q) ++i_;
        if (i_ >= t_.size()) fail("npy header: unterminated string");
        return std::string(t_.substr(start, i_++ - start));
    }
    bool boolean() {
        ws();
        if (t_.substr(i_).starts_with("True")) {
            i_ += 4;
            return true;
        }
        if (t_.substr(i_).starts_with("False")) {
            i_ += 5;
            return false;
        }
        fail("npy header: expected True or False for 'fortran_order'");
    }
    std::vector<std::int64_t> tuple() {
        expect('(', "a shape tuple `(...)`");
        std::vector<std::int64_t> out;
        while (!eat(')')) {
            ws();
            std::int64_t v = -1;
            const auto r = std::from_chars(t_.data() + i_, t_.data() + t_.size(), v);
            if (r.ec != std::errc{} || v < 0) fail("npy header: expected a non-negative integer in the shape");
            i_ = static_cast<std::size_t>(r.ptr - t_.data());
            out.push_back(v);
            if (eat(')')) break;
            expect(',', "`,` or `)` in the shape");
        }
        return out;
    }
    void finish() {
        ws();
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n')) ++i_;
        if (i_ != t_.size()) fail("npy header: unexpected text after the dictionary");
    }

private:
    std::string_view t_;
    std::size_t base_;
    std::string file_;
    std::size_t i_ = 0;
};

}  // namespace detail

/// What the header of a .npy file says: the element type, the shape, where the data starts and
/// how many bytes it needs.
struct npy_header {
    dtype type = dtype::float32;
    std::vector<std::int64_t> shape;
    std::size_t data_offset = 0;  ///< the byte the elements start at
    std::size_t data_bytes = 0;   ///< the bytes the shape and dtype need

    std::size_t size() const noexcept { return data_bytes / size_of(type); }
};

namespace detail {

/// NumPy's name of an array-protocol type string, for messages: `<f8` is "float64", `>f4`
/// "big-endian float32", `|b1` "bool"; empty when it is none of the usual ones.
KVCALI_DECL std::string numpy_type_name(std::string_view descr);

}  // namespace detail

/// Parses the header of a .npy file: `bytes` holds the file's first bytes (at least the whole
/// header; the whole file will do), `file_size` is the size of the whole file. Checks magic,
/// version, header length, dictionary syntax, keys, dtype (`<f4` or `<f2` only), `fortran_order`
/// (False only), shape, and that the file holds exactly the data they need.
/// Errors: throws `kvcali::error` (invalid_data) naming `file` and the byte column of the problem;
/// a dtype such as numpy's default float64 gets a message saying how to save the array instead.
/// Example: `kvcali::npy_header h = kvcali::parse_npy_header(first_bytes, "0.npy", size);`
KVCALI_DECL npy_header parse_npy_header(std::string_view bytes, const std::string& file, std::uint64_t file_size);

/// Parses the bytes of a .npy file. Throws `kvcali::error` (invalid_data) naming `file` and the byte
/// column of any problem (see `parse_npy_header`).
KVCALI_DECL npy_array parse_npy(std::string_view bytes, const std::string& file = "<npy>");

/// Reads a .npy file. Throws io_error (missing or unreadable) or invalid_data (see `parse_npy`).
KVCALI_DECL npy_array read_npy(const std::filesystem::path& path);

/// A .npy file's array, memory-mapped read-only (no copy: the pages are read as they are used
/// and can be dropped again by the system), or read into memory where mapping is not possible
/// (no mmap on the platform, a file that is not a regular file). Move-only; unmaps on destruction.
/// The file must not be truncated while the view lives (reading a vanished page is SIGBUS).
class npy_view {
public:
    npy_view() = default;
    npy_view(npy_view&& o) noexcept { *this = std::move(o); }
    npy_view& operator=(npy_view&& o) noexcept {
        if (this != &o) {
            release();
            type = o.type;
            shape = std::move(o.shape);
            map_ = std::exchange(o.map_, nullptr);
            map_size_ = std::exchange(o.map_size_, 0);
            data_ = std::exchange(o.data_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
            copy_ = std::move(o.copy_);
        }
        return *this;
    }
    npy_view(const npy_view&) = delete;
    npy_view& operator=(const npy_view&) = delete;
    ~npy_view() { release(); }

    dtype type = dtype::float32;
    std::vector<std::int64_t> shape;

    /// The elements, little-endian, C order (`size_bytes()` bytes).
    const unsigned char* data() const noexcept { return data_; }
    std::size_t size_bytes() const noexcept { return bytes_; }
    std::size_t size() const noexcept { return bytes_ / size_of(type); }
    /// Whether the data is mapped (true) or was read into memory (false).
    bool mapped() const noexcept { return map_ != nullptr; }

private:
    friend npy_view map_npy(const std::filesystem::path& path);
    void release() noexcept {
#ifdef KVCALI_NPY_MMAP
        if (map_) ::munmap(map_, map_size_);
#endif
        map_ = nullptr;
        map_size_ = 0;
    }

    void* map_ = nullptr;
    std::size_t map_size_ = 0;
    const unsigned char* data_ = nullptr;
    std::size_t bytes_ = 0;
    npy_array copy_;  // when not mapped
};

/// Opens a .npy file as `read_npy` reads it, with the same checks and errors (io_error for a
/// missing or unreadable file, invalid_data naming the file and byte column of a bad header), but
/// memory-mapped instead of copied where possible (see npy_view). Example:
/// `auto a = kvcali::map_npy("act/k_proj/0.npy"); cal.observe("k_proj", a.data(), a.type, a.shape);`
KVCALI_DECL npy_view map_npy(const std::filesystem::path& path);

/// Reads only the header of a .npy file (a few hundred bytes, whatever the array's size) and checks
/// it as `parse_npy_header` does, the data's size included: a file that passes is read by
/// `read_npy` without a header or dtype error.
/// Errors: throws `kvcali::error`: io_error (missing, a folder, unreadable), invalid_data (header).
/// Example: `kvcali::read_npy_header("act/k_proj/0.npy").shape`
KVCALI_DECL npy_header read_npy_header(const std::filesystem::path& path);

/// The bytes of a .npy file (format 1.0, or 2.0 when the header needs it) holding `bytes`
/// elements of `type`, C order. Example: `spit("a.npy", format_npy(dtype::float32, {2, 3}, raw))`.
KVCALI_DECL std::string format_npy(dtype type, std::span<const std::int64_t> shape, std::span<const unsigned char> bytes);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/npy.ipp"  // IWYU pragma: export
#endif
