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
#include <fstream>
#include <ios>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

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

    [[noreturn]] void fail(const std::string& what) const {
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
inline std::string numpy_type_name(std::string_view descr) {
    if (descr.size() < 3) return {};
    const char order = descr[0], kind = descr[1];
    std::string_view bytes = descr.substr(2);
    unsigned width = 0;
    const auto r = std::from_chars(bytes.data(), bytes.data() + bytes.size(), width);
    if (r.ec != std::errc{} || r.ptr != bytes.data() + bytes.size() || width == 0 || width > 64) return {};
    std::string name;
    switch (kind) {
        case 'f': name = "float"; break;
        case 'i': name = "int"; break;
        case 'u': name = "uint"; break;
        case 'c': name = "complex"; break;
        case 'b': return width == 1 ? "bool" : std::string();
        default: return {};
    }
    name += std::to_string(width * 8);
    if (order == '>' && width > 1) name = "big-endian " + name;
    return name;
}

}  // namespace detail

/// Parses the header of a .npy file: `bytes` holds the file's first bytes (at least the whole
/// header; the whole file will do), `file_size` is the size of the whole file. Checks magic,
/// version, header length, dictionary syntax, keys, dtype (`<f4` or `<f2` only), `fortran_order`
/// (False only), shape, and that the file holds exactly the data they need.
/// Errors: throws `kvcali::error` (invalid_data) naming `file` and the byte column of the problem;
/// a dtype such as numpy's default float64 gets a message saying how to save the array instead.
/// Example: `kvcali::npy_header h = kvcali::parse_npy_header(first_bytes, "0.npy", size);`
inline npy_header parse_npy_header(std::string_view bytes, const std::string& file, std::uint64_t file_size) {
    auto fail_at = [&](std::size_t at, const std::string& what) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = what,
                               .where = {file, 1, static_cast<std::uint32_t>(at + 1)},
                               .layer = {},
                               .json_path = {}});
    };
    if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view("\x93NUMPY", 6))
        fail_at(0, "not a .npy file (expected the magic \\x93NUMPY)");
    const auto major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
    if (major < 1 || major > 3 || minor != 0) {
        fail_at(6, "unsupported npy format version " + std::to_string(major) + "." + std::to_string(minor) + " (expected 1.0, 2.0 or 3.0)");
    }
    std::size_t header_len = 0, header_at = 0;
    if (major == 1) {
        header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
        header_at = 10;
    } else {
        if (bytes.size() < 12) fail_at(8, "truncated npy header length");
        for (int k = 3; k >= 0; --k) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + static_cast<std::size_t>(k)]);
        header_at = 12;
    }
    if (header_at + header_len > bytes.size() || header_at + header_len > file_size) {
        fail_at(8, "npy header length " + std::to_string(header_len) + " runs past the end of the file");
    }
    const std::string_view header = bytes.substr(header_at, header_len);
    if (header.empty() || header.back() != '\n') fail_at(header_at + header_len, "npy header must end with a newline");

    detail::npy_header_parser p(header, header_at, file);
    std::string descr;
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    std::vector<std::int64_t> shape;
    p.expect('{', "`{` starting the header dictionary");
    while (!p.eat('}')) {
        const std::string key = p.string_literal();
        p.expect(':', "`:` after a key");
        if (key == "descr") {
            if (have_descr) p.fail("npy header: 'descr' given twice");
            descr = p.string_literal();
            have_descr = true;
        } else if (key == "fortran_order") {
            if (have_order) p.fail("npy header: 'fortran_order' given twice");
            fortran = p.boolean();
            have_order = true;
        } else if (key == "shape") {
            if (have_shape) p.fail("npy header: 'shape' given twice");
            shape = p.tuple();
            have_shape = true;
        } else {
            p.fail("npy header: unknown key '" + key + "' (expected 'descr', 'fortran_order', 'shape')");
        }
        if (p.eat('}')) break;
        p.expect(',', "`,` or `}` in the header dictionary");
    }
    p.finish();
    if (!have_descr || !have_order || !have_shape) fail_at(header_at, "npy header lacks one of 'descr', 'fortran_order', 'shape'");
    npy_header out;
    if (descr == "<f4") {
        out.type = dtype::float32;
    } else if (descr == "<f2") {
        out.type = dtype::float16;
    } else {
        const std::string name = detail::numpy_type_name(descr);
        fail_at(header_at, "the array has dtype " + (name.empty() ? "'" + descr + "'" : name + " ('" + descr + "')") +
                               "; kvcali reads little-endian float32 ('<f4') or float16 ('<f2'): save it with .astype(np.float32)");
    }
    if (fortran) fail_at(header_at, "npy array is in Fortran order (expected C order)");
    if (shape.empty()) fail_at(header_at, "npy array has rank 0 (expected rank >= 1, the last dimension the channels)");
    std::size_t count = 1;
    for (auto d : shape) {
        if (d != 0 && count > (std::size_t{1} << 40) / static_cast<std::size_t>(d)) fail_at(header_at, "npy shape is too large");
        count *= static_cast<std::size_t>(d);
    }
    out.data_offset = header_at + header_len;
    out.data_bytes = count * size_of(out.type);
    if (file_size - out.data_offset != out.data_bytes) {
        fail_at(out.data_offset, "npy data has " + std::to_string(file_size - out.data_offset) +
                                     " bytes; the header's shape and dtype need " + std::to_string(out.data_bytes));
    }
    out.shape = std::move(shape);
    return out;
}

