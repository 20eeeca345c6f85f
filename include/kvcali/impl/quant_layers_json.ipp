// kvcali: the quant_layers argument as JSON (declared in quant_layers_json.hpp): included at the end of that header (header-only use)
// or by <kvcali/src.hpp> (separate compilation). Read by the library's one JSON reader.
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../detail/concat.hpp"
#include "../detail/json_reader.hpp"
#include "../error.hpp"
#include "../quant_layers_json.hpp"
#include "../simple_config.hpp"

namespace kvcali {

namespace detail {

/// Records that `text` (`what`, named `origin`) is not valid JSON, at the reader's error.
inline void not_valid_json(std::string_view text, const std::string& origin, std::string_view what, const json_parser& parser,
                           diagnostics& diags) {
    const bool bom = text.starts_with("\xEF\xBB\xBF");
    diags.add({.severity = severity::error,
               .category = errc::invalid_argument,
               .message = concat({what, " is not valid JSON: ",
                                  bom ? std::string_view("it starts with a UTF-8 byte order mark, which JSON does not allow; remove it")
                                      : std::string_view(parser.error())}),
               .where = line_index(text).at(bom ? 0 : parser.error_offset(), origin),
               .layer = {},
               .json_path = {}});
}

/// The layer names of `array` (its elements must be strings) into `out`; false, with an error per
/// element that is not a string, otherwise. `path` is the array's JSON path (`$...`).
inline bool layer_names_of(const json_node& array, const std::string& origin, std::string_view path, quant_layers& out,
                           diagnostics& diags) {
    bool ok = true;
    out.names.reserve(array.items.size());
    for (std::size_t i = 0; i < array.items.size(); ++i) {
        const json_node& item = array.items[i];
        if (item.type != json_node::kind::string) {
            const std::string element = concat({path.substr(1), "[", i, "]"});
            diags.add({.severity = severity::error,
                       .category = errc::invalid_argument,
                       .message = concat({element.front() == '.' ? std::string_view(element).substr(1) : std::string_view(element),
                                          " must be a string (a layer name)"}),
                       .where = {origin, 0, 0},
                       .layer = {},
                       .json_path = concat({"$", element})});
            ok = false;
            continue;
        }
        out.names.push_back(item.string);
    }
    return ok;
}

}  // namespace detail

KVCALI_DECL std::optional<quant_layers> parse_quant_layers_json(std::string_view text, const std::string& origin, diagnostics& diags) {
    constexpr std::string_view what = "the quant_layers argument";
    constexpr std::string_view list_key = "kv_cache_quant_layers";
    auto invalid = [&](std::string message, std::string path) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_argument,
                   .message = std::move(message),
                   .where = {origin, 0, 0},
                   .layer = {},
                   .json_path = std::move(path)});
        return std::nullopt;
    };
    // The whole text is read first (a syntax error anywhere is the one error). A key written twice
    // counts once, with its last value, as Python's json module reads it.
    detail::json_parser parser(text, 64, false);
    std::vector<std::string> other_keys;
    std::optional<detail::json_node> list;
    detail::json_scalar ignored;  // the values of other keys, or a document that is not an object
    std::string scratch;
    bool object = false;
    bool ok = parser.document_start();
    if (ok && parser.peek() == '{') {
        object = true;
        ok = parser.read_object(1, [&](std::string_view key, std::size_t) {
            if (key == list_key) {
                list.emplace();
                return parser.read_value(*list, 1);
            }
            if (std::find(other_keys.begin(), other_keys.end(), key) == other_keys.end()) other_keys.emplace_back(key);
            return parser.skip_value(ignored, scratch, 1);
        });
    } else if (ok) {
        ok = parser.skip_value(ignored, scratch, 0);
    }
    if (ok) ok = parser.document_end();
    if (!ok) {
        detail::not_valid_json(text, origin, what, parser, diags);
        return std::nullopt;
    }
    if (!object) return invalid("the quant_layers argument must be an object {\"kv_cache_quant_layers\": [names...]}", "$");
    quant_layers out;
    out.origin = "quant_layers";
    if (other_keys.empty() && !list) return out;
    for (const std::string& key : other_keys) {
        diags.add(
            {.severity = severity::warning,
             .category = errc::invalid_argument,
             .message = detail::concat({"key \"", key, "\" of the quant_layers argument is ignored (only kv_cache_quant_layers is read)"}),
             .where = {origin, 0, 0},
             .layer = {},
             .json_path = detail::concat({"$.", key})});
    }
    if (!list) return invalid("the quant_layers argument has no \"kv_cache_quant_layers\" key", "$");
    if (list->type != detail::json_node::kind::array)
        return invalid("kv_cache_quant_layers must be an array of layer names", "$.kv_cache_quant_layers");
    if (!detail::layer_names_of(*list, origin, "$.kv_cache_quant_layers", out, diags)) return std::nullopt;
    return out;
}

KVCALI_DECL std::optional<quant_layers> parse_layer_names_json(std::string_view text, const std::string& origin, diagnostics& diags) {
    detail::json_parser parser(text, 64, false);
    detail::json_node array;
    if (!(parser.document_start() && parser.read_value(array, 0) && parser.document_end())) {
        detail::not_valid_json(text, origin, "the layer list", parser, diags);
        return std::nullopt;
    }
    if (array.type != detail::json_node::kind::array) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_argument,
                   .message = "expected a JSON array of layer names [\"name\", ...]",
                   .where = {origin, 0, 0},
                   .layer = {},
                   .json_path = "$"});
        return std::nullopt;
    }
    quant_layers out;
    out.origin = "quant_layers";
    if (!detail::layer_names_of(array, origin, "$", out, diags)) return std::nullopt;
    return out;
}

}  // namespace kvcali
