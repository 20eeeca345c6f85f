// kvcali internals: binding a cfg_document (text format or JSON) to the schema of
// AMCTQuantCaliConfig. The algorithm messages come from the policies' parameter descriptions,
// so a downstream policy's `<name>_quantize { ... }` block is valid with its own fields.
// Every semantic error of the document is reported (up to simple_config_limits::max_errors), in
// file order: each message's children are walked in the order they were written, a field given
// several times being several children with the same key.
#pragma once

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../error.hpp"
#include "../json_format.hpp"
#include "../policy.hpp"
#include "../simple_config.hpp"
#include "../suggest.hpp"
#include "concat.hpp"
#include "function_ref.hpp"
#include "numbers.hpp"
#include "text_format.hpp"

namespace kvcali::detail {

// ---------------------------------------------------------------------------------------------
// Scalar grammars (those of the protobuf text format as the reference reads it; see README)

/// An integer token: sign and magnitude (`overflow` when it does not fit 64 bits).
struct integer_token {
    bool negative = false;
    std::uint64_t magnitude = 0;
    bool overflow = false;
};

/// Parses `[+-]? (0[xX]hex+ | [1-9][0-9]* | 0+)`; with `c_octal`, also `-?0[0-7]+` as octal
/// (integer fields); without, a leading zero is allowed only in `0+` (enum numbers).
KVCALI_NOINLINE inline std::optional<integer_token> parse_integer_token(std::string_view t, bool c_octal) {
    integer_token out;
    std::size_t i = 0;
    bool plus = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
        out.negative = t[i] == '-';
        plus = t[i] == '+';
        ++i;
    }
    const std::string_view body = t.substr(i);
    if (body.empty()) return std::nullopt;
    auto accumulate = [&](std::string_view digits, unsigned base) -> bool {
        if (digits.empty()) return false;
        for (char c : digits) {
            const int d = hex_digit_value(c);
            if (d < 0 || static_cast<unsigned>(d) >= base) return false;
            if (out.magnitude > (std::numeric_limits<std::uint64_t>::max() - static_cast<unsigned>(d)) / base) {
                out.overflow = true;
            } else {
                out.magnitude = out.magnitude * base + static_cast<unsigned>(d);
            }
        }
        return true;
    };
    if (body.size() >= 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X')) {
        if (!accumulate(body.substr(2), 16)) return std::nullopt;
        return out;
    }
    if (body.size() >= 2 && body[0] == '0') {
        if (c_octal && !plus) {
            if (!accumulate(body.substr(1), 8)) return std::nullopt;
            return out;
        }
        if (body.find_first_not_of('0') != std::string_view::npos) return std::nullopt;
        return out;
    }
    if (!accumulate(body, 10)) return std::nullopt;
    return out;
}

/// A decimal float `[+-]? (d+ (. d*)? | . d+) ([eE] [+-]? d+)?` to the nearest double (overflow
/// to ±inf, underflow to ±0), or `[+-]? (inf | infinity | nan)` in any case.
inline std::optional<double> parse_decimal_float(std::string_view t) {
    bool negative = false;
    std::string_view s = t;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        s.remove_prefix(1);
    }
    auto iequals = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i) {
            const char c = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
            if (c != b[i]) return false;
        }
        return true;
    };
    if (iequals(s, "inf") || iequals(s, "infinity")) return negative ? -HUGE_VAL : HUGE_VAL;
    if (iequals(s, "nan")) return std::copysign(std::numeric_limits<double>::quiet_NaN(), negative ? -1.0 : 1.0);
    // Validate the grammar (from_chars is more lenient about some forms and stricter about '+').
    std::size_t i = 0, int_digits = 0, frac_digits = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++int_digits;
    if (i < s.size() && s[i] == '.') {
        ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i, ++frac_digits;
    }
    if (int_digits + frac_digits == 0) return std::nullopt;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        const std::size_t exp_start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == exp_start) return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    const std::optional<double> value = decimal_to_double(s);  // the one decimal-to-double (numbers.hpp)
    if (!value) return std::nullopt;
    return negative ? -*value : *value;
}

