// kvcali report: the quality figures of one layer's quantization, computed on
// its activations.
//
// For each layer: the data (count, min, max, absmax, mean, standard deviation),
// and for each way of quantizing it (the record's scales and offsets, plain
// min/max, the other algorithm with its defaults, FP8 E4M3 with scale amax/448)
// the clip range, the fraction of values outside it and the round trip's error:
// MSE, SQNR in dB, largest absolute error, cosine similarity. Quantization runs
// in float32 as `calibrate` does (round half to even); the figures' sums are
// accumulated in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "../calibration/scale.hpp"
#include "../calibration/settings.hpp"
#include "../config_reader.hpp"
#include "../detail/config.hpp"
#include "../error.hpp"
#include "../policy.hpp"

namespace kvcali {

/// Count, extremes, mean and standard deviation (population, divided by the count) of a sample.
/// `mean` and `std` are computed in double: the sum of the values, then the sum of squared
/// deviations from the mean (two passes).
struct value_stats {
    std::uint64_t count = 0;
    float min = 0.0f;
    float max = 0.0f;
    float absmax = 0.0f;
    double mean = 0.0;
    double std = 0.0;
};

/// The figures of one quantization of a sample.
///   lo, hi          the clip range (float32): INT8 `(-128 - offset) * scale`,
///   `(127 - offset) * scale`;
///                   FP8 `-448 * scale`, `448 * scale`
///   clip_fraction   the fraction of values `x < lo` or `x > hi`
///   mse             `sum (x - dq)^2 / count`
///   sqnr_db         `10 log10(sum x^2 / sum (x - dq)^2)`; +inf when there is
///   no error (NaN: no
///                   signal and no error)
///   max_abs_error   `max |x - dq|`
///   cosine          `sum x dq / sqrt(sum x^2 * sum dq^2)`; 1 when both are all
///   zeros, 0 when one is
/// `x - dq` is taken in double (both are float32); the sums run in double, in
/// value order.
struct error_figures {
    float lo = 0.0f;
    float hi = 0.0f;
    double clip_fraction = 0.0;
    double mse = 0.0;
    double sqnr_db = 0.0;
    double max_abs_error = 0.0;
    double cosine = 1.0;
};

/// The running sums behind `error_figures` (mergeable: a per-channel layer's figures over all its
/// values are its channels' sums merged).
struct error_sums {
    std::uint64_t count = 0;
    std::uint64_t clipped = 0;
    double sum_x2 = 0.0;
    double sum_dq2 = 0.0;
    double sum_xdq = 0.0;
    double sum_e2 = 0.0;
    double max_abs = 0.0;

