// kvcali: the resolver (declared in resolve.hpp): included at the end of that header (header-only
// use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../detail/concat.hpp"
#include "../detail/function_ref.hpp"
#include "../detail/show_value.hpp"
#include "../detail/string_map.hpp"
#include "../error.hpp"
#include "../json_format.hpp"
#include "../layer_table.hpp"
#include "../resolve.hpp"
#include "../resolved_config.hpp"
#include "../selector.hpp"
#include "../simple_config.hpp"
#include "../suggest.hpp"

namespace kvcali {

namespace detail {

/// The values of one algorithm block after defaults, with their sources.
struct block_values {
    std::size_t algorithm = 0;
    std::vector<std::optional<param_value>> values;
    std::vector<provenance> sources;
    provenance algorithm_source;
};

/// Fills defaults into a block and checks it. `used`: errors are errors; otherwise the block is
/// not used by any layer, so its problems are warnings (strict mode still makes them errors).
KVCALI_NOINLINE inline block_values resolve_block(const algorithm_config* block, origin from, algorithm_registry algorithms, bool used,
                                                  const source_location& fallback, diagnostics& diags) {
    block_values out;
    out.algorithm = block && block->algorithm ? *block->algorithm : 0;
    const algorithm_desc& algo = algorithms[out.algorithm];
    out.algorithm_source = block && block->algorithm ? provenance{from, block->algorithm_where} : provenance{origin::policy_default, {}};
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
        diags.report(as_error ? severity::error : severity::warning, errc::invalid_value, std::move(message), where);
    };
    for (std::size_t i = 0; i < algo.params.size(); ++i) {
        const param_desc& p = algo.params[i];
        if (!p.check || !out.values[i]) continue;
        check_result r = p.check(*out.values[i]);
        if (!r.level) continue;
        const source_location& where = out.sources[i].from == origin::policy_default ? block_where : out.sources[i].where;
        report(r, concat({algo.cfg_block, ".", p.cfg_name, " = ", show_value(p, *out.values[i]), ": ", p.cfg_name, " ", r.message}), where);
    }
    if (algo.check) {
        std::vector<check_result> found;
        algo.check(param_view(algo.params, out.values), found);
        for (const auto& r : found) report(r, concat({algo.cfg_block, ": ", r.message}), block_where);
    }
    return out;
}

/// check_layer's other cases: an alias, a name that stands for no layer, a layer that cannot be
/// KV-quantized (rare: compiled for size).
KVCALI_COLD inline std::size_t check_unusual_layer(const layer_table& table, std::size_t row, const std::string& name,
                                                   const source_location& where, std::size_t& suggestions_left, diagnostics& diags) {
    if (row == layer_table::npos) {
        if (const auto* targets = table.find_alias(name)) {
            if (targets->size() == 1) {
                row = targets->front();
            } else {
                std::string message = concat({"layer name ", quote_name(name), " is ambiguous: it is the path of several nodes ("});
                for (std::size_t i = 0; i < targets->size(); ++i)
                    append_concat(message, {i ? ", " : "", quote_name(table[(*targets)[i]].name)});
                message += "); name one of them";
                diags.error(errc::unknown_layer, std::move(message), where, name);
                return layer_table::npos;
            }
        }
    }
    if (row == layer_table::npos) {
        std::string message = name.empty() ? std::string("the empty layer name is the model's root, not a layer")
                                           : concat({"layer ", quote_name(name), " does not exist in the model"});
        if (!name.empty() && suggestions_left > 0) {
            --suggestions_left;
            // Suggest among the layers that could be named (KV-quantizable ones).
            message += did_you_mean(closest_names(name, table, [](const layer_info& l) -> std::string_view {
                return l.eligible ? std::string_view(l.name) : std::string_view();
            }));
        }
        diags.error(errc::unknown_layer, std::move(message), where, name);
        return layer_table::npos;
    }
    const layer_info& layer = table[row];
    if (!layer.eligible) {
        diags.add({.severity = severity::error,
                   .category = errc::unsupported_layer_type,
                   .message = concat(
                       {"layer ", quote_name(layer.name), " is of type ", layer.type, ", which does not support KV-cache quantization"}),
                   .where = where,
                   .layer = name,
                   .json_path = {}});
    }
    return row;
}

/// Checks a named layer: `row` is its table row (`table.find(name)`), or npos when `name` is no
/// layer name (then it may be an alias). Returns the row of the concrete layer it stands for (an
/// alias maps to its layer), or npos when it stands for none (reported).
inline std::size_t check_layer(const layer_table& table, std::size_t row, const std::string& name, const source_location& where,
                               std::size_t& suggestions_left, diagnostics& diags) {
    if (row != layer_table::npos && table[row].eligible) return row;  // (the usual case)
    return check_unusual_layer(table, row, name, where, suggestions_left, diags);
}

/// A layer chosen by a written name or selector. It views what the user wrote (a string of the
/// simple config or of the quant_layers argument, alive while resolving).
struct listed_layer {
    std::size_t row = layer_table::npos;   ///< the concrete layer's table row; npos: the written name stands for none
    const std::string* written = nullptr;  ///< what the user wrote: the exact name, alias or selector
    const source_location* where = nullptr;
    bool exact = true;  ///< chosen by an exact name (or alias), not by a pattern
    bool in_common = true;
    /// The same written name reached through the config this call consumes (resolve(simple_config&&)),
    /// or null: its string and place may be moved into the result.
    located_string* owned = nullptr;
};

/// The concrete layer name of a chosen layer (the written name when it stands for none).
inline std::string_view name_of(const layer_table& table, const listed_layer& l) {
    return l.row != layer_table::npos ? std::string_view(table[l.row].name) : std::string_view(*l.written);
}

/// For a layer named twice by exact names: " (as "a" and "b")" when the two were written differently
/// (an alias and the layer's own name, say), so the message shows both.
KVCALI_COLD inline void append_both_spellings(std::string& message, const std::string& first, const std::string& second) {
    if (first != second) append_concat(message, {" (as ", quote_name(first), " and ", quote_name(second), ")"});
}

/// The ordered list of chosen layers, without repeats.
struct layer_list {
    explicit layer_list(const layer_table& t) : table(t) {}

