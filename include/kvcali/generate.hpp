// kvcali: the call, mirroring AMCT's create_quant_cali_config.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "detail/concat.hpp"
#include "detail/config.hpp"
#include "error.hpp"
#include "layer_table.hpp"
#include "policy.hpp"
#include "resolved_config.hpp"
#include "simple_config.hpp"

// Separate compilation (optional, see detail/config.hpp): with KVCALI_SEPARATE_COMPILATION defined
// in every TU of a program, this header and every other public header declare their non-template
// functions (reading quant.cfg, resolving, writing config.json, the layer list, the config.json
// reader, ...) instead of defining them, and exactly one TU includes <kvcali/src.hpp>, which defines
// them all. A TU that only calls the generator then compiles in a fraction of the time. Without the
// macro (the default) everything is inline and nothing needs to be linked. Defining the macro but
// including <kvcali/src.hpp> in no TU fails at link time:
//   undefined reference to `kvcali::detail::resolve_table(kvcali::layer_table const&, std::span<...>,
//       std::optional<kvcali::quant_layers> const&, std::optional<std::filesystem::path> const&, kvcali::diagnostics&)'
//   undefined reference to `kvcali::detail::write_config_file(std::filesystem::path const&, kvcali::resolved_config const&)'
// Add a kvcali_src.cpp holding `#define KVCALI_SEPARATE_COMPILATION` and `#include <kvcali/src.hpp>`
// (or drop the macro). Defining the macro in some TUs only is an ODR violation: define it for all.

namespace kvcali {

/// Options of a call.
struct options {
    bool strict = false;      ///< warnings are errors
    warning_sink on_warning;  ///< receives each warning as it is found (the library never prints)
};

namespace detail {

template <class G>
layer_table table_of(const G& model, diagnostics& diags) {
    require_model_graph<G>();  // a message naming the missing piece of the model_graph requirement
    return extract_layers(model, [&](std::string_view name) {
        diags.error(errc::invalid_model, detail::concat({"the model has two layers named \"", name, "\""}), {}, name);
    });
}

/// The non-template pipeline after the graph is extracted: reads the config definition (if any),
/// resolves every layer's algorithm, throws on errors. Defined in impl/generate.ipp.
KVCALI_COLD KVCALI_DECL resolved_config resolve_table(const layer_table& table, algorithm_registry algorithms,
                                                      const std::optional<quant_layers>& layers,
                                                      const std::optional<std::filesystem::path>& config_definition, diagnostics& diags);

/// write_config_json_file (config_writer.hpp) behind the same switch.
KVCALI_DECL void write_config_file(const std::filesystem::path& path, const resolved_config& config);

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
    detail::write_config_file(config_file, resolved);
    return resolved;
}

/// The non-throwing form of `create_quant_cali_config`: the resolved document, or the diagnostics.
template <policy_list_type Policies = default_policies, class G>
outcome<resolved_config> try_create_quant_cali_config(const std::filesystem::path& config_file, const G& model,
                                                      const std::optional<quant_layers>& layers = std::nullopt,
                                                      const std::optional<std::filesystem::path>& config_definition = std::nullopt,
                                                      const options& opts = {}) {
    std::vector<diagnostic> warnings;
    options collecting = opts;
    collecting.on_warning = [&](const diagnostic& d) {
        warnings.push_back(d);
        if (opts.on_warning) opts.on_warning(d);
    };
    try {
        resolved_config result = create_quant_cali_config<Policies>(config_file, model, layers, config_definition, collecting);
        return outcome<resolved_config>(std::move(result), std::move(warnings));
    } catch (const error& e) {
        return outcome<resolved_config>(e);
    }
}

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/generate.ipp"  // IWYU pragma: export
#endif
