// kvcali calibration: each built-in algorithm's settings, one struct each, its fields named as in
// quant.cfg. Their defaults are the policies' (`ifmr_defaults`, `hfmg_defaults` in policy.hpp),
// written there once, here as the doubles of the decimals config.json shows.
#pragma once

#include <cstdint>

#include "../policy.hpp"
#include "scale.hpp"

namespace kvcali {

/// IFMR's settings, as the doubles of the decimals written in config.json (the reference's
/// calibration computes with these doubles). Read from a layer with `layer_calibration::ifmr()`.
struct ifmr_options {
    double max_percentile = decimal_double(ifmr_defaults::max_percentile);
    double min_percentile = decimal_double(ifmr_defaults::min_percentile);
    double search_range_start = decimal_double(ifmr_defaults::search_range_start);
    double search_range_end = decimal_double(ifmr_defaults::search_range_end);
    double search_step = decimal_double(ifmr_defaults::search_step);
    bool with_offset = true;  ///< asymmetric quantization (the layer's `asymmetric`, else `activation_offset`)
};

/// HFMG's settings. Read from a layer with `layer_calibration::hfmg()`.
struct hfmg_options {
    std::uint32_t num_of_bins = hfmg_defaults::num_of_bins;
    bool with_offset = true;  ///< asymmetric quantization (the layer's `asymmetric`, else `activation_offset`)
};

}  // namespace kvcali
