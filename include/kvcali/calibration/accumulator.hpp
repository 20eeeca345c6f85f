// kvcali calibration: the accumulator interface through which an algorithm calibrates.
//
// The calibrator keeps a table of accumulator factories by `act_algo` (calibrator.hpp): the
// built-in IFMR and HFMG ones, plus those a user passes to it for algorithms of their own
//   std::unique_ptr<kvcali::accumulator> make_mine(const kvcali::accumulator_settings&);
//   kvcali::calibrator cal(config, {{"mine", &make_mine}});
// It makes one accumulator per layer, hands it every batch (widened to float32, checked finite)
// and, after `batch_num` batches, asks for the scales and offsets. Policies (policy.hpp) describe
// parameters only and do not depend on this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "../detail/config.hpp"
#include "scale.hpp"

namespace kvcali {

class param_view;          // policy.hpp
struct layer_calibration;  // config_reader.hpp

/// What an accumulator is made for: one layer's resolved settings.
struct accumulator_settings {
    std::string_view layer;    ///< the layer's name (for messages)
    bool with_offset = true;   ///< asymmetric quantization (`asymmetric`, else `activation_offset`)
    bool per_channel = false;  ///< `quant_granularity` 1: one result per channel (the last dimension)
    std::uint32_t batch_num = 1;
    const param_view* params = nullptr;  ///< the layer's parameter values, by cfg name
    /// Everything calibration needs of the layer, derived once (`calibration_of`, config_reader.hpp):
    /// `with_offset` and `per_channel` above come from it.
    const layer_calibration* calibration = nullptr;
};

/// Collects a layer's batches and computes its quantization factors.
class accumulator {
public:
    virtual ~accumulator() = default;

    /// One batch: `values` holds rows of `channels` values each (row-major; the last dimension is
    /// the channel). Values are finite. Per channel, `channels` is the same for every batch.
    /// Throws `kvcali::error` for data the algorithm cannot take.
    virtual void add_batch(std::span<const float> values, std::size_t channels) = 0;

    /// The scales and offsets (one entry per tensor, or per channel), after the last batch.
    /// Throws `kvcali::error` (invalid_data, invalid_value) when no usable result exists.
    virtual quant_factors finish() = 0;
};

/// How the calibrator makes an accumulator for a layer (see calibrator.hpp).
using accumulator_factory = std::unique_ptr<accumulator> (*)(const accumulator_settings&);

namespace detail {
/// Channels copied out at once when a per-channel accumulator splits a batch: each row of the
/// batch then gives one cache line to `channel_block` sequential writers.
inline constexpr std::size_t channel_block = 16;

/// Copies channels [c0, c0 + width) of a row-major [rows, channels] batch, channel c0 + c to
/// out[c][0 .. rows) (width <= channel_block). The rows are a whole row of channels apart, so
/// each is fetched 16 rows ahead.
inline void copy_channels(const float* values, std::size_t rows, std::size_t channels, std::size_t c0, std::size_t width,
                          float* const* out) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = values + r * channels + c0;
        if (r + 16 < rows) prefetch(row + 16 * channels);
        for (std::size_t c = 0; c < width; ++c) out[c][r] = row[c];
    }
}

/// Throws the `invalid_data` error of a per-channel accumulator given a batch of `channels` channels
/// after batches of `before`.
[[noreturn]] KVCALI_COLD KVCALI_DECL void throw_channel_count_changed(std::size_t channels, std::size_t before);
}  // namespace detail

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/accumulator.ipp"  // IWYU pragma: export
#endif
