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

#include "../calibration/hfmg.hpp"
#include "../calibration/ifmr.hpp"
#include "../calibration/scale.hpp"
#include "../config_reader.hpp"
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
        const double xd = x, dqd = dq, e = xd - dqd;
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

namespace detail {

inline value_stats stats_of(std::span<const float> v, std::size_t first, std::size_t stride) {
    value_stats s;
    if (first >= v.size()) return s;
    double sum = 0.0;
    s.min = s.max = v[first];
    for (std::size_t i = first; i < v.size(); i += stride) {
        const float x = v[i];
        s.min = std::min(s.min, x);
        s.max = std::max(s.max, x);
        sum += x;
        ++s.count;
    }
    s.absmax = std::max(std::fabs(s.min), std::fabs(s.max));
    s.mean = sum / static_cast<double>(s.count);
    double dev = 0.0;
    for (std::size_t i = first; i < v.size(); i += stride) {
        const double d = static_cast<double>(v[i]) - s.mean;
        dev += d * d;
    }
    s.std = std::sqrt(dev / static_cast<double>(s.count));
    return s;
}

/// Fills a method's figures from its factors (INT8, or FP8 when `fp8`): one pass over the values.
inline void measure(method_quality& m, std::span<const float> v, std::size_t groups, bool fp8) {
    std::vector<error_sums> sums(groups);
    std::vector<float> lo(groups), hi(groups);
    for (std::size_t g = 0; g < groups; ++g) {
        if (fp8) {
            lo[g] = -fp8_e4m3_max * m.factors.scale[g];
            hi[g] = fp8_e4m3_max * m.factors.scale[g];
        } else {
            std::tie(lo[g], hi[g]) = int8_clip_range(m.factors.scale[g], m.factors.offset[g]);
        }
    }
    if (groups == 1) {
        const float s = m.factors.scale[0];
        const std::int32_t o = m.factors.offset[0];
        error_sums& acc = sums[0];
        if (fp8) {
            for (float x : v) acc.add(x, fp8_round_trip(x, s), lo[0], hi[0]);
        } else {
            for (float x : v) acc.add(x, int8_round_trip(x, s, o), lo[0], hi[0]);
        }
    } else {
        for (std::size_t i = 0; i < v.size(); ++i) {
            const std::size_t g = i % groups;
            const float x = v[i];
            const float dq = fp8 ? fp8_round_trip(x, m.factors.scale[g]) : int8_round_trip(x, m.factors.scale[g], m.factors.offset[g]);
            sums[g].add(x, dq, lo[g], hi[g]);
        }
    }
    error_sums total;
    for (const auto& s : sums) total.merge(s);
    m.all = total.figures(*std::min_element(lo.begin(), lo.end()), *std::max_element(hi.begin(), hi.end()));
    m.channels.clear();
    if (groups > 1) {
        for (std::size_t g = 0; g < groups; ++g) m.channels.push_back(sums[g].figures(lo[g], hi[g]));
    }
}

inline void push_factor(quant_factors& f, scale_offset so) {
    f.scale.push_back(so.scale);
    f.offset.push_back(so.offset);
}

/// Higher is better; NaN (no signal, no error) counts as perfect.
inline double sqnr_rank(double db) noexcept { return std::isnan(db) ? std::numeric_limits<double>::infinity() : db; }

}  // namespace detail

/// The IFMR options of the policy defaults (`ifmr_defaults`), as the decimals config.json would
/// show.
inline ifmr_options default_ifmr_options(bool with_offset) {
    ifmr_options o;  // the defaults are the policy's (calibration/settings.hpp)
    o.with_offset = with_offset;
    return o;
}

