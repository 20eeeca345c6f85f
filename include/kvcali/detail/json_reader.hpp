// kvcali internals: the library's JSON reader. It keeps what Boost.JSON's DOM drops: the byte offset
// of every value and key, the exact text of every number (read later with std::from_chars, which is
// correctly rounded), duplicate keys, and Python's NaN / Infinity / -Infinity tokens (the reference
// writes them for non-finite floats; they are read so that the error can say what they are).
// It reads a whole document into a tree (config.json), or a top-level array one element at a time
// through the step functions below, a window of the text at a time (the layer list). Runs of
// printable ASCII inside strings are scanned eight bytes at a time (its fast branch).
#pragma once

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../error.hpp"
#include "../json_format.hpp"
#include "concat.hpp"
#include "function_ref.hpp"
#include "numbers.hpp"
#include "string_map.hpp"
#include "swar.hpp"

namespace kvcali::detail {

/// The high bit of each of the eight bytes at `p` that is a quote, a backslash, a control or a
/// non-ASCII byte, in memory order from the lowest bit: exact up to the first such byte (a
/// borrow may mark some after it). Zero when there is none.
inline std::uint64_t special_bytes(const char* p) noexcept {
    using namespace swar;
    const std::uint64_t w = load(p);
    return non_ascii_bytes(w) | bytes_below(w, 0x20) | zero_bytes(w ^ (ones * '"')) | zero_bytes(w ^ (ones * '\\'));
}

/// The first quote, backslash, control or non-ASCII byte at or after `p`; `end` when there is none.
/// Sixteen bytes at a time with SSE2 (x86-64's baseline), then eight.
inline const char* skip_plain_string_bytes(const char* p, const char* end) noexcept {
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        // (As signed bytes, the controls and the non-ASCII bytes are exactly those below 0x20.)
        const __m128i special =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)), _mm_cmplt_epi8(v, space));
        if (const int mask = _mm_movemask_epi8(special)) return p + std::countr_zero(static_cast<unsigned>(mask));
        p += 16;
    }
#endif
    while (end - p >= 8) {
        if (const std::uint64_t special = special_bytes(p)) return p + std::countr_zero(special) / 8;
        p += 8;
    }
    for (; p != end; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"' || c < 0x20 || c >= 0x80 || c == '\\') return p;
    }
    return end;
}

/// The closing quote of a string of printable ASCII without escapes whose body starts at `p`;
/// null when a special byte comes first; `end` when the text ends before the quote.
inline const char* plain_string_end(const char* p, const char* end) noexcept {
    const char* q = skip_plain_string_bytes(p, end);
    return q == end || *q == '"' ? q : nullptr;
}

struct json_member;

/// A value's kind and, for a scalar, what it is: all that a value read without a tree leaves
/// (json_parser::skip_value), and the first part of a json_node.
struct json_scalar {
    enum class kind { null, boolean, number, string, array, object };

    kind type = kind::null;
    bool boolean = false;
    bool integer_syntax = false;  ///< a number without fraction or exponent (`1`, `-0`), not `1.0`
    std::string_view number;      ///< a number's text, a view into the document
};

/// One JSON value with where it starts. Numbers keep their text; strings are decoded to UTF-8.
struct json_node : json_scalar {
    std::string string;                ///< a string's decoded value
    std::size_t offset = 0;            ///< byte offset of the value's first character
    std::vector<json_member> members;  ///< an object's members in document order (duplicates dropped)
    std::vector<json_node> items;      ///< an array's elements

    const json_member* find(std::string_view key) const noexcept;
};

struct json_member {
    std::string key;
    std::size_t key_offset = 0;
    json_node value;
};

inline const json_member* json_node::find(std::string_view key) const noexcept {
    for (const auto& m : members) {
        if (m.key == key) return &m;
    }
    return nullptr;
}

constexpr std::string_view to_string(json_scalar::kind k) noexcept {
    switch (k) {
        case json_scalar::kind::null: return "null";
        case json_scalar::kind::boolean: return "a boolean";
        case json_scalar::kind::number: return "a number";
        case json_scalar::kind::string: return "a string";
        case json_scalar::kind::array: return "an array";
        case json_scalar::kind::object: return "an object";
    }
    return "?";
}

