// kvcali: the call, mirroring AMCT's create_quant_cali_config.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config_writer.hpp"
#include "error.hpp"
#include "io.hpp"
#include "model_graph.hpp"
#include "policy.hpp"
#include "quant_cfg.hpp"
#include "resolve.hpp"
#include "simple_config.hpp"

namespace kvcali {

/// Options of a call.
struct options {
    bool strict = false;       ///< warnings are errors
    warning_sink on_warning;   ///< receives each warning as it is found (the library never prints)
};

namespace detail {

template <class G>
layer_table table_of(const G& model, diagnostics& diags) {
    static_assert(model_graph<G>, KVCALI_MODEL_GRAPH_REQUIREMENT);
    return extract_layers(model, [&](std::string_view name) {
        diags.add({severity::error, errc::invalid_model, "the model has two layers named \"" + std::string(name) + "\"", {}, std::string(name), {}});
    });
}

/// The non-template pipeline after the graph is extracted.
inline resolved_config resolve_table(const layer_table& table, algorithm_registry algorithms,
                                     const std::optional<quant_layers>& layers,
                                     const std::optional<std::filesystem::path>& config_definition, diagnostics& diags) {
    std::optional<simple_config> cfg;
    if (config_definition) {
        cfg = load_simple_config(*config_definition, algorithms, diags);
        // A file that does not parse has nothing worth resolving.
        if (diags.has_errors()) {
            diags.throw_if_errors();
        }
    }
    // The config is this call's own: the result takes its strings rather than copies.
    resolved_config resolved = resolve_config(table, algorithms, cfg ? &*cfg : nullptr, cfg ? &*cfg : nullptr, layers ? &*layers : nullptr, diags);
    diags.throw_if_errors();
    return resolved;
}

}  // namespace detail

/// The pure form: resolves the document `create_quant_cali_config` would write, touching no file
/// but the config definition it reads.
/// Requires: `G` models `kvcali::model_graph` (see model_graph.hpp).
/// Errors: throws `kvcali::error` with every problem found.
/// Example: `auto doc = kvcali::resolve_quant_cali_config(model, kvcali::quant_layers{{"k_proj"}});`
template <policy_list_type Policies = default_policies, class G>
resolved_config resolve_quant_cali_config(const G& model, const std::optional<quant_layers>& layers = std::nullopt,
                                          const std::optional<std::filesystem::path>& config_definition = std::nullopt,
                                          const options& opts = {}) {
    diagnostics diags(opts.strict, opts.on_warning);
    if constexpr (detail::is_layer_table<G>) {
        // Already a table (names unique by construction): used as it is, not copied.
        return detail::resolve_table(model, Policies::algorithms, layers, config_definition, diags);
    } else {
        const layer_table table = detail::table_of(model, diags);
        diags.throw_if_errors();
        return detail::resolve_table(table, Policies::algorithms, layers, config_definition, diags);
    }
}

/// Writes `config_file`: the JSON that gives every KV-cache layer its calibration algorithm, byte
/// for byte as AMCT's `create_quant_cali_config(config_file, model, quant_layers, config_defination)`
/// writes it. `layers` is used only when no `config_definition` (quant.cfg) is given.
/// Requires: `G` models `kvcali::model_graph`; `Policies` is a `kvcali::policy_list`.
/// Errors: throws `kvcali::error` with every problem found; then nothing is written and an
/// existing `config_file` is left untouched (the write is atomic).
/// Example: `kvcali::create_quant_cali_config("config.json", model, std::nullopt, "quant.cfg");`
template <policy_list_type Policies = default_policies, class G>
resolved_config create_quant_cali_config(const std::filesystem::path& config_file, const G& model,
                                         const std::optional<quant_layers>& layers = std::nullopt,
                                         const std::optional<std::filesystem::path>& config_definition = std::nullopt,
                                         const options& opts = {}) {
    resolved_config resolved = resolve_quant_cali_config<Policies>(model, layers, config_definition, opts);
    write_config_json_file(config_file, resolved);
    return resolved;
}

/// The non-throwing form of `create_quant_cali_config`: the resolved document, or the diagnostics.
template <policy_list_type Policies = default_policies, class G>
outcome<resolved_config> try_create_quant_cali_config(const std::filesystem::path& config_file, const G& model,
                                                      const std::optional<quant_layers>& layers = std::nullopt,
                                                      const std::optional<std::filesystem::path>& config_definition = std::nullopt,
                                                      const options& opts = {}) {
    outcome<resolved_config> out;
    std::vector<diagnostic> warnings;
    options collecting = opts;
    collecting.on_warning = [&](const diagnostic& d) {
        warnings.push_back(d);
        if (opts.on_warning) opts.on_warning(d);
    };
    try {
        out.value = create_quant_cali_config<Policies>(config_file, model, layers, config_definition, collecting);
        out.diagnostics = std::move(warnings);
    } catch (const error& e) {
        out.code = e.code();
        out.diagnostics = e.diagnostics();
    }
    return out;
}

}  // namespace kvcali
