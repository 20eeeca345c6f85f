// kvcali: export/safetensors.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../detail/json_input.hpp"
#include "../error.hpp"
#include "../export/safetensors.hpp"
#include "../io.hpp"
#include "../version.hpp"

namespace kvcali {

KVCALI_DECL std::string encode_tensor(const export_tensor& t) {
    std::string out;
    out.resize(t.values.size() * element_size(t.dtype));
    char* p = out.data();
    for (const float v : t.values) {
        if (t.dtype == tensor_dtype::float32) {
            const auto bits = std::bit_cast<std::uint32_t>(v);
            for (int i = 0; i < 4; ++i) *p++ = static_cast<char>((bits >> (8 * i)) & 0xFFu);
        } else {
            const std::uint16_t bits = t.dtype == tensor_dtype::float16 ? float_to_half_bits(v) : float_to_bfloat16_bits(v);
            *p++ = static_cast<char>(bits & 0xFFu);
            *p++ = static_cast<char>(bits >> 8);
        }
    }
    return out;
}

KVCALI_DECL raw_tensor to_raw_tensor(const export_tensor& t) {
    return raw_tensor{t.name, std::string(safetensors_dtype_name(t.dtype)), t.shape, encode_tensor(t)};
}

KVCALI_DECL std::vector<std::pair<std::string, std::string>> default_safetensors_metadata() {
    return {{"format", "pt"}, {"producer", std::string("kvcali ") + version_string}};
}

KVCALI_DECL std::string safetensors_bytes(std::span<const raw_tensor> tensors,
                                          const std::vector<std::pair<std::string, std::string>>& metadata) {
    boost::json::object header;
    if (!metadata.empty()) {
        boost::json::object meta;
        for (const auto& [k, v] : metadata) meta[k] = v;
        header["__metadata__"] = std::move(meta);
    }
    std::uint64_t offset = 0;
    for (const auto& t : tensors) {
        if (t.name == "__metadata__" || header.contains(t.name)) {
            throw error(diagnostic{.severity = severity::error,
                                   .category = errc::invalid_argument,
                                   .message = "cannot write tensor \"" + t.name + "\" into a safetensors file: the name is taken",
                                   .where = {},
                                   .layer = t.name,
                                   .json_path = {}});
        }
        boost::json::array shape;
        for (auto d : t.shape) shape.emplace_back(d);
        boost::json::array offsets;
        offsets.emplace_back(offset);
        offsets.emplace_back(offset + t.bytes.size());
        offset += t.bytes.size();
        header[t.name] = boost::json::object{{"dtype", t.dtype}, {"shape", std::move(shape)}, {"data_offsets", std::move(offsets)}};
    }
    std::string text = boost::json::serialize(header);  // integers and strings only: no doubles to format
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out;
    out.reserve(8 + text.size() + offset);
    const auto n = static_cast<std::uint64_t>(text.size());
    for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xFFu);
    out += text;
    for (const auto& t : tensors) out += t.bytes;
    return out;
}

KVCALI_DECL std::string safetensors_bytes(std::span<const export_tensor> tensors,
                                          const std::vector<std::pair<std::string, std::string>>& metadata) {
    std::vector<raw_tensor> raw;
    raw.reserve(tensors.size());
    for (const auto& t : tensors) raw.push_back(to_raw_tensor(t));
    return safetensors_bytes(std::span<const raw_tensor>(raw), metadata);
}

KVCALI_DECL void write_safetensors(const std::filesystem::path& path, std::span<const export_tensor> tensors) {
    write_file_atomic(path, safetensors_bytes(tensors));
}