/// A key given twice in one object (the later one is dropped from the tree).
struct json_duplicate_key {
    std::string object_path;  ///< JSON path of the object holding it
    std::string key;
    std::size_t depth = 0;         ///< 1: a member of the top-level object
    std::size_t offset = 0;        ///< the repeated key
    std::size_t first_offset = 0;  ///< its first occurrence
};

/// Byte offset -> 1-based line and byte column, by binary search over line starts.
class line_index {
public:
    explicit line_index(std::string_view text) {
        starts_.push_back(0);
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (text[i] == '\n') starts_.push_back(i + 1);
        }
    }
    /// The line and column of `offset`.
    std::pair<std::uint32_t, std::uint32_t> line_column(std::size_t offset) const {
        const auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
        const auto line = static_cast<std::size_t>(it - starts_.begin());
        return {static_cast<std::uint32_t>(line), static_cast<std::uint32_t>(offset - starts_[line - 1] + 1)};
    }
    source_location at(std::size_t offset, const std::string& file) const {
        const auto [line, column] = line_column(offset);
        return {file, line, column};
    }

private:
    std::vector<std::size_t> starts_;
};

/// `.key` for identifier-like keys, else `["key"]` (JSON-escaped, ASCII only).
inline void append_json_path_key(std::string& path, std::string_view key) {
    const bool identifier = !key.empty() && !(key[0] >= '0' && key[0] <= '9') && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    });
    if (identifier) {
        path += '.';
        path += key;
    } else {
        path += '[';
        append_json_string(path, key);
        path += ']';
    }
}

inline std::string json_path_member(std::string path, std::string_view key) {
    append_json_path_key(path, key);
    return path;
}

inline std::string json_path_index(std::string path, std::size_t index) {
    append_concat(path, {'[', index, ']'});
    return path;
}

/// The result of parsing: the tree (meaningful when `ok`), the duplicate keys found, and the
/// first syntax error (offset and message) otherwise.
struct json_document {
    json_node root;
    std::vector<json_duplicate_key> duplicates;
    bool ok = false;
    std::size_t error_offset = 0;
    std::string error;
};

/// A strict RFC 8259 parser (plus NaN, Infinity, -Infinity unless refused). Recursive descent; the
/// depth is bounded by `max_depth`, so the recursion is bounded too.
///
/// Besides parse() (a whole document into a tree), it offers the steps of a reader that walks a
/// top-level array element by element over windows of a larger text (set_window): each step
/// reads from the window's start and says, on failure, whether more text could change the outcome
/// (stopped_near_end). Offsets it reports are offsets in the whole document.
class json_parser {
public:
    json_parser(std::string_view text, std::size_t max_depth, bool non_finite_numbers = true)
        : text_(text), max_depth_(max_depth), non_finite_(non_finite_numbers) {}

    json_document parse() {
        json_document doc;
        duplicates_ = &doc.duplicates;
        if (document_start() && value(doc.root, "$", 0)) document_end();
        doc.ok = error_.empty();
        doc.error_offset = error_offset_;
        doc.error = std::move(error_);
        return doc;
    }

    // ---- steps for reading a document window by window ----

    /// Reads `window` next, a part of the document starting at byte `offset` of it; clears the error.
    void set_window(std::string_view window, std::size_t offset) noexcept {
        text_ = window;
        base_ = offset;
        pos_ = 0;
        error_.clear();
    }
    /// How far into the window the steps have read.
    std::size_t position() const noexcept { return pos_; }
    bool failed() const noexcept { return !error_.empty(); }
    /// The first error since set_window, and its offset in the document.
    const std::string& error() const noexcept { return error_; }
    std::size_t error_offset() const noexcept { return error_offset_; }
    /// Whether the last step stopped so close to the end of the window that more text could
    /// change its outcome (a cut string, number or literal).
    bool stopped_near_end() const noexcept { return pos_ + 16 >= text_.size(); }

