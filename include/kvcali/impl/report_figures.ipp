// kvcali: report/figures.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
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
#include "../report/figures.hpp"

namespace kvcali {

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
        sum += static_cast<double>(x);
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

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL ifmr_options default_ifmr_options(bool with_offset) {
    ifmr_options o;  // the defaults are the policy's (calibration/settings.hpp)
    o.with_offset = with_offset;
    return o;
}

KVCALI_DECL quant_factors other_algorithm_factors(std::string_view act_algo, bool with_offset, bool per_channel, const layer_values& data,
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

KVCALI_DECL layer_quality assess_layer(const layer_calibration& layer, const layer_values& data, const quant_factors& record,
                                       const flag_thresholds& thresholds, std::size_t histogram_bins) {
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
    h.lo = std::min(static_cast<double>(q.data.min), static_cast<double>(q.record.all.lo));
    h.hi = std::max(static_cast<double>(q.data.max), static_cast<double>(q.record.all.hi));
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