    const layer_table& table;
    std::vector<listed_layer> entries;
    std::vector<std::uint32_t> position_of_row;   ///< per table row (sized on first use); `none` when not listed
    string_map<std::size_t> position_of_unknown;  ///< by written name
    static constexpr std::uint32_t none = 0xFFFFFFFFu;

    std::size_t find(const listed_layer& l) const {
        if (l.row != layer_table::npos) {
            if (l.row >= position_of_row.size() || position_of_row[l.row] == none) return layer_table::npos;
            return position_of_row[l.row];
        }
        auto it = position_of_unknown.find(*l.written);
        return it == position_of_unknown.end() ? layer_table::npos : it->second;
    }
    std::size_t append(const listed_layer& l) {
        if (l.row != layer_table::npos) {
            if (position_of_row.empty()) position_of_row = std::vector<std::uint32_t>(table.size(), none);
            if (entries.size() >= none) throw std::length_error("kvcali: too many layers listed");
            position_of_row[l.row] = static_cast<std::uint32_t>(entries.size());
        } else {
            position_of_unknown.emplace(*l.written, entries.size());
        }
        entries.push_back(l);
        return entries.size() - 1;
    }
    /// Adds a chosen layer: an exact name given twice is a duplicate_layer error (as in the
    /// reference); a layer chosen again by a selector is listed once.
    void add(const listed_layer& l, const std::string& list_name, diagnostics& diags) {
        const std::size_t at = find(l);
        if (at == layer_table::npos) {
            append(l);
            return;
        }
        const listed_layer& first = entries[at];
        if (first.exact && l.exact) {
            const std::string_view name = name_of(table, l);
            std::string message = concat({"layer ", quote_name(name), " is listed more than once in ", list_name});
            append_both_spellings(message, *first.written, *l.written);
            diags.error(errc::duplicate_layer, std::move(message), *l.where, name);
        }
    }
};

struct selection_context {
    const layer_table& table;
    std::size_t& suggestions_left;
    diagnostics& diags;
};

/// select's reports (compiled for size: they run only when a selector goes wrong).
KVCALI_COLD inline void report_bad_selector(selection_context& ctx, const std::string& written, const source_location& where,
                                            const std::string& problem) {
    ctx.diags.error(errc::invalid_argument, concat({"selector ", quote_name(written), ": ", problem}), where, written);
}
KVCALI_COLD inline void report_out_of_steps(selection_context& ctx, const std::string& written, const source_location& where,
                                            std::uint64_t steps, std::string_view layer_name) {
    std::string at = quote_name(clip(layer_name, 80));
    if (layer_name.size() > 80) append_concat(at, {" (", layer_name.size(), " bytes)"});
    ctx.diags.error(errc::invalid_argument,
                    concat({"selector ", quote_name(written), " needs more than ", steps,
                            " matching steps over the model's layer names (it ran out at layer ", at,
                            "): simplify the pattern (fewer alternatives or lookaheads) or name the layers"}),
                    where, written);
}
KVCALI_COLD inline void report_fused(selection_context& ctx, const source_location& where, std::size_t fused,
                                     std::string_view first_fused) {
    std::string message = concat({"auto:kv selected ", fused, " fused QKV projection", fused == 1 ? "" : "s", " (", quote_name(first_fused),
                                  fused > 1 ? ", ..." : "", "): their output holds Q as well as K and V"});
    ctx.diags.warning(errc::unsupported_layer_type, std::move(message), where, first_fused);
}
KVCALI_COLD inline void report_no_match(selection_context& ctx, const std::string& written, const source_location& where,
                                        selector_kind kind) {
    std::string message = concat({"selector ", quote_name(written), " matches no KV-quantizable layer of the model"});
    if (ctx.suggestions_left > 0 && kind != selector_kind::auto_kv) {
        --ctx.suggestions_left;
        const std::string_view pattern =
            kind == selector_kind::glob ? std::string_view(written).substr(5) : std::string_view(written).substr(3);
        message += did_you_mean(closest_names(pattern, ctx.table, [](const layer_info& l) -> std::string_view {
            return l.eligible ? std::string_view(l.name) : std::string_view();
        }));
    }
    ctx.diags.error(errc::unknown_layer, std::move(message), where, written);
}

/// The layers a written name chooses, each given to `each(const listed_layer&)`: one for an exact
/// name or alias (reported when unknown or not KV-quantizable), every matching KV-quantizable
/// layer in model order for a selector (an unknown_layer error when none matches).
inline void select(selection_context& ctx, const std::string& written, const source_location& where,
                   function_ref<void(const listed_layer&)> each) {
    const std::size_t row = ctx.table.find(written);
    const selector_kind kind = row != layer_table::npos ? selector_kind::exact : kind_of_selector(written);
    if (kind == selector_kind::exact) {
        each(listed_layer{check_layer(ctx.table, row, written, where, ctx.suggestions_left, ctx.diags), &written, &where, true, true});
        return;
    }
    std::string problem;
    const auto compiled = selector::compile(written, problem);
    if (!compiled) {
        report_bad_selector(ctx, written, where, problem);
        return;
    }
    std::vector<std::size_t> matched;  // rows, in model order (given to `each` after this selector's own reports)
    std::size_t fused = 0;
    std::string_view first_fused;
    std::uint64_t steps = 0;  // the selector's budget (see selector::regex_base_steps)
    if (kind == selector_kind::regex) {
        std::uint64_t bytes = 0;
        for (std::size_t i = 0; i < ctx.table.size(); ++i) bytes += ctx.table[i].eligible ? ctx.table[i].name.size() + 1 : 0;
        steps = selector::regex_base_steps + selector::regex_steps_per_byte * bytes;
    }
    std::uint64_t steps_left = steps;
    for (std::size_t i = 0; i < ctx.table.size(); ++i) {
        const layer_info& layer = ctx.table[i];
        if (!layer.eligible) continue;
        const std::optional<bool> hit = compiled->matches(layer.name, steps_left);
        if (!hit) {
            report_out_of_steps(ctx, written, where, steps, layer.name);
            return;
        }
        if (!*hit) continue;
        if (kind == selector_kind::auto_kv && kv_role_of(layer.name) == kv_role::fused_qkv) {
            if (fused++ == 0) first_fused = layer.name;
        }
        matched.push_back(i);
    }
    if (fused != 0) report_fused(ctx, where, fused, first_fused);
    if (matched.empty()) report_no_match(ctx, written, where, kind);
    for (const std::size_t index : matched) each(listed_layer{index, &written, &where, false, true});
}

}  // namespace detail