    inline void skip_whitespace() noexcept { skip_ws(); }
    bool at_end() const noexcept { return pos_ >= text_.size(); }
    /// The next character, or '\0' at the window's end (a NUL is never valid there in JSON, so
    /// callers may test the result without checking for the end first).
    char peek() const noexcept { return pos_ < text_.size() ? text_[pos_] : '\0'; }
    /// The start of the document: no byte order mark, and a value to come.
    bool document_start() {
        skip_ws();
        if (base_ == 0 && text_.substr(0, 3) == "\xEF\xBB\xBF")
            return fail(0, "a UTF-8 byte order mark is not allowed before the JSON text");
        if (pos_ >= text_.size()) return fail(pos_, "expected a JSON value, found the end of the text");
        return true;
    }
    /// The end of the document: nothing but white space after the value.
    bool document_end() {
        skip_ws();
        if (pos_ < text_.size()) return fail(pos_, concat({"expected the end of the text after the JSON value, found ", show_here()}));
        return true;
    }
    /// The opening bracket of an array at `depth` (1: the top level).
    bool array_start(std::size_t depth) {
        if (too_deep(depth)) return false;
        ++pos_;
        return true;
    }
    /// After an element of an array: `,` (`more` set) or `]`.
    inline bool array_separator(bool& more) {
        skip_ws();
        if (pos_ < text_.size() && (text_[pos_] == ',' || text_[pos_] == ']')) {
            more = text_[pos_++] == ',';
            return true;
        }
        return fail(pos_, concat({"expected ',' or ']' in an array, found ", show_here()}));
    }
    /// Any value, into a tree whose object paths are not kept (for duplicate keys) below `depth`.
    bool read_value(json_node& out, std::size_t depth) {
        static const std::string no_path;
        return value(out, no_path, depth);
    }
    /// Any value, checked as read_value checks it (the same errors at the same offsets) but kept
    /// nowhere: a scalar's facts go to `out`, a string is decoded into `scratch` (its buffer reused),
    /// an object or an array is walked without a tree. For values that are refused or ignored.
    bool skip_value(json_scalar& out, std::string& scratch, std::size_t depth) {
        out = {};
        if (pos_ < text_.size() && (text_[pos_] == '{' || text_[pos_] == '[')) {
            const std::size_t inner = depth + 1;
            json_scalar ignored;  // each member or element in turn
            if (text_[pos_] == '{') {
                out.type = json_scalar::kind::object;
                return read_object(inner, member_fn([&](std::string_view, std::size_t) { return skip_value(ignored, scratch, inner); }));
            }
            out.type = json_scalar::kind::array;
            return read_array(inner, element_fn([&](std::size_t) { return skip_value(ignored, scratch, inner); }));
        }
        scratch.clear();
        return scalar(out, scratch);
    }
    /// A string at the current position: a view of the window when it is printable ASCII without
    /// escapes (the fast branch), else decoded into `scratch` and viewed there.
    inline bool read_string(std::string_view& out, std::string& scratch) {
        const char* const body = text_.data() + pos_ + 1;
        const char* const end = text_.data() + text_.size();
        const char* const quote = plain_string_end(body, end);
        if (quote != nullptr && quote != end) {
            out = std::string_view(body, static_cast<std::size_t>(quote - body));
            pos_ = static_cast<std::size_t>(quote + 1 - text_.data());
            return true;
        }
        return read_escaped_string(out, scratch);
    }
    /// A string member's value as the fast branch below saw it: its text (a view of the window)
    /// and where its opening quote and the byte after its closing quote are in the window.
    struct plain_member {
        std::string_view text;
        std::size_t start = 0, end = 0;
    };
    /// The fast branch for an object at `depth` of exactly two members, `key1` then `key2` (plain
    /// ASCII keys), whose values are strings without escapes, control or non-ASCII bytes, in any
    /// JSON white space: `{"name": "x", "type": "y"}`. When the object at the current position is
    /// one, fills `a` and `b`, moves past its `}` and answers true; else moves nothing and answers
    /// false, and the caller reads it with read_object, which sees it as this branch would have.
    KVCALI_ALWAYS_INLINE bool read_plain_pair(std::size_t depth, std::string_view key1, std::string_view key2, plain_member& a,
                                              plain_member& b) noexcept {
        if (depth > max_depth_) return false;
        const char* const begin = text_.data();
        const char* const end = begin + text_.size();
        const char* p = begin + pos_ + 1;  // (after the '{')
        if (!plain_string_member(p, end, key1, begin, a) || !plain_symbol(p, end, ',') || !plain_string_member(p, end, key2, begin, b) ||
            !plain_symbol(p, end, '}'))
            return false;
        pos_ = static_cast<std::size_t>(p - begin);
        return true;
    }
    /// Callbacks for read_object and read_array where speed does not matter: passed as these, the
    /// callers share one copy of each function instead of one per lambda.
    using member_fn = function_ref<bool(std::string_view, std::size_t)>;
    using element_fn = function_ref<bool(std::size_t)>;