/// Parses the bytes of a .npy file. Throws `kvcali::error` (invalid_data) naming `file` and the byte
/// column of any problem (see `parse_npy_header`).
inline npy_array parse_npy(std::string_view bytes, const std::string& file = "<npy>") {
    npy_header h = parse_npy_header(bytes, file, bytes.size());
    npy_array out;
    out.type = h.type;
    out.shape = std::move(h.shape);
    out.bytes.assign(reinterpret_cast<const unsigned char*>(bytes.data() + h.data_offset),
                     reinterpret_cast<const unsigned char*>(bytes.data() + bytes.size()));
    return out;
}

/// Reads a .npy file. Throws io_error (missing or unreadable) or invalid_data (see `parse_npy`).
inline npy_array read_npy(const std::filesystem::path& path) { return parse_npy(read_file(path), path.string()); }

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
inline npy_view map_npy(const std::filesystem::path& path) {
    npy_view out;
#ifdef KVCALI_NPY_MMAP
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st {};
        void* map = MAP_FAILED;
        std::size_t size = 0;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
            size = static_cast<std::size_t>(st.st_size);
            map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        }
        ::close(fd);
        if (map != MAP_FAILED) {
            out.map_ = map;
            out.map_size_ = size;
            (void)::madvise(map, size, MADV_SEQUENTIAL);
            const std::string_view bytes(static_cast<const char*>(map), size);
            npy_header h = parse_npy_header(bytes, path.string(), size);  // throws; `out` unmaps
            out.type = h.type;
            out.shape = std::move(h.shape);
            out.data_ = static_cast<const unsigned char*>(map) + h.data_offset;
            out.bytes_ = h.data_bytes;
            return out;
        }
    }
#endif
    // Not mappable (or an error to report): read it, with read_npy's errors.
    out.copy_ = read_npy(path);
    out.type = out.copy_.type;
    out.shape = out.copy_.shape;
    out.data_ = out.copy_.bytes.data();
    out.bytes_ = out.copy_.bytes.size();
    return out;
}

/// Reads only the header of a .npy file (a few hundred bytes, whatever the array's size) and checks
/// it as `parse_npy_header` does, the data's size included: a file that passes is read by
/// `read_npy` without a header or dtype error.
/// Errors: throws `kvcali::error`: io_error (missing, a folder, unreadable), invalid_data (header).
/// Example: `kvcali::read_npy_header("act/k_proj/0.npy").shape`
inline npy_header read_npy_header(const std::filesystem::path& path) {
    const std::string name = path.string();
    auto io_fail = [&](const std::string& why) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::io_error,
                               .message = "cannot read " + name + ": " + why,
                               .where = {name, 0, 0},
                               .layer = {},
                               .json_path = {}});
    };
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) io_fail("no such file");
    if (std::filesystem::is_directory(status)) io_fail("it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) io_fail(detail::errno_text(errno));
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) io_fail(ec.message());
    std::string bytes(static_cast<std::size_t>(std::min<std::uintmax_t>(size, 12)), '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<std::size_t>(in.gcount()) != bytes.size()) io_fail("read failed");
    // The header's length, as parse_npy_header reads it; anything odd is left for it to report.
    std::size_t want = bytes.size();
    if (bytes.size() >= 10 && bytes.starts_with(std::string_view("\x93NUMPY", 6))) {
        const auto major = static_cast<unsigned char>(bytes[6]);
        std::size_t header_len = 0, header_at = 10;
        if (major == 1) {
            header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
        } else if (bytes.size() >= 12) {
            for (int k = 3; k >= 0; --k)
                header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + static_cast<std::size_t>(k)]);
            header_at = 12;
        }
        want = static_cast<std::size_t>(std::min<std::uintmax_t>(size, header_at + header_len));
    }
    if (want > bytes.size()) {
        const std::size_t had = bytes.size();
        bytes.resize(want);
        in.read(bytes.data() + had, static_cast<std::streamsize>(want - had));
        if (static_cast<std::size_t>(in.gcount()) != want - had) io_fail("read failed");
    }
    return parse_npy_header(bytes, name, size);
}

/// The bytes of a .npy file (format 1.0, or 2.0 when the header needs it) holding `bytes`
/// elements of `type`, C order. Example: `spit("a.npy", format_npy(dtype::float32, {2, 3}, raw))`.
inline std::string format_npy(dtype type, std::span<const std::int64_t> shape, std::span<const unsigned char> bytes) {
    std::string dict = "{'descr': '";
    dict += type == dtype::float16 ? "<f2" : (type == dtype::bfloat16 ? "<V2" : "<f4");
    dict += "', 'fortran_order': False, 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        dict += std::to_string(shape[i]);
        dict += shape.size() == 1 || i + 1 < shape.size() ? "," : "";
        if (i + 1 < shape.size()) dict += ' ';
    }
    dict += "), }";
    const bool v2 = dict.size() + 11 > 65535;
    const std::size_t prefix = v2 ? 12 : 10;
    std::size_t total = prefix + dict.size() + 1;
    const std::size_t pad = (64 - total % 64) % 64;
    dict.append(pad, ' ');
    dict += '\n';
    std::string out("\x93NUMPY", 6);
    out += static_cast<char>(v2 ? 2 : 1);
    out += '\0';
    const std::size_t len = dict.size();
    out += static_cast<char>(len & 0xFF);
    out += static_cast<char>((len >> 8) & 0xFF);
    if (v2) {
        out += static_cast<char>((len >> 16) & 0xFF);
        out += static_cast<char>((len >> 24) & 0xFF);
    }
    out += dict;
    out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return out;
}

}  // namespace kvcali
