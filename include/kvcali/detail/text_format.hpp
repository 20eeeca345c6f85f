// kvcali internals: the protobuf text format (quant.cfg) read into a located, schema-free
// document (a Boost.PropertyTree: children in file order, keyed by field name, a repeated field as
// repeated children). Binding that document to the schema is text_format_bind.hpp; the JSON form
// of the same document is text_format_json.hpp. This is the one reader of the text format: every
// quant.cfg, plain or not, goes through it and the binder, which report every error.
//
// The token shapes follow the protobuf parsers (Python's text_format is the reference): an
// identifier is [A-Za-z_][A-Za-z0-9_+-]*, a number token ([0-9+-]|\.[0-9])[A-Za-z0-9_.+-]*, a
// string runs to its closing quote on the same line; anything else is a one-character symbol.
// Which scalar a token may be (integer, float, bool, enum) is decided at binding, by field type.
//
// Speed comes from byte-level branches inside the one tokenizer (as toml++ reads ASCII runs fast
// inside its UTF-8 reader), not from a second grammar: spaces, tabs and line breaks are taken
// before the Unicode White_Space test, comments end at memchr's newline, a string body is scanned
// eight bytes at a time (swar.hpp) for its quote, a backslash or a line break, and a string
// without escapes is appended to the node in one piece.
#pragma once

#include <boost/property_tree/ptree.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../simple_config.hpp"
#include "concat.hpp"
#include "function_ref.hpp"
#include "numbers.hpp"
#include "show_value.hpp"
#include "swar.hpp"