    /// An object at `depth` (its `{` at the current position): calls `on_member(key, key_offset)`
    /// for each member, positioned at its value, which it must read (read_value or read_string).
    /// The key is viewed in the window or in a buffer that the next key reuses.
    template <class OnMember>
    bool read_object(std::size_t depth, OnMember&& on_member) {
        if (too_deep(depth)) return false;
        ++pos_;
        skip_ws();
        if (pos_ < text_.size() && text_[pos_] == '}') {
            ++pos_;
            return true;
        }
        std::string key_buffer;
        while (true) {
            skip_ws();
            if (pos_ >= text_.size() || text_[pos_] != '"') return fail(pos_, concat({"expected a string key, found ", show_here()}));
            const std::size_t key_offset = base_ + pos_;
            std::string_view key;
            if (!read_string(key, key_buffer)) return false;
            skip_ws();
            if (pos_ >= text_.size() || text_[pos_] != ':') return fail(pos_, concat({"expected ':' after the key, found ", show_here()}));
            ++pos_;
            skip_ws();
            if (!on_member(key, key_offset)) return false;
            skip_ws();
            if (pos_ < text_.size() && text_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < text_.size() && text_[pos_] == '}') {
                ++pos_;
                return true;
            }
            return fail(pos_, concat({"expected ',' or '}' in an object, found ", show_here()}));
        }
    }

    /// An array at `depth` (its `[` at the current position): calls `on_element(index)` for each
    /// element, positioned at it, which it must read.
    template <class OnElement>
    bool read_array(std::size_t depth, OnElement&& on_element) {
        if (!array_start(depth)) return false;
        skip_ws();
        if (pos_ < text_.size() && text_[pos_] == ']') {
            ++pos_;
            return true;
        }
        std::size_t index = 0;
        for (bool more = true; more; ++index) {
            skip_ws();
            if (!on_element(index)) return false;
            if (!array_separator(more)) return false;
        }
        return true;
    }

private:
    /// read_plain_pair's steps, on a local cursor `p` (the parser's position is set once, at the
    /// end): white space, then `c`; white space, then `"key"`, `:` and a plain string (into `m`).
    KVCALI_ALWAYS_INLINE static void plain_space(const char*& p, const char* end) noexcept {
        while (p != end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) ++p;
    }
    KVCALI_ALWAYS_INLINE static bool plain_symbol(const char*& p, const char* end, char c) noexcept {
        plain_space(p, end);
        if (p == end || *p != c) return false;
        ++p;
        return true;
    }
    KVCALI_ALWAYS_INLINE static bool plain_string_member(const char*& p, const char* end, std::string_view key, const char* begin,
                                                         plain_member& m) noexcept {
        plain_space(p, end);
        const std::size_t n = key.size();
        if (static_cast<std::size_t>(end - p) < n + 2 || p[0] != '"' || p[n + 1] != '"' || std::memcmp(p + 1, key.data(), n) != 0)
            return false;
        p += n + 2;
        if (!plain_symbol(p, end, ':')) return false;
        plain_space(p, end);
        if (p == end || *p != '"') return false;
        const char* const quote = plain_string_end(p + 1, end);
        if (quote == nullptr || quote == end) return false;
        m.text = std::string_view(p + 1, static_cast<std::size_t>(quote - p - 1));
        m.start = static_cast<std::size_t>(p - begin);
        m.end = static_cast<std::size_t>(quote + 1 - begin);
        p = quote + 1;
        return true;
    }

    bool read_escaped_string(std::string_view& out, std::string& scratch) {
        scratch.clear();
        if (!string(scratch)) return false;
        out = scratch;
        return true;
    }

    KVCALI_COLD bool fail(std::size_t at, std::string message) {
        if (error_.empty()) {
            error_offset_ = base_ + at;
            error_ = std::move(message);
        }
        return false;
    }

