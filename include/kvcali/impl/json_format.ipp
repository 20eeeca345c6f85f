// kvcali: number and string formatting (declared in json_format.hpp): included at the end of that
// header (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

#include "../json_format.hpp"

namespace kvcali {

namespace detail {
/// The shortest round-trip digits of `value` (a float or a double) in Python's repr layout.
template <class Float>
void append_repr(std::string& out, Float value) {
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
    int exponent = 0;  // (to_chars writes a sign and two or three digits)
    {
        std::string_view exp_text = sci.substr(e_pos + 1);
        const bool exp_negative = !exp_text.empty() && exp_text.front() == '-';
        if (!exp_text.empty() && (exp_text.front() == '+' || exp_text.front() == '-')) exp_text.remove_prefix(1);
        for (const char c : exp_text) exponent = exponent * 10 + (c - '0');
        if (exp_negative) exponent = -exponent;
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
        const int magnitude = std::abs(exponent);  // at most 324: two or three digits
        if (magnitude >= 100) out += static_cast<char>('0' + magnitude / 100);
        out += static_cast<char>('0' + magnitude / 10 % 10);
        out += static_cast<char>('0' + magnitude % 10);
    }
}
}  // namespace detail

KVCALI_DECL void append_float32_repr(std::string& out, float value) { detail::append_repr(out, value); }

KVCALI_DECL void append_double_repr(std::string& out, double value) { detail::append_repr(out, value); }

KVCALI_DECL std::string float32_repr(float value) {
    std::string s;
    append_float32_repr(s, value);
    return s;
}

KVCALI_DECL std::string double_repr(double value) {
    std::string s;
    append_double_repr(s, value);
    return s;
}

KVCALI_DECL bool is_valid_utf8(std::string_view s, std::size_t* bad_offset) {
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

KVCALI_DECL void append_json_string(std::string& out, std::string_view s) {
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
