// kvcali: reading config.json back. The document `create_quant_cali_config` writes (or AMCT's), validated
// as the reference's consumer validates it, as a `resolved_config` that `write_config_json` writes
// back byte for byte; and, per layer, what a calibration tool needs resolved.
//
//   const auto doc = kvcali::read_quant_cali_config("config.json");
//   for (const auto& layer : kvcali::calibration_plan(doc)) {
//       if (auto ifmr = layer.ifmr()) use(layer.name, layer.with_offset, ifmr->search_range_start, ...);
//   }
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

#include "calibration/settings.hpp"
#include "detail/concat.hpp"
#include "detail/config.hpp"
#include "detail/show_value.hpp"
#include "error.hpp"
#include "layer_table.hpp"
#include "policy.hpp"
#include "resolved_config.hpp"

namespace kvcali {

/// Options of the reader.
struct reader_options {
    bool strict = false;      ///< warnings are errors
    warning_sink on_warning;  ///< receives each warning as it is found (the library never prints)
    /// When set, every layer must exist in this model and support KV-cache quantization.
    const layer_table* model = nullptr;
    /// How messages name the text of `parse_quant_cali_config` (the file forms use the path).
    std::string source_name = "config.json";
};

/// The non-throwing core: reads config.json text into the resolved document, recording every problem
/// in `diags` (errors and warnings, each with its JSON path and `file:line:column`). The result is
/// meaningful only when `diags` has no errors afterwards. Never throws but `std::bad_alloc`.
/// `file` names the text in messages; `model`, when given, must hold every layer, eligible.
KVCALI_DECL resolved_config read_config_json(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                             diagnostics& diags, const layer_table* model = nullptr);

/// read_config_json of a file's text (the path names it in messages). Errors: throws
/// `kvcali::error` (io_error) when the file cannot be read; the rest goes to `diags`.
KVCALI_DECL resolved_config read_config_json_file(const std::filesystem::path& path, algorithm_registry algorithms, diagnostics& diags,
                                                  const layer_table* model = nullptr);

/// Reads config.json text (named `opts.source_name` in messages).
/// Errors: throws `kvcali::error` with every problem found (warnings go to `opts.on_warning`).
/// Example: `auto doc = kvcali::parse_quant_cali_config(text);`
template <policy_list_type Policies = default_policies>
resolved_config parse_quant_cali_config(std::string_view text, const reader_options& opts = {}) {
    diagnostics diags(opts.strict, opts.on_warning);
    resolved_config out = read_config_json(text, opts.source_name, Policies::algorithms, diags, opts.model);
    diags.throw_if_errors();
    return out;
}

/// Reads a config.json file, validated as the reference's consumer validates it: duplicate keys,
/// JSON types (a float written as an integer is an error), values (spec §3.6), and optionally the
/// layers against `opts.model`. `write_config_json` of the result gives the file's bytes back when
/// the file is as kvcali or AMCT write it.
/// Errors: throws `kvcali::error` (io_error when the file cannot be read).
/// Example: `auto doc = kvcali::read_quant_cali_config("config.json");`
template <policy_list_type Policies = default_policies>
resolved_config read_quant_cali_config(const std::filesystem::path& path, const reader_options& opts = {}) {
    diagnostics diags(opts.strict, opts.on_warning);
    resolved_config out = read_config_json_file(path, Policies::algorithms, diags, opts.model);
    diags.throw_if_errors();
    return out;
}

/// As above, checking every layer against a model graph (it must exist and be eligible).
/// Example: `auto doc = kvcali::read_quant_cali_config("config.json", model);`
template <policy_list_type Policies = default_policies, class G>
requires model_graph<G> resolved_config read_quant_cali_config(const std::filesystem::path& path, const G& model,
                                                               reader_options opts = {}) {
    if constexpr (detail::is_layer_table<G>) {
        // Already a table: checked against as it is, not copied.
        opts.model = &model;
        return read_quant_cali_config<Policies>(path, opts);
    } else {
        diagnostics diags(opts.strict, opts.on_warning);
        const layer_table table = extract_layers(model, [&](std::string_view name) {
            diags.error(errc::invalid_model, detail::concat({"the model has two layers named ", detail::quote_name(name)}), {}, name);
        });
        diags.throw_if_errors();
        opts.model = &table;
        return read_quant_cali_config<Policies>(path, opts);
    }
}

/// The non-throwing form of `read_quant_cali_config`: the document, or every diagnostic.
template <policy_list_type Policies = default_policies>
outcome<resolved_config> try_read_quant_cali_config(const std::filesystem::path& path, const reader_options& opts = {}) {
    std::vector<diagnostic> warnings;
    reader_options collecting = opts;
    collecting.on_warning = [&](const diagnostic& d) {
        warnings.push_back(d);
        if (opts.on_warning) opts.on_warning(d);
    };
    try {
        resolved_config result = read_quant_cali_config<Policies>(path, collecting);
        return outcome<resolved_config>(std::move(result), std::move(warnings));
    } catch (const error& e) {
        return outcome<resolved_config>(e);
    }
}

// ---------------------------------------------------------------------------------------------
// What a calibration tool needs, per layer

/// `quant_granularity`: one scale for the tensor, or one per output channel (the last dimension).
enum class granularity : std::int32_t { per_tensor = 0, per_channel = 1 };

/// One parameter of a layer's algorithm, as calibration uses it.
struct calibration_param {
    std::string_view name;  ///< the cfg name (`search_range_start`: arrays are split per field)
    param_value value;
    /// The double of the decimal config.json holds for the value: for a float32 value, the shortest
    /// decimal that round-trips it (what the writer writes), read as a double (`decimal_double`); the
    /// reference's calibration computes with these doubles. Other types: the value itself.
    double decimal = 0.0;
};

/// IFMR's and HFMG's settings: the one struct each (calibration/settings.hpp), by their former names.
using ifmr_settings = ifmr_options;
using hfmg_settings = hfmg_options;

/// Everything calibration needs of one layer, resolved.
struct layer_calibration {
    std::string name;
    std::string_view act_algo;  ///< "ifmr", "hfmg", ... (a view of the policy's name)
    std::size_t algorithm = 0;  ///< index into the document's `algorithms`
    std::uint32_t batch_num = 1;
    bool with_offset = true;  ///< the layer's `asymmetric` if set, else `activation_offset`
    kvcali::granularity granularity = granularity::per_tensor;
    std::vector<calibration_param> params;  ///< every parameter with a value, in policy order

