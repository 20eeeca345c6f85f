// kvcali calibration: the pieces both algorithms share. Float32 arithmetic exactly as the
// reference computes it, scale and offset from a clip range, element types, and the results.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "../detail/config.hpp"

namespace kvcali {

/// FLT_EPSILON (2^-23): the reference's threshold for "too small" scales.
inline constexpr float flt_epsilon = 0x1p-23f;

/// Rounds half to even, as torch.round does (the default floating-point environment is assumed).
inline float round_half_even(float x) noexcept { return std::nearbyint(x); }

/// Scale and offset of one tensor or one channel: `q = clamp(round(x / scale) + offset, -128, 127)`.
struct scale_offset {
    float scale = 1.0f;
    std::int32_t offset = 0;
    friend bool operator==(const scale_offset&, const scale_offset&) = default;
};

/// The result of calibrating one layer: one entry per tensor (per tensor) or per channel.
struct quant_factors {
    std::vector<float> scale;
    std::vector<std::int32_t> offset;
    friend bool operator==(const quant_factors&, const quant_factors&) = default;
};

/// Element types of activations.
enum class dtype : std::uint8_t { float32, float16, bfloat16 };

constexpr std::string_view to_string(dtype t) noexcept {
    switch (t) {
        case dtype::float32: return "float32";
        case dtype::float16: return "float16";
        case dtype::bfloat16: return "bfloat16";
    }
    return "unknown";
}

/// Bytes per element, or 0 for a value outside the enumeration.
constexpr std::size_t size_of(dtype t) noexcept {
    switch (t) {
        case dtype::float32: return 4;
        case dtype::float16:
        case dtype::bfloat16: return 2;
    }
    return 0;
}

/// IEEE binary16 to float32 (exact: every half is a float).
inline float half_to_float(std::uint16_t h) noexcept {
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1Fu;
    std::uint32_t mantissa = h & 0x3FFu;
    std::uint32_t bits = 0;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal half: normalise.
        std::uint32_t e = 113;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mantissa & 0x3FFu) << 13);
    }
    return std::bit_cast<float>(bits);
}

/// bfloat16 to float32 (exact).
inline float bfloat16_to_float(std::uint16_t b) noexcept { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

/// float32 to IEEE binary16, rounding to nearest even (for writing test data and npy files).
inline std::uint16_t float_to_half(float f) noexcept {
    const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const std::uint32_t sign = (x >> 16) & 0x8000u;
    const std::uint32_t abs = x & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7C00u | (abs > 0x7F800000u ? 0x200u : 0u));
    if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds to infinity
    if (abs < 0x38800000u) {                                                    // subnormal or zero half
        const float magnitude = std::bit_cast<float>(abs);
        const auto units = static_cast<std::uint32_t>(std::nearbyint(magnitude * 0x1p24f));
        return static_cast<std::uint16_t>(sign | units);
    }
    const std::uint32_t mantissa_odd = (abs >> 13) & 1u;
    const std::uint32_t rounded = abs + 0xFFFu + mantissa_odd;
    return static_cast<std::uint16_t>(sign | (((rounded >> 13) - (112u << 10)) & 0x7FFFu));
}

/// The double of the decimal config.json shows for a float32 parameter (`0.01f` -> 0.01): the
/// reference reads the JSON text, so its search grid is made of these doubles.
KVCALI_DECL double decimal_double(float value);

namespace detail {
[[noreturn]] KVCALI_COLD KVCALI_DECL void throw_bad_scale(float scale);
}  // namespace detail

/// Applies the reference's final rules to a computed scale: below FLT_EPSILON it becomes 1.0
/// (the offset -128 when asymmetric). Throws `kvcali::error` (invalid_data) for a non-finite scale
/// or one whose inverse is below FLT_EPSILON.
KVCALI_DECL scale_offset finish_scale(scale_offset so, bool with_offset);

/// Scale and offset from a clip range [lo, hi] (both algorithms), computed in float32.
/// Example: `scale_offset_from_range(-1.0f, 2.0f, true)` gives scale 3/255 and offset -43.
KVCALI_DECL scale_offset scale_offset_from_range(float lo, float hi, bool with_offset);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/scale.ipp"  // IWYU pragma: export
#endif
