// kvcali internals: quant.cfg read straight into a simple_config, without the located document,
// for the plain shape almost every file has: ASCII text, fields the schema knows, each singular
// field and message given once, scalars written `name: value`, strings without escapes, messages
// in braces, no lists. Anything else (every error and every warning included) makes it give up
// with nothing reported; the caller then reads the text with text_format.hpp and binds it with
// text_format_bind.hpp, which report exactly. On the files it takes, it gives the same
// simple_config as those two (values, and positions: 1-based lines, byte columns).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "../policy.hpp"
#include "../simple_config.hpp"
#include "swar.hpp"
#include "text_format.hpp"
#include "text_format_bind.hpp"

namespace kvcali::detail {

class plain_cfg_reader {
public:
    plain_cfg_reader(std::string_view text, const std::string& file, algorithm_registry algorithms, const simple_config_limits& limits)
        : text_(text), file_(file), algorithms_(algorithms), limits_(limits) {}

    /// Fills `out` (file already set); false when the text is not of the plain shape (then `out`
    /// holds part of it and is to be discarded).
    bool read(simple_config& out) {
        if (text_.size() > limits_.max_bytes) return false;
        // ASCII without NUL: the full reader's encoding checks would pass.
        if (!ascii_without_nul(text_)) return false;
        try {
            read_top(out);
        } catch (const not_plain&) {
            return false;
        }
        return true;
    }

private:
    struct not_plain {};

    /// No byte is NUL or above 0x7F (eight bytes at a time).
    static bool ascii_without_nul(std::string_view s) noexcept {
        std::size_t i = 0;
        for (; i + 8 <= s.size(); i += 8) {
            const std::uint64_t w = swar::load(s.data() + i);
            if ((swar::non_ascii_bytes(w) | swar::zero_bytes(w)) != 0) return false;
        }
        for (; i < s.size(); ++i) {
            if (s[i] == '\0' || static_cast<unsigned char>(s[i]) >= 0x80) return false;
        }
        return true;
    }
    [[noreturn]] static void give_up() { throw not_plain{}; }

    enum class tok : std::uint8_t { end, identifier, number, string, symbol };
    struct token {
        tok kind = tok::end;
        std::string_view text;  ///< the token; a string's body without its quotes
        std::uint32_t line = 0, column = 0;
    };

    // -- tokens ----------------------------------------------------------------------------------

    /// Skips spaces, tabs, line breaks and comments; any other space character is not plain.
    void skip_space() {
        const std::size_t n = text_.size();
        while (pos_ < n) {
            const char c = text_[pos_];
            if (c == '\n') {
                ++pos_;
                ++line_;
                line_start_ = pos_;
            } else if (c == ' ' || c == '\t' || c == '\r') {
                ++pos_;
            } else if (c == '#') {
                const std::size_t eol = text_.find('\n', pos_);
                pos_ = eol == std::string_view::npos ? n : eol;
            } else {
                break;
            }
        }
    }

    /// The token at the current position (after skip_space), consumed.
    token next() {
        token t;
        t.line = line_;
        t.column = static_cast<std::uint32_t>(pos_ - line_start_ + 1);
        const std::size_t n = text_.size();
        if (pos_ >= n) return t;
        const char c = text_[pos_];
        std::size_t i = pos_ + 1;
        if (const cfg_word word = scan_cfg_word(text_, pos_, i); word != cfg_word::none) {
            t.kind = word == cfg_word::identifier ? tok::identifier : tok::number;
            t.text = text_.substr(pos_, i - pos_);
        } else if (c == '"' || c == '\'') {
            // Printable ASCII up to the closing quote; an escape or a control character is not plain.
            for (;; ++i) {
                if (i >= n) give_up();
                const char d = text_[i];
                if (d == c) break;
                if (d == '\\' || static_cast<unsigned char>(d) < 0x20 || d == 0x7F) give_up();
            }
            t.kind = tok::string;
            t.text = text_.substr(pos_ + 1, i - pos_ - 1);
            ++i;
        } else {
            t.kind = tok::symbol;
            t.text = text_.substr(pos_, 1);
        }
        pos_ = i;
        return t;
    }