    void add(float x, float dq, float lo, float hi) noexcept {
        const double xd = static_cast<double>(x), dqd = static_cast<double>(dq), e = xd - dqd;
        ++count;
        if (x < lo || x > hi) ++clipped;
        sum_x2 += xd * xd;
        sum_dq2 += dqd * dqd;
        sum_xdq += xd * dqd;
        sum_e2 += e * e;
        max_abs = std::max(max_abs, std::fabs(e));
    }
    void merge(const error_sums& o) noexcept {
        count += o.count;
        clipped += o.clipped;
        sum_x2 += o.sum_x2;
        sum_dq2 += o.sum_dq2;
        sum_xdq += o.sum_xdq;
        sum_e2 += o.sum_e2;
        max_abs = std::max(max_abs, o.max_abs);
    }
    error_figures figures(float lo, float hi) const {
        error_figures f;
        f.lo = lo;
        f.hi = hi;
        const double n = count == 0 ? 1.0 : static_cast<double>(count);
        f.clip_fraction = static_cast<double>(clipped) / n;
        f.mse = sum_e2 / n;
        if (sum_e2 == 0.0) {
            f.sqnr_db = sum_x2 == 0.0 ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
        } else {
            f.sqnr_db = 10.0 * std::log10(sum_x2 / sum_e2);
        }
        f.max_abs_error = max_abs;
        if (sum_x2 == 0.0 && sum_dq2 == 0.0) {
            f.cosine = 1.0;
        } else if (sum_x2 == 0.0 || sum_dq2 == 0.0) {
            f.cosine = 0.0;
        } else {
            f.cosine = sum_xdq / std::sqrt(sum_x2 * sum_dq2);
        }
        return f;
    }
};

/// The INT8 round trip of `x` (float32, round half to even):
/// `(clamp(round(x / scale) + offset, -128, 127) - offset) * scale`.
inline float int8_round_trip(float x, float scale, std::int32_t offset) noexcept {
    const float off = static_cast<float>(offset);
    const float q = std::clamp(round_half_even(x / scale) + off, -128.0f, 127.0f);
    return (q - off) * scale;
}

/// The INT8 clip range of a scale and offset: `[(-128 - offset) * scale, (127 - offset) * scale]`
/// (float32).
inline std::pair<float, float> int8_clip_range(float scale, std::int32_t offset) noexcept {
    return {static_cast<float>(-128 - offset) * scale, static_cast<float>(127 - offset) * scale};
}

/// The largest finite FP8 E4M3 (the "fn" variant: no infinities) value.
inline constexpr float fp8_e4m3_max = 448.0f;

/// `v` rounded to FP8 E4M3: 3 mantissa bits, round half to even, exponent bias
/// 7 (normals down to 2^-6, subnormals in steps of 2^-9), saturating at +-448.
/// Requires a finite `v`.
inline float fp8_e4m3_round(float v) noexcept {
    const float a = std::fabs(v);
    if (a >= fp8_e4m3_max) return std::copysign(fp8_e4m3_max, v);
    int e = 0;
    (void)std::frexp(a, &e);                   // a = m * 2^e, m in [0.5, 1)
    const int exponent = std::max(e - 1, -6);  // floor(log2 a), subnormals share 2^-6's spacing
    const float ulp = std::ldexp(1.0f, exponent - 3);
    return std::copysign(round_half_even(a / ulp) * ulp, v);
}

/// The FP8 scale of a sample with largest magnitude `absmax`: `absmax / 448` (float32), 1 when
/// absmax is 0 (what an fp8 export gives).
inline float fp8_scale(float absmax) noexcept { return absmax == 0.0f ? 1.0f : absmax / fp8_e4m3_max; }

/// The FP8 E4M3 round trip of `x`: `e4m3(x / scale) * scale` (float32).
inline float fp8_round_trip(float x, float scale) noexcept { return fp8_e4m3_round(x / scale) * scale; }

/// One way of quantizing a layer: its scales and offsets (one, or one per channel; FP8 offsets are
/// 0) and its figures over all the layer's values (each with its own channel's scale and offset).
/// For a per-channel layer `lo` is the smallest channel `lo` and `hi` the largest channel `hi`.
struct method_quality {
    quant_factors factors;
    error_figures all;
    std::vector<error_figures> channels;  ///< per-channel layers: one per channel
};

/// The figures of one channel of a per-channel layer.
struct channel_quality {
    value_stats data;
    error_figures record, minmax, other_algorithm, fp8;
};

/// A histogram of a layer's values: `counts.size()` equal bins over [lo, hi].
struct value_histogram {
    double lo = 0.0;
    double hi = 0.0;
    std::vector<std::uint64_t> counts;
};

/// The flags of a layer, as the report writes them.
inline constexpr std::string_view flag_low_sqnr = "sqnr_below_20db";
inline constexpr std::string_view flag_clipping = "clipped_over_1pct";
inline constexpr std::string_view flag_wide_channel = "channel_range_100x_median";

/// The thresholds of the flags.
struct flag_thresholds {
    double min_sqnr_db = 20.0;            ///< the record's SQNR below this
    double max_clip_fraction = 0.01;      ///< the record clips more than this
    double channel_range_factor = 100.0;  ///< a channel's max - min above this times the median channel's
};

/// Everything the report says of one layer.
struct layer_quality {
    std::string name;
    std::string act_algo;    ///< the layer's algorithm ("ifmr", "hfmg", ...)
    std::string other_algo;  ///< the alternative computed ("hfmg" for ifmr, "ifmr"
                             ///< for hfmg; empty: none)
    bool per_channel = false;
    bool with_offset = true;
    std::size_t channel_count = 0;  ///< the last dimension (0 when the batches disagree on it)
    value_stats data;
    method_quality record, minmax, fp8;
    std::optional<method_quality> other_algorithm;  ///< empty when there is no other algorithm or it failed
    std::string other_algorithm_error;              ///< why it failed, when it did
    std::vector<channel_quality> channels;          ///< per-channel layers only
    std::vector<float> channel_min,
        channel_max;  ///< every layer whose batches share a last dimension
    double median_channel_range = 0.0;
    std::vector<std::size_t> wide_channels;  ///< channels whose range is over the factor x the median
    std::vector<std::string> flags;
    std::string best;  ///< the method with the highest SQNR: record, minmax,
                       ///< other_algorithm, fp8
    value_histogram histogram;
};

/// A layer's values: all its batches one after another (row-major, the last dimension the channel),
/// and where each batch ends (HFMG histograms batch by batch).
struct layer_values {
    std::span<const float> values;
    std::size_t channels = 1;                 ///< the last dimension; 0 when batches disagree
    std::span<const std::size_t> batch_ends;  ///< one past each batch's last value
};

/// The IFMR options of the policy defaults (`ifmr_defaults`), as the decimals config.json would
/// show.
KVCALI_DECL ifmr_options default_ifmr_options(bool with_offset);

/// The scales and offsets the other algorithm (IFMR for an HFMG layer, HFMG for
/// an IFMR layer) gives with its policy defaults (`ifmr_defaults`,
/// `hfmg_defaults`), keeping the layer's offset setting and granularity. Empty
/// `other_algo` for any other algorithm. Errors: throws `kvcali::error` as the
/// algorithm does (invalid_data, invalid_value).
KVCALI_DECL quant_factors other_algorithm_factors(std::string_view act_algo, bool with_offset, bool per_channel, const layer_values& data,
                                                  std::string& other_algo);

/// Assesses one layer: `layer` its calibration settings (from
/// `calibration_of`), `data` its values, `record` its scales and offsets (one
/// per tensor, or one per channel for a per-channel layer with more than one
/// channel). `histogram_bins` bins for the value histogram. Errors: throws
/// `kvcali::error` (invalid_data, naming the layer) when `record` does not fit
/// the layer or the data is empty; the other algorithm's own failure is kept in
/// `other_algorithm_error`. Example: `kvcali::layer_quality q =
/// kvcali::assess_layer(kvcali::calibration_of(doc, doc.layers[0]), data,
/// record);`
KVCALI_DECL layer_quality assess_layer(const layer_calibration& layer, const layer_values& data, const quant_factors& record,
                                       const flag_thresholds& thresholds = {}, std::size_t histogram_bins = 100);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/report_figures.ipp"  // IWYU pragma: export
#endif
