// kvcali: calibration/accumulator.hpp's functions (declared there): included at the end of that
// header (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cstddef>
#include <string>

#include "../calibration/accumulator.hpp"
#include "../error.hpp"

namespace kvcali::detail {

KVCALI_DECL void throw_channel_count_changed(std::size_t channels, std::size_t before) {
    throw error(diagnostic{.severity = severity::error,
                           .category = errc::invalid_data,
                           .message = "a batch of " + std::to_string(channels) + " channels after batches of " + std::to_string(before) +
                                      "; expected the same number in every batch",
                           .where = {},
                           .layer = {},
                           .json_path = {}});
}

}  // namespace kvcali::detail