    char peek() const noexcept { return pos_ < text_.size() ? text_[pos_] : '\0'; }

    source_location at(std::uint32_t line, std::uint32_t column) const { return {file_, line, column}; }

    // -- fields ----------------------------------------------------------------------------------

    /// One field: its name, whether a ':' followed, and, for a scalar, its value token.
    struct field {
        token name;
        bool message = false;  ///< `name {` or `name: {`; the caller reads the body
        token value;           ///< a scalar's token
    };

    /// Reads the next field's name and value start; false at the message's end (`}` consumed) or,
    /// at the top level, at the end of the text.
    bool next_field(bool top, field& f) {
        skip_space();
        if (pos_ >= text_.size()) {
            if (top) return false;
            give_up();
        }
        if (!top && peek() == '}') {
            ++pos_;
            return false;
        }
        f.name = next();
        if (f.name.kind != tok::identifier) give_up();
        if (++nodes_ > limits_.max_nodes) give_up();
        skip_space();
        const bool colon = peek() == ':';
        if (colon) {
            ++pos_;
            skip_space();
        }
        f.message = peek() == '{';
        if (f.message) {
            ++pos_;
            return true;
        }
        if (!colon) give_up();
        f.value = next();
        if (f.value.kind != tok::identifier && f.value.kind != tok::number && f.value.kind != tok::string) give_up();
        skip_space();
        // Adjacent strings concatenate: not plain.
        if (f.value.kind == tok::string && (peek() == '"' || peek() == '\'')) give_up();
        return true;
    }

    /// After a field: an optional ',' or ';'.
    void end_field() {
        skip_space();
        if (peek() == ',' || peek() == ';') ++pos_;
    }

    void enter(std::size_t& depth) {
        if (++depth > limits_.max_depth) give_up();
    }

    // -- scalars (the binder's grammars from text_format_bind.hpp; any failure gives up) ----------

    static bool is_token(const token& t) noexcept { return t.kind == tok::identifier || t.kind == tok::number; }

    static std::uint32_t uint32_of(const token& t) {
        if (!is_token(t)) give_up();
        const auto x = parse_integer_token(t.text, true);
        if (!x) give_up();
        const auto value = detail::uint32_of(*x);
        if (!value) give_up();
        return *value;
    }
    static bool bool_of(const token& t) {
        if (!is_token(t)) give_up();
        const auto b = text_bool_literal(t.text);
        if (!b) give_up();
        return *b;
    }
    static float float_of(const token& t) {
        if (!is_token(t)) give_up();
        const auto d = parse_float_token(t.text);
        if (!d) give_up();
        return to_float32(*d);
    }
    static std::int32_t enum_of(const token& t, const param_desc& p) {
        if (!is_token(t)) give_up();
        if (const enumerator_desc* e = enumerator_named(p, t.text)) return e->number;
        const auto x = parse_integer_token(t.text, false);
        const enumerator_desc* e = x ? enumerator_numbered(p, *x) : nullptr;
        if (!e) give_up();
        return e->number;
    }
    static param_value param_of(const token& t, const param_desc& p) {
        switch (p.type) {
            case param_type::boolean: return param_value::of_bool(bool_of(t));
            case param_type::uint32: return param_value::of_uint(uint32_of(t));
            case param_type::float32: return param_value::of_float(float_of(t));
            case param_type::enumeration: return param_value::of_enum(enum_of(t, p));
        }
        give_up();
    }
    static std::string string_of(const token& t) {
        if (t.kind != tok::string) give_up();
        return std::string(t.text);
    }

    // -- messages --------------------------------------------------------------------------------