    KVCALI_COLD std::string show_here() const {
        if (pos_ >= text_.size()) return "the end of the text";
        const auto c = static_cast<unsigned char>(text_[pos_]);
        if (c >= 0x20 && c < 0x7F) return concat({"'", static_cast<char>(c), "'"});
        static constexpr char hex[] = "0123456789abcdef";
        return concat({"byte 0x", hex[c >> 4], hex[c & 0xF]});
    }

    inline void skip_ws() noexcept {
        if (pos_ < text_.size() && static_cast<unsigned char>(text_[pos_]) > ' ') return;  // (usually)
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
            ++pos_;
        }
    }

    bool literal(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    bool value(json_node& out, const std::string& path, std::size_t depth) {
        out.offset = base_ + pos_;
        if (pos_ < text_.size() && text_[pos_] == '{') return object(out, path, depth + 1);
        if (pos_ < text_.size() && text_[pos_] == '[') return array(out, path, depth + 1);
        return scalar(out, out.string);
    }

    /// A value that is not an object or an array (a string decoded into `str`).
    bool scalar(json_scalar& out, std::string& str) {
        const std::size_t start = pos_;
        if (pos_ >= text_.size()) return fail(pos_, "expected a JSON value, found the end of the text");
        const char c = text_[pos_];
        switch (c) {
            case '"': out.type = json_scalar::kind::string; return string(str);
            case 't':
            case 'f':
                if (literal("true") || literal("false")) {
                    out.type = json_scalar::kind::boolean;
                    out.boolean = c == 't';
                    return true;
                }
                break;
            case 'n':
                if (literal("null")) {
                    out.type = json_scalar::kind::null;
                    return true;
                }
                break;
            case 'N':
            case 'I':
                if (non_finite_ && (literal("NaN") || literal("Infinity"))) {
                    out.type = json_scalar::kind::number;
                    out.number = text_.substr(start, pos_ - start);
                    return true;
                }
                break;
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return number(out);
                break;
        }
        return fail(pos_, concat({"expected a JSON value, found ", show_here()}));
    }

    bool digits() {
        const std::size_t start = pos_;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
        return pos_ > start;
    }

    bool number(json_scalar& out) {
        const std::size_t start = pos_;
        out.type = json_scalar::kind::number;
        if (text_[pos_] == '-') {
            ++pos_;
            if (non_finite_ && literal("Infinity")) {
                out.number = text_.substr(start, pos_ - start);
                return true;
            }
        }
        if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9') return fail(pos_, "expected a digit after '-'");
        if (text_[pos_] == '0') {
            ++pos_;
            if (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
                return fail(start, "a JSON number does not start with 0 followed by digits (no octal, no leading zeros)");
            }
        } else {
            digits();
        }
        bool integer = true;
        if (pos_ < text_.size() && text_[pos_] == '.') {
            ++pos_;
            integer = false;
            if (!digits()) return fail(pos_, "expected a digit after the decimal point");
        }
        if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
            ++pos_;
            integer = false;
            if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
            if (!digits()) return fail(pos_, "expected a digit in the exponent");
        }
        out.integer_syntax = integer;
        out.number = text_.substr(start, pos_ - start);
        return true;
    }

    static void append_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    bool hex4(std::uint32_t& out) {
        if (pos_ + 4 > text_.size()) return fail(pos_, "expected 4 hex digits after \\u");
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const int d = hex_digit_value(text_[pos_]);
            if (d < 0) return fail(pos_, concat({"expected 4 hex digits after \\u, found ", show_here()}));
            out = out * 16 + static_cast<std::uint32_t>(d);
            ++pos_;
        }
        return true;
    }

    bool string(std::string& out) {
        const std::size_t open = pos_;
        ++pos_;  // the opening quote
        while (true) {
            // The fast branch: a run of printable ASCII without escapes is taken at once.
            const char* const run = text_.data() + pos_;
            const std::size_t plain = static_cast<std::size_t>(skip_plain_string_bytes(run, text_.data() + text_.size()) - run);
            out.append(run, plain);
            pos_ += plain;
            if (pos_ >= text_.size()) return fail(open, "unterminated string");
            const auto c = static_cast<unsigned char>(text_[pos_]);
            if (c == '"') {
                ++pos_;
                return true;
            }
            if (c < 0x20) return fail(pos_, "a control character must be escaped inside a string (\\n, \\t, \\u00XX)");
            if (c == '\\') {
                if (!escape(out, open)) return false;
                continue;
            }
            if (c < 0x80) {
                out += static_cast<char>(c);
                ++pos_;
                continue;
            }
            std::size_t i = pos_;
            if (decode_utf8(text_, i) == 0xFFFFFFFF) return fail(pos_, "invalid UTF-8 in a string");
            out.append(text_.substr(pos_, i - pos_));
            pos_ = i;
        }
    }

    /// The escape at the current position (a backslash) of the string opened at `open`, appended to
    /// `out` (rare in names: compiled for size).
    KVCALI_COLD bool escape(std::string& out, std::size_t open) {
        const std::size_t start = pos_;
        ++pos_;
        if (pos_ >= text_.size()) return fail(open, "unterminated string");
        const char e = text_[pos_++];
        switch (e) {
            case '"': out += '"'; return true;
            case '\\': out += '\\'; return true;
            case '/': out += '/'; return true;
            case 'b': out += '\b'; return true;
            case 'f': out += '\f'; return true;
            case 'n': out += '\n'; return true;
            case 'r': out += '\r'; return true;
            case 't': out += '\t'; return true;
            case 'u': {
                std::uint32_t unit = 0;
                if (!hex4(unit)) return false;
                if (unit >= 0xDC00 && unit <= 0xDFFF) return fail(start, "a lone low surrogate \\u escape is not a character");
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    std::uint32_t low = 0;
                    if (text_.substr(pos_, 2) != "\\u") return fail(start, "a high surrogate \\u escape must be followed by a low one");
                    pos_ += 2;
                    if (!hex4(low)) return false;
                    if (low < 0xDC00 || low > 0xDFFF) return fail(start, "a high surrogate \\u escape must be followed by a low one");
                    unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                }
                append_utf8(out, unit);
                return true;
            }
            default: return fail(start, "unknown escape in a string (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        }
    }

    bool too_deep(std::size_t depth) {
        if (depth <= max_depth_) return false;
        fail(pos_, concat({"nesting deeper than ", max_depth_, " levels"}));
        return true;
    }

    bool object(json_node& out, const std::string& path, std::size_t depth) {
        out.type = json_node::kind::object;
        // First occurrence of each key; objects are small except the top level (one key per layer).
        string_map<std::size_t> seen;
        return read_object(depth, [&](std::string_view key, std::size_t key_offset) {
            json_member m;
            m.key = std::string(key);
            m.key_offset = key_offset;
            const std::string child = json_path_member(path, m.key);
            if (!value(m.value, child, depth)) return false;
            auto it = seen.find(m.key);
            if (it != seen.end()) {
                duplicates_->push_back({path, m.key, depth, m.key_offset, it->second});
            } else {
                seen.emplace(m.key, m.key_offset);
                out.members.push_back(std::move(m));
            }
            return true;
        });
    }

    bool array(json_node& out, const std::string& path, std::size_t depth) {
        out.type = json_node::kind::array;
        return read_array(depth, [&](std::size_t index) {
            out.items.emplace_back();
            return value(out.items.back(), json_path_index(path, index), depth);
        });
    }

    std::string_view text_;
    std::size_t max_depth_;
    bool non_finite_;
    std::size_t base_ = 0;  ///< the document offset of the window's first byte
    std::size_t pos_ = 0;   ///< in the window
    std::size_t error_offset_ = 0;
    std::string error_;
    std::vector<json_duplicate_key> no_duplicates_;  ///< (where nested duplicate keys go when not parsing a document)
    std::vector<json_duplicate_key>* duplicates_ = &no_duplicates_;
};

/// Parses `text` (one JSON value). The tree's number views point into `text`.
inline json_document parse_json_document(std::string_view text, std::size_t max_depth = 64) { return json_parser(text, max_depth).parse(); }

/// The double nearest to a JSON number's text (correctly rounded, as Python's float()):
/// `NaN`, `Infinity`, `-Infinity` as such; beyond the double range ±inf; below it ±0.
inline double json_number_to_double(std::string_view text) {
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
    return decimal_to_double(text).value_or(std::numeric_limits<double>::quiet_NaN());  // NaN: not JSON syntax
}

/// config.json's float32: Python's rounding (see float32_round_nearest).
inline float double_to_float32(double d) { return float32_round_nearest(d); }

}  // namespace kvcali::detail