    const calibration_param* find(std::string_view param) const noexcept {
        for (const auto& p : params) {
            if (p.name == param) return &p;
        }
        return nullptr;
    }
    /// A float parameter as the double of its decimal (NaN when the layer has no such parameter).
    double real(std::string_view param) const noexcept {
        const auto* p = find(param);
        return p ? p->decimal : std::numeric_limits<double>::quiet_NaN();
    }
    /// IFMR's settings, when the layer's algorithm is IFMR (by its parameters' names).
    std::optional<ifmr_options> ifmr() const {
        if (act_algo != "ifmr") return std::nullopt;
        const char* names[] = {"max_percentile", "min_percentile", "search_range_start", "search_range_end", "search_step"};
        for (const char* n : names) {
            if (find(n) == nullptr) return std::nullopt;
        }
        return ifmr_options{real("max_percentile"),   real("min_percentile"), real("search_range_start"),
                            real("search_range_end"), real("search_step"),    with_offset};
    }
    /// HFMG's settings, when the layer's algorithm is HFMG.
    std::optional<hfmg_options> hfmg() const {
        if (act_algo != "hfmg") return std::nullopt;
        const auto* bins = find("num_of_bins");
        if (bins == nullptr) return std::nullopt;
        return hfmg_options{bins->value.uint, with_offset};
    }
};

/// What calibration needs of `layer` (a layer of `config`).
KVCALI_DECL layer_calibration calibration_of(const resolved_config& config, const resolved_layer& layer);

/// What calibration needs of every layer, in the document's order.
KVCALI_DECL std::vector<layer_calibration> calibration_plan(const resolved_config& config);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/config_reader.ipp"  // IWYU pragma: export
#endif