namespace detail {

KVCALI_DECL resolved_config resolve_config(const layer_table& table, algorithm_registry algorithms, const simple_config* config,
                                           simple_config* consumed, const quant_layers* arg, diagnostics& diags) {
    resolved_config out;
    out.algorithms = algorithms;
    std::size_t suggestions_left = max_suggested_names;

    // An empty model: one error, not one "does not exist in the model" per layer named.
    if (table.empty()) {
        diags.error(errc::invalid_model, std::string(model_has_no_layers));
        return out;
    }

    if (config == nullptr) {
        if (arg == nullptr) {
            diags.error(errc::no_quant_layers, "no layer to quantize: give a quant_layers argument or a simple config file");
            return out;
        }
        if (arg->names.empty()) {
            diags.error(errc::no_quant_layers,
                        concat({"no layer to quantize: the ", arg->origin, " list (kv_cache_quant_layers) is empty"}));
            return out;
        }
        detail::layer_list list(table);
        detail::selection_context ctx{table, suggestions_left, diags};
        const source_location nowhere;
        for (const auto& name : arg->names) {
            detail::select(ctx, name, nowhere, [&](const detail::listed_layer& chosen) { list.add(chosen, arg->origin, diags); });
        }
        const detail::block_values defaults = detail::resolve_block(nullptr, origin::policy_default, algorithms, true, {}, diags);
        out.layers.reserve(list.entries.size());
        for (const auto& e : list.entries) {
            resolved_layer& layer = out.layers.emplace_back();  // (in place, as below: one growth path)
            layer.name = std::string(detail::name_of(table, e));
            layer.selector = *e.written;
            layer.algorithm = defaults.algorithm;
            layer.values = defaults.values;
            layer.sources = std::vector<provenance>(defaults.sources);  // (a new layer: built, not assigned)
            layer.listed = {origin::quant_layers_arg, {}};
            layer.algorithm_source = defaults.algorithm_source;
        }
        return out;
    }

    const simple_config& cfg = *config;
    if (arg != nullptr) {
        diags.warning(errc::invalid_argument, concat({"the ", arg->origin, " argument is ignored because a simple config file is given"}),
                      {cfg.file, 0, 0});
    }
    if (cfg.batch_num) {
        out.batch_num = *cfg.batch_num;
        out.batch_num_source = {origin::config_file, cfg.batch_num_where};
        if (out.batch_num == 0) {
            diags.error(errc::invalid_value, "batch_num = 0: batch_num must be at least 1", cfg.batch_num_where);
        }
    }
    if (cfg.activation_offset) {
        out.activation_offset = *cfg.activation_offset;
        out.activation_offset_source = {origin::config_file, cfg.activation_offset_where};
    }

    // The layer list: the common list in file order, then override layers not already listed.
    detail::selection_context ctx{table, suggestions_left, diags};
    detail::layer_list list(table);
    list.entries.reserve(cfg.quant_layers.size() + cfg.overrides.size());
    const std::string common_list_name = "kv_cache_quant_config.quant_layers";
    // (The index slot of a name a few places ahead is prefetched: a long list misses the cache
    // on nearly every lookup otherwise.)
    constexpr std::size_t lookahead = 8;
    for (std::size_t k = 0; k < cfg.quant_layers.size(); ++k) {
        if (k + lookahead < cfg.quant_layers.size()) table.prefetch(layer_table::hash_of(cfg.quant_layers[k + lookahead].value));
        const located_string& name = cfg.quant_layers[k];
        detail::select(ctx, name.value, name.where, [&](detail::listed_layer chosen) {
            if (consumed != nullptr) chosen.owned = &consumed->quant_layers[k];
            list.add(chosen, common_list_name, diags);
        });
    }
    // Which override applies to each listed layer: as the layer list's entries, in listed_layer,
    // whose `row` here is the override's index in cfg.overrides (npos: none) and whose other
    // fields say how that override named the layer (a type the TU already has, not one more).
    const detail::listed_layer no_override{};
    std::vector<detail::listed_layer> override_of(list.entries.size(), no_override);
    std::size_t unnamed_overrides = 0;
    for (std::size_t k = 0; k < cfg.overrides.size(); ++k) {
        if (k + lookahead < cfg.overrides.size() && cfg.overrides[k + lookahead].layer_name) {
            table.prefetch(layer_table::hash_of(cfg.overrides[k + lookahead].layer_name->value));
        }
        const override_config& o = cfg.overrides[k];
        if (!o.layer_name) {
            diags.error(errc::unknown_layer, "override_layers_configs entry has no layer_name (a required field)", o.where);
            // The reference reads a missing name as the empty one: a second such entry duplicates it.
            if (unnamed_overrides++ > 0) {
                diags.error(errc::duplicate_layer,
                            "override_layers_configs has more than one entry without layer_name (each stands for the empty name)", o.where);
            }
            continue;
        }
        detail::select(ctx, o.layer_name->value, o.layer_name->where, [&](const detail::listed_layer& chosen) {
            std::size_t at = list.find(chosen);
            if (at == layer_table::npos) {
                detail::listed_layer copy = chosen;
                copy.in_common = false;
                if (consumed != nullptr) copy.owned = &*consumed->overrides[k].layer_name;
                at = list.append(copy);
                override_of.push_back(no_override);
            }
            detail::listed_layer& slot = override_of[at];
            if (slot.row != layer_table::npos) {
                const std::string_view name = detail::name_of(table, chosen);
                if (slot.exact && chosen.exact) {
                    std::string message =
                        detail::concat({"layer ", detail::quote_name(name), " has more than one override_layers_configs entry"});
                    detail::append_both_spellings(message, *slot.written, *chosen.written);
                    diags.error(errc::duplicate_layer, std::move(message), *chosen.where, name);
                    return;
                }
                diags.warning(
                    errc::duplicate_layer,
                    detail::concat({"layer ", detail::quote_name(name), " is matched by two overrides, ", detail::quote_name(*slot.written),
                                    " and ", detail::quote_name(*chosen.written), "; the later one applies"}),
                    *chosen.where, name);
            }
            slot.row = k;
            slot.exact = chosen.exact;
            slot.written = chosen.written;
            slot.where = chosen.where;
        });
    }

    auto& entries = list.entries;
    // The list is complete: its lookup tables are not needed while the layers are built.
    std::vector<std::uint32_t>().swap(list.position_of_row);
    string_map<std::size_t>().swap(list.position_of_unknown);

    // Algorithm blocks: the common one is used when some common layer has no override.
    bool common_used = false;
    for (std::size_t k = 0; k < entries.size(); ++k)
        common_used = common_used || (entries[k].in_common && override_of[k].row == layer_table::npos);
    const algorithm_config* common_block = cfg.common ? &*cfg.common : nullptr;
    const source_location common_fallback = common_block ? common_block->where : cfg.common_where;
    const detail::block_values common =
        detail::resolve_block(common_block, origin::common_config, algorithms, common_used, common_fallback, diags);
    for (const auto& d : cfg.discarded) {
        detail::resolve_block(&d, origin::common_config, algorithms, false, d.where, diags);
    }

    out.layers.reserve(entries.size());
    advise_huge_pages(out.layers.data(), out.layers.capacity() * sizeof(resolved_layer));
    // An override block applies to every layer it was chosen for: resolve (and check) it once, at
    // its first layer, and hand its values to its last one.
    std::vector<std::optional<detail::block_values>> override_blocks(cfg.overrides.size());
    std::vector<std::size_t> uses_left(cfg.overrides.size(), 0);
    for (const auto& a : override_of) {
        if (a.row != layer_table::npos) ++uses_left[a.row];
    }
    for (std::size_t k = 0; k < entries.size(); ++k) {
        const auto& e = entries[k];
        resolved_layer& layer = out.layers.emplace_back();
        layer.name = std::string(detail::name_of(table, e));
        // An exact name's string and place serve only its own entry: taken when they may be.
        if (e.owned != nullptr && e.exact) {
            layer.selector = std::move(e.owned->value);
            layer.listed = {e.in_common ? origin::common_config : origin::override_config, std::move(e.owned->where)};
        } else {
            layer.selector = *e.written;
            layer.listed = {e.in_common ? origin::common_config : origin::override_config, *e.where};
        }
        if (const std::size_t i = override_of[k].row; i != layer_table::npos) {
            const override_config* o = &cfg.overrides[i];
            std::optional<detail::block_values>& own = override_blocks[i];
            if (!own) {
                const algorithm_config* block = o->config ? &*o->config : nullptr;
                own = detail::resolve_block(block, origin::override_config, algorithms, true, o->where, diags);
            }
            layer.algorithm = own->algorithm;
            layer.algorithm_source = own->algorithm_source;
            if (--uses_left[i] == 0) {
                layer.values = std::move(own->values);
                layer.sources = std::move(own->sources);
            } else {
                layer.values = own->values;
                layer.sources = std::vector<provenance>(own->sources);  // (a new layer: built, not assigned)
            }
        } else {
            layer.algorithm = common.algorithm;
            layer.values = common.values;
            layer.sources = std::vector<provenance>(common.sources);  // (a new layer: built, not assigned)
            layer.algorithm_source = common.algorithm_source;
        }
    }
    // Overrides without a layer_name were reported above and have no entry; a file with nothing
    // else to quantize is "no layers" only when it named no layer at all.
    bool any_override = !cfg.overrides.empty();
    if (out.layers.empty() && !any_override) {
        diags.error(errc::no_quant_layers,
                    "no layer to quantize: the config file names no layer (kv_cache_quant_config.quant_layers and "
                    "override_layers_configs are empty)",
                    {cfg.file, 0, 0});
    }
    return out;
}

}  // namespace detail

KVCALI_DECL resolved_config resolve(const layer_table& table, algorithm_registry algorithms, const simple_config* config,
                                    const quant_layers* arg, diagnostics& diags) {
    return detail::resolve_config(table, algorithms, config, nullptr, arg, diags);
}

KVCALI_DECL resolved_config resolve(const layer_table& table, algorithm_registry algorithms, simple_config&& config,
                                    const quant_layers* arg, diagnostics& diags) {
    return detail::resolve_config(table, algorithms, &config, &config, arg, diags);
}

}  // namespace kvcali
