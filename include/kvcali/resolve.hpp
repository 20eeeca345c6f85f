// kvcali: resolution. Layer table + simple config (or the quant_layers argument) -> the resolved
// document, with every problem collected (spec §3). Plain, non-template code.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "error.hpp"
#include "json_format.hpp"
#include "model_graph.hpp"
#include "resolved_config.hpp"
#include "selector.hpp"
#include "simple_config.hpp"
#include "suggest.hpp"

namespace kvcali {

namespace detail {

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using string_set = std::unordered_set<std::string, string_hash, std::equal_to<>>;

inline std::string quote_name(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

inline std::string show_value(const param_desc& p, const param_value& v) {
    switch (v.type) {
        case param_type::boolean: return v.boolean ? "true" : "false";
        case param_type::uint32: return std::to_string(v.uint);
        case param_type::float32: return float32_repr(v.real);
        case param_type::enumeration:
            for (const auto& e : p.enumerators) {
                if (e.number == v.enumerator) return std::string(e.name);
            }
            return std::to_string(v.enumerator);
    }
    return {};
}

/// The values of one algorithm block after defaults, with their sources.
struct block_values {
    std::size_t algorithm = 0;
    std::vector<std::optional<param_value>> values;
    std::vector<provenance> sources;
    provenance algorithm_source;
};

/// Fills defaults into a block and checks it. `used`: errors are errors; otherwise the block is
/// not used by any layer, so its problems are warnings (strict mode still makes them errors).
inline block_values resolve_block(const algorithm_config* block, origin from, algorithm_registry algorithms,
                                  bool used, const source_location& fallback, diagnostics& diags) {
    block_values out;
    out.algorithm = block && block->algorithm ? *block->algorithm : 0;
    const algorithm_desc& algo = algorithms[out.algorithm];
    out.algorithm_source = block && block->algorithm ? provenance{from, block->algorithm_where}
                                                     : provenance{origin::policy_default, {}};
    out.values.resize(algo.params.size());
    out.sources.resize(algo.params.size());
    const source_location& block_where = block && block->algorithm ? block->algorithm_where : fallback;
    for (std::size_t i = 0; i < algo.params.size(); ++i) {
        const bool set = block && block->algorithm && i < block->values.size() && block->values[i].has_value();
        if (set) {
            out.values[i] = block->values[i];
            out.sources[i] = {from, i < block->value_locations.size() ? block->value_locations[i] : block_where};
        } else {
            out.values[i] = algo.params[i].default_value;
            out.sources[i] = {origin::policy_default, {}};
        }
    }
    auto report = [&](const check_result& r, std::string message, const source_location& where) {
        if (!r.level) return;
        const bool as_error = used && *r.level == severity::error;
        if (!used) message += " (not used by any layer)";
        diags.add({as_error ? severity::error : severity::warning, errc::invalid_value, std::move(message), where, {}, {}});
    };
    for (std::size_t i = 0; i < algo.params.size(); ++i) {
        const param_desc& p = algo.params[i];
        if (!p.check || !out.values[i]) continue;
        check_result r = p.check(*out.values[i]);
        if (!r.level) continue;
        const source_location& where = out.sources[i].from == origin::policy_default ? block_where : out.sources[i].where;
        report(r,
               std::string(algo.cfg_block) + "." + std::string(p.cfg_name) + " = " + show_value(p, *out.values[i]) + ": " +
                   std::string(p.cfg_name) + " " + r.message,
               where);
    }
    if (algo.check) {
        std::vector<check_result> found;
        algo.check(param_view(algo.params, out.values), found);
        for (const auto& r : found) report(r, std::string(algo.cfg_block) + ": " + r.message, block_where);
    }
    return out;
}

/// Checks a named layer; returns the concrete layer name it stands for (an alias maps to its layer).
inline std::string check_layer(const layer_table& table, const std::string& name, const source_location& where,
                               std::size_t& suggestions_left, diagnostics& diags) {
    const layer_info* layer = table.get(name);
    if (layer == nullptr) {
        if (const auto* targets = table.find_alias(name)) {
            if (targets->size() == 1) {
                layer = &table[targets->front()];
            } else {
                std::string message = "layer name " + quote_name(name) + " is ambiguous: it is the path of several nodes (";
                for (std::size_t i = 0; i < targets->size(); ++i) message += (i ? ", " : "") + quote_name(table[(*targets)[i]].name);
                message += "); name one of them";
                diags.add({severity::error, errc::unknown_layer, std::move(message), where, name, {}});
                return name;
            }
        }
    }
    if (layer == nullptr) {
        std::string message = name.empty() ? std::string("the empty layer name is the model's root, not a layer")
                                            : "layer " + quote_name(name) + " does not exist in the model";
        if (!name.empty() && suggestions_left > 0) {
            --suggestions_left;
            // Suggest among the layers that could be named (KV-quantizable ones).
            message += did_you_mean(closest_names(
                name, table, [](const layer_info& l) -> std::string_view { return l.eligible ? std::string_view(l.name) : std::string_view(); }));
        }
        diags.add({severity::error, errc::unknown_layer, std::move(message), where, name, {}});
        return name;
    }
    if (!layer->eligible) {
        diags.add({severity::error, errc::unsupported_layer_type,
                   "layer " + quote_name(layer->name) + " is of type " + layer->type + ", which does not support KV-cache quantization",
                   where, name, {}});
    }
    return layer->name;
}

/// A layer chosen by a written name or selector.
struct listed_layer {
    std::string name;     ///< the concrete layer name (or the written name when it is unknown)
    std::string written;  ///< what the user wrote: the exact name, alias or selector
    source_location where;
    bool exact = true;    ///< chosen by an exact name (or alias), not by a pattern
    bool in_common = true;
};

/// The ordered list of chosen layers, without repeats.
struct layer_list {
    std::vector<listed_layer> entries;
    std::unordered_map<std::string, std::size_t, string_hash, std::equal_to<>> position;

    std::size_t find(std::string_view name) const {
        auto it = position.find(name);
        return it == position.end() ? layer_table::npos : it->second;
    }
    std::size_t append(listed_layer l) {
        position.emplace(l.name, entries.size());
        entries.push_back(std::move(l));
        return entries.size() - 1;
    }
    /// Adds a chosen layer: an exact name given twice is a duplicate_layer error (as in the
    /// reference); a layer chosen again by a selector is listed once.
    void add(listed_layer l, const std::string& list_name, diagnostics& diags) {
        const std::size_t at = find(l.name);
        if (at == layer_table::npos) {
            append(std::move(l));
            return;
        }
        const listed_layer& first = entries[at];
        if (first.exact && l.exact) {
            std::string message = "layer " + quote_name(l.name) + " is listed more than once in " + list_name;
            if (first.written != l.written) message += " (as " + quote_name(first.written) + " and " + quote_name(l.written) + ")";
            diags.add({severity::error, errc::duplicate_layer, std::move(message), l.where, l.name, {}});
        }
    }
};

struct selection_context {
    const layer_table& table;
    std::size_t& suggestions_left;
    diagnostics& diags;
};

/// The layers a written name chooses: one for an exact name or alias (reported when unknown or
/// not KV-quantizable), every matching KV-quantizable layer in model order for a selector (an
/// unknown_layer error when none matches).
inline std::vector<listed_layer> select(selection_context& ctx, const std::string& written, const source_location& where) {
    std::vector<listed_layer> out;
    const selector_kind kind = ctx.table.get(written) != nullptr ? selector_kind::exact : kind_of_selector(written);
    if (kind == selector_kind::exact) {
        out.push_back({check_layer(ctx.table, written, where, ctx.suggestions_left, ctx.diags), written, where, true, true});
        return out;
    }
    std::string problem;
    const auto compiled = selector::compile(written, problem);
    if (!compiled) {
        ctx.diags.add({severity::error, errc::invalid_argument, "selector " + quote_name(written) + ": " + problem, where, written, {}});
        return out;
    }
    std::vector<std::string> fused;
    for (const auto& layer : ctx.table) {
        if (!layer.eligible || !compiled->matches(layer.name)) continue;
        if (kind == selector_kind::auto_kv && kv_role_of(layer.name) == kv_role::fused_qkv) fused.push_back(layer.name);
        out.push_back({layer.name, written, where, false, true});
    }
    if (!fused.empty()) {
        std::string message = "auto:kv selected " + std::to_string(fused.size()) + " fused QKV projection" +
                              (fused.size() == 1 ? "" : "s") + " (" + quote_name(fused.front()) + (fused.size() > 1 ? ", ..." : "") +
                              "): their output holds Q as well as K and V";
        ctx.diags.add({severity::warning, errc::unsupported_layer_type, std::move(message), where, fused.front(), {}});
    }
    if (out.empty()) {
        std::string message = "selector " + quote_name(written) + " matches no KV-quantizable layer of the model";
        if (ctx.suggestions_left > 0 && kind != selector_kind::auto_kv) {
            --ctx.suggestions_left;
            const std::string_view pattern = kind == selector_kind::glob ? std::string_view(written).substr(5) : std::string_view(written).substr(3);
            message += did_you_mean(closest_names(
                pattern, ctx.table, [](const layer_info& l) -> std::string_view { return l.eligible ? std::string_view(l.name) : std::string_view(); }));
        }
        ctx.diags.add({severity::error, errc::unknown_layer, std::move(message), where, written, {}});
    }
    return out;
}

}  // namespace detail

/// How many unknown names get "did you mean" suggestions (each costs one pass over the model).
inline constexpr std::size_t max_suggested_names = 16;

/// Resolves the layer list and every layer's algorithm (spec §3). Problems go to `diags`; the
/// result is meaningful only when `diags` has no errors afterwards.
/// `config`: the parsed simple config file, or null; `arg`: the quant_layers argument, or null.
inline resolved_config resolve(const layer_table& table, algorithm_registry algorithms, const simple_config* config,
                               const quant_layers* arg, diagnostics& diags) {
    resolved_config out;
    out.algorithms = algorithms;
    std::size_t suggestions_left = max_suggested_names;

    if (config == nullptr) {
        if (arg == nullptr) {
            diags.error(errc::no_quant_layers, "no layer to quantize: give a quant_layers argument or a simple config file");
            return out;
        }
        if (arg->names.empty()) {
            diags.add({severity::error, errc::no_quant_layers,
                       "no layer to quantize: the " + arg->origin + " list (kv_cache_quant_layers) is empty", {}, {}, {}});
            return out;
        }
        detail::layer_list list;
        detail::selection_context ctx{table, suggestions_left, diags};
        for (const auto& name : arg->names) {
            for (auto& chosen : detail::select(ctx, name, {})) list.add(std::move(chosen), arg->origin, diags);
        }
        const detail::block_values defaults =
            detail::resolve_block(nullptr, origin::policy_default, algorithms, true, {}, diags);
        out.layers.reserve(list.entries.size());
        for (auto& e : list.entries) {
            resolved_layer layer;
            layer.name = std::move(e.name);
            layer.selector = std::move(e.written);
            layer.algorithm = defaults.algorithm;
            layer.values = defaults.values;
            layer.sources = defaults.sources;
            layer.listed = {origin::quant_layers_arg, {}};
            layer.algorithm_source = defaults.algorithm_source;
            out.layers.push_back(std::move(layer));
        }
        return out;
    }

    const simple_config& cfg = *config;
    if (arg != nullptr) {
        diags.warning(errc::invalid_argument, "the " + arg->origin + " argument is ignored because a simple config file is given",
                      {cfg.file, 0, 0});
    }
    if (cfg.batch_num) {
        out.batch_num = *cfg.batch_num;
        out.batch_num_source = {origin::config_file, cfg.batch_num_where};
        if (out.batch_num == 0) {
            diags.add({severity::error, errc::invalid_value, "batch_num = 0: batch_num must be at least 1", cfg.batch_num_where, {}, {}});
        }
    }
    if (cfg.activation_offset) {
        out.activation_offset = *cfg.activation_offset;
        out.activation_offset_source = {origin::config_file, cfg.activation_offset_where};
    }

    // The layer list: the common list in file order, then override layers not already listed.
    detail::selection_context ctx{table, suggestions_left, diags};
    detail::layer_list list;
    for (const auto& name : cfg.quant_layers) {
        for (auto& chosen : detail::select(ctx, name.value, name.where)) {
            list.add(std::move(chosen), "kv_cache_quant_config.quant_layers", diags);
        }
    }
    const std::size_t common_count = list.entries.size();
    // Which override applies to each listed layer, and whether it was named exactly.
    struct applied {
        const override_config* entry = nullptr;
        bool exact = false;
        std::string written;
        source_location where;
    };
    std::vector<applied> override_of(list.entries.size());
    for (const auto& o : cfg.overrides) {
        if (!o.layer_name) {
            diags.add({severity::error, errc::unknown_layer,
                       "override_layers_configs entry has no layer_name (a required field)", o.where, {}, {}});
            continue;
        }
        for (auto& chosen : detail::select(ctx, o.layer_name->value, o.layer_name->where)) {
            std::size_t at = list.find(chosen.name);
            if (at == layer_table::npos) {
                detail::listed_layer copy = chosen;
                copy.in_common = false;
                at = list.append(std::move(copy));
                override_of.emplace_back();
            }
            applied& slot = override_of[at];
            if (slot.entry != nullptr) {
                if (slot.exact && chosen.exact) {
                    diags.add({severity::error, errc::duplicate_layer,
                               "layer " + detail::quote_name(chosen.name) + " has more than one override_layers_configs entry" +
                                   (slot.written != chosen.written ? " (as " + detail::quote_name(slot.written) + " and " +
                                                                         detail::quote_name(chosen.written) + ")"
                                                                   : std::string()),
                               chosen.where, chosen.name, {}});
                    continue;
                }
                diags.add({severity::warning, errc::duplicate_layer,
                           "layer " + detail::quote_name(chosen.name) + " is matched by two overrides, " +
                               detail::quote_name(slot.written) + " and " + detail::quote_name(chosen.written) +
                               "; the later one applies",
                           chosen.where, chosen.name, {}});
            }
            slot = {&o, chosen.exact, chosen.written, chosen.where};
        }
    }

    std::vector<const override_config*> overrides_applied(list.entries.size());
    for (std::size_t k = 0; k < list.entries.size(); ++k) overrides_applied[k] = override_of[k].entry;
    auto& entries = list.entries;
    (void)common_count;

    // Algorithm blocks: the common one is used when some common layer has no override.
    bool common_used = false;
    for (std::size_t k = 0; k < entries.size(); ++k) common_used = common_used || (entries[k].in_common && overrides_applied[k] == nullptr);
    const algorithm_config* common_block = cfg.common ? &*cfg.common : nullptr;
    const source_location common_fallback = common_block ? common_block->where : cfg.common_where;
    const detail::block_values common =
        detail::resolve_block(common_block, origin::common_config, algorithms, common_used, common_fallback, diags);
    for (const auto& d : cfg.discarded) {
        detail::resolve_block(&d, origin::common_config, algorithms, false, d.where, diags);
    }

    out.layers.reserve(entries.size());
    // An override block applies to every layer it was chosen for: resolve (and check) it once.
    std::unordered_map<const override_config*, detail::block_values> override_blocks;
    for (std::size_t k = 0; k < entries.size(); ++k) {
        auto& e = entries[k];
        resolved_layer layer;
        layer.name = std::move(e.name);
        layer.selector = std::move(e.written);
        layer.listed = {e.in_common ? origin::common_config : origin::override_config, e.where};
        if (const override_config* o = overrides_applied[k]) {
            auto it = override_blocks.find(o);
            if (it == override_blocks.end()) {
                const algorithm_config* block = o->config ? &*o->config : nullptr;
                it = override_blocks.emplace(o, detail::resolve_block(block, origin::override_config, algorithms, true, o->where, diags)).first;
            }
            const detail::block_values& own = it->second;
            layer.algorithm = own.algorithm;
            layer.values = own.values;
            layer.sources = own.sources;
            layer.algorithm_source = own.algorithm_source;
        } else {
            layer.algorithm = common.algorithm;
            layer.values = common.values;
            layer.sources = common.sources;
            layer.algorithm_source = common.algorithm_source;
        }
        out.layers.push_back(std::move(layer));
    }
    // Overrides without a layer_name were reported above and have no entry; a file with nothing
    // else to quantize is "no layers" only when it named no layer at all.
    bool any_override = !cfg.overrides.empty();
    if (out.layers.empty() && !any_override) {
        diags.add({severity::error, errc::no_quant_layers,
                   "no layer to quantize: the config file names no layer (kv_cache_quant_config.quant_layers and "
                   "override_layers_configs are empty)",
                   {cfg.file, 0, 0}, {}, {}});
    }
    return out;
}

}  // namespace kvcali
