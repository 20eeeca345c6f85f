// A generated quant.cfg for a model with `layers` KV-cache layers (K and V projections of
// layers/2 decoder blocks): every layer in the common list, one in ten overridden.
#pragma once

#include <cstddef>
#include <string>

namespace kvcali_bench {

inline std::string generated_quant_cfg(std::size_t layers) {
    std::string out;
    out.reserve(layers * 56 + 4096);
    out += "# generated: " + std::to_string(layers) + " KV-cache layers\n";
    out += "batch_num: 4\nactivation_offset: true\n";
    out += "kv_cache_quant_config {\n";
    for (std::size_t i = 0; i < layers; ++i) {
        out += "    quant_layers: 'model.layers." + std::to_string(i / 2) + (i % 2 ? ".self_attn.v_proj'\n" : ".self_attn.k_proj'\n");
    }
    out +=
        "    calibration_config {\n        ifmr_quantize {\n            search_range_start: 0.7\n"
        "            search_range_end: 1.3\n            search_step: 0.01\n            max_percentile: 0.999999\n"
        "            min_percentile: 0.999999\n            quant_granularity: per_tensor\n        }\n    }\n}\n";
    for (std::size_t i = 0; i < layers; i += 10) {
        out += "override_layers_configs {\n    layer_name: 'model.layers." + std::to_string(i / 2) +
               (i % 2 ? ".self_attn.v_proj'\n" : ".self_attn.k_proj'\n");
        if (i % 20 == 0) {
            out += "    kv_data_quant_config { hfmg_quantize { num_of_bins: 2048 asymmetric: false quant_granularity: per_channel } }\n";
        } else {
            out += "    kv_data_quant_config { ifmr_quantize { search_step: 0.02 max_percentile: 0.9999 } }\n";
        }
        out += "}\n";
    }
    return out;
}

}  // namespace kvcali_bench