    void read_top(simple_config& out) {
        field f;
        std::size_t depth = 0;
        while (next_field(true, f)) {
            const std::string_view key = f.name.text;
            if (key == "batch_num" && !f.message) {
                if (out.batch_num) give_up();
                out.batch_num = uint32_of(f.value);
                out.batch_num_where = at(f.value.line, f.value.column);
            } else if (key == "activation_offset" && !f.message) {
                if (out.activation_offset) give_up();
                out.activation_offset = bool_of(f.value);
                out.activation_offset_where = at(f.value.line, f.value.column);
            } else if (key == "kv_cache_quant_config" && f.message) {
                if (out.has_common) give_up();
                out.has_common = true;
                out.common_where = at(f.name.line, f.name.column);
                enter(depth);
                read_common(out, depth);
                --depth;
            } else if (key == "override_layers_configs" && f.message) {
                override_config& o = out.overrides.emplace_back();
                o.where = at(f.name.line, f.name.column);
                enter(depth);
                read_override(o, depth);
                --depth;
            } else {
                give_up();
            }
            end_field();
        }
    }

    void read_common(simple_config& out, std::size_t& depth) {
        field f;
        while (next_field(false, f)) {
            const std::string_view key = f.name.text;
            if (key == "quant_layers" && !f.message) {
                out.quant_layers.push_back({string_of(f.value), at(f.value.line, f.value.column)});
            } else if (key == "calibration_config" && f.message) {
                if (out.common) give_up();
                out.common.emplace();
                out.common->where = at(f.name.line, f.name.column);
                enter(depth);
                read_calibration(*out.common, depth);
                --depth;
            } else {
                give_up();
            }
            end_field();
        }
    }

    void read_override(override_config& o, std::size_t& depth) {
        field f;
        while (next_field(false, f)) {
            const std::string_view key = f.name.text;
            if (key == "layer_name" && !f.message) {
                if (o.layer_name) give_up();
                o.layer_name = located_string{string_of(f.value), at(f.value.line, f.value.column)};
            } else if (key == "kv_data_quant_config" && f.message) {
                if (o.config) give_up();
                o.config.emplace();
                o.config->where = at(f.name.line, f.name.column);
                enter(depth);
                read_calibration(*o.config, depth);
                --depth;
            } else {
                give_up();
            }
            end_field();
        }
    }

    void read_calibration(algorithm_config& cfg, std::size_t& depth) {
        field f;
        while (next_field(false, f)) {
            // The binder's choice: the last policy with that block name.
            std::size_t index = algorithms_.size();
            for (std::size_t i = 0; i < algorithms_.size(); ++i) {
                if (algorithms_[i].cfg_block == f.name.text) index = i;
            }
            // One algorithm block per CalibrationConfig (a second one is a warning).
            if (index == algorithms_.size() || !f.message || cfg.algorithm) give_up();
            const algorithm_desc& algo = algorithms_[index];
            cfg.algorithm = index;
            cfg.algorithm_where = at(f.name.line, f.name.column);
            cfg.values.assign(algo.params.size(), std::nullopt);
            cfg.value_locations.assign(algo.params.size(), source_location{});
            enter(depth);
            read_algorithm(algo, cfg);
            --depth;
            end_field();
        }
    }

    void read_algorithm(const algorithm_desc& algo, algorithm_config& cfg) {
        field f;
        while (next_field(false, f)) {
            const int index = algo.find_param(f.name.text);
            if (index < 0 || f.message) give_up();
            const auto i = static_cast<std::size_t>(index);
            if (cfg.values[i]) give_up();
            cfg.values[i] = param_of(f.value, algo.params[i]);
            cfg.value_locations[i] = at(f.value.line, f.value.column);
            end_field();
        }
    }

    std::string_view text_;
    const std::string& file_;
    algorithm_registry algorithms_;
    const simple_config_limits& limits_;
    std::size_t pos_ = 0;
    std::uint32_t line_ = 1;
    std::size_t line_start_ = 0;
    std::size_t nodes_ = 0;
};

/// Reads plain quant.cfg text into `out` (its `file` already set); false when the text is not of
/// the plain shape, and then `out` is to be discarded.
inline bool read_plain_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                     const simple_config_limits& limits, simple_config& out) {
    return plain_cfg_reader(text, file, algorithms, limits).read(out);
}

}  // namespace kvcali::detail