namespace kvcali {

namespace detail {

/// What a document node holds.
enum class cfg_kind : std::uint8_t {
    message,      ///< `{ ... }` / `< ... >` or a JSON object; children are its fields in order
    list,         ///< `[ ... ]` or a JSON array; children have the empty key
    identifier,   ///< text-format identifier token (`true`, `per_channel`, `inf`)
    number,       ///< text-format number token (`0x10`, `-1.5e3`, `0.5f`), unchecked
    string,       ///< text-format string: the bytes after unescaping and concatenation
    json_number,  ///< the JSON number's text, as written
    json_string,  ///< a JSON string, decoded
    json_bool,    ///< `true` or `false`
    json_null,
};

/// The data of one document node (a field occurrence or a list element): its kind, its value
/// and where its name and value were written, for the binder's diagnostics.
struct cfg_node {
    cfg_kind kind = cfg_kind::message;
    bool colon = false;                              ///< text format: a ':' followed the field name (scalars need it)
    std::uint32_t line = 0, column = 0;              ///< the field name (list element: its value)
    std::uint32_t value_line = 0, value_column = 0;  ///< the value's first token
    std::string text;                                ///< scalars: the token text or decoded string
};

/// A parsed config file: the root message. Keys are field names (list elements have key ""),
/// ordered by std::less, so `find`, `count` and `equal_range` answer a field's occurrences;
/// iteration is in file order, which the binder follows so that it reports in that order.
/// A field written several times is several children with the same key.
using cfg_document = boost::property_tree::basic_ptree<std::string, cfg_node>;

inline bool is_scalar(cfg_kind k) noexcept { return k != cfg_kind::message && k != cfg_kind::list; }

/// What is said of a quant.cfg of `size` bytes over `limits.max_bytes` (by both readers, and by
/// load_simple_config, which checks the file's size before reading it).
KVCALI_COLD inline std::string too_large_config(std::uintmax_t size, const simple_config_limits& limits) {
    return concat({"the file is ", size, " bytes, larger than the limit of ", limits.max_bytes, " bytes"});
}

/// Appends children to documents (both readers build theirs with one). A ptree inserts a copy (it
/// has no move), so a new child is a copy of a kept empty child with the same key: that saves
/// building and dropping a temporary for each, and a file repeats a few keys many times.
class cfg_child_maker {
public:
    /// Appends a child with `key` to `parent` and returns it.
    cfg_document& add(cfg_document& parent, std::string_view key) {
        for (const auto& k : kept_) {
            if (k->first == key) return parent.push_back(*k)->second;
        }
        auto child =
            std::make_unique<const cfg_document::value_type>(std::piecewise_construct, std::forward_as_tuple(key), std::forward_as_tuple());
        cfg_document& added = parent.push_back(*child)->second;
        if (kept_.size() < max_kept) kept_.push_back(std::move(child));
        return added;
    }

private:
    static constexpr std::size_t max_kept = 16;
    std::vector<std::unique_ptr<const cfg_document::value_type>> kept_;
};

/// Length of the UTF-8 sequence at `p` if it is well formed (no overlong forms, no surrogates,
/// at most U+10FFFF), else 0. Reads at most `left` bytes.
inline std::size_t utf8_sequence_length(const unsigned char* p, std::size_t left) noexcept {
    const unsigned char c = p[0];
    if (c < 0x80) return 1;
    auto cont = [&](std::size_t i) { return i < left && (p[i] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
        if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogate
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;   // overlong
        if (c == 0xF4 && p[1] >= 0x90) return 0;  // beyond U+10FFFF
        return 4;
    }
    return 0;
}

/// Offset of the first byte that breaks UTF-8 in `s`, or npos when it is all valid.
inline std::size_t first_invalid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    std::size_t i = 0;
    while (i < s.size()) {
        // ASCII runs eight bytes at a time.
        while (i + 8 <= s.size()) {
            if (swar::non_ascii_bytes(swar::load(s.data() + i)) != 0) break;
            i += 8;
        }
        if (i >= s.size()) break;
        if (p[i] < 0x80) {
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence_length(p + i, s.size() - i);
        if (n == 0) return i;
        i += n;
    }
    return std::string_view::npos;
}

/// Appends code point `cp` (not a surrogate, at most U+10FFFF) as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
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

/// The text format's identifier and number characters, and the extent of the identifier or
/// number token that starts at `pos`.
inline bool cfg_ident_start(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool cfg_digit(char c) noexcept { return c >= '0' && c <= '9'; }
inline bool cfg_ident_char(char c) noexcept { return cfg_ident_start(c) || cfg_digit(c) || c == '+' || c == '-'; }
inline bool cfg_number_char(char c) noexcept { return cfg_ident_char(c) || c == '.'; }

enum class cfg_word : std::uint8_t { none, identifier, number };

/// The kind of word at `pos` (not the end of `text`) and, unless none, where it ends.
inline cfg_word scan_cfg_word(std::string_view text, std::size_t pos, std::size_t& end) noexcept {
    const std::size_t n = text.size();
    const char c = text[pos];
    std::size_t i = pos + 1;
    if (cfg_ident_start(c)) {
        while (i < n && cfg_ident_char(text[i])) ++i;
        end = i;
        return cfg_word::identifier;
    }
    if (cfg_digit(c) || c == '+' || c == '-' || (c == '.' && i < n && cfg_digit(text[i]))) {
        while (i < n && cfg_number_char(text[i])) ++i;
        end = i;
        return cfg_word::number;
    }
    return cfg_word::none;
}

/// Reads protobuf text format into a cfg_document. Syntax errors stop it (the first is
/// reported); errors inside a string literal (escapes, UTF-8) are reported and reading goes on.
class text_format_reader {
public:
    text_format_reader(std::string_view text, const std::string& file, diagnostics& diags, const simple_config_limits& limits)
        : text_(text), file_(file), diags_(diags), limits_(limits) {}

    /// Fills `root`; false when the text has a syntax error (already reported).
    /// (A ptree has no move constructor: the caller owns the tree so that it is never copied.)
    bool read(cfg_document& root) { return read_into(root, nullptr); }

    /// As read(root), but hands each top-level field to `each` as soon as it is read (the root then
    /// holding only that field), and drops it after: the document never holds more than one
    /// top-level field, so a file of many override blocks is never in memory as a whole tree.
    bool read(cfg_document& root, function_ref<void(cfg_document&)> each) { return read_into(root, &each); }

private:
    bool read_into(cfg_document& root, const function_ref<void(cfg_document&)>* each) {
        each_top_ = each;
        if (text_.size() > limits_.max_bytes) {
            report_at(0, 0, too_large_config(text_.size(), limits_));
            return false;
        }
        if (!check_encoding()) return false;
        try {
            advance();
            read_fields(root, 0, token{}, 0);  // the root message is depth 0
        } catch (const syntax_stop&) {
            return false;
        }
        return string_errors_ == 0;
    }

    enum class tok : std::uint8_t { end, identifier, number, string, symbol };
    struct token {
        tok kind = tok::end;
        bool escaped = false;  ///< a string with a backslash in it
        std::size_t begin = 0, end = 0;
        std::uint32_t line = 0, column = 0;
    };
    struct syntax_stop {};

    // -- positions and reports -------------------------------------------------------------

    source_location location(std::uint32_t line, std::uint32_t column) const { return {file_, line, column}; }

    KVCALI_COLD void report_at(std::uint32_t line, std::uint32_t column, std::string message) {
        diags_.error(errc::parse_error, std::move(message), location(line, column));
    }

    [[noreturn]] KVCALI_COLD void fail(const token& at, std::string message) {
        report_at(at.line, at.column, std::move(message));
        throw syntax_stop{};
    }

    /// 1-based line and byte column of an offset (used only for errors, so a scan is fine).
    std::pair<std::uint32_t, std::uint32_t> position_of(std::size_t offset) const {
        std::uint32_t line = 1;
        std::size_t line_start = 0;
        for (std::size_t i = 0; i < offset && i < text_.size(); ++i) {
            if (text_[i] == '\n') {
                ++line;
                line_start = i + 1;
            }
        }
        return {line, static_cast<std::uint32_t>(offset - line_start + 1)};
    }

    /// The whole file must be UTF-8 without NUL bytes (the reference decodes it as UTF-8 first).
    bool check_encoding() {
        const std::size_t nul = text_.find('\0');
        const std::size_t bad = first_invalid_utf8(text_);
        if (nul == std::string_view::npos && bad == std::string_view::npos && text_.substr(0, 3) != "\xEF\xBB\xBF") return true;
        report_encoding(nul, bad);
        return false;
    }
    /// check_encoding's report (compiled for size).
    KVCALI_COLD void report_encoding(std::size_t nul, std::size_t bad) {
        if (nul == std::string_view::npos && bad == std::string_view::npos) {
            report_at(1, 1, "the file starts with a UTF-8 byte order mark, which the text format does not allow; remove it");
            return;
        }
        if (nul < bad) {
            const auto [line, column] = position_of(nul);
            report_at(line, column, "NUL byte in the file: a config file is text");
        } else {
            const auto [line, column] = position_of(bad);
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<unsigned char>(text_[bad])));
            report_at(line, column, concat({"invalid UTF-8 (byte ", hex, "): the file must be UTF-8 text"}));
        }
    }

    // -- tokens ------------------------------------------------------------------------------

    /// Length of a whitespace character at `i` (ASCII or Unicode White_Space), else 0.
    std::size_t whitespace_at(std::size_t i) const noexcept {
        const auto c = static_cast<unsigned char>(text_[i]);
        if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
        if (c < 0xC2) return 0;
        const std::size_t left = text_.size() - i;
        const auto b = [&](std::size_t k) { return k < left ? static_cast<unsigned char>(text_[i + k]) : 0u; };
        if (c == 0xC2 && (b(1) == 0x85 || b(1) == 0xA0)) return 2;
        if (c == 0xE1 && b(1) == 0x9A && b(2) == 0x80) return 3;
        if (c == 0xE2 && b(1) == 0x80 && (b(2) <= 0x8A || b(2) == 0xA8 || b(2) == 0xA9 || b(2) == 0xAF)) return 3;
        if (c == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) return 3;
        if (c == 0xE3 && b(1) == 0x80 && b(2) == 0x80) return 3;
        return 0;
    }

    void skip_space() {
        const std::size_t n = text_.size();
        while (pos_ < n) {
            const char c = text_[pos_];
            if (c == ' ' || c == '\t' || c == '\r') {
                ++pos_;  // the common spaces, before the full White_Space test below
            } else if (c == '\n') {
                ++pos_;
                ++line_;
                line_start_ = pos_;
            } else if (c == '#') {
                const void* eol = std::memchr(text_.data() + pos_, '\n', n - pos_);
                pos_ = eol == nullptr ? n : static_cast<std::size_t>(static_cast<const char*>(eol) - text_.data());
            } else if (const std::size_t w = whitespace_at(pos_)) {
                pos_ += w;
            } else {
                break;
            }
        }
    }

    /// Offset of the first quote `q`, backslash or line break at or after `i` in a string body,
    /// or the end of the text: eight bytes at a time while eight are left.
    std::size_t string_stop(std::size_t i, char q) const noexcept {
        const std::size_t n = text_.size();
        const std::uint64_t quotes = swar::ones * static_cast<unsigned char>(q);
        constexpr std::uint64_t backslashes = swar::ones * static_cast<unsigned char>('\\');
        constexpr std::uint64_t newlines = swar::ones * static_cast<unsigned char>('\n');
        for (; i + 8 <= n; i += 8) {
            const std::uint64_t w = swar::load(text_.data() + i);
            // Each term is exact up to its lowest match, so the lowest bit of the union is exact.
            const std::uint64_t hits = swar::zero_bytes(w ^ quotes) | swar::zero_bytes(w ^ backslashes) | swar::zero_bytes(w ^ newlines);
            if (hits != 0) return i + static_cast<std::size_t>(std::countr_zero(hits)) / 8;
        }
        while (i < n && text_[i] != q && text_[i] != '\\' && text_[i] != '\n') ++i;
        return i;
    }

    void advance() {
        skip_space();
        cur_.begin = pos_;
        cur_.line = line_;
        cur_.column = static_cast<std::uint32_t>(pos_ - line_start_ + 1);
        const std::size_t n = text_.size();
        if (pos_ >= n) {
            cur_.kind = tok::end;
            cur_.end = pos_;
            return;
        }
        const char c = text_[pos_];
        std::size_t i = pos_ + 1;
        if (const cfg_word word = scan_cfg_word(text_, pos_, i); word != cfg_word::none) {
            cur_.kind = word == cfg_word::identifier ? tok::identifier : tok::number;
        } else if (c == '\'' || c == '"') {
            cur_.escaped = false;
            for (;;) {
                i = string_stop(i, c);
                if (i >= n || text_[i] == '\n') {
                    cur_.end = i;
                    fail(cur_, concat({"unterminated string: the closing ", c, " is missing before the end of the line"}));
                }
                if (text_[i] == c) {
                    ++i;
                    break;
                }
                if (text_[i] == '\\') {
                    if (i + 1 >= n || text_[i + 1] == '\n') {
                        cur_.end = i;
                        fail(cur_, "unterminated string: a backslash ends the line");
                    }
                    cur_.escaped = true;
                    i += 2;
                }
            }
            cur_.kind = tok::string;
        } else {
            // One character (a whole UTF-8 sequence, so messages never cut one).
            const std::size_t len = utf8_sequence_length(reinterpret_cast<const unsigned char*>(text_.data() + pos_), n - pos_);
            i = pos_ + (len == 0 ? 1 : len);
            cur_.kind = tok::symbol;
        }
        cur_.end = i;
        pos_ = i;
    }

    std::string_view slice(const token& t) const { return text_.substr(t.begin, t.end - t.begin); }
    bool is_symbol(char c) const { return cur_.kind == tok::symbol && text_[cur_.begin] == c; }

    KVCALI_COLD std::string describe(const token& t) const {
        switch (t.kind) {
            case tok::end: return "the end of the file";
            case tok::string: return concat({"the string ", clip(slice(t))});
            default: return concat({"\"", clip(slice(t)), "\""});
        }
    }

    // -- strings -------------------------------------------------------------------------------

    /// Appends the unescaped body of string token `t` to `out`; reports bad escapes.
    void unescape(const token& t, std::string& out) {
        if (!t.escaped) {
            out.append(text_.substr(t.begin + 1, t.end - t.begin - 2));  // (the tokenizer saw no backslash)
            return;
        }
        unescape_escapes(t, out);
    }
    /// unescape for a string with escapes (rare in a config: compiled for size).
    KVCALI_COLD void unescape_escapes(const token& t, std::string& out) {
        const std::string_view body = text_.substr(t.begin + 1, t.end - t.begin - 2);
        std::size_t i = 0;
        auto bad = [&](std::size_t at, const std::string& why) {
            report_at(t.line, t.column + static_cast<std::uint32_t>(at + 1), why);
            ++string_errors_;
        };
        while (i < body.size()) {
            const std::size_t run = body.find('\\', i);
            if (run != i) {
                out.append(body.substr(i, run == std::string_view::npos ? std::string_view::npos : run - i));
                if (run == std::string_view::npos) break;
                i = run;
            }
            const std::size_t start = i;
            const char e = body[i + 1];  // the tokenizer guarantees a character after '\'
            i += 2;
            switch (e) {
                case 'a': out += '\a'; continue;
                case 'b': out += '\b'; continue;
                case 'f': out += '\f'; continue;
                case 'n': out += '\n'; continue;
                case 'r': out += '\r'; continue;
                case 't': out += '\t'; continue;
                case 'v': out += '\v'; continue;
                case '\\': out += '\\'; continue;
                case '\'': out += '\''; continue;
                case '"': out += '"'; continue;
                case '?': out += '?'; continue;
                default: break;
            }
            if (e >= '0' && e <= '7') {
                unsigned value = static_cast<unsigned>(e - '0');
                for (int k = 0; k < 2 && i < body.size() && body[i] >= '0' && body[i] <= '7'; ++k, ++i) {
                    value = value * 8 + static_cast<unsigned>(body[i] - '0');
                }
                if (value > 0xFF) {
                    bad(start,
                        concat({"octal escape \\", body.substr(start + 1, i - start - 1), " is above \\377: an octal escape is one byte"}));
                    continue;
                }
                out += static_cast<char>(value);
                continue;
            }
            if (e == 'x' || e == 'X') {
                unsigned value = 0;
                int digits = 0;
                for (; digits < 2 && i < body.size() && hex_digit_value(body[i]) >= 0; ++digits, ++i) {
                    value = value * 16 + static_cast<unsigned>(hex_digit_value(body[i]));
                }
                if (digits == 0) {
                    bad(start, "\\x must be followed by one or two hex digits");
                    continue;
                }
                out += static_cast<char>(value);
                continue;
            }
            if (e == 'u' || e == 'U') {
                const int want = e == 'u' ? 4 : 8;
                std::uint32_t cp = 0;
                int digits = 0;
                for (; digits < want && i < body.size() && hex_digit_value(body[i]) >= 0; ++digits, ++i) {
                    cp = cp * 16 + static_cast<std::uint32_t>(hex_digit_value(body[i]));
                }
                if (digits != want) {
                    bad(start, concat({"\\", e, " must be followed by exactly ", want, " hex digits"}));
                    continue;
                }
                if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                    bad(start, concat({"\\", body.substr(start + 1, i - start - 1), " is not a Unicode scalar value"}));
                    continue;
                }
                append_utf8(out, cp);
                continue;
            }
            // Report the whole (UTF-8) character after the backslash.
            std::size_t len =
                utf8_sequence_length(reinterpret_cast<const unsigned char*>(body.data() + start + 1), body.size() - start - 1);
            if (len == 0) len = 1;
            i = start + 1 + len;
            bad(start, concat({"unknown escape \\", body.substr(start + 1, len),
                               " (known: \\a \\b \\f \\n \\r \\t \\v \\\\ \\' \\\" \\? \\ooo \\xhh \\uXXXX \\UXXXXXXXX)"}));
        }
    }

