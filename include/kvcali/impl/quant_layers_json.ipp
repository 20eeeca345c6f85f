// kvcali: the quant_layers argument as JSON (declared in quant_layers_json.hpp): included at the end of that header (header-only use)
// or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "../detail/json_input.hpp"
#include "../error.hpp"
#include "../quant_layers_json.hpp"
#include "../simple_config.hpp"

namespace kvcali {

KVCALI_DECL std::optional<quant_layers> parse_quant_layers_json(std::string_view text, const std::string& origin, diagnostics& diags) {
    boost::json::value doc;
    if (!detail::parse_json(text, origin, errc::invalid_argument, "the quant_layers argument", doc, diags)) return std::nullopt;
    const auto* object = doc.if_object();
    if (object == nullptr) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_argument,
                   .message = "the quant_layers argument must be an object {\"kv_cache_quant_layers\": [names...]}",
                   .where = {origin, 0, 0},
                   .layer = {},
                   .json_path = "$"});
        return std::nullopt;
    }
    quant_layers out;
    out.origin = "quant_layers";
    if (object->empty()) return out;
    const auto* list = object->if_contains("kv_cache_quant_layers");
    for (const auto& kv : *object) {
        if (kv.key() != "kv_cache_quant_layers") {
            diags.add({.severity = severity::warning,
                       .category = errc::invalid_argument,
                       .message = "key \"" + std::string(kv.key()) +
                                  "\" of the quant_layers argument is ignored (only kv_cache_quant_layers is read)",
                       .where = {origin, 0, 0},
                       .layer = {},
                       .json_path = "$." + std::string(kv.key())});
        }
    }
    if (list == nullptr) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_argument,
                   .message = "the quant_layers argument has no \"kv_cache_quant_layers\" key",
                   .where = {origin, 0, 0},
                   .layer = {},
                   .json_path = "$"});
        return std::nullopt;
    }
    const auto* array = list->if_array();
    if (array == nullptr) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_argument,
                   .message = "kv_cache_quant_layers must be an array of layer names",
                   .where = {origin, 0, 0},
                   .layer = {},
                   .json_path = "$.kv_cache_quant_layers"});
        return std::nullopt;
    }
    bool ok = true;
    out.names.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
        const auto* s = (*array)[i].if_string();
        if (s == nullptr) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_argument,
                       .message = "kv_cache_quant_layers[" + std::to_string(i) + "] must be a string (a layer name)",
                       .where = {origin, 0, 0},
                       .layer = {},
                       .json_path = "$.kv_cache_quant_layers[" + std::to_string(i) + "]"});
            ok = false;
            continue;
        }
        out.names.emplace_back(*s);
    }
    if (!ok) return std::nullopt;
    return out;
}

KVCALI_DECL std::optional<quant_layers> parse_layer_names_json(std::string_view text, const std::string& origin, diagnostics& diags) {
    boost::json::value doc;
    if (!detail::parse_json(text, origin, errc::invalid_argument, "the layer list", doc, diags)) return std::nullopt;
    const auto* array = doc.if_array();
    if (array == nullptr) {
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
    bool ok = true;
    out.names.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
        const auto* s = (*array)[i].if_string();
        if (s == nullptr) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_argument,
                       .message = "[" + std::to_string(i) + "] must be a string (a layer name)",
                       .where = {origin, 0, 0},
                       .layer = {},
                       .json_path = "$[" + std::to_string(i) + "]"});
            ok = false;
            continue;
        }
        out.names.emplace_back(*s);
    }
    if (!ok) return std::nullopt;
    return out;
}

}  // namespace kvcali
