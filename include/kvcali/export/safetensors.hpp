// kvcali export: safetensors files (the tensor container serving engines read), written and read.
//
// Layout: 8 bytes little-endian uint64 N; N bytes of UTF-8 JSON, an object whose keys are tensor
// names, each {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the data after the
// header), plus an optional "__metadata__" {string: string}; the header may be padded with spaces;
// then the raw little-endian tensor data, with no gap and no overlap.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../detail/config.hpp"
#include "../error.hpp"

namespace kvcali {

// ---------------------------------------------------------------------------------------------
// Floating-point element types and conversions

/// The element types kvcali writes: F32, F16 (IEEE half) and BF16 (bfloat16).
enum class tensor_dtype { float32, float16, bfloat16 };

/// The safetensors name of a dtype: `F32`, `F16`, `BF16`.
constexpr std::string_view safetensors_dtype_name(tensor_dtype t) noexcept {
    switch (t) {
        case tensor_dtype::float32: return "F32";
        case tensor_dtype::float16: return "F16";
        case tensor_dtype::bfloat16: return "BF16";
    }
    return "?";
}

/// The command-line name of a dtype: `float32`, `float16`, `bfloat16`.
constexpr std::string_view to_string(tensor_dtype t) noexcept {
    switch (t) {
        case tensor_dtype::float32: return "float32";
        case tensor_dtype::float16: return "float16";
        case tensor_dtype::bfloat16: return "bfloat16";
    }
    return "?";
}

/// Bytes per element of a dtype.
constexpr std::size_t element_size(tensor_dtype t) noexcept { return t == tensor_dtype::float32 ? 4 : 2; }

/// float32 -> IEEE float16 bits, rounding to nearest even; values from 65520 up become infinity,
/// values at or below 2^-25 become zero, NaN stays NaN (quiet).
inline std::uint16_t float_to_half_bits(float value) noexcept {
    const auto x = std::bit_cast<std::uint32_t>(value);
    const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
    const std::uint32_t abs = x & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) return static_cast<std::uint16_t>(sign | (abs > 0x7F800000u ? 0x7E00u : 0x7C00u));
    if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // >= 65520: rounds to infinity
    const std::uint32_t exponent = abs >> 23;
    if (exponent < 113) {  // below 2^-14: a half subnormal, in units of 2^-24
        const std::uint32_t shift = 126 - exponent;
        if (shift >= 25) return sign;
        const std::uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
        std::uint32_t q = mantissa >> shift;
        const std::uint32_t rest = mantissa & ((1u << shift) - 1);
        const std::uint32_t half = 1u << (shift - 1);
        if (rest > half || (rest == half && (q & 1u))) ++q;
        return static_cast<std::uint16_t>(sign | q);
    }
    std::uint32_t q = ((exponent - 112) << 10) | ((abs & 0x7FFFFFu) >> 13);
    const std::uint32_t rest = abs & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (q & 1u))) ++q;  // a carry moves into the exponent, as it should
    return static_cast<std::uint16_t>(sign | q);
}

