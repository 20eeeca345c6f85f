// kvcali internals: the JSON that export reads (a checkpoint's config.json, model.safetensors.index.json
// and description to merge into, safetensors headers), parsed by the library's one JSON reader
// (detail/json_reader.hpp) into Boost.JSON values, export's document model. The values are of the
// kinds Boost.JSON's parser gave (see push_json_number), so a merged file is written back as before.
#pragma once

#include <boost/json/value.hpp>
#include <boost/json/value_stack.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

#include "../error.hpp"
#include "concat.hpp"
#include "json_reader.hpp"
#include "numbers.hpp"

namespace kvcali::detail {

/// Pushes a JSON number's text as Boost.JSON's parser stores it: an integer literal as int64, else
/// uint64, else (beyond uint64) the nearest double; a number with a fraction or an exponent as
/// the nearest double (correctly rounded, where Boost.JSON 1.81 could miss by one ulp); beyond the
/// double range +-inf (as Boost.JSON 1.81), below it +-0, whatever the exponent (Boost.JSON 1.81
/// refused one of 2^31 or more: "exponent overflow").
inline void push_json_number(boost::json::value_stack& stack, std::string_view text, bool integer_syntax) {
    if (integer_syntax) {
        const char* const first = text.data();
        const char* const last = text.data() + text.size();
        std::int64_t i = 0;
        if (const auto r = std::from_chars(first, last, i); r.ec == std::errc() && r.ptr == last) return stack.push_int64(i);
        std::uint64_t u = 0;
        if (const auto r = std::from_chars(first, last, u); r.ec == std::errc() && r.ptr == last) return stack.push_uint64(u);
    }
    stack.push_double(decimal_to_double(text).value_or(0.0));  // (always a value for JSON's number syntax)
}

/// Builds a boost::json::value from the reader's steps through Boost.JSON's value_stack, the
/// builder its own parser feeds: so a key given twice in an object keeps the later value at the
/// place of the first, as before. NaN and Infinity are refused, as by Boost.JSON.
class boost_json_builder {
public:
    boost_json_builder(std::string_view text, std::size_t max_depth) : parser_(text, max_depth, false) {}

    /// Reads the whole text into `out`; false on the first error (see error(), error_offset()).
    bool read(boost::json::value& out) {
        stack_.reset();
        if (!(parser_.document_start() && value(0) && parser_.document_end())) return false;
        out = stack_.release();
        return true;
    }

    const std::string& error() const noexcept { return parser_.error(); }
    std::size_t error_offset() const noexcept { return parser_.error_offset(); }

private:
    /// Pushes the value at the current position, a member or an element of a value at `depth`.
    bool value(std::size_t depth) {
        std::size_t n = 0;
        switch (parser_.peek()) {
            case '{':
                if (!parser_.read_object(depth + 1, [&](std::string_view key, std::size_t) {
                        stack_.push_key(key);
                        ++n;
                        return value(depth + 1);
                    }))
                    return false;
                stack_.push_object(n);
                return true;
            case '[':
                if (!parser_.read_array(depth + 1, [&](std::size_t) { return ++n, value(depth + 1); })) return false;
                stack_.push_array(n);
                return true;
            case '"': {
                std::string_view s;
                if (!parser_.read_string(s, scratch_)) return false;
                stack_.push_string(s);
                return true;
            }
            default: {
                json_scalar scalar;
                if (!parser_.skip_value(scalar, scratch_, depth)) return false;
                switch (scalar.type) {
                    case json_scalar::kind::number: push_json_number(stack_, scalar.number, scalar.integer_syntax); break;
                    case json_scalar::kind::boolean: stack_.push_bool(scalar.boolean); break;
                    default: stack_.push_null(); break;
                }
                return true;
            }
        }
    }

    json_parser parser_;
    boost::json::value_stack stack_;
    std::string scratch_;
};

/// Parses `text` as one JSON value, nested at most `max_depth` levels. On failure records a
/// diagnostic of `category` ("<what> is not valid JSON: ...") at the error's line:column and
/// returns false.
inline bool parse_json(std::string_view text, const std::string& file, errc category, std::string_view what, boost::json::value& out,
                       diagnostics& diags, std::size_t max_depth = 64) {
    auto report = [&](std::size_t offset, const std::string& message) {
        diags.error(category, concat({what, " is not valid JSON: ", message}), line_index(text).at(offset, file));
        return false;
    };
    if (text.starts_with("\xEF\xBB\xBF")) return report(0, "it starts with a UTF-8 byte order mark, which JSON does not allow; remove it");
    boost_json_builder builder(text, max_depth);
    boost::json::value doc;
    if (!builder.read(doc)) return report(builder.error_offset(), builder.error());
    out = std::move(doc);
    return true;
}

}  // namespace kvcali::detail