/// The scales and offsets the other algorithm (IFMR for an HFMG layer, HFMG for
/// an IFMR layer) gives with its policy defaults (`ifmr_defaults`,
/// `hfmg_defaults`), keeping the layer's offset setting and granularity. Empty
/// `other_algo` for any other algorithm. Errors: throws `kvcali::error` as the
/// algorithm does (invalid_data, invalid_value).
inline quant_factors other_algorithm_factors(std::string_view act_algo, bool with_offset, bool per_channel, const layer_values& data,
                                             std::string& other_algo) {
    quant_factors out;
    const std::size_t groups = per_channel && data.channels > 1 ? data.channels : 1;
    if (act_algo == "hfmg") {
        other_algo = "ifmr";
        const ifmr_options opts = default_ifmr_options(with_offset);
        if (groups == 1) {
            detail::push_factor(out, ifmr_calibrate(data.values, opts));
        } else {
            std::vector<float> channel(data.values.size() / groups);
            for (std::size_t c = 0; c < groups; ++c) {
                for (std::size_t r = 0; r < channel.size(); ++r) channel[r] = data.values[r * groups + c];
                detail::push_factor(out, ifmr_calibrate(channel, opts));
            }
        }
    } else if (act_algo == "ifmr") {
        other_algo = "hfmg";
        const std::uint32_t bins = hfmg_defaults::num_of_bins;
        std::vector<hfmg_histogram> histograms(groups);
        std::size_t begin = 0;
        for (std::size_t end : data.batch_ends) {
            const std::size_t count = end - begin;
            for (std::size_t c = 0; c < groups; ++c) {
                if (count > 0) hfmg_add(histograms[c], bins, data.values.data() + begin + c, count / groups, groups);
            }
            begin = end;
        }
        for (const auto& h : histograms) detail::push_factor(out, hfmg_calibrate(h, with_offset));
    } else {
        other_algo.clear();
    }
    return out;
}