/// IEEE float16 bits -> float32 (exact).
inline float half_bits_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1Fu;
    const std::uint32_t mantissa = h & 0x3FFu;
    if (exponent == 0) {
        const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

/// float32 -> bfloat16 bits, rounding to nearest even (NaN stays NaN, quiet).
inline std::uint16_t float_to_bfloat16_bits(float value) noexcept {
    const auto x = std::bit_cast<std::uint32_t>(value);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
    return static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

/// bfloat16 bits -> float32 (exact).
inline float bfloat16_bits_to_float(std::uint16_t b) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

/// `value` as stored in `dtype` and read back as float32 (what an engine sees).
inline float round_to_dtype(float value, tensor_dtype dtype) noexcept {
    switch (dtype) {
        case tensor_dtype::float32: return value;
        case tensor_dtype::float16: return half_bits_to_float(float_to_half_bits(value));
        case tensor_dtype::bfloat16: return bfloat16_bits_to_float(float_to_bfloat16_bits(value));
    }
    return value;
}

/// Why a finite value does not survive the conversion to `dtype`: "overflows to infinity",
/// "underflows to zero", or nothing when it fits (zero stays zero).
inline std::optional<std::string> dtype_conversion_problem(float value, tensor_dtype dtype) {
    if (!std::isfinite(value)) return std::nullopt;
    const float stored = round_to_dtype(value, dtype);
    if (std::isinf(stored)) return "overflows to infinity in " + std::string(to_string(dtype));
    if (stored == 0.0f && value != 0.0f) return "underflows to zero in " + std::string(to_string(dtype));
    return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Writing

/// One tensor as data: its name, element type, shape and values (float32, converted when written).
struct export_tensor {
    std::string name;
    tensor_dtype dtype = tensor_dtype::float32;
    std::vector<std::uint64_t> shape;
    std::vector<float> values;  ///< row-major, as many as the shape holds
};

/// A tensor whose bytes are already encoded (kept as they are when a file is rewritten).
struct raw_tensor {
    std::string name;
    std::string dtype;  ///< the safetensors dtype name: F32, F16, BF16, I8, ...
    std::vector<std::uint64_t> shape;
    std::string bytes;
};

/// The little-endian bytes of `t`'s values in its dtype (round to nearest even).
KVCALI_DECL std::string encode_tensor(const export_tensor& t);

/// `t` encoded, as a raw tensor.
KVCALI_DECL raw_tensor to_raw_tensor(const export_tensor& t);

/// The metadata kvcali writes: {"format": "pt", "producer": "kvcali <version>"}.
KVCALI_DECL std::vector<std::pair<std::string, std::string>> default_safetensors_metadata();

/// The bytes of a safetensors file holding `tensors` in the given order (data in that order too),
/// the header led by `metadata` as "__metadata__" (none when empty) and padded with spaces to a
/// multiple of 8 bytes. Requires: each tensor's bytes match its shape; names unique and not
/// "__metadata__" (checked: `invalid_argument`).
KVCALI_DECL std::string safetensors_bytes(
    std::span<const raw_tensor> tensors, const std::vector<std::pair<std::string, std::string>>& metadata = default_safetensors_metadata());

/// As above for tensors given as float values.
KVCALI_DECL std::string safetensors_bytes(
    std::span<const export_tensor> tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata = default_safetensors_metadata());

/// Writes a safetensors file atomically (`write_file_atomic`). Errors: `kvcali::error` (io_error).
/// Example: `kvcali::write_safetensors("scales.safetensors", tensors);`
KVCALI_DECL void write_safetensors(const std::filesystem::path& path, std::span<const export_tensor> tensors);

// ---------------------------------------------------------------------------------------------
// Reading

/// Bytes per element of a safetensors dtype name, or 0 when the name is unknown.
KVCALI_DECL std::size_t safetensors_element_size(std::string_view dtype) noexcept;

/// One tensor of a safetensors header.
struct safetensors_entry {
    std::string name;
    std::string dtype;  ///< F32, F16, BF16, I8, ... (a known safetensors dtype)
    std::vector<std::uint64_t> shape;
    std::uint64_t begin = 0;  ///< byte offsets into the data (after the header)
    std::uint64_t end = 0;
    std::uint64_t size() const noexcept { return end - begin; }
};

/// A checked safetensors header: tensors in the order of their data, the metadata, and where the
/// data starts in the file.
struct safetensors_header {
    std::vector<safetensors_entry> tensors;  ///< sorted by data offset
    std::vector<std::pair<std::string, std::string>> metadata;
    std::uint64_t data_start = 0;  ///< 8 + N
    std::uint64_t file_size = 0;

    const safetensors_entry* find(std::string_view name) const noexcept {
        for (const auto& t : tensors) {
            if (t.name == name) return &t;
        }
        return nullptr;
    }
};

/// Headers longer than this are refused (the safetensors library's own limit is 100 MB).
inline constexpr std::uint64_t max_safetensors_header = std::uint64_t{100} << 20;

/// Checks the header JSON `text` of a file of `file_size` bytes whose header is `text.size()` bytes
/// long, recording every problem in `diags` as `invalid_data` naming `file` and the tensor: bad
/// JSON or UTF-8, a non-object, an unknown dtype, a shape whose element count does not match the
/// byte count, offsets out of range, overlapping or leaving gaps, metadata that is not
/// {string: string}. The result is meaningful only when `diags` has no errors afterwards.
KVCALI_DECL safetensors_header parse_safetensors_header(std::string_view text, std::uint64_t file_size, const std::string& file,
                                                        diagnostics& diags);

/// The header length N of a file's first 8 bytes.
KVCALI_DECL std::uint64_t safetensors_header_length(std::string_view first8) noexcept;

namespace detail {
KVCALI_DECL void check_length_prefix(std::uint64_t n, std::uint64_t file_size, const std::string& file);
}  // namespace detail

/// Checks a whole safetensors file held in memory (see `parse_safetensors_header`).
/// Errors: `kvcali::error` (invalid_data) with every problem, naming `file` and the tensor.
KVCALI_DECL safetensors_header parse_safetensors(std::string_view bytes, const std::string& file = "<safetensors>");

/// A safetensors file opened for reading: the header is read and checked when opened; a tensor's
/// bytes are read only when asked for, with positioned reads of exactly those bytes.
/// Errors: `kvcali::error`: io_error (cannot open or read), invalid_data (see
/// `parse_safetensors_header`), invalid_argument (a tensor the file does not have).
/// Example: `kvcali::safetensors_file f("model.safetensors"); auto s = f.read_floats("l.kv_cache_scale");`
class safetensors_file {
public:
    explicit safetensors_file(const std::filesystem::path& path);
    safetensors_file(const safetensors_file&) = delete;
    safetensors_file& operator=(const safetensors_file&) = delete;
    ~safetensors_file();

    const safetensors_header& header() const noexcept { return header_; }
    const std::string& name() const noexcept { return name_; }
    /// Bytes read from the file so far (the length prefix and header included).
    std::uint64_t bytes_read() const noexcept { return bytes_read_; }

    /// The tensor's raw bytes (exactly its data_offsets range).
    std::string read_bytes(std::string_view tensor) { return read_bytes(entry(tensor)); }
    std::string read_bytes(const safetensors_entry& e) {
        std::string out(static_cast<std::size_t>(e.size()), '\0');
        read_at(header_.data_start + e.begin, out.data(), out.size());
        return out;
    }

    /// The tensor with its bytes, kept as they are.
    raw_tensor read_raw(const safetensors_entry& e) { return raw_tensor{e.name, e.dtype, e.shape, read_bytes(e)}; }

    /// A F32, F16 or BF16 tensor's values as float32 (other dtypes: invalid_data).
    std::vector<float> read_floats(std::string_view tensor);

    /// The entry of a tensor; throws invalid_argument when the file has none of that name.
    const safetensors_entry& entry(std::string_view tensor) const;

private:
    [[noreturn]] KVCALI_COLD void io_fail(const std::string& message) const;
    void read_at(std::uint64_t offset, char* out, std::size_t size);

    std::string name_;
    int fd_ = -1;
    safetensors_header header_;
    std::uint64_t bytes_read_ = 0;
};

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/export_safetensors.ipp"  // IWYU pragma: export
#endif
