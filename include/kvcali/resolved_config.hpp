// kvcali: the resolved document: every KV-cache layer with its algorithm and every parameter's
// value, and where each value came from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "error.hpp"
#include "policy.hpp"

namespace kvcali {

/// Where a resolved value came from.
enum class origin {
    policy_default,    ///< the algorithm policy's default
    global_default,    ///< the schema default of a global (`batch_num`, `activation_offset`)
    config_file,       ///< a global set in the simple config file
    common_config,     ///< `kv_cache_quant_config.calibration_config`
    override_config,   ///< an `override_layers_configs` entry
    quant_layers_arg,  ///< the layer came from the `quant_layers` argument
};

constexpr std::string_view to_string(origin o) noexcept {
    switch (o) {
        case origin::policy_default: return "policy default";
        case origin::global_default: return "default";
        case origin::config_file: return "config file";
        case origin::common_config: return "common config";
        case origin::override_config: return "override";
        case origin::quant_layers_arg: return "quant_layers argument";
    }
    return "?";
}

struct provenance {
    kvcali::origin from = origin::policy_default;
    source_location where;  ///< a cfg position, when the value was written there
};

/// One KV-cache layer of the resolved document.
struct resolved_layer {
    std::string name;
    std::size_t algorithm = 0;                       ///< index into `resolved_config::algorithms`
    std::vector<std::optional<param_value>> values;  ///< per parameter; empty only for unset optional ones
    std::vector<provenance> sources;                 ///< per parameter
    provenance listed;                               ///< why the layer is in the list
    provenance algorithm_source;                     ///< where its algorithm was chosen
    std::string selector;                            ///< the selector that chose it (its own name when exact)
};

/// What `create_quant_cali_config` writes, as data.
struct resolved_config {
    algorithm_registry algorithms;  ///< the policies the document was resolved with
    std::uint32_t batch_num = 1;
    bool activation_offset = true;
    provenance batch_num_source{origin::global_default, {}};
    provenance activation_offset_source{origin::global_default, {}};
    std::vector<resolved_layer> layers;  ///< in the order of the JSON document

    const algorithm_desc& algorithm_of(const resolved_layer& layer) const { return algorithms[layer.algorithm]; }
};

}  // namespace kvcali
