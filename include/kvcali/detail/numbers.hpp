// kvcali: the number rules of the readers, each written once: one decimal-to-double (correctly
// rounded, as Python's float() and protobuf's text format read decimals), and the two float32
// roundings the formats follow, named for their rule.
#pragma once

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>

namespace kvcali::detail {

/// The value of a hex digit (either case), or -1.
inline int hex_digit_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// `digits` (decimal digits only, at least one) as an unsigned 64-bit value in `out`; false for
/// anything else or a value above 2^64 - 1 (`out` then unspecified). What std::from_chars does for
/// a whole string of digits, without its other bases' code in every TU.
inline bool decimal_digits_to_u64(std::string_view digits, std::uint64_t& out) noexcept {
    if (digits.empty()) return false;
    std::uint64_t value = 0;
    for (const char c : digits) {
        if (c < '0' || c > '9') return false;
        const auto d = static_cast<std::uint64_t>(c - '0');
        if (value > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
        value = value * 10 + d;
    }
    out = value;
    return true;
}

/// The double nearest to a decimal `[-]? digits [. digits] [(e|E) [+-]? digits]` (its grammar
/// checked by the caller's reader): correctly rounded (std::from_chars); beyond the double range
/// ±inf, below it ±0, decided by the decimal exponent of the first significant digit. nullopt
/// when the text is not such a decimal.
inline std::optional<double> decimal_to_double(std::string_view text) {
    double value = 0.0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::general);
    if (ec == std::errc() && ptr == text.data() + text.size()) return value;
    if (ec != std::errc::result_out_of_range) return std::nullopt;
    const bool negative = !text.empty() && text.front() == '-';
    long long exponent = 0;
    const auto e_pos = text.find_first_of("eE");
    if (e_pos != std::string_view::npos) {
        bool exp_negative = false;
        std::size_t i = e_pos + 1;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) exp_negative = text[i++] == '-';
        for (; i < text.size(); ++i) exponent = std::min<long long>(exponent * 10 + (text[i] - '0'), 1'000'000'000'000LL);
        if (exp_negative) exponent = -exponent;
    }
    const std::string_view mantissa =
        text.substr(negative ? 1 : 0, e_pos == std::string_view::npos ? std::string_view::npos : e_pos - (negative ? 1 : 0));
    const auto dot = mantissa.find('.');
    const std::size_t int_digits = dot == std::string_view::npos ? mantissa.size() : dot;
    long long first_significant = 0;  // decimal exponent of the first non-zero digit
    bool found = false;
    for (std::size_t i = 0; i < mantissa.size() && !found; ++i) {
        if (mantissa[i] == '.' || mantissa[i] == '0') continue;
        found = true;
        first_significant = i < int_digits ? static_cast<long long>(int_digits - i - 1) : -static_cast<long long>(i - int_digits);
    }
    const bool overflow = found && first_significant + exponent > 0;
    const double magnitude = overflow ? std::numeric_limits<double>::infinity() : 0.0;
    return negative ? -magnitude : magnitude;
}

/// protobuf's text format (quant.cfg): the float32 a float field stores is the nearest double,
/// then float32 (ties to even); above ±FLT_MAX it is ±infinity.
inline float float32_protobuf_text(double d) noexcept {
    if (std::isfinite(d) && std::fabs(d) > static_cast<double>(FLT_MAX)) return d > 0 ? HUGE_VALF : -HUGE_VALF;
    return static_cast<float>(d);
}

/// Python's float32 (numpy.float32 of a float, config.json): round to nearest, ties to even, so a
/// double above FLT_MAX but below the halfway point to 2^128 is FLT_MAX; from there, ±infinity.
/// No undefined conversion.
inline float float32_round_nearest(double d) noexcept {
    constexpr double float_max = static_cast<double>(std::numeric_limits<float>::max());
    constexpr double overflow_at = 0x1.ffffffp127;  // halfway from FLT_MAX to 2^128: rounds up (even)
    if (std::isnan(d)) return std::numeric_limits<float>::quiet_NaN();
    const double a = std::fabs(d);
    if (a >= overflow_at) return d < 0 ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    if (a > float_max) return d < 0 ? -std::numeric_limits<float>::max() : std::numeric_limits<float>::max();
    return static_cast<float>(d);
}

}  // namespace kvcali::detail