/// Assesses one layer: `layer` its calibration settings (from
/// `calibration_of`), `data` its values, `record` its scales and offsets (one
/// per tensor, or one per channel for a per-channel layer with more than one
/// channel). `histogram_bins` bins for the value histogram. Errors: throws
/// `kvcali::error` (invalid_data, naming the layer) when `record` does not fit
/// the layer or the data is empty; the other algorithm's own failure is kept in
/// `other_algorithm_error`. Example: `kvcali::layer_quality q =
/// kvcali::assess_layer(kvcali::calibration_of(doc, doc.layers[0]), data,
/// record);`
inline layer_quality assess_layer(const layer_calibration& layer, const layer_values& data, const quant_factors& record,
                                  const flag_thresholds& thresholds = {}, std::size_t histogram_bins = 100) {
    layer_quality q;
    q.name = layer.name;
    q.act_algo = std::string(layer.act_algo);
    q.per_channel = layer.granularity == granularity::per_channel;
    q.with_offset = layer.with_offset;
    q.channel_count = data.channels;
    auto fail = [&](const std::string& what) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = "layer \"" + layer.name + "\": " + what,
                               .where = {},
                               .layer = layer.name,
                               .json_path = {}});
    };
    const std::span<const float> v = data.values;
    if (v.empty()) fail("no values");
    if (q.per_channel && data.channels == 0) fail("the batches disagree on the last dimension (the channels)");
    const std::size_t groups = q.per_channel && data.channels > 1 ? data.channels : 1;
    if (record.scale.size() != groups || record.offset.size() != groups) {
        fail("the record has " + std::to_string(record.scale.size()) + " scales and " + std::to_string(record.offset.size()) +
             " offsets; expected " + std::to_string(groups) + (groups == 1 ? " (per tensor)" : " (one per channel)"));
    }
    if (groups > 1 && v.size() % groups != 0) fail("the value count is not a multiple of the channel count");
    for (float s : record.scale) {
        if (!std::isfinite(s) || s <= 0.0f) fail("the record's scale " + float32_repr(s) + " is not a positive finite number");
    }

    q.data = detail::stats_of(v, 0, 1);

    // Channel extremes (also for per-tensor layers: the wide-channel flag), and
    // per-channel stats.
    if (data.channels > 1 && v.size() % data.channels == 0) {
        const std::size_t c_count = data.channels;
        q.channel_min.assign(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(c_count));
        q.channel_max = q.channel_min;
        for (std::size_t i = c_count; i < v.size(); ++i) {
            const std::size_t c = i % c_count;
            q.channel_min[c] = std::min(q.channel_min[c], v[i]);
            q.channel_max[c] = std::max(q.channel_max[c], v[i]);
        }
        std::vector<double> ranges(c_count);
        for (std::size_t c = 0; c < c_count; ++c) ranges[c] = static_cast<double>(q.channel_max[c]) - static_cast<double>(q.channel_min[c]);
        std::vector<double> sorted = ranges;
        std::sort(sorted.begin(), sorted.end());
        q.median_channel_range = c_count % 2 == 1 ? sorted[c_count / 2] : (sorted[c_count / 2 - 1] + sorted[c_count / 2]) / 2.0;
        for (std::size_t c = 0; c < c_count; ++c) {
            if (ranges[c] > thresholds.channel_range_factor * q.median_channel_range) q.wide_channels.push_back(c);
        }
    } else if (data.channels == 1) {
        q.channel_min = {q.data.min};
        q.channel_max = {q.data.max};
        q.median_channel_range = static_cast<double>(q.data.max) - static_cast<double>(q.data.min);
    }

    // The methods' factors.
    q.record.factors = record;
    if (groups == 1) {
        detail::push_factor(q.minmax.factors, scale_offset_from_range(q.data.min, q.data.max, layer.with_offset));
        q.fp8.factors = {{fp8_scale(q.data.absmax)}, {0}};
    } else {
        for (std::size_t c = 0; c < groups; ++c) {
            detail::push_factor(q.minmax.factors, scale_offset_from_range(q.channel_min[c], q.channel_max[c], layer.with_offset));
            const float absmax = std::max(std::fabs(q.channel_min[c]), std::fabs(q.channel_max[c]));
            q.fp8.factors.scale.push_back(fp8_scale(absmax));
            q.fp8.factors.offset.push_back(0);
        }
    }
    try {
        quant_factors other = other_algorithm_factors(layer.act_algo, layer.with_offset, q.per_channel, data, q.other_algo);
        if (!q.other_algo.empty()) q.other_algorithm = method_quality{std::move(other), {}, {}};
    } catch (const error& e) {
        q.other_algorithm_error = e.diagnostics().empty() ? "failed" : e.diagnostics().front().message;
    }

    detail::measure(q.record, v, groups, false);
    detail::measure(q.minmax, v, groups, false);
    detail::measure(q.fp8, v, groups, true);
    if (q.other_algorithm) detail::measure(*q.other_algorithm, v, groups, false);

    if (groups > 1) {
        q.channels.resize(groups);
        for (std::size_t c = 0; c < groups; ++c) {
            channel_quality& ch = q.channels[c];
            ch.data = detail::stats_of(v, c, groups);
            ch.record = q.record.channels[c];
            ch.minmax = q.minmax.channels[c];
            ch.fp8 = q.fp8.channels[c];
            if (q.other_algorithm) ch.other_algorithm = q.other_algorithm->channels[c];
        }
    }

    // Flags, and the best method by SQNR (the first of the highest).
    const double rec_sqnr = q.record.all.sqnr_db;
    if (std::isfinite(rec_sqnr) && rec_sqnr < thresholds.min_sqnr_db) q.flags.emplace_back(flag_low_sqnr);
    if (q.record.all.clip_fraction > thresholds.max_clip_fraction) q.flags.emplace_back(flag_clipping);
    if (!q.wide_channels.empty()) q.flags.emplace_back(flag_wide_channel);
    q.best = "record";
    double best = detail::sqnr_rank(rec_sqnr);
    auto consider = [&](const char* name, const method_quality& m) {
        if (detail::sqnr_rank(m.all.sqnr_db) > best) {
            best = detail::sqnr_rank(m.all.sqnr_db);
            q.best = name;
        }
    };
    consider("minmax", q.minmax);
    if (q.other_algorithm) consider("other_algorithm", *q.other_algorithm);
    consider("fp8", q.fp8);

    // The histogram spans the data and the record's clip range.
    value_histogram& h = q.histogram;
    h.lo = std::min<double>(q.data.min, q.record.all.lo);
    h.hi = std::max<double>(q.data.max, q.record.all.hi);
    h.counts.assign(std::max<std::size_t>(histogram_bins, 1), 0);
    const double width = h.hi - h.lo;
    const auto bins = static_cast<double>(h.counts.size());
    for (float x : v) {
        double b = width > 0.0 ? std::floor((static_cast<double>(x) - h.lo) / width * bins) : 0.0;
        b = std::clamp(b, 0.0, bins - 1.0);
        ++h.counts[static_cast<std::size_t>(b)];
    }
    return q;
}

}  // namespace kvcali
