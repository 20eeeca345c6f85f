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

namespace kvcali {

/// Appends the shortest decimal that round-trips the float32 `value`, laid out as Python's
/// `repr(float)`: `0.7`, `1.0`, `123456790.0`, `-0.0`, `0.0001`, `1e-05`, `1e+17`, `1.5e+20`.
/// Non-finite values come out as Python's json writes them (`NaN`, `Infinity`, `-Infinity`).
inline void append_float32_repr(std::string& out, float value) {
    if (std::isnan(value)) {
        out += "NaN";
        return;
    }
    if (std::isinf(value)) {
        out += value < 0 ? "-Infinity" : "Infinity";
        return;
    }
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
    std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
    // sci looks like [-]d[.ddd]e(+|-)XX
    bool negative = false;
    if (!sci.empty() && sci.front() == '-') {
        negative = true;
        sci.remove_prefix(1);
    }
    const auto e_pos = sci.find('e');
    std::string digits;
    digits.reserve(16);
    for (char c : sci.substr(0, e_pos)) {
        if (c != '.') digits += c;
    }
    int exponent = 0;
    {
        std::string_view exp_text = sci.substr(e_pos + 1);
        if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
        std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
    }
    while (digits.size() > 1 && digits.back() == '0') digits.pop_back();

    if (negative) out += '-';
    if (exponent >= -4 && exponent < 16) {
        if (exponent >= 0) {
            const auto int_digits = static_cast<std::size_t>(exponent) + 1;
            if (digits.size() <= int_digits) {
                out += digits;
                out.append(int_digits - digits.size(), '0');
                out += ".0";
            } else {
                out.append(digits, 0, int_digits);
                out += '.';
                out.append(digits, int_digits, std::string::npos);
            }
        } else {
            out += "0.";
            out.append(static_cast<std::size_t>(-exponent - 1), '0');
            out += digits;
        }
    } else {
        out += digits[0];
        if (digits.size() > 1) {
            out += '.';
            out.append(digits, 1, std::string::npos);
        }
        out += 'e';
        out += exponent < 0 ? '-' : '+';
        const int magnitude = std::abs(exponent);
        if (magnitude < 10) out += '0';
        out += std::to_string(magnitude);
    }
}

inline std::string float32_repr(float value) {
    std::string s;
    append_float32_repr(s, value);
    return s;
}

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
inline bool is_valid_utf8(std::string_view s, std::size_t* bad_offset = nullptr) {
    std::size_t i = 0;
    while (i < s.size()) {
        const std::size_t at = i;
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        if (detail::decode_utf8(s, i) == 0xFFFFFFFF) {
            if (bad_offset) *bad_offset = at;
            return false;
        }
    }
    return true;
}

/// Appends `s` as a JSON string literal the way Python's json module writes it with ensure_ascii:
/// `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`; every other character outside U+0020..U+007E as
/// `\u` + 4 lowercase hex digits (surrogate pairs above U+FFFF). Invalid UTF-8 bytes become U+FFFD.
inline void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    std::size_t i = 0;
    while (i < s.size()) {
        // A run of characters written as they are, appended at once.
        std::size_t run = i;
        while (run < s.size()) {
            const auto c = static_cast<unsigned char>(s[run]);
            if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') break;
            ++run;
        }
        if (run != i) {
            out.append(s, i, run - i);
            i = run;
            if (i == s.size()) break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7F) {
            if (c == '"') {
                out += "\\\"";
            } else if (c == '\\') {
                out += "\\\\";
            } else {
                out += static_cast<char>(c);
            }
            ++i;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default: detail::append_u_escape(out, c); break;
            }
            ++i;
            continue;
        }
        std::uint32_t cp = detail::decode_utf8(s, i);
        if (cp == 0xFFFFFFFF) cp = 0xFFFD;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            detail::append_u_escape(out, 0xD800 + (cp >> 10));
            detail::append_u_escape(out, 0xDC00 + (cp & 0x3FF));
        } else {
            detail::append_u_escape(out, cp);
        }
    }
    out += '"';
}

}  // namespace kvcali