    // -- structure -----------------------------------------------------------------------------

    void count_node(const token& at) {
        if (++nodes_ > limits_.max_nodes) {
            fail(at, concat({"the file has more than ", limits_.max_nodes, " fields and values (the limit)"}));
        }
    }

    cfg_document& new_child(cfg_document& parent, std::string_view key, const token& at) {
        count_node(at);
        return children_.add(parent, key);
    }

    void check_depth(std::size_t depth) {
        if (depth > limits_.max_depth) {
            fail(cur_, concat({"nesting deeper than ", limits_.max_depth, " levels (the limit)"}));
        }
    }

    /// Fields until `close` ('}' or '>'), or until the end of the file at the top (close == 0).
    void read_fields(cfg_document& message, char close, const token& open, std::size_t depth) {
        for (;;) {
            if (cur_.kind == tok::end) {
                if (close == 0) return;
                fail(cur_, concat({"expected \"", close, "\" to close the message opened at ", open.line, ":", open.column,
                                   ", found the end of the file"}));
            }
            if (close != 0 && is_symbol(close)) {
                advance();
                return;
            }
            const bool name_ok = cur_.kind == tok::identifier || (cur_.kind == tok::number && cfg_digit(text_[cur_.begin]));
            if (!name_ok) {
                std::string expected = "expected a field name";
                if (close != 0) append_concat(expected, {" or \"", close, "\""});
                append_concat(expected, {", found ", describe(cur_)});
                fail(cur_, std::move(expected));
            }
            const token name = cur_;
            advance();
            const bool colon = is_symbol(':');
            if (colon) advance();
            cfg_document& field = new_child(message, slice(name), name);
            field.data().line = name.line;
            field.data().column = name.column;
            field.data().colon = colon;
            read_value(field, name, depth);
            if (is_symbol(',') || is_symbol(';')) advance();
            if (close == 0 && each_top_) {
                (*each_top_)(message);
                message.clear();
            }
        }
    }

