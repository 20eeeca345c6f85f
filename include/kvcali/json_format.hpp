// kvcali: number and string formatting exactly as the reference's Python writes them
// (`json.dumps(..., ensure_ascii=True)` of float32 values shown with Python's repr layout).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

#include "detail/config.hpp"

namespace kvcali {

/// Appends the shortest decimal that round-trips the float32 `value`, laid out as Python's
/// `repr(float)`: `0.7`, `1.0`, `123456790.0`, `-0.0`, `0.0001`, `1e-05`, `1e+17`, `1.5e+20`.
/// Non-finite values come out as Python's json writes them (`NaN`, `Infinity`, `-Infinity`).
KVCALI_DECL void append_float32_repr(std::string& out, float value);

KVCALI_DECL std::string float32_repr(float value);

/// The same for a double (Python's `repr(float)` of a float64): `0.1`, `1e-05`, `1000000000000000.0`,
/// `1e+16`, `0.30000000000000004`. Used where JSON documents of other tools are rewritten.
KVCALI_DECL void append_double_repr(std::string& out, double value);

KVCALI_DECL std::string double_repr(double value);

namespace detail {

inline void append_u_escape(std::string& out, std::uint32_t unit) {
    static constexpr char hex[] = "0123456789abcdef";
    out += "\\u";
    out += hex[(unit >> 12) & 0xF];
    out += hex[(unit >> 8) & 0xF];
    out += hex[(unit >> 4) & 0xF];
    out += hex[unit & 0xF];
}

/// Decodes one UTF-8 sequence at `s[i]`; returns the code point and advances `i`, or returns
/// 0xFFFFFFFF (advancing by one byte) for an invalid sequence.
inline std::uint32_t decode_utf8(std::string_view s, std::size_t& i) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    int len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
        ++i;
        return 0xFFFFFFFF;
    }
    if (i + static_cast<std::size_t>(len) > s.size()) {
        ++i;
        return 0xFFFFFFFF;
    }
    for (int k = 1; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((b & 0xC0) != 0x80) {
            ++i;
            return 0xFFFFFFFF;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        ++i;
        return 0xFFFFFFFF;
    }
    i += static_cast<std::size_t>(len);
    return cp;
}

}  // namespace detail

/// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
/// On failure `bad_offset` receives the offset of the first bad byte.
KVCALI_DECL bool is_valid_utf8(std::string_view s, std::size_t* bad_offset = nullptr);

/// Appends `s` as a JSON string literal the way Python's json module writes it with ensure_ascii:
/// `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`; every other character outside U+0020..U+007E as
/// `\u` + 4 lowercase hex digits (surrogate pairs above U+FFFF). Invalid UTF-8 bytes become U+FFFD.
KVCALI_DECL void append_json_string(std::string& out, std::string_view s);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/json_format.ipp"  // IWYU pragma: export
#endif
