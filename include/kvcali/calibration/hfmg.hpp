// kvcali calibration: HFMG. A histogram per sample (bounded memory), then a search over bin
// ranges scored by PyTorch's HistogramObserver error model.
//
// The error of a candidate is evaluated exactly, in integers: positions are counted in 1/512 of a
// source bin, so every bin edge and destination-bin centre is an integer and the error integral
// (times 3 and a constant) is an integer sum of cubes. Runs of source bins that fall inside one
// destination bin share a polynomial, summed from prefix sums of count, count*j and count*j^2; so a
// candidate costs O(256) instead of O(bins).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "accumulator.hpp"
#include "scale.hpp"

namespace kvcali {

/// HFMG parameters.
struct hfmg_options {
    std::uint32_t num_of_bins = 4096;
    bool with_offset = true;
};

/// The histogram of one sample: `bins` equal bins over [lo, hi] (the stored range).
struct hfmg_histogram {
    std::uint32_t bins = 0;
    float lo = 0.0f;
    float hi = 0.0f;
    std::vector<std::int64_t> counts;

    bool empty() const noexcept { return counts.empty(); }
};

namespace detail {

/// Adds `count` values (every `stride`-th from `data`) to `counts` with torch.histc's rule over
/// [lo, hi] in float32 (a degenerate range widened by one on each side).
inline void histc_into(std::vector<std::int64_t>& counts, const float* data, std::size_t count, std::size_t stride, float lo, float hi) {
    if (lo == hi) {
        lo = lo - 1.0f;
        hi = hi + 1.0f;
    }
    const auto n = static_cast<std::int64_t>(counts.size());
    const float nf = static_cast<float>(n);
    const float range = hi - lo;
    std::int64_t* c = counts.data();
    for (std::size_t i = 0; i < count; ++i) {
        const float x = data[i * stride];
        auto bin = static_cast<std::int64_t>((x - lo) * nf / range);
        if (bin >= n) bin = n - 1;
        if (bin < 0) bin = 0;
        ++c[bin];
    }
}

}  // namespace detail

/// Adds one batch (`count` values, every `stride`-th from `data`) to a histogram, merging the old
/// counts into the widened range as the reference does.
inline void hfmg_add(hfmg_histogram& h, std::uint32_t bins, const float* data, std::size_t count, std::size_t stride = 1) {
    if (count == 0) return;
    float mn = data[0], mx = data[0];
    for (std::size_t i = 1; i < count; ++i) {
        const float x = data[i * stride];
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    if (h.empty()) {
        h.bins = bins;
        h.lo = mn;
        h.hi = mx;
        h.counts.assign(bins, 0);
        detail::histc_into(h.counts, data, count, stride, mn, mx);
        return;
    }
    const float lo = std::min(h.lo, mn), hi = std::max(h.hi, mx);
    std::vector<std::int64_t> merged(h.bins, 0);
    detail::histc_into(merged, data, count, stride, lo, hi);
    if (std::fabs(lo - h.lo) < flt_epsilon && std::fabs(hi - h.hi) < flt_epsilon) {
        for (std::size_t b = 0; b < h.bins; ++b) merged[b] += h.counts[b];
    } else {
        const auto n = static_cast<std::int64_t>(h.bins);
        const float nf = static_cast<float>(n);
        const float old_width = (h.hi - h.lo) / nf;
        const float width = (hi - lo) / nf;
        for (std::int64_t b = 0; b < n; ++b) {
            const std::int64_t c = h.counts[static_cast<std::size_t>(b)];
            if (c == 0) continue;
            const float a = h.lo + static_cast<float>(b) * old_width;
            const float e = a + old_width;
            auto first = static_cast<std::int64_t>(std::floor((a - lo) / width));
            auto last = static_cast<std::int64_t>(std::floor((e - lo) / width));
            first = std::clamp<std::int64_t>(first, 0, n - 1);
            last = std::clamp<std::int64_t>(last, 0, n - 1);
            if (first >= last || !(e > a)) {
                merged[static_cast<std::size_t>(first)] += c;
                continue;
            }
            const float boundary = lo + static_cast<float>(first + 1) * width;
            const auto lower = static_cast<std::int64_t>(static_cast<float>(c) * (boundary - a) / (e - a));
            merged[static_cast<std::size_t>(first)] += lower;
            merged[static_cast<std::size_t>(last)] += c - lower;
        }
    }
    h.counts = std::move(merged);
    h.lo = lo;
    h.hi = hi;
}

/// The candidate bin ranges [left, right] of the search, in the order they are found.
inline std::vector<std::pair<std::int64_t, std::int64_t>> hfmg_candidates(const hfmg_histogram& h) {
    std::int64_t total = 0;
    for (auto c : h.counts) total += c;
    const std::int64_t step = std::max<std::int64_t>((total + 99999) / 100000, 1);
    const auto n = static_cast<std::int64_t>(h.bins);
    const std::int64_t min_bins = (n + 3) / 4;
    std::int64_t left = 0, right = n - 1;
    std::vector<std::pair<std::int64_t, std::int64_t>> out;
    while (right - left > min_bins) {
        std::int64_t tl = left, tr = right, sl = 0, sr = 0;
        while (tl < tr && sl < step) sl += h.counts[static_cast<std::size_t>(tl++)];
        while (tl < tr && sr < step) sr += h.counts[static_cast<std::size_t>(tr--)];
        if (right - tr >= tl - left) {
            right = tr;
        } else {
            left = tl;
        }
        out.emplace_back(left, right);
    }
    return out;
}

/// Exact evaluation of the HistogramObserver error of candidate ranges over one histogram.
class hfmg_error_model {
public:
    __extension__ typedef __int128 wide;  // every error sum is an exact integer (GCC and Clang)
    static constexpr std::int64_t unit = 512;  // positions in 1/512 of a source bin

    explicit hfmg_error_model(const hfmg_histogram& h) : counts_(h.counts), width_((h.hi - h.lo) / static_cast<float>(h.bins)) {
        const std::size_t n = counts_.size();
        p0_.assign(n + 1, 0);
        p1_.assign(n + 1, 0);
        p2_.assign(n + 1, 0);
        for (std::size_t j = 0; j < n; ++j) {
            const wide c = counts_[j], jj = static_cast<wide>(j);
            p0_[j + 1] = p0_[j] + c;
            p1_[j + 1] = p1_[j] + c * jj;
            p2_[j + 1] = p2_[j] + c * jj * jj;
        }
    }

    /// The error of candidate [l, r] times 3 * 512^3 / width^2 (an exact integer; 0 when the
    /// destination bin width is below FLT_EPSILON, as in the reference).
    wide scaled_error(std::int64_t l, std::int64_t r) const {
        const std::int64_t span_bins = r - l + 1;
        const float dst_width = width_ * static_cast<float>(span_bins) / 256.0f;
        if (dst_width < flt_epsilon) return 0;
        const std::int64_t dw = 2 * span_bins;  // destination bin width in units
        const std::int64_t half = span_bins;    // half of it
        const auto n = static_cast<std::int64_t>(counts_.size());
        wide total = 0;
        total += group(0, l, l, half);                       // below the range: the first centre
        total += group(r + 1, n, l, 255 * dw + half);        // above: the last centre
        std::int64_t next = 0;                                // next source bin, relative to l
        for (std::int64_t d = 0; d < 256; ++d) {
            const std::int64_t bound = (d + 1) * dw;         // end of destination bin d
            const std::int64_t full_end = std::min(bound / unit, span_bins);
            if (full_end > next) {
                total += group(l + next, l + full_end, l, d * dw + half);
                next = full_end;
            }
            while (next < span_bins && next * unit < bound) {
                total += single(l + next, l, dw, half);
                ++next;
            }
        }
        return total;
    }

    /// The error of candidate [l, r] in the reference's units (for comparisons and tests).
    double error(std::int64_t l, std::int64_t r) const {
        const double w = static_cast<double>(width_);
        return static_cast<double>(scaled_error(l, r)) * w * w / (3.0 * static_cast<double>(unit * unit * unit));
    }

    float width() const noexcept { return width_; }

private:
    static wide cube(wide v) { return v * v * v; }

    /// Source bins [from, to) whose whole extent has one centre `centre` (relative to bin l's start).
    wide group(std::int64_t from, std::int64_t to, std::int64_t l, std::int64_t centre) const {
        if (to <= from) return 0;
        const wide s0 = p0_[static_cast<std::size_t>(to)] - p0_[static_cast<std::size_t>(from)];
        if (s0 == 0) return 0;
        const wide s1 = p1_[static_cast<std::size_t>(to)] - p1_[static_cast<std::size_t>(from)];
        const wide s2 = p2_[static_cast<std::size_t>(to)] - p2_[static_cast<std::size_t>(from)];
        // t_j = unit * j - k: the start of bin j relative to the centre.
        const wide k = static_cast<wide>(unit) * l + centre;
        const wide u = unit;
        const wide sum_t2 = u * u * s2 - 2 * u * k * s1 + k * k * s0;
        const wide sum_t = u * s1 - k * s0;
        // (t + u)^3 - t^3 = 3u t^2 + 3u^2 t + u^3
        return 3 * u * sum_t2 + 3 * u * u * sum_t + u * u * u * s0;
    }

    /// One source bin that crosses destination-bin edges (PyTorch's three-part formula).
    wide single(std::int64_t j, std::int64_t l, std::int64_t dw, std::int64_t half) const {
        const wide c = counts_[static_cast<std::size_t>(j)];
        if (c == 0) return 0;
        const std::int64_t a = (j - l) * unit, e = a + unit;
        const std::int64_t d1 = std::clamp<std::int64_t>(a >= 0 ? a / dw : -1, 0, 255);
        const std::int64_t d2 = std::clamp<std::int64_t>(e >= 0 ? e / dw : -1, 0, 255);
        const wide c1 = static_cast<wide>(d1) * dw + half, c2 = static_cast<wide>(d2) * dw + half;
        if (d1 == d2) return c * (cube(e - c1) - cube(a - c1));
        const wide h3 = cube(half);
        return c * ((h3 - cube(a - c1)) + static_cast<wide>(d2 - d1 - 1) * 2 * h3 + (cube(e - c2) + h3));
    }

    std::span<const std::int64_t> counts_;
    float width_;
    std::vector<wide> p0_, p1_, p2_;
};

/// The clip range HFMG chooses for a histogram: the first candidate with the smallest error.
inline std::pair<float, float> hfmg_clip_range(const hfmg_histogram& h) {
    const auto candidates = hfmg_candidates(h);
    const float width = (h.hi - h.lo) / static_cast<float>(h.bins);
    std::int64_t l = 0, r = static_cast<std::int64_t>(h.bins) - 1;
    if (!candidates.empty()) {
        const hfmg_error_model model(h);
        bool first = true;
        hfmg_error_model::wide best = 0;
        for (const auto& [cl, cr] : candidates) {
            const auto e = model.scaled_error(cl, cr);
            if (first || e < best) {
                best = e;
                l = cl;
                r = cr;
                first = false;
            }
        }
    }
    return {h.lo + static_cast<float>(l) * width, h.lo + static_cast<float>(r + 1) * width};
}

/// Scale and offset of one histogram.
inline scale_offset hfmg_calibrate(const hfmg_histogram& h, bool with_offset) {
    if (h.empty()) throw error(diagnostic{severity::error, errc::invalid_data, "HFMG needs at least one value", {}, {}, {}});
    const auto [lo, hi] = hfmg_clip_range(h);
    return scale_offset_from_range(lo, hi, with_offset);
}

/// The HFMG accumulator: one histogram per tensor or per channel; memory does not grow with data.
class hfmg_accumulator final : public accumulator {
public:
    hfmg_accumulator(const hfmg_options& settings, bool per_channel) : settings_(settings), per_channel_(per_channel) {
        if (settings_.num_of_bins == 0) {
            throw error(diagnostic{severity::error, errc::invalid_value, "num_of_bins must be positive", {}, {}, {}});
        }
    }

    void add_batch(std::span<const float> values, std::size_t channels) override {
        if (values.empty()) return;
        if (!per_channel_ || channels <= 1) {
            if (histograms_.empty()) histograms_.resize(1);
            hfmg_add(histograms_.front(), settings_.num_of_bins, values.data(), values.size(), 1);
            return;
        }
        if (histograms_.empty()) histograms_.resize(channels);
        const std::size_t rows = values.size() / channels;
        for (std::size_t c = 0; c < channels; ++c) hfmg_add(histograms_[c], settings_.num_of_bins, values.data() + c, rows, channels);
    }

    quant_factors finish() override {
        quant_factors out;
        for (const auto& h : histograms_) {
            const scale_offset so = hfmg_calibrate(h, settings_.with_offset);
            out.scale.push_back(so.scale);
            out.offset.push_back(so.offset);
        }
        histograms_.clear();
        return out;
    }

private:
    hfmg_options settings_;
    bool per_channel_;
    std::vector<hfmg_histogram> histograms_;
};

}  // namespace kvcali
