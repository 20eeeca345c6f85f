// kvcali calibration: IFMR. Percentile starting points refined by a search over clip factors,
// each candidate scored by its mean squared quantization error.
//
// The reference makes one pass over the data per candidate. Here the sample is sorted once (a
// radix sort), then every candidate's loss comes from the quantization cells: a cell (the values
// that quantize to one level) is a contiguous run of the sorted data, found by binary search with
// the reference's own float32 rounding, and its squared error sum comes from precomputed per-block
// means and centred second moments, so no candidate touches every value.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../error.hpp"
#include "accumulator.hpp"
#include "scale.hpp"

namespace kvcali {

/// IFMR parameters, as the doubles of the decimals written in config.json.
struct ifmr_options {
    double max_percentile = 0.999999;
    double min_percentile = 0.999999;
    double search_start = 0.7;
    double search_end = 1.3;
    double search_step = 0.01;
    bool with_offset = true;
};

/// The largest number of candidates IFMR accepts.
inline constexpr double ifmr_max_candidates = 100000.0;

/// The candidate clip factors `float32(start + i * step)`, i = 0 .. ceil((end - start) / step) - 1.
/// Throws `kvcali::error` (invalid_value) when there is no candidate or more than 100000.
inline std::vector<float> ifmr_ratios(const ifmr_options& s) {
    const double count = std::ceil((s.search_end - s.search_start) / s.search_step);
    if (!(count >= 1.0)) {
        throw error(diagnostic{severity::error, errc::invalid_value,
                               "the IFMR search range [" + std::to_string(s.search_start) + ", " + std::to_string(s.search_end) +
                                   "] with step " + std::to_string(s.search_step) + " holds no candidate (expected search_range_start < search_range_end and search_step > 0)",
                               {}, {}, {}});
    }
    if (count > ifmr_max_candidates) {
        throw error(diagnostic{severity::error, errc::invalid_value,
                               "the IFMR search holds " + std::to_string(static_cast<long long>(count)) +
                                   " candidates (expected at most 100000: raise search_step)",
                               {}, {}, {}});
    }
    std::vector<float> ratios;
    ratios.reserve(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) {
        ratios.push_back(static_cast<float>(s.search_start + static_cast<double>(i) * s.search_step));
    }
    return ratios;
}

/// The starting points of the search.
struct ifmr_start {
    float max0 = 0.0f;      ///< the upper bound (symmetric: the larger magnitude)
    float min0 = 0.0f;      ///< the lower bound (asymmetric only)
    bool negative = false;  ///< symmetric: the negative side is the larger one
};

/// Percentile starting points of a sorted, non-empty sample.
inline ifmr_start ifmr_start_points(std::span<const float> sorted, const ifmr_options& s) {
    const std::size_t n = sorted.size();
    auto rank = [n](double percentile) -> std::size_t {
        if (1.0 - percentile < static_cast<double>(flt_epsilon)) return 1;
        const double k = static_cast<double>(n) - std::trunc(percentile * static_cast<double>(n));
        if (!(k >= 1.0)) return 1;
        if (k >= static_cast<double>(n)) return n;
        return static_cast<std::size_t>(k);
    };
    ifmr_start start;
    start.max0 = std::max(sorted[n - rank(s.max_percentile)], 0.0f);
    start.min0 = std::min(sorted[rank(s.min_percentile) - 1], 0.0f);
    if (!s.with_offset) {
        start.negative = std::fabs(start.max0) < std::fabs(start.min0);
        start.max0 = std::max(std::fabs(start.max0), std::fabs(start.min0));
    }
    return start;
}

/// One candidate: values are clamped to [lo, hi] and quantized with `scale`.
struct ifmr_candidate {
    float lo = 0.0f;
    float hi = 0.0f;
    float scale = 1.0f;
};

inline ifmr_candidate ifmr_candidate_at(const ifmr_start& start, float ratio, bool with_offset) {
    ifmr_candidate c;
    c.hi = ratio * start.max0;
    if (with_offset) {
        c.lo = start.min0;
        c.scale = (c.hi - start.min0) / 255.0f;
    } else {
        c.lo = -c.hi;
        c.scale = start.negative ? c.hi / 128.0f : c.hi / 127.0f;
    }
    if (c.scale < flt_epsilon) c.scale = 1.0f;
    return c;
}

/// The quantization level of `x` under a candidate, in the reference's float32 arithmetic.
inline float ifmr_level(const ifmr_candidate& c, float x) noexcept { return round_half_even(std::clamp(x, c.lo, c.hi) / c.scale); }

/// The dequantized value of `x` under a candidate (float32, as the reference).
inline float ifmr_dequantized(const ifmr_candidate& c, float x) noexcept { return ifmr_level(c, x) * c.scale; }

/// Sorts float32 values ascending (no NaN). A radix sort on the order-preserving bit pattern for
/// large inputs (three passes), std::sort for small ones.
inline void sort_float_keys(std::vector<std::uint32_t>& keys) {
    const std::size_t n = keys.size();
    if (n < 2048) {
        std::sort(keys.begin(), keys.end());
        return;
    }
    constexpr int digits = 3;
    constexpr unsigned shift[digits] = {0, 11, 22};
    constexpr std::uint32_t mask[digits] = {0x7FF, 0x7FF, 0x3FF};
    std::vector<std::uint32_t> counts(static_cast<std::size_t>(digits) * 2048, 0);
    for (std::uint32_t k : keys) {
        ++counts[k & 0x7FF];
        ++counts[2048 + ((k >> 11) & 0x7FF)];
        ++counts[4096 + (k >> 22)];
    }
    std::vector<std::uint32_t> scratch(n);
    for (int d = 0; d < digits; ++d) {
        std::uint32_t* count = counts.data() + static_cast<std::size_t>(d) * 2048;
        const std::size_t buckets = mask[d] + 1u;
        bool trivial = false;
        for (std::size_t b = 0; b < buckets; ++b) {
            if (count[b] == n) trivial = true;
        }
        if (trivial) continue;
        std::uint32_t sum = 0;
        for (std::size_t b = 0; b < buckets; ++b) {
            const std::uint32_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (std::uint32_t k : keys) scratch[count[(k >> shift[d]) & mask[d]]++] = k;
        keys.swap(scratch);
    }
}

/// The order-preserving unsigned key of a float, and back.
inline std::uint32_t float_key(float x) noexcept {
    const auto u = std::bit_cast<std::uint32_t>(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline float key_float(std::uint32_t k) noexcept { return std::bit_cast<float>((k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k); }

/// A sorted sample with a hierarchy of block statistics (count, mean, centred second moment; blocks
/// of 16, 256, 4096, ... values), so that the sum of `(x - v)^2` over any run costs O(log run)
/// with no cancellation: a block contributes `m2 + count * (mean - v)^2`.
class ifmr_sorted_sample {
public:
    static constexpr std::size_t fan = 16;

    /// From sorted values.
    explicit ifmr_sorted_sample(std::vector<float> sorted) : x_(std::move(sorted)) { build(); }

    /// From sorted keys (see `float_key`), decoded on the way.
    explicit ifmr_sorted_sample(const std::vector<std::uint32_t>& sorted_keys) : x_(sorted_keys.size()) {
        for (std::size_t i = 0; i < x_.size(); ++i) x_[i] = key_float(sorted_keys[i]);
        build();
    }

    std::span<const float> values() const noexcept { return x_; }
    std::size_t size() const noexcept { return x_.size(); }

    /// The sum of `(x - v)^2` over the values at positions [first, last).
    double squared_error(std::size_t first, std::size_t last, double v) const {
        double total = 0.0;
        std::size_t level = 0;  // 0: the values; k: levels_[k - 1]
        while (true) {
            auto add = [&](std::size_t a, std::size_t b) {
                if (level == 0) {
                    for (std::size_t i = a; i < b; ++i) {
                        const double d = static_cast<double>(x_[i]) - v;
                        total += d * d;
                    }
                } else {
                    const auto& stats = levels_[level - 1];
                    for (std::size_t i = a; i < b; ++i) {
                        const double d = stats[i].mean - v;
                        total += stats[i].m2 + stats[i].count * d * d;
                    }
                }
            };
            const std::size_t a2 = (first + fan - 1) / fan * fan, b2 = last / fan * fan;
            if (level == levels_.size() || a2 >= b2) {
                add(first, last);
                return total;
            }
            add(first, a2);
            add(b2, last);
            first = a2 / fan;
            last = b2 / fan;
            ++level;
        }
    }

private:
    struct stat {
        double count = 0.0;
        double mean = 0.0;
        double m2 = 0.0;
    };
    static stat merge(const stat& a, const stat& b) {
        if (a.count == 0.0) return b;
        const double n = a.count + b.count;
        const double delta = b.mean - a.mean;
        return {n, a.mean + delta * b.count / n, a.m2 + b.m2 + delta * delta * a.count * b.count / n};
    }

    void build() {
        const std::size_t n = x_.size();
        std::vector<stat> level((n + fan - 1) / fan);
        for (std::size_t b = 0; b < level.size(); ++b) {
            const std::size_t lo = b * fan, hi = std::min(n, lo + fan);
            double sum = 0.0;
            for (std::size_t i = lo; i < hi; ++i) sum += x_[i];
            const double mean = sum / static_cast<double>(hi - lo);
            double m2 = 0.0;
            for (std::size_t i = lo; i < hi; ++i) {
                const double d = x_[i] - mean;
                m2 += d * d;
            }
            level[b] = {static_cast<double>(hi - lo), mean, m2};
        }
        while (level.size() >= fan) {
            std::vector<stat> up((level.size() + fan - 1) / fan);
            for (std::size_t u = 0; u < up.size(); ++u) {
                stat acc{};
                for (std::size_t b = u * fan; b < std::min(level.size(), (u + 1) * fan); ++b) acc = merge(acc, level[b]);
                up[u] = acc;
            }
            levels_.push_back(std::move(level));
            level = std::move(up);
        }
        levels_.push_back(std::move(level));
    }

    std::vector<float> x_;
    std::vector<std::vector<stat>> levels_;
};

/// The sum of squared errors of one candidate over a sorted sample, cell by cell.
inline double ifmr_candidate_error(const ifmr_sorted_sample& sample, const ifmr_candidate& c) {
    const auto x = sample.values();
    const float first_level = ifmr_level(c, x.front());
    const float last_level = ifmr_level(c, x.back());
    double total = 0.0;
    std::size_t begin = 0;
    for (float level = first_level; begin < x.size(); level += 1.0f) {
        std::size_t end = x.size();
        if (level < last_level) {
            const auto it = std::partition_point(x.begin() + static_cast<std::ptrdiff_t>(begin), x.end(),
                                                 [&](float v) { return ifmr_level(c, v) <= level; });
            end = static_cast<std::size_t>(it - x.begin());
        }
        if (end > begin) total += sample.squared_error(begin, end, static_cast<double>(level * c.scale));
        begin = end;
    }
    return total;
}

/// Every candidate's loss (the mean squared error), in candidate order.
inline std::vector<double> ifmr_losses(const ifmr_sorted_sample& sample, const ifmr_options& s) {
    const auto ratios = ifmr_ratios(s);
    const ifmr_start start = ifmr_start_points(sample.values(), s);
    std::vector<double> losses;
    losses.reserve(ratios.size());
    for (float r : ratios) {
        losses.push_back(ifmr_candidate_error(sample, ifmr_candidate_at(start, r, s.with_offset)) / static_cast<double>(sample.size()));
    }
    return losses;
}

/// The scale and offset IFMR chooses for a sorted, non-empty sample.
inline scale_offset ifmr_choose(const ifmr_sorted_sample& sample, const ifmr_options& s) {
    const auto ratios = ifmr_ratios(s);
    const ifmr_start start = ifmr_start_points(sample.values(), s);
    double best = std::numeric_limits<double>::infinity();
    ifmr_candidate chosen = ifmr_candidate_at(start, ratios.front(), s.with_offset);
    for (float r : ratios) {
        const ifmr_candidate c = ifmr_candidate_at(start, r, s.with_offset);
        const double loss = ifmr_candidate_error(sample, c);
        if (loss < best) {
            best = loss;
            chosen = c;
        }
    }
    scale_offset so{chosen.scale, 0};
    if (s.with_offset) so.offset = static_cast<std::int32_t>(-round_half_even(start.min0 / chosen.scale)) - 128;
    return finish_scale(so, s.with_offset);
}

/// Sorts keys (from `float_key`) and returns the sample ready for the search.
inline ifmr_sorted_sample ifmr_prepare(std::vector<std::uint32_t> keys) {
    sort_float_keys(keys);
    return ifmr_sorted_sample(keys);
}

/// IFMR over one sample given as values in any order.
inline scale_offset ifmr_calibrate(std::span<const float> values, const ifmr_options& s) {
    if (values.empty()) {
        throw error(diagnostic{severity::error, errc::invalid_data, "IFMR needs at least one value", {}, {}, {}});
    }
    std::vector<std::uint32_t> keys(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) keys[i] = float_key(values[i]);
    return ifmr_choose(ifmr_prepare(std::move(keys)), s);
}

/// The IFMR accumulator: keeps every value (per tensor, or per channel) until the last batch.
class ifmr_accumulator final : public accumulator {
public:
    ifmr_accumulator(const ifmr_options& settings, bool per_channel) : settings_(settings), per_channel_(per_channel) {
        ifmr_ratios(settings_);  // refuse a search without candidates before any data is taken
    }

    void add_batch(std::span<const float> values, std::size_t channels) override {
        if (!per_channel_ || channels <= 1) {
            if (samples_.empty()) samples_.resize(1);
            auto& keys = samples_.front();
            keys.reserve(keys.size() + values.size());
            for (float v : values) keys.push_back(float_key(v));
            return;
        }
        if (samples_.empty()) samples_.resize(channels);
        const std::size_t rows = values.size() / channels;
        for (std::size_t c = 0; c < channels; ++c) {
            auto& keys = samples_[c];
            const std::size_t at = keys.size();
            keys.resize(at + rows);
            for (std::size_t r = 0; r < rows; ++r) keys[at + r] = float_key(values[r * channels + c]);
        }
    }

    quant_factors finish() override {
        quant_factors out;
        for (auto& keys : samples_) {
            if (keys.empty()) {
                throw error(diagnostic{severity::error, errc::invalid_data, "IFMR needs at least one value", {}, {}, {}});
            }
            const scale_offset so = ifmr_choose(ifmr_prepare(std::move(keys)), settings_);
            keys = {};
            out.scale.push_back(so.scale);
            out.offset.push_back(so.offset);
        }
        samples_.clear();
        return out;
    }

private:
    ifmr_options settings_;
    bool per_channel_;
    std::vector<std::vector<std::uint32_t>> samples_;
};

}  // namespace kvcali