KVCALI_DECL std::size_t safetensors_element_size(std::string_view dtype) noexcept {
    static constexpr std::pair<std::string_view, std::size_t> known[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"I32", 4},     {"I16", 2},     {"I8", 1},
        {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (const auto& [name, size] : known) {
        if (name == dtype) return size;
    }
    return 0;
}

namespace detail {

inline std::optional<std::uint64_t> json_uint(const boost::json::value& v) {
    if (v.is_uint64()) return v.get_uint64();
    if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
    return std::nullopt;
}

}  // namespace detail

KVCALI_DECL safetensors_header parse_safetensors_header(std::string_view text, std::uint64_t file_size, const std::string& file,
                                                        diagnostics& diags) {
    safetensors_header out;
    out.file_size = file_size;
    out.data_start = 8 + static_cast<std::uint64_t>(text.size());
    auto bad = [&](const std::string& tensor, std::string message) {
        diags.error(errc::invalid_data, std::move(message), {file, 0, 0}, tensor);
    };
    if (out.data_start > file_size) {
        bad({}, "the header (" + std::to_string(text.size()) + " bytes) is longer than the file (" + std::to_string(file_size) + " bytes)");
        return out;
    }
    const std::uint64_t data_size = file_size - out.data_start;
    boost::json::value doc;
    if (detail::boost_json_builder builder(text, 16); !builder.read(doc)) {
        const auto [line, column] = detail::line_index(text).line_column(builder.error_offset());
        bad({}, "the header is not valid JSON (" + builder.error() + ", at line " + std::to_string(line) + ", column " +
                    std::to_string(column) + " of the header)");
        return out;
    }
    const auto* object = doc.if_object();
    if (object == nullptr) {
        bad({}, "the header must be a JSON object of tensors");
        return out;
    }
    for (const auto& kv : *object) {
        const std::string name(kv.key());
        if (name == "__metadata__") {
            const auto* meta = kv.value().if_object();
            if (meta == nullptr) {
                bad({}, "\"__metadata__\" must be an object of strings");
                continue;
            }
            for (const auto& m : *meta) {
                if (!m.value().is_string()) {
                    bad({}, "\"__metadata__\" value of \"" + std::string(m.key()) + "\" must be a string");
                    continue;
                }
                out.metadata.emplace_back(std::string(m.key()), std::string(m.value().get_string()));
            }
            continue;
        }
        const std::string what = "tensor \"" + name + "\"";
        const auto* t = kv.value().if_object();
        if (t == nullptr) {
            bad(name, what + " must be an object {\"dtype\", \"shape\", \"data_offsets\"}");
            continue;
        }
        safetensors_entry e;
        e.name = name;
        const auto* dtype = t->if_contains("dtype");
        const auto* shape = t->if_contains("shape");
        const auto* offsets = t->if_contains("data_offsets");
        if (dtype == nullptr || !dtype->is_string()) {
            bad(name, what + " has no \"dtype\" string");
            continue;
        }
        e.dtype = std::string(dtype->get_string());
        const std::size_t elem = safetensors_element_size(e.dtype);
        if (elem == 0) {
            bad(name, what + " has an unknown dtype \"" + e.dtype + "\"");
            continue;
        }
        bool ok = shape != nullptr && shape->is_array();
        if (ok) {
            for (const auto& d : shape->get_array()) {
                const auto n = detail::json_uint(d);
                if (!n) {
                    ok = false;
                    break;
                }
                e.shape.push_back(*n);
            }
        }
        if (!ok) {
            bad(name, what + " needs \"shape\": an array of non-negative integers");
            continue;
        }
        ok = offsets != nullptr && offsets->is_array() && offsets->get_array().size() == 2;
        if (ok) {
            const auto b = detail::json_uint(offsets->get_array()[0]);
            const auto en = detail::json_uint(offsets->get_array()[1]);
            ok = b && en;
            if (ok) e.begin = *b, e.end = *en;
        }
        if (!ok) {
            bad(name, what + " needs \"data_offsets\": [begin, end], two non-negative integers");
            continue;
        }
        if (e.begin > e.end || e.end > data_size) {
            bad(name, what + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] outside the data (" +
                          std::to_string(data_size) + " bytes)");
            continue;
        }
        // Element count times element size, without overflow.
        std::uint64_t bytes = elem;
        bool overflow = false;
        for (auto d : e.shape) {
            if (d != 0 && bytes > std::numeric_limits<std::uint64_t>::max() / d) overflow = true;
            bytes *= d;
        }
        if (overflow || bytes != e.size()) {
            std::string dims;
            for (auto d : e.shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
            bad(name, what + " has shape [" + dims + "] of " + e.dtype +
                          (overflow ? " (too large)" : " (" + std::to_string(bytes) + " bytes)") + " but data_offsets span " +
                          std::to_string(e.size()) + " bytes");
            continue;
        }
        out.tensors.push_back(std::move(e));
    }
    if (diags.has_errors()) return out;
    std::stable_sort(out.tensors.begin(), out.tensors.end(), [](const safetensors_entry& a, const safetensors_entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t expected = 0;
    const safetensors_entry* previous = nullptr;
    for (const auto& e : out.tensors) {
        if (e.begin < expected) {
            bad(e.name, "tensor \"" + e.name + "\" overlaps tensor \"" + previous->name + "\" (data_offsets [" + std::to_string(e.begin) +
                            ", " + std::to_string(e.end) + "])");
        } else if (e.begin > expected) {
            bad(e.name, "a gap of " + std::to_string(e.begin - expected) + " bytes before tensor \"" + e.name + "\" (data_offsets [" +
                            std::to_string(e.begin) + ", " + std::to_string(e.end) + "])");
        }
        expected = std::max(expected, e.end);
        previous = &e;
    }
    if (expected != data_size) {
        bad(previous ? previous->name : std::string(), std::to_string(data_size - expected) + " bytes of data after the last tensor" +
                                                           (previous ? " \"" + previous->name + "\"" : std::string()));
    }
    return out;
}

KVCALI_DECL std::uint64_t safetensors_header_length(std::string_view first8) noexcept {
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(first8[static_cast<std::size_t>(i)]);
    return n;
}

namespace detail {

KVCALI_DECL void check_length_prefix(std::uint64_t n, std::uint64_t file_size, const std::string& file) {
    if (file_size < 8) {
        throw error(diagnostic{
            .severity = severity::error,
            .category = errc::invalid_data,
            .message = "too short for a safetensors file (" + std::to_string(file_size) + " bytes, the header length alone takes 8)",
            .where = {file, 0, 0},
            .layer = {},
            .json_path = {}});
    }
    if (n > file_size - 8 || n > max_safetensors_header) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = "the header length " + std::to_string(n) + " is longer than the file (" +
                                          std::to_string(file_size) + " bytes)" +
                                          (n > max_safetensors_header && n <= file_size - 8 ? " or the limit of 100 MiB" : ""),
                               .where = {file, 0, 0},
                               .layer = {},
                               .json_path = {}});
    }
}

}  // namespace detail

KVCALI_DECL safetensors_header parse_safetensors(std::string_view bytes, const std::string& file) {
    const auto size = static_cast<std::uint64_t>(bytes.size());
    const std::uint64_t n = size < 8 ? 0 : safetensors_header_length(bytes.substr(0, 8));
    detail::check_length_prefix(n, size, file);
    diagnostics diags;
    safetensors_header h = parse_safetensors_header(bytes.substr(8, static_cast<std::size_t>(n)), size, file, diags);
    diags.throw_if_errors();
    return h;
}

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL safetensors_file::safetensors_file(const std::filesystem::path& path) : name_(path.string()) {
    do {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd_ < 0 && errno == EINTR);
    if (fd_ < 0) io_fail("cannot open " + name_ + ": " + detail::errno_text(errno));
    struct ::stat st {};
    if (::fstat(fd_, &st) != 0) io_fail("cannot read " + name_ + ": " + detail::errno_text(errno));
    if (!S_ISREG(st.st_mode)) io_fail("cannot read " + name_ + ": not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    std::string first(8, '\0');
    if (size >= 8) read_at(0, first.data(), 8);
    const std::uint64_t n = size < 8 ? 0 : safetensors_header_length(first);
    detail::check_length_prefix(n, size, name_);
    std::string text(static_cast<std::size_t>(n), '\0');
    read_at(8, text.data(), text.size());
    diagnostics diags;
    header_ = parse_safetensors_header(text, size, name_, diags);
    diags.throw_if_errors();
}

KVCALI_DECL safetensors_file::~safetensors_file() {
    if (fd_ >= 0) ::close(fd_);
}

KVCALI_DECL std::vector<float> safetensors_file::read_floats(std::string_view tensor) {
    const safetensors_entry& e = entry(tensor);
    const std::string bytes = read_bytes(e);
    std::vector<float> out;
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    if (e.dtype == "F32") {
        out.resize(bytes.size() / 4);
        for (std::size_t i = 0; i < out.size(); ++i) {
            const std::uint32_t b = std::uint32_t{p[4 * i]} | (std::uint32_t{p[4 * i + 1]} << 8) | (std::uint32_t{p[4 * i + 2]} << 16) |
                                    (std::uint32_t{p[4 * i + 3]} << 24);
            out[i] = std::bit_cast<float>(b);
        }
    } else if (e.dtype == "F16" || e.dtype == "BF16") {
        out.resize(bytes.size() / 2);
        for (std::size_t i = 0; i < out.size(); ++i) {
            const auto b = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
            out[i] = e.dtype == "F16" ? half_bits_to_float(b) : bfloat16_bits_to_float(b);
        }
    } else {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = "tensor \"" + e.name + "\" is " + e.dtype + ", not a float tensor (F32, F16, BF16)",
                               .where = {name_, 0, 0},
                               .layer = e.name,
                               .json_path = {}});
    }
    return out;
}

KVCALI_DECL const safetensors_entry& safetensors_file::entry(std::string_view tensor) const {
    const auto* e = header_.find(tensor);
    if (e == nullptr) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_argument,
                               .message = "the file has no tensor \"" + std::string(tensor) + "\"",
                               .where = {name_, 0, 0},
                               .layer = std::string(tensor),
                               .json_path = {}});
    }
    return *e;
}

KVCALI_DECL void safetensors_file::io_fail(const std::string& message) const { detail::throw_io_error(name_, message); }

KVCALI_DECL void safetensors_file::read_at(std::uint64_t offset, char* out, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::pread(fd_, out, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) io_fail("cannot read " + name_ + ": " + detail::errno_text(errno));
        if (n == 0) {
            throw error(diagnostic{.severity = severity::error,
                                   .category = errc::invalid_data,
                                   .message = "the file ended early (it changed while being read?)",
                                   .where = {name_, 0, 0},
                                   .layer = {},
                                   .json_path = {}});
        }
        bytes_read_ += static_cast<std::uint64_t>(n);
        out += n;
        offset += static_cast<std::uint64_t>(n);
        size -= static_cast<std::size_t>(n);
    }
}

}  // namespace kvcali
