// kvcali: calibration/npy.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include "../calibration/npy.hpp"
#include "../detail/input_file.hpp"

namespace kvcali {

KVCALI_DECL std::string detail::numpy_type_name(std::string_view descr) {
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

KVCALI_DECL npy_header parse_npy_header(std::string_view bytes, const std::string& file, std::uint64_t file_size) {
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

KVCALI_DECL npy_array parse_npy(std::string_view bytes, const std::string& file) {
    npy_header h = parse_npy_header(bytes, file, bytes.size());
    npy_array out;
    out.type = h.type;
    out.shape = std::move(h.shape);
    out.bytes.assign(reinterpret_cast<const unsigned char*>(bytes.data() + h.data_offset),
                     reinterpret_cast<const unsigned char*>(bytes.data() + bytes.size()));
    return out;
}

KVCALI_DECL npy_array read_npy(const std::filesystem::path& path) { return parse_npy(read_file(path), path.string()); }
KVCALI_DECL npy_view map_npy(const std::filesystem::path& path) {
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

KVCALI_DECL npy_header read_npy_header(const std::filesystem::path& path) {
    const std::string name = path.string();
    auto io_fail = [&](const std::string& why) { detail::throw_io_error(name, "cannot read " + name + ": " + why); };
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) io_fail("no such file");
    if (std::filesystem::is_directory(status)) io_fail("it is a directory");
    detail::input_file in(path.c_str());
    if (!in) io_fail(detail::errno_text(errno));
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) io_fail(ec.message());
    std::string bytes(static_cast<std::size_t>(std::min<std::uintmax_t>(size, 12)), '\0');
    if (in.read(bytes.data(), bytes.size()) != bytes.size()) io_fail("read failed");
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
        if (in.read(bytes.data() + had, want - had) != want - had) io_fail("read failed");
    }
    return parse_npy_header(bytes, name, size);
}

KVCALI_DECL std::string format_npy(dtype type, std::span<const std::int64_t> shape, std::span<const unsigned char> bytes) {
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