    void read_value(cfg_document& field, const token& name, std::size_t depth) {
        cfg_node& node = field.data();
        node.value_line = cur_.line;
        node.value_column = cur_.column;
        if (is_symbol('{') || is_symbol('<')) {
            check_depth(depth + 1);
            read_message(field, depth + 1);
        } else if (is_symbol('[')) {
            check_depth(depth + 1);
            node.kind = cfg_kind::list;
            const token open = cur_;
            advance();
            if (is_symbol(']')) {
                advance();
                return;
            }
            for (;;) {
                cfg_document& element = new_child(field, "", cur_);
                element.data().line = element.data().value_line = cur_.line;
                element.data().column = element.data().value_column = cur_.column;
                element.data().colon = true;
                if (is_symbol('{') || is_symbol('<')) {
                    check_depth(depth + 2);
                    read_message(element, depth + 2);
                } else if (cur_.kind == tok::identifier || cur_.kind == tok::number || cur_.kind == tok::string) {
                    read_scalar(element.data());
                } else {
                    fail(cur_,
                         concat({"expected a value in the list opened at ", open.line, ":", open.column, ", found ", describe(cur_)}));
                }
                if (is_symbol(']')) {
                    advance();
                    return;
                }
                if (!is_symbol(',')) {
                    fail(cur_, concat({"expected \",\" or \"]\" in the list opened at ", open.line, ":", open.column, ", found ",
                                       describe(cur_)}));
                }
                advance();
            }
        } else if (cur_.kind == tok::identifier || cur_.kind == tok::number || cur_.kind == tok::string) {
            if (!node.colon) {
                fail(cur_, concat({"expected \":\" after the field name \"", clip(slice(name)), "\", found ", describe(cur_)}));
            }
            read_scalar(node);
        } else {
            fail(cur_, concat({"expected a value after \"", clip(slice(name)), node.colon ? ":" : "", "\", found ", describe(cur_)}));
        }
    }