/// A float field's token as the reference reads it: a decimal or inf/nan spelling, then the
/// text-format forms `-inf`, `inff`, `nanf` (any case), then the token without trailing 'f's
/// (`0.5f`).
inline std::optional<double> parse_float_token(std::string_view t) {
    if (auto v = parse_decimal_float(t)) return v;
    auto lower = [](std::string_view s) {
        std::string out(s);
        for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        return out;
    };
    const std::string l = lower(t);
    const std::string_view body = !l.empty() && l[0] == '-' ? std::string_view(l).substr(1) : std::string_view(l);
    if (body == "inf" || body == "inff" || body == "infinity" || body == "infinityf") return l[0] == '-' ? -HUGE_VAL : HUGE_VAL;
    if (l == "nan" || l == "nanf") return std::numeric_limits<double>::quiet_NaN();
    std::string_view stripped = t;
    while (!stripped.empty() && stripped.back() == 'f') stripped.remove_suffix(1);
    if (stripped.size() != t.size()) return parse_decimal_float(stripped);
    return std::nullopt;
}

/// The float32 a float field stores: protobuf's text-format rule (see float32_protobuf_text).
inline float to_float32(double d) noexcept { return float32_protobuf_text(d); }

/// The text format's bool literals (true/True/t/1, false/False/f/0), or nullopt for any other word.
inline std::optional<bool> text_bool_literal(std::string_view t) noexcept {
    if (t == "true" || t == "True" || t == "t" || t == "1") return true;
    if (t == "false" || t == "False" || t == "f" || t == "0") return false;
    return std::nullopt;
}

/// An integer as a uint32 field stores it (-0 is 0), or nullopt when out of range.
inline std::optional<std::uint32_t> uint32_of(const integer_token& x) noexcept {
    if (x.overflow || x.magnitude > 0xFFFFFFFFull || (x.negative && x.magnitude != 0)) return std::nullopt;
    return static_cast<std::uint32_t>(x.magnitude);
}

/// The enumerator of `p` with that name, or null.
inline const enumerator_desc* enumerator_named(const param_desc& p, std::string_view name) noexcept {
    for (const auto& e : p.enumerators) {
        if (e.name == name) return &e;
    }
    return nullptr;
}

