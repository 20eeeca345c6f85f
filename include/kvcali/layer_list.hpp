// kvcali: the layer-list model format, a JSON array any framework can dump:
//   [{"name": "model.layers.0.self_attn.k_proj", "type": "Linear", "in": 8, "out": 8}, ...]
// The dotted prefixes of the names exist as containers of type `Module` (as PyTorch's
// named_modules() lists them): a container comes just before its first descendant; an explicit
// entry for a prefix name sets its type and keeps that first position. The root (empty name) is
// not a layer. A name listed twice is an `invalid_model` error. Eligible type: `Linear`.
#pragma once

#include <boost/json/value.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "detail/json_input.hpp"
#include "error.hpp"
#include "io.hpp"
#include "model_graph.hpp"

namespace kvcali {

/// Which type names support KV-cache quantization in a layer list (PyTorch's: exactly `Linear`).
using type_predicate = std::function<bool(std::string_view type_name)>;

inline bool is_torch_linear(std::string_view type_name) { return type_name == "Linear"; }

/// Parses a layer list from JSON text; `file` names it in messages. Problems are recorded in
/// `diags` as `invalid_model` with the JSON path (`[3].name`).
inline layer_table parse_layer_list(std::string_view text, const std::string& file, diagnostics& diags,
                                    const type_predicate& eligible = is_torch_linear) {
    layer_table table;
    boost::json::value doc;
    if (!detail::parse_json(text, file, errc::invalid_model, "the layer list", doc, diags)) return table;
    const auto* array = doc.if_array();
    if (array == nullptr) {
        diags.add({severity::error, errc::invalid_model, "a layer list must be a JSON array of layer objects", {file, 0, 0}, {}, "$"});
        return table;
    }
    table.reserve(array->size() * 2);
    // Implicit containers: a layer's dotted prefixes, inserted just before it when new.
    std::vector<bool> is_explicit;
    is_explicit.reserve(array->size() * 2);
    for (std::size_t i = 0; i < array->size(); ++i) {
        const std::string path = "[" + std::to_string(i) + "]";
        const auto* object = (*array)[i].if_object();
        if (object == nullptr) {
            diags.add({severity::error, errc::invalid_model, path + " must be an object {\"name\", \"type\"}", {file, 0, 0}, {}, path});
            continue;
        }
        const auto* name_value = object->if_contains("name");
        const auto* type_value = object->if_contains("type");
        if (name_value == nullptr || !name_value->is_string()) {
            diags.add({severity::error, errc::invalid_model, path + ".name must be a string", {file, 0, 0}, {}, path + ".name"});
            continue;
        }
        if (type_value == nullptr || !type_value->is_string()) {
            diags.add({severity::error, errc::invalid_model, path + ".type must be a string", {file, 0, 0}, {}, path + ".type"});
            continue;
        }
        const std::string_view name(name_value->get_string());
        const std::string_view type(type_value->get_string());
        if (name.empty()) {
            diags.add({severity::error, errc::invalid_model, path + ".name is empty (the root module is not a layer)",
                       {file, 0, 0}, {}, path + ".name"});
            continue;
        }
        for (std::size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
            const std::string_view prefix = name.substr(0, dot);
            if (prefix.empty() || table.find(prefix) != layer_table::npos) continue;
            table.add(std::string(prefix), "Module", eligible("Module"));
            is_explicit.push_back(false);
        }
        const std::size_t at = table.find(name);
        if (at == layer_table::npos) {
            table.add(std::string(name), std::string(type), eligible(type));
            is_explicit.push_back(true);
        } else if (!is_explicit[at]) {
            table[at].type = std::string(type);
            table[at].eligible = eligible(type);
            is_explicit[at] = true;
        } else {
            diags.add({severity::error, errc::invalid_model, path + ".name: layer \"" + std::string(name) + "\" is listed twice",
                       {file, 0, 0}, std::string(name), path + ".name"});
        }
    }
    return table;
}

/// Reads a layer-list file; throws `kvcali::error` (io_error or invalid_model).
inline layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible = is_torch_linear) {
    const std::string text = read_file(path);
    diagnostics diags;
    layer_table table = parse_layer_list(text, path.string(), diags, eligible);
    diags.throw_if_errors();
    return table;
}

}  // namespace kvcali