    void read_message(cfg_document& field, std::size_t depth) {
        field.data().kind = cfg_kind::message;
        const token open = cur_;
        const char close = text_[open.begin] == '{' ? '}' : '>';
        advance();
        read_fields(field, close, open, depth);
    }

    void read_scalar(cfg_node& node) {
        if (cur_.kind != tok::string) {
            node.kind = cur_.kind == tok::identifier ? cfg_kind::identifier : cfg_kind::number;
            node.text.assign(slice(cur_));
            advance();
            return;
        }
        // Adjacent string literals concatenate; the result must be UTF-8.
        node.kind = cfg_kind::string;
        const token first = cur_;
        const std::size_t errors_before = string_errors_;
        bool escaped = false;
        while (cur_.kind == tok::string) {
            escaped = escaped || cur_.escaped;
            unescape(cur_, node.text);
            advance();
        }
        // The file is UTF-8 (check_encoding) and quotes are ASCII, so only escapes can break it.
        if (escaped && string_errors_ == errors_before) {
            const std::size_t bad = first_invalid_utf8(node.text);
            if (bad != std::string_view::npos) {
                report_at(first.line, first.column,
                          concat({"the string is not valid UTF-8 after unescaping (byte ", bad,
                                  " of the value): escapes \\ooo and \\xhh are single bytes and must form UTF-8 sequences"}));
                ++string_errors_;
            }
        }
    }

    std::string_view text_;
    const std::string& file_;
    diagnostics& diags_;
    const simple_config_limits& limits_;
    const function_ref<void(cfg_document&)>* each_top_ = nullptr;  ///< set by read (only while it runs)
    std::size_t pos_ = 0;
    std::uint32_t line_ = 1;
    std::size_t line_start_ = 0;
    token cur_;
    std::size_t nodes_ = 0;
    std::size_t string_errors_ = 0;
    cfg_child_maker children_;
};

}  // namespace detail
}  // namespace kvcali
