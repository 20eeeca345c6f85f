// kvcali: the config.json reader (declared in config_reader.hpp): included at the end of that
// header (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../calibration/scale.hpp"
#include "../config_reader.hpp"
#include "../detail/json_reader.hpp"
#include "../detail/show_value.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "../json_format.hpp"
#include "../layer_table.hpp"
#include "../policy.hpp"
#include "../resolved_config.hpp"
#include "../suggest.hpp"

namespace kvcali {

namespace detail {

inline std::string describe_json(const json_node& n) {
    switch (n.type) {
        case json_node::kind::null: return "null";
        case json_node::kind::boolean: return n.boolean ? "true" : "false";
        case json_node::kind::number: return (n.integer_syntax ? "the integer " : "the number ") + std::string(n.number);
        case json_node::kind::string: {
            std::string s = "the string ";
            append_json_string(s, n.string);
            return s;
        }
        case json_node::kind::array: return "an array";
        case json_node::kind::object: return "an object";
    }
    return "?";
}

inline std::string json_quoted(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

/// Binds a parsed config.json to the schema the policies describe, checking as it goes.
class config_json_binder {
public:
    config_json_binder(std::string_view text, const std::string& file, algorithm_registry algorithms, const layer_table* model,
                       diagnostics& diags)
        : text_(text), file_(file), algorithms_(algorithms), model_(model), diags_(diags), lines_(text) {}

    resolved_config bind() {
        resolved_config out;
        out.algorithms = algorithms_;
        const json_document doc = parse_json_document(text_);
        if (!doc.ok) report(severity::error, errc::parse_error, "$", doc.error_offset, "not valid JSON: " + doc.error);
        for (const auto& d : doc.duplicates) {
            const bool layer_key = d.depth == 1 && d.key != "batch_num" && d.key != "activation_offset";
            const auto first = lines_.at(d.first_offset, file_);
            report(severity::error, layer_key ? errc::duplicate_layer : errc::parse_error, json_path_member(d.object_path, d.key), d.offset,
                   (layer_key ? "layer " + json_quoted(d.key) + " is given twice" : "duplicate key " + json_quoted(d.key)) + " (first at " +
                       std::to_string(first.line) + ":" + std::to_string(first.column) + ")",
                   layer_key ? d.key : std::string());
        }
        if (!doc.ok) return out;
        const json_node& root = doc.root;
        if (root.type != json_node::kind::object) {
            report(severity::error, errc::parse_error, "$", root.offset,
                   "config.json must be a JSON object {\"batch_num\": ..., \"activation_offset\": ..., \"<layer>\": {...}}, found " +
                       describe_json(root));
            return out;
        }
        bool has_batch_num = false, has_activation_offset = false;
        std::size_t layer_keys = 0;
        for (const auto& m : root.members) {
            const std::string path = json_path_member("$", m.key);
            if (m.key == "batch_num") {
                has_batch_num = true;
                out.batch_num_source = {origin::config_file, lines_.at(m.value.offset, file_)};
                if (auto v = read_value(param_type::uint32, {}, m.value, path, "batch_num")) {
                    out.batch_num = v->uint;
                    if (v->uint == 0)
                        report(severity::error, errc::invalid_value, path, m.value.offset, "batch_num = 0: batch_num must be at least 1");
                }
            } else if (m.key == "activation_offset") {
                has_activation_offset = true;
                out.activation_offset_source = {origin::config_file, lines_.at(m.value.offset, file_)};
                if (auto v = read_value(param_type::boolean, {}, m.value, path, "activation_offset")) out.activation_offset = v->boolean;
            } else {
                ++layer_keys;
                bind_layer(m, path, out);
            }
        }
        if (!has_batch_num) {
            report(severity::warning, errc::parse_error, "$", root.offset, "batch_num is missing; the default 1 is used");
        }
        if (!has_activation_offset) {
            report(severity::warning, errc::parse_error, "$", root.offset, "activation_offset is missing; the default true is used");
        }
        if (layer_keys == 0) {
            report(severity::error, errc::no_quant_layers, "$", root.offset,
                   "no layer to quantize: config.json has no key besides batch_num and activation_offset");
        }
        return out;
    }

private:
    KVCALI_COLD void report(severity level, errc category, const std::string& path, std::size_t offset, std::string message,
                            std::string layer = {}) {
        diags_.add({.severity = level,
                    .category = category,
                    .message = path + ": " + message,
                    .where = lines_.at(offset, file_),
                    .layer = std::move(layer),
                    .json_path = path});
    }

    /// Reads one value of a declared type; reports and returns empty when the JSON does not fit.
    std::optional<param_value> read_value(param_type type, std::span<const enumerator_desc> enumerators, const json_node& n,
                                          const std::string& path, std::string_view name, const std::string& layer = {}) {
        const std::string what(name);
        auto wrong = [&](const std::string& expected) -> std::optional<param_value> {
            report(severity::error, errc::parse_error, path, n.offset, what + " must be " + expected + ", found " + describe_json(n),
                   layer);
            return std::nullopt;
        };
        switch (type) {
            case param_type::boolean:
                if (n.type != json_node::kind::boolean) return wrong("true or false");
                return param_value::of_bool(n.boolean);
            case param_type::uint32: {
                if (n.type != json_node::kind::number || !n.integer_syntax) return wrong("an integer (uint32)");
                std::uint64_t v = 0;
                const bool negative = n.number.front() == '-';
                const std::string_view digits = n.number.substr(negative ? 1 : 0);
                const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
                if ((negative && v != 0) || ec != std::errc() || ptr != digits.data() + digits.size() || v > 4294967295u) {
                    report(severity::error, errc::parse_error, path, n.offset,
                           what + " = " + std::string(n.number) + ": out of the range of uint32 (0..4294967295)", layer);
                    return std::nullopt;
                }
                return param_value::of_uint(static_cast<std::uint32_t>(v));
            }
            case param_type::float32: {
                if (n.type != json_node::kind::number) return wrong("a float");
                if (n.integer_syntax) {
                    report(severity::error, errc::parse_error, path, n.offset,
                           what + " must be a float written with a decimal point or an exponent (" + std::string(n.number) + ".0, not " +
                               std::string(n.number) + "), as the reference's consumer requires",
                           layer);
                    return std::nullopt;
                }
                const double exact = json_number_to_double(n.number);
                const float value = double_to_float32(exact);
                if (std::isfinite(value)) {
                    const std::string shortest = float32_repr(value);
                    double written = 0.0;
                    std::from_chars(shortest.data(), shortest.data() + shortest.size(), written);
                    if (written != exact) {
                        report(severity::warning, errc::invalid_value, path, n.offset,
                               what + " = " + std::string(n.number) + " holds more precision than float32: it is read as " + shortest,
                               layer);
                    }
                }
                return param_value::of_float(value);
            }
            case param_type::enumeration: {
                std::string names;
                for (const auto& e : enumerators) {
                    names += (names.empty() ? "" : ", ") + std::to_string(e.number) + " (" + std::string(e.name) + ")";
                }
                if (n.type != json_node::kind::number || !n.integer_syntax) return wrong("an integer: one of " + names);
                long long v = 0;
                const auto [ptr, ec] = std::from_chars(n.number.data(), n.number.data() + n.number.size(), v);
                if (ec == std::errc() && ptr == n.number.data() + n.number.size()) {
                    for (const auto& e : enumerators) {
                        if (e.number == v) return param_value::of_enum(e.number);
                    }
                }
                report(severity::error, errc::parse_error, path, n.offset,
                       what + " = " + std::string(n.number) + ": must be one of " + names, layer);
                return std::nullopt;
            }
        }
        return std::nullopt;
    }

    void check_model(const std::string& name, const json_member& m, const std::string& path) {
        if (name.empty()) {
            report(severity::error, errc::unknown_layer, path, m.key_offset, "the empty layer name is the model's root, not a layer", name);
            return;
        }
        if (model_ == nullptr) return;
        const layer_info* layer = model_->get(name);
        if (layer == nullptr) {
            std::string message = "layer " + json_quoted(name) + " does not exist in the model";
            if (const auto* targets = model_->find_alias(name)) {
                message += "; it is the module path of ";
                for (std::size_t i = 0; i < targets->size(); ++i) message += (i ? ", " : "") + json_quoted((*model_)[(*targets)[i]].name);
                message += ", and config.json names layers by their node names";
            } else if (suggestions_left_ > 0) {
                --suggestions_left_;
                message += did_you_mean(closest_names(name, *model_, [](const layer_info& l) -> std::string_view {
                    return l.eligible ? std::string_view(l.name) : std::string_view();
                }));
            }
            report(severity::error, errc::unknown_layer, path, m.key_offset, std::move(message), name);
        } else if (!layer->eligible) {
            report(severity::error, errc::unsupported_layer_type, path, m.key_offset,
                   "layer " + json_quoted(name) + " is of type " + layer->type + ", which does not support KV-cache quantization", name);
        }
    }

    std::string known_algorithms() const {
        std::string out;
        for (std::size_t i = 0; i < algorithms_.size(); ++i) {
            if (i > 0) out += i + 1 == algorithms_.size() ? " or " : ", ";
            out += json_quoted(algorithms_[i].act_algo);
        }
        return out;
    }

    void bind_layer(const json_member& m, const std::string& path, resolved_config& out) {
        const std::string& name = m.key;
        const json_node& body = m.value;
        if (body.type != json_node::kind::object) {
            static constexpr std::string_view globals[] = {"batch_num", "activation_offset"};
            report(severity::error, errc::parse_error, path, body.offset,
                   "a top-level key other than batch_num and activation_offset names a layer, so its value must be an object "
                   "{\"kv_data_quant_config\": {...}}; found " +
                       describe_json(body) + did_you_mean(closest_names(name, globals, [](std::string_view s) { return s; })),
                   name);
            return;
        }
        check_model(name, m, path);
        const json_member* config = nullptr;
        for (const auto& member : body.members) {
            if (member.key == "kv_data_quant_config") {
                config = &member;
                continue;
            }
            static constexpr std::string_view known[] = {"kv_data_quant_config"};
            report(severity::warning, errc::parse_error, json_path_member(path, member.key), member.key_offset,
                   "unknown key " + json_quoted(member.key) + " in a layer object is ignored" +
                       did_you_mean(closest_names(member.key, known, [](std::string_view s) { return s; })),
                   name);
        }
        if (config == nullptr) {
            report(severity::error, errc::parse_error, path, body.offset, "layer " + json_quoted(name) + " has no kv_data_quant_config",
                   name);
            return;
        }
        const std::string config_path = path + ".kv_data_quant_config";
        const json_node& block = config->value;
        if (block.type != json_node::kind::object) {
            report(severity::error, errc::parse_error, config_path, block.offset,
                   "kv_data_quant_config must be an object {\"act_algo\": ..., ...}, found " + describe_json(block), name);
            return;
        }
        const json_member* act_algo = block.find("act_algo");
        if (act_algo == nullptr) {
            report(severity::error, errc::parse_error, config_path, block.offset,
                   "kv_data_quant_config has no act_algo (" + known_algorithms() + ")", name);
            return;
        }
        const std::string algo_path = config_path + ".act_algo";
        if (act_algo->value.type != json_node::kind::string) {
            report(severity::error, errc::parse_error, algo_path, act_algo->value.offset,
                   "act_algo must be a string (" + known_algorithms() + "), found " + describe_json(act_algo->value), name);
            return;
        }
        std::optional<std::size_t> algorithm;
        for (std::size_t i = 0; i < algorithms_.size(); ++i) {
            if (algorithms_[i].act_algo == act_algo->value.string) algorithm = i;
        }
        if (!algorithm) {
            report(severity::error, errc::parse_error, algo_path, act_algo->value.offset,
                   "unknown act_algo " + json_quoted(act_algo->value.string) + ": expected " + known_algorithms() +
                       did_you_mean(closest_names(act_algo->value.string, algorithms_, [](const algorithm_desc& a) { return a.act_algo; })),
                   name);
            return;
        }
        const algorithm_desc& algo = algorithms_[*algorithm];
        resolved_layer layer;
        layer.name = name;
        layer.selector = name;
        layer.algorithm = *algorithm;
        layer.listed = {origin::config_file, lines_.at(m.key_offset, file_)};
        layer.algorithm_source = {origin::config_file, lines_.at(act_algo->value.offset, file_)};
        layer.values.resize(algo.params.size());
        layer.sources.resize(algo.params.size());
        std::vector<std::size_t> value_offsets(algo.params.size(), block.offset);
        std::vector<bool> from_file(algo.params.size(), false);
        bool any_failed = false;  // a value present but unreadable: skip the cross-field checks

        for (const auto& member : block.members) {
            if (member.key == "act_algo") continue;
            const std::string value_path = json_path_member(config_path, member.key);
            std::vector<std::size_t> matching;
            for (std::size_t i = 0; i < algo.params.size(); ++i) {
                if (algo.params[i].json_name == member.key) matching.push_back(i);
            }
            if (matching.empty()) {
                std::string message = "unknown key " + json_quoted(member.key) + " in kv_data_quant_config (act_algo " +
                                      json_quoted(algo.act_algo) + ") is ignored";
                std::string owner;
                for (const auto& other : algorithms_) {
                    for (const auto& p : other.params) {
                        if (owner.empty() && &other != &algo && p.json_name == member.key) owner = std::string(other.act_algo);
                    }
                }
                if (!owner.empty()) {
                    message += " (it is a parameter of " + owner + ")";
                } else {
                    message += did_you_mean(closest_names(member.key, algo.params, [](const param_desc& p) { return p.json_name; }));
                }
                report(severity::warning, errc::parse_error, value_path, member.key_offset, std::move(message), name);
                continue;
            }
            const param_desc& first = algo.params[matching.front()];
            if (matching.size() == 1 && first.json_slot < 0) {
                if (auto v = read_value(first.type, first.enumerators, member.value, value_path, first.json_name, name)) {
                    layer.values[matching.front()] = v;
                    layer.sources[matching.front()] = {origin::config_file, lines_.at(member.value.offset, file_)};
                    value_offsets[matching.front()] = member.value.offset;
                    from_file[matching.front()] = true;
                } else {
                    any_failed = true;
                }
                continue;
            }
            // A JSON array shared by several fields, one per slot (`search_range`: [start, end]).
            std::string fields;
            for (std::size_t k = 0; k < matching.size(); ++k) {
                for (std::size_t i : matching) {
                    if (algo.params[i].json_slot == static_cast<int>(k))
                        fields += (fields.empty() ? "" : ", ") + std::string(algo.params[i].cfg_name);
                }
            }
            if (member.value.type != json_node::kind::array || member.value.items.size() != matching.size()) {
                report(severity::error, errc::parse_error, value_path, member.value.offset,
                       std::string(first.json_name) + " must be an array of " + std::to_string(matching.size()) + " values [" + fields +
                           "], found " +
                           (member.value.type == json_node::kind::array ? "an array of " + std::to_string(member.value.items.size())
                                                                        : describe_json(member.value)),
                       name);
                any_failed = true;
                continue;
            }
            for (std::size_t i : matching) {
                const param_desc& p = algo.params[i];
                const auto slot = static_cast<std::size_t>(p.json_slot);
                if (slot >= member.value.items.size()) continue;
                const json_node& item = member.value.items[slot];
                const std::string item_path = json_path_index(value_path, slot);
                if (auto v = read_value(p.type, p.enumerators, item, item_path,
                                        std::string(first.json_name) + "[" + std::to_string(slot) + "] (" + std::string(p.cfg_name) + ")",
                                        name)) {
                    layer.values[i] = v;
                    layer.sources[i] = {origin::config_file, lines_.at(item.offset, file_)};
                    value_offsets[i] = item.offset;
                    from_file[i] = true;
                } else {
                    any_failed = true;
                }
            }
        }

        // Missing parameters: the policy's default, with a warning (the writer always writes them).
        std::vector<std::string_view> warned;
        for (std::size_t i = 0; i < algo.params.size(); ++i) {
            const param_desc& p = algo.params[i];
            if (from_file[i] || !p.default_value) continue;
            layer.values[i] = p.default_value;
            layer.sources[i] = {origin::policy_default, {}};
            if (block.find(p.json_name) != nullptr) continue;  // present but invalid: already reported
            if (std::find(warned.begin(), warned.end(), p.json_name) != warned.end()) continue;
            warned.push_back(p.json_name);
            std::string shown;
            for (std::size_t k = i; k < algo.params.size() && algo.params[k].json_name == p.json_name; ++k) {
                if (algo.params[k].default_value)
                    shown += (shown.empty() ? "" : ", ") + show_value(algo.params[k], *algo.params[k].default_value);
            }
            if (p.json_slot >= 0) shown = "[" + shown + "]";
            report(severity::warning, errc::parse_error, config_path, block.offset,
                   std::string(p.json_name) + " is missing; the default " + shown + " is used", name);
        }

        // Value checks, as the policies state them (spec §3.6), with the reference's warnings.
        for (std::size_t i = 0; i < algo.params.size(); ++i) {
            const param_desc& p = algo.params[i];
            if (!p.check || !layer.values[i] || !from_file[i]) continue;
            const check_result r = p.check(*layer.values[i]);
            if (!r.level) continue;
            std::string value_path = json_path_member(config_path, p.json_name);
            if (p.json_slot >= 0) value_path = json_path_index(value_path, static_cast<std::size_t>(p.json_slot));
            report(*r.level, errc::invalid_value, value_path, value_offsets[i],
                   std::string(p.cfg_name) + " = " + show_value(p, *layer.values[i]) + ": " + std::string(p.cfg_name) + " " + r.message,
                   name);
        }
        if (algo.check && !any_failed) {
            std::vector<check_result> found;
            algo.check(param_view(algo.params, layer.values), found);
            for (const auto& r : found) {
                if (r.level) report(*r.level, errc::invalid_value, config_path, block.offset, r.message, name);
            }
        }
        out.layers.push_back(std::move(layer));
    }

    std::string_view text_;
    const std::string& file_;
    algorithm_registry algorithms_;
    const layer_table* model_;
    diagnostics& diags_;
    line_index lines_;
    std::size_t suggestions_left_ = 16;
};

}  // namespace detail

KVCALI_DECL resolved_config read_config_json(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                             diagnostics& diags, const layer_table* model) {
    return detail::config_json_binder(text, file, algorithms, model, diags).bind();
}

KVCALI_DECL resolved_config read_config_json_file(const std::filesystem::path& path, algorithm_registry algorithms, diagnostics& diags,
                                                  const layer_table* model) {
    const std::string text = read_file(path);
    return read_config_json(text, path.string(), algorithms, diags, model);
}

KVCALI_DECL layer_calibration calibration_of(const resolved_config& config, const resolved_layer& layer) {
    const algorithm_desc& algo = config.algorithm_of(layer);
    layer_calibration out;
    out.name = layer.name;
    out.act_algo = algo.act_algo;
    out.algorithm = layer.algorithm;
    out.batch_num = config.batch_num;
    out.with_offset = config.activation_offset;
    for (std::size_t i = 0; i < algo.params.size() && i < layer.values.size(); ++i) {
        if (!layer.values[i]) continue;
        const param_value& v = *layer.values[i];
        calibration_param p{algo.params[i].cfg_name, v, 0.0};
        switch (v.type) {
            case param_type::boolean: p.decimal = v.boolean ? 1.0 : 0.0; break;
            case param_type::uint32: p.decimal = static_cast<double>(v.uint); break;
            case param_type::float32: p.decimal = decimal_double(v.real); break;
            case param_type::enumeration: p.decimal = static_cast<double>(v.enumerator); break;
        }
        if (p.name == "asymmetric" && v.type == param_type::boolean) out.with_offset = v.boolean;
        if (p.name == "quant_granularity" && v.type == param_type::enumeration) {
            out.granularity = v.enumerator == 1 ? granularity::per_channel : granularity::per_tensor;
        }
        out.params.push_back(p);
    }
    return out;
}

KVCALI_DECL std::vector<layer_calibration> calibration_plan(const resolved_config& config) {
    std::vector<layer_calibration> out;
    out.reserve(config.layers.size());
    for (const auto& layer : config.layers) out.push_back(calibration_of(config, layer));
    return out;
}

}  // namespace kvcali
