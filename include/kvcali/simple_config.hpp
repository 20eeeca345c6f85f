// kvcali: the simple config file (quant.cfg) as data, after parsing and binding to the schema,
// and the `quant_layers` argument of the call. Every value keeps where it was written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "error.hpp"
#include "policy.hpp"

namespace kvcali {

/// Bounds that keep a hostile config file from exhausting time or memory.
struct simple_config_limits {
    std::size_t max_bytes = std::size_t{64} << 20;  ///< larger files are refused (a 1M-layer config is ~45 MB)
    std::size_t max_depth = 64;                     ///< nested messages and lists (the schema needs 4)
    std::size_t max_nodes = 4'000'000;              ///< fields and list elements in the document
    std::size_t max_errors = 100;                   ///< semantic errors reported before giving up
};

/// A string value with the place it was written.
struct located_string {
    std::string value;
    source_location where;
};

/// One CalibrationConfig block: the algorithm chosen (if any) and the fields set in it.
struct algorithm_config {
    std::optional<std::size_t> algorithm;            ///< index into the policy list; empty: none chosen
    std::vector<std::optional<param_value>> values;  ///< per parameter of that algorithm; set ones only
    std::vector<source_location> value_locations;    ///< where each set value was written
    source_location where;                           ///< the CalibrationConfig block
    source_location algorithm_where;                 ///< the algorithm block (`ifmr_quantize {`)
};

/// One `override_layers_configs` entry.
struct override_config {
    std::optional<located_string> layer_name;  ///< required by the schema; empty when missing
    std::optional<algorithm_config> config;    ///< `kv_data_quant_config`
    source_location where;
};

/// A parsed and bound simple config file.
struct simple_config {
    std::string file;  ///< the path it was read from (for messages)
    std::optional<std::uint32_t> batch_num;
    source_location batch_num_where;
    std::optional<bool> activation_offset;
    source_location activation_offset_where;
    bool has_common = false;  ///< `kv_cache_quant_config` present
    source_location common_where;
    std::vector<located_string> quant_layers;  ///< `kv_cache_quant_config.quant_layers`, in file order
    std::optional<algorithm_config> common;    ///< `kv_cache_quant_config.calibration_config`
    std::vector<override_config> overrides;    ///< `override_layers_configs`, in file order
    /// Algorithm blocks replaced by a later one in the same CalibrationConfig (their values are
    /// checked with warnings only, since no layer uses them).
    std::vector<algorithm_config> discarded;
};

/// The `quant_layers` argument: `{"kv_cache_quant_layers": [names...]}`.
struct quant_layers {
    std::vector<std::string> names;
    std::string origin = "quant_layers";  ///< how to name the argument in messages

    quant_layers() = default;
    quant_layers(std::vector<std::string> layer_names) : names(std::move(layer_names)) {}  // NOLINT: implicit on purpose
    quant_layers(std::initializer_list<std::string> layer_names) : names(layer_names) {}
};

}  // namespace kvcali