/// The enumerator of `p` with that number (an int32 value), or null.
inline const enumerator_desc* enumerator_numbered(const param_desc& p, const integer_token& x) noexcept {
    if (x.overflow || x.magnitude > 0x7FFFFFFFull) return nullptr;
    const long long given = x.negative ? -static_cast<long long>(x.magnitude) : static_cast<long long>(x.magnitude);
    for (const auto& e : p.enumerators) {
        if (static_cast<long long>(e.number) == given) return &e;
    }
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The binder

class document_binder {
public:
    KVCALI_COLD document_binder(const std::string& file, bool json, algorithm_registry algorithms, diagnostics& diags,
                                const simple_config_limits& limits)
        : file_(file), json_(json), algorithms_(algorithms), diags_(diags), limits_(limits) {
        // The field names of each message kind, once (not per block bound).
        // One list: the algorithms' block names, then each algorithm's parameter names in turn.
        std::size_t count = algorithms_.size();
        for (const auto& a : algorithms_) count += a.params.size();
        names_.reserve(count);
        for (const auto& a : algorithms_) names_.push_back(a.cfg_block);
        for (const auto& a : algorithms_) {
            first_param_name_.push_back(names_.size());
            for (const auto& p : a.params) names_.push_back(p.cfg_name);
        }
    }

    /// Binds `root` into `out`. String values are moved out of `root`.
    void bind(cfg_document& root, simple_config& out) {
        static constexpr std::string_view fields[] = {"batch_num", "activation_offset", "kv_cache_quant_config", "override_layers_configs"};
        const context here{"$", "AMCTQuantCaliConfig (the top level)", fields};
        for (auto& entry : root) {
            const std::string& key = entry.first;
            cfg_document& child = entry.second;
            if (stopped_) return;
            const field_ref f{here, key, child};
            if (key == "batch_num") {
                for_each_scalar(f, false, [&](cfg_node& v, const std::string&) {
                    if (auto x = uint32_value(f, v)) {
                        if (out.batch_num) duplicate_scalar(f, v, v.text);
                        out.batch_num = *x;
                        out.batch_num_where = value_location(v);
                    }
                });
            } else if (key == "activation_offset") {
                for_each_scalar(f, false, [&](cfg_node& v, const std::string&) {
                    if (auto x = bool_value(f, v)) {
                        if (out.activation_offset) duplicate_scalar(f, v, v.text);
                        out.activation_offset = *x;
                        out.activation_offset_where = value_location(v);
                    }
                });
            } else if (key == "kv_cache_quant_config") {
                for_each_message(f, false, [&](cfg_document& m, const std::string& path) {
                    if (out.has_common) {
                        duplicate_message(f);
                    } else {
                        out.has_common = true;
                        out.common_where = name_location(at(f));
                    }
                    bind_common(m, path, out);
                });
            } else if (key == "override_layers_configs") {
                for_each_message(f, true, [&](cfg_document& m, const std::string& path) {
                    override_config& o = out.overrides.emplace_back();
                    o.where = name_location(&m == &child ? at(f) : m.data());
                    bind_override(m, path, o, out.discarded);
                });
            } else {
                unknown_field(f, fields);
            }
        }
    }

private:
    /// The message being bound: its JSON path, its name for messages, its field names (views of
    /// strings that outlive the binding of the message: no copies per block).
    struct context {
        std::string_view path;
        std::string_view name;
        std::span<const std::string_view> fields;
    };
    /// One field occurrence in a message.
    struct field_ref {
        const context& in;
        const std::string& key;
        cfg_document& node;  ///< the field's node
    };

    /// The field occurrence's data (name and value positions, kind).
    static cfg_node& at(const field_ref& f) noexcept { return f.node.data(); }

    // -- locations and reports ---------------------------------------------------------------

    // (Both forms keep positions: the text format's field names and values, the JSON form's keys
    // and values.)
    source_location name_location(const cfg_node& n) const { return source_location{file_, n.line, n.column}; }
    source_location value_location(const cfg_node& n) const { return source_location{file_, n.value_line, n.value_column}; }
    static std::string member_path(std::string_view parent, std::string_view key) {
        std::string p;
        bool plain = !key.empty() && !(key[0] >= '0' && key[0] <= '9');
        for (const char c : key) plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
        if (plain) {
            p.reserve(parent.size() + 1 + key.size());
            p += parent;
            p += '.';
            p += key;
        } else {
            p = parent;
            p += "[\"";
            for (char c : key) {
                if (c == '"' || c == '\\') p += '\\';
                p += c;
            }
            p += "\"]";
        }
        return p;
    }

    KVCALI_COLD void report(severity level, const source_location& where, const std::string& path, std::string message) {
        if (stopped_) return;
        if (level == severity::error || diags_.strict()) {
            if (errors_ == limits_.max_errors) {
                diags_.add({.severity = severity::error,
                            .category = errc::parse_error,
                            .message = concat({"too many errors (", limits_.max_errors, "); the rest of the file is not checked"}),
                            .where = where,
                            .layer = {},
                            .json_path = json_ ? path : std::string()});
                stopped_ = true;
                return;
            }
            ++errors_;
        }
        if (json_) message = concat({path, ": ", message});
        diags_.add({.severity = level,
                    .category = errc::parse_error,
                    .message = std::move(message),
                    .where = where,
                    .layer = {},
                    .json_path = json_ ? path : std::string()});
    }
    KVCALI_COLD void error_at_value(const field_ref& f, const cfg_node& v, std::string message) {
        report(severity::error, value_location(v), element_path(f, v), std::move(message));
    }
    KVCALI_COLD void error_at_name(const field_ref& f, std::string message) {
        report(severity::error, name_location(at(f)), member_path(f.in.path, f.key), std::move(message));
    }

    /// The JSON path of a value: the field, or the list element it is.
    std::string element_path(const field_ref& f, const cfg_node& v) const {
        std::string p = member_path(f.in.path, f.key);
        if (&v == &at(f)) return p;
        std::size_t index = 0;
        for (const auto& [k, e] : f.node) {
            if (&e.data() == &v) break;
            ++index;
        }
        return concat({p, "[", index, "]"});
    }

    KVCALI_COLD std::string found(const cfg_node& n) const {
        switch (n.kind) {
            case cfg_kind::message: return json_ ? "an object" : "a message";
            case cfg_kind::list: return json_ ? "an array" : "a list";
            case cfg_kind::string:
            case cfg_kind::json_string: {
                std::string q;
                append_json_string(q, clip(n.text));
                return concat({"the string ", q});
            }
            default: return concat({"\"", clip(n.text), "\""});
        }
    }

    KVCALI_COLD void unknown_field(const field_ref& f, std::span<const std::string_view> candidates, std::string extra = {}) {
        std::string message = concat({"unknown field \"", clip(f.key), "\" in ", f.in.name, extra});
        if (extra.empty()) {
            message += did_you_mean(closest_names(f.key, candidates, [](std::string_view s) { return s; }));
        }
        error_at_name(f, std::move(message));
    }

    KVCALI_COLD void duplicate_scalar(const field_ref& f, const cfg_node& v, std::string_view shown) {
        report(severity::warning, value_location(v), element_path(f, v),
               concat({f.key, " is given more than once in ", f.in.name, "; the last value (", clip(shown), ") is kept"}));
    }
    KVCALI_COLD void duplicate_message(const field_ref& f) {
        report(severity::warning, name_location(at(f)), member_path(f.in.path, f.key),
               concat({f.key, " is given more than once in ", f.in.name, "; the blocks are merged"}));
    }

    // -- shapes ----------------------------------------------------------------------------------

    /// Calls `fn(value, path)` for each scalar of field `f` (one, or each list element when
    /// `repeated`); reports shape errors.
    void for_each_scalar(const field_ref& f, bool repeated, function_ref<void(cfg_node&, const std::string&)> fn) {
        const cfg_node& n = at(f);
        if (n.kind == cfg_kind::message) {
            error_at_name(
                f, concat({f.key, " is a ", repeated ? "list of values" : "value", ", not a message: expected \"", f.key, ": value\""}));
            return;
        }
        if (!n.colon) {
            error_at_value(f, at(f), concat({"expected \":\" after the field name \"", f.key, "\""}));
            return;
        }
        if (n.kind == cfg_kind::list) {
            if (!repeated) {
                error_at_value(f, at(f), concat({f.key, " is not a repeated field: expected one value, found ", found(at(f))}));
                return;
            }
            for (auto& [k, e] : f.node) {
                if (stopped_) return;
                if (!is_scalar(e.data().kind)) {
                    error_at_value(f, e.data(), concat({"expected a value in the list ", f.key, ", found ", found(e.data())}));
                    continue;
                }
                fn(e.data(), std::string());
            }
            return;
        }
        fn(at(f), std::string());
    }

    /// Calls `fn(message, path)` for each message of field `f`; reports shape errors.
    void for_each_message(const field_ref& f, bool repeated, function_ref<void(cfg_document&, const std::string&)> fn) {
        const cfg_node& n = at(f);
        // (Paths only appear in the JSON form's diagnostics: the text format's go without them.)
        const std::string path = json_ ? member_path(f.in.path, f.key) : std::string();
        if (n.kind == cfg_kind::message) {
            fn(f.node, path);
            return;
        }
        if (n.kind == cfg_kind::list && repeated) {
            std::size_t index = 0;
            for (auto& [k, e] : f.node) {
                if (stopped_) return;
                const std::string element = json_ ? concat({path, "[", index, "]"}) : std::string();
                ++index;
                if (e.data().kind != cfg_kind::message) {
                    report(severity::error, value_location(e.data()), element,
                           concat({f.key, " is a list of messages: expected \"{\", found ", found(e.data())}));
                    continue;
                }
                fn(e, element);
            }
            return;
        }
        if (n.kind == cfg_kind::list) {
            error_at_value(f, at(f), concat({f.key, " is not a repeated field: expected one message, found ", found(at(f))}));
            return;
        }
        error_at_value(
            f, at(f),
            concat({f.key, " is a message: expected \"", f.key, json_ ? "\" to be an object" : " { ... }\"", ", found ", found(at(f))}));
    }

    // -- scalar values ---------------------------------------------------------------------------

    static bool is_token(const cfg_node& n) { return n.kind == cfg_kind::identifier || n.kind == cfg_kind::number; }

    std::optional<std::uint32_t> uint32_value(const field_ref& f, const cfg_node& v) {
        const cfg_node& n = v;
        std::optional<integer_token> x;
        if (is_token(n)) x = parse_integer_token(n.text, true);
        if (n.kind == cfg_kind::json_number && n.text.find_first_of(".eE") == std::string::npos) x = parse_integer_token(n.text, false);
        if (!x) {
            error_at_value(f, v, concat({f.key, " expects an unsigned integer (uint32), found ", found(v)}));
            return std::nullopt;
        }
        if (const auto value = uint32_of(*x)) return value;
        error_at_value(f, v, concat({f.key, " = ", clip(n.text), " is out of range for uint32 (0 to 4294967295)"}));
        return std::nullopt;
    }

    std::optional<bool> bool_value(const field_ref& f, const cfg_node& v) {
        const cfg_node& n = v;
        if (n.kind == cfg_kind::json_bool) return n.text == "true";
        if (is_token(n)) {
            if (const auto b = text_bool_literal(n.text)) return b;
        }
        error_at_value(
            f, v,
            concat({f.key, " expects a bool (", json_ ? "true or false" : "true/false, True/False, t/f, 1/0", "), found ", found(v)}));
        return std::nullopt;
    }

    std::optional<float> float_value(const field_ref& f, const cfg_node& v) {
        const cfg_node& n = v;
        std::optional<double> d;
        if (is_token(n)) d = parse_float_token(n.text);
        if (n.kind == cfg_kind::json_number) d = parse_decimal_float(n.text);
        if (n.kind == cfg_kind::json_string) {
            if (n.text == "NaN") d = std::numeric_limits<double>::quiet_NaN();
            if (n.text == "Infinity") d = HUGE_VAL;
            if (n.text == "-Infinity") d = -HUGE_VAL;
        }
        if (!d) {
            error_at_value(f, v,
                           concat({f.key, " expects a float (",
                                   json_ ? "a number, \"NaN\", \"Infinity\" or \"-Infinity\"" : "like 0.5, .5, 1e-3, 0.5f, inf, nan",
                                   "), found ", found(v)}));
            return std::nullopt;
        }
        return to_float32(*d);
    }

    /// The values of enumeration `p` for a message: "A (0), B (1) or C (2)".
    KVCALI_COLD static std::string known_values(const param_desc& p) {
        std::string known;
        for (std::size_t i = 0; i < p.enumerators.size(); ++i) {
            append_concat(known, {i == 0                          ? ""
                                  : i + 1 == p.enumerators.size() ? " or "
                                                                  : ", ",
                                  p.enumerators[i].name, " (", p.enumerators[i].number, ")"});
        }
        return known;
    }

    std::optional<std::int32_t> enum_value(const field_ref& f, const cfg_node& v, const param_desc& p) {
        const cfg_node& n = v;
        const bool by_name = json_ ? n.kind == cfg_kind::json_string : is_token(n);
        if (by_name) {
            if (const enumerator_desc* e = enumerator_named(p, n.text)) return e->number;
        }
        const bool numeric = json_ ? n.kind == cfg_kind::json_number : is_token(n);
        bool a_number = false;  // an integer that may be an enumerator's number
        if (numeric) {
            if (auto x = parse_integer_token(n.text, false); x && !x->overflow) {
                if (const enumerator_desc* e = enumerator_numbered(p, *x)) return e->number;
                a_number = true;
            }
        }
        not_an_enumerator(f, v, p, by_name, a_number);
        return std::nullopt;
    }
    /// enum_value's report: a number that is no enumerator's, or a value of another kind (with the
    /// names closest to a name).
    KVCALI_COLD void not_an_enumerator(const field_ref& f, const cfg_node& v, const param_desc& p, bool by_name, bool a_number) {
        if (a_number) {
            error_at_value(f, v, concat({f.key, " = ", clip(v.text), " is not a value of the enumeration: expected ", known_values(p)}));
            return;
        }
        std::string message = concat({f.key, " expects one of ", known_values(p), ", found ", found(v)});
        if (by_name) {
            message += did_you_mean(closest_names(v.text, p.enumerators, [](const enumerator_desc& e) { return e.name; }));
        }
        error_at_value(f, v, std::move(message));
    }

    /// The string of a string node, for the caller to move out of the document (bind() owns it; a
    /// string value is read once), or null after reporting a type error.
    std::string* string_value(const field_ref& f, cfg_node& v) {
        if (v.kind == cfg_kind::string || v.kind == cfg_kind::json_string) return &v.text;
        error_at_value(f, v, concat({f.key, " expects a string (a layer name in quotes), found ", found(v)}));
        return nullptr;
    }

    std::optional<param_value> param_of(const field_ref& f, const cfg_node& v, const param_desc& p) {
        switch (p.type) {
            case param_type::boolean:
                if (auto x = bool_value(f, v)) return param_value::of_bool(*x);
                return std::nullopt;
            case param_type::uint32:
                if (auto x = uint32_value(f, v)) return param_value::of_uint(*x);
                return std::nullopt;
            case param_type::float32:
                if (auto x = float_value(f, v)) return param_value::of_float(*x);
                return std::nullopt;
            case param_type::enumeration:
                if (auto x = enum_value(f, v, p)) return param_value::of_enum(*x);
                return std::nullopt;
        }
        return std::nullopt;
    }

    // -- messages ----------------------------------------------------------------------------------

    void bind_common(cfg_document& m, const std::string& path, simple_config& out) {
        static constexpr std::string_view fields[] = {"quant_layers", "calibration_config"};
        const context here{path, "kv_cache_quant_config", fields};
        out.quant_layers.reserve(out.quant_layers.size() + m.size());  // an upper bound (a list grows it further)
        for (auto& entry : m) {
            const std::string& key = entry.first;
            cfg_document& child = entry.second;
            if (stopped_) return;
            const field_ref f{here, key, child};
            if (key == "quant_layers") {
                for_each_scalar(f, true, [&](cfg_node& v, const std::string&) {
                    if (std::string* s = string_value(f, v)) out.quant_layers.push_back({std::move(*s), value_location(v)});
                });
            } else if (key == "calibration_config") {
                for_each_message(f, false, [&](cfg_document& c, const std::string& p) {
                    if (out.common) {
                        duplicate_message(f);
                    } else {
                        out.common.emplace();
                        out.common->where = name_location(at(f));
                    }
                    bind_calibration(c, p, "calibration_config", *out.common, out.discarded);
                });
            } else {
                unknown_field(f, fields);
            }
        }
    }

    void bind_override(cfg_document& m, const std::string& path, override_config& o, std::vector<algorithm_config>& discarded) {
        static constexpr std::string_view fields[] = {"layer_name", "kv_data_quant_config"};
        const context here{path, "override_layers_configs", fields};
        for (auto& entry : m) {
            const std::string& key = entry.first;
            cfg_document& child = entry.second;
            if (stopped_) return;
            const field_ref f{here, key, child};
            if (key == "layer_name") {
                for_each_scalar(f, false, [&](cfg_node& v, const std::string&) {
                    if (std::string* s = string_value(f, v)) {
                        if (o.layer_name) duplicate_scalar(f, v, *s);
                        o.layer_name = located_string{std::move(*s), value_location(v)};
                    }
                });
            } else if (key == "kv_data_quant_config") {
                for_each_message(f, false, [&](cfg_document& c, const std::string& p) {
                    if (o.config) {
                        duplicate_message(f);
                    } else {
                        o.config.emplace();
                        o.config->where = name_location(at(f));
                    }
                    bind_calibration(c, p, "kv_data_quant_config", *o.config, discarded);
                });
            } else {
                unknown_field(f, fields);
            }
        }
    }

    void bind_calibration(cfg_document& m, const std::string& path, std::string_view name, algorithm_config& cfg,
                          std::vector<algorithm_config>& discarded) {
        const std::span<const std::string_view> blocks(names_.data(), algorithms_.size());
        const context here{path, name, blocks};
        for (auto& entry : m) {
            const std::string& key = entry.first;
            cfg_document& child = entry.second;
            if (stopped_) return;
            const field_ref f{here, key, child};
            std::size_t index = algorithms_.size();
            for (std::size_t i = 0; i < algorithms_.size(); ++i) {
                if (algorithms_[i].cfg_block == key) index = i;
            }
            if (index == algorithms_.size()) {
                // A parameter written without its algorithm block is a common slip: say where it goes.
                std::string extra;
                for (const auto& a : algorithms_) {
                    if (a.find_param(key) >= 0) {
                        extra = concat({"; ", key, " is a field of ", a.cfg_block, ": write ", a.cfg_block, " { ", key, ": ... }"});
                        break;
                    }
                }
                unknown_field(f, blocks, extra);
                continue;
            }
            for_each_message(f, false, [&](cfg_document& block, const std::string& p) {
                if (cfg.algorithm && *cfg.algorithm == index) {
                    duplicate_message(f);
                } else {
                    if (cfg.algorithm) replace_algorithm(f, path, name, cfg, discarded);
                    cfg.algorithm = index;
                    cfg.algorithm_where = name_location(at(f));
                    cfg.values = std::vector<std::optional<param_value>>(algorithms_[index].params.size());
                    cfg.value_locations = std::vector<source_location>(algorithms_[index].params.size());
                }
                bind_algorithm(block, p, algorithms_[index], cfg);
            });
        }
    }

    /// A second algorithm block in one CalibrationConfig: warns, and keeps the first one's values
    /// in `discarded` (checked with warnings only); `cfg` keeps its own place.
    KVCALI_COLD void replace_algorithm(const field_ref& f, const std::string& path, std::string_view name, algorithm_config& cfg,
                                       std::vector<algorithm_config>& discarded) {
        report(severity::warning, name_location(at(f)), member_path(path, f.key),
               concat({name, " sets both ", algorithms_[*cfg.algorithm].cfg_block, " and ", f.key,
                       " (one algorithm per block); the last one, ", f.key, ", is used"}));
        source_location where = cfg.where;
        discarded.push_back(std::move(cfg));
        cfg.where = std::move(where);
    }

    void bind_algorithm(cfg_document& m, const std::string& path, const algorithm_desc& algo, algorithm_config& cfg) {
        const std::span<const std::string_view> names(
            names_.data() + first_param_name_[static_cast<std::size_t>(&algo - algorithms_.data())], algo.params.size());
        const context here{path, algo.cfg_block, names};
        for (auto& entry : m) {
            const std::string& key = entry.first;
            cfg_document& child = entry.second;
            if (stopped_) return;
            const field_ref f{here, key, child};
            const int index = algo.find_param(key);
            if (index < 0) {
                std::string extra;
                for (const auto& other : algorithms_) {
                    if (other.cfg_block != algo.cfg_block && other.find_param(key) >= 0) {
                        extra = concat({"; ", key, " is a field of ", other.cfg_block, ", not of ", algo.cfg_block});
                        break;
                    }
                }
                if (!extra.empty()) {
                    const auto near = closest_names(key, names, [](std::string_view s) { return s; });
                    extra += did_you_mean(near);
                    unknown_field(f, names, extra);
                } else {
                    unknown_field(f, names);
                }
                continue;
            }
            const auto i = static_cast<std::size_t>(index);
            for_each_scalar(f, false, [&](cfg_node& v, const std::string&) {
                if (auto value = param_of(f, v, algo.params[i])) {
                    if (cfg.values[i]) duplicate_scalar(f, v, v.text);
                    cfg.values[i] = *value;
                    cfg.value_locations[i] = value_location(v);
                }
            });
        }
    }

    const std::string& file_;
    bool json_;
    algorithm_registry algorithms_;
    std::vector<std::string_view> names_;        // cfg_block of each algorithm, then each one's parameters' cfg names
    std::vector<std::size_t> first_param_name_;  // where each algorithm's parameter names start in names_
    diagnostics& diags_;
    const simple_config_limits& limits_;
    std::size_t errors_ = 0;
    bool stopped_ = false;
};

}  // namespace kvcali::detail
