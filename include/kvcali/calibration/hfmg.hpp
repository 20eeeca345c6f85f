// kvcali calibration: HFMG. A histogram per sample (bounded memory), then a search over bin
// ranges scored by PyTorch's HistogramObserver error model.
//
// The error of a candidate is evaluated exactly, in integers: positions are counted in 1/512 of a
// source bin, so every bin edge and destination-bin centre is an integer and the error integral
// (times 3 and a constant) is an integer sum of cubes. Runs of source bins that fall inside one
// destination bin share a polynomial, summed from prefix sums of count, count*j and count*j^2; so a
// candidate costs O(256) instead of O(bins).
//
// The search itself runs in double first: every term of the double evaluation is a non-negative
// sum taken from exact integer moments (relative to a nearby bin, so nothing large cancels), which
// keeps it within about 1e-12 of the exact value. A candidate whose error outside its range alone
// already exceeds the best one by more than 1e-9 is passed over, and only the candidates within
// 1e-9 of the double minimum are evaluated exactly, so ties are still broken on exact values.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "../detail/config.hpp"
#include "../detail/layer_buffer.hpp"
#include "../error.hpp"
#include "accumulator.hpp"
#include "scale.hpp"
#include "settings.hpp"

namespace kvcali {

namespace detail {
/// `v` truncated to int64 as x86's cvttss2si does it, without undefined behaviour: NaN and values
/// outside [-2^63, 2^63) give INT64_MIN (the results the reference's arithmetic had on x86).
inline std::int64_t trunc_to_int64(float v) noexcept {
    constexpr float limit = 9223372036854775808.0f;  // 2^63
    return v >= -limit && v < limit ? static_cast<std::int64_t>(v) : std::numeric_limits<std::int64_t>::min();
}
}  // namespace detail

/// The histogram of one sample: `bins` equal bins over [lo, hi] (the stored range).
struct hfmg_histogram {
    std::uint32_t bins = 0;
    float lo = 0.0f;
    float hi = 0.0f;
    std::vector<std::int64_t> counts;

    bool empty() const noexcept { return counts.empty(); }
};

namespace detail {

/// A histogram whose counts are held elsewhere (the accumulator keeps its per-channel counts in one
/// buffer): what the search reads.
struct hfmg_counts_view {
    std::uint32_t bins = 0;
    float lo = 0.0f;
    float hi = 0.0f;
    std::span<const std::int64_t> counts;
};

inline hfmg_counts_view view_of(const hfmg_histogram& h) noexcept { return {h.bins, h.lo, h.hi, h.counts}; }

/// Adds `count` values (every `stride`-th from `data`) to `counts` with torch.histc's rule over
/// [lo, hi] in float32 (a degenerate range widened by one on each side).
KVCALI_DECL void histc_into(std::span<std::int64_t> counts, const float* data, std::size_t count, std::size_t stride, float lo, float hi);

/// The smallest and largest of `count` values (every `stride`-th), the first of equals (so a -0
/// and a +0 come out as the sequence has them).
KVCALI_DECL std::pair<float, float> histc_min_max(const float* data, std::size_t count, std::size_t stride);

/// A per-thread buffer for the merged counts (reused, not reallocated per batch).
KVCALI_DECL std::vector<std::int64_t>& histc_scratch();

/// A per-thread buffer for the new bins of the old bins' edges (see `hfmg_add`).
KVCALI_DECL std::vector<std::int32_t>& histc_edge_scratch();

/// `hfmg_add` on counts held anywhere: `counts` (`bins` entries, over [lo, hi]; uninitialised when
/// `empty`) take the batch, and `lo` and `hi` become the new range. Returns the merged counts (the
/// thread's `histc_scratch()`) when the range widened, for the caller to move or copy into place;
/// nullptr when the batch was counted in place.
KVCALI_DECL std::vector<std::int64_t>* hfmg_add_counts(std::span<std::int64_t> counts, float& lo, float& hi, bool empty, const float* data,
                                                       std::size_t count, std::size_t stride);

/// The candidate ranges, and the chosen clip range, of counts held anywhere.
KVCALI_DECL std::vector<std::pair<std::int64_t, std::int64_t>> hfmg_candidates(const hfmg_counts_view& h);
/// With `hint` (not null): the candidate at index *hint (if any) is scored first, and *hint becomes
/// the chosen candidate's index. Per channel, the previous channel's choice is near this one's, and
/// scoring it first lets the other candidates be given up sooner; the choice is the same.
KVCALI_DECL std::pair<float, float> hfmg_clip_range(const hfmg_counts_view& h, std::size_t* hint = nullptr);

}  // namespace detail

/// Adds one batch (`count` values, every `stride`-th from `data`) to a histogram, merging the old
/// counts into the widened range as the reference does.
KVCALI_DECL void hfmg_add(hfmg_histogram& h, std::uint32_t bins, const float* data, std::size_t count, std::size_t stride = 1);

/// The candidate bin ranges [left, right] of the search, in the order they are found.
KVCALI_DECL std::vector<std::pair<std::int64_t, std::int64_t>> hfmg_candidates(const hfmg_histogram& h);

/// Exact evaluation of the HistogramObserver error of candidate ranges over one histogram.
class hfmg_error_model {
public:
    __extension__ typedef __int128 wide;       // every error sum is an exact integer (GCC and Clang)
    static constexpr std::int64_t unit = 512;  // positions in 1/512 of a source bin

    explicit hfmg_error_model(const hfmg_histogram& h) : hfmg_error_model(detail::view_of(h)) {}
    explicit hfmg_error_model(const detail::hfmg_counts_view& h) : counts_(h.counts), width_((h.hi - h.lo) / static_cast<float>(h.bins)) {
        const std::size_t n = counts_.size();
        // The double evaluation takes its moments from 64-bit prefix sums: exact while
        // total * bins^2 stays below 2^60 (every intermediate below is bounded by twice that).
        // Then the exact evaluation reads the same 64-bit sums (they are the 128-bit ones), and
        // only otherwise are the prefix sums kept in 128 bits.
        const wide limit = static_cast<wide>(1) << 60;
        bool negative = false;
        wide total = 0;
        for (auto c : counts_) {
            negative = negative || c < 0;
            total += c;
        }
        fast_ = !negative && total * static_cast<wide>(n) * static_cast<wide>(n) < limit;
        if (fast_) {
            q0_.resize(n + 1);
            q1_.resize(n + 1);
            q2_.resize(n + 1);
            std::int64_t a0 = 0, a1 = 0, a2 = 0;
            for (std::size_t j = 0; j < n; ++j) {
                q0_[j] = a0;
                q1_[j] = a1;
                q2_[j] = a2;
                const std::int64_t c = counts_[j], jj = static_cast<std::int64_t>(j);
                a0 += c;
                a1 += c * jj;
                a2 += c * jj * jj;
            }
            q0_[n] = a0;
            q1_[n] = a1;
            q2_[n] = a2;
            return;
        }
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

    /// Whether `approximate_error` and `outside_error` are available (the counts are small enough
    /// for exact 64-bit moments: fewer than 2^60 / bins^2 values in all).
    bool has_fast_path() const noexcept { return fast_; }

    /// `scaled_error(l, r)` evaluated in double, within about 1e-12 relative. Requires `has_fast_path()`.
    /// With a `limit`: +infinity as soon as the sum passes it (its parts are not negative, so the
    /// error is above the limit then, up to the rounding of the parts).
    double approximate_error(std::int64_t l, std::int64_t r, double limit = std::numeric_limits<double>::infinity()) const {
        const std::int64_t span_bins = r - l + 1;
        const float dst_width = width_ * static_cast<float>(span_bins) / 256.0f;
        if (dst_width < flt_epsilon) return 0.0;
        const std::int64_t dw = 2 * span_bins;
        const std::int64_t half = span_bins;
        double total = outside(l, r, half);
        std::int64_t next = 0;
        for (std::int64_t d = 0; d < 256; ++d) {
            const std::int64_t bound = (d + 1) * dw;
            const std::int64_t full_end = std::min(bound / unit, span_bins);
            if (full_end > next) {
                total += inside_group(l + next, l + full_end, l, d * dw + half);
                next = full_end;
            }
            while (next < span_bins && next * unit < bound) {
                total += single_approx(l + next, l, dw, half);
                ++next;
            }
            if (total > limit) return std::numeric_limits<double>::infinity();
        }
        return total;
    }

    /// The part of `approximate_error(l, r)` from the bins outside [l, r]: a lower bound of the
    /// error, in O(1). Requires `has_fast_path()`.
    double outside_error(std::int64_t l, std::int64_t r) const {
        const std::int64_t span_bins = r - l + 1;
        const float dst_width = width_ * static_cast<float>(span_bins) / 256.0f;
        if (dst_width < flt_epsilon) return 0.0;
        return outside(l, r, span_bins);
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
        total += group(0, l, l, half);                 // below the range: the first centre
        total += group(r + 1, n, l, 255 * dw + half);  // above: the last centre
        std::int64_t next = 0;                         // next source bin, relative to l
        for (std::int64_t d = 0; d < 256; ++d) {
            const std::int64_t bound = (d + 1) * dw;  // end of destination bin d
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
    static double dcube(double v) { return v * v * v; }

    struct moments {
        std::int64_t s0, a1, a2;  // sum of c, c*j, c*j^2 over the bins
    };
    moments sums(std::int64_t from, std::int64_t to) const {
        const auto f = static_cast<std::size_t>(from), t = static_cast<std::size_t>(to);
        return {q0_[t] - q0_[f], q1_[t] - q1_[f], q2_[t] - q2_[f]};
    }

    /// sum of c * (3u (u*y + b)^2 + u^3 / 4) with y1 = sum c*y, y2 = sum c*y^2 (exact): the error of
    /// bins whose start, relative to their centre, is u*y + b - u/2. Callers pick y so that u*y + b
    /// keeps one sign over the bins, or is small, so the double sum does not cancel.
    static double polynomial(std::int64_t s0, std::int64_t y1, std::int64_t y2, double b) {
        const double u = static_cast<double>(unit);
        const double squares = u * u * static_cast<double>(y2) + 2.0 * u * b * static_cast<double>(y1) + b * b * static_cast<double>(s0);
        return 3.0 * u * squares + u * u * u / 4.0 * static_cast<double>(s0);
    }

    /// The bins below l (centre: the first destination bin's) and above r (the last one's).
    double outside(std::int64_t l, std::int64_t r, std::int64_t half) const {
        const auto n = static_cast<std::int64_t>(counts_.size());
        double total = 0.0;
        if (l > 0) {
            // y = l - j >= 1; the start of bin j relative to the centre is -(u*y + half).
            const moments m = sums(0, l);
            if (m.s0 != 0) {
                const std::int64_t y1 = l * m.s0 - m.a1;
                const std::int64_t y2 = l * l * m.s0 - 2 * l * m.a1 + m.a2;
                total += polynomial(m.s0, y1, y2, static_cast<double>(half) - static_cast<double>(unit) / 2.0);
            }
        }
        if (r + 1 < n) {
            // y = j - (r + 1) >= 0; the start of bin j relative to the centre is u*y + half.
            const moments m = sums(r + 1, n);
            if (m.s0 != 0) {
                const std::int64_t b = r + 1;
                const std::int64_t y1 = m.a1 - b * m.s0;
                const std::int64_t y2 = m.a2 - 2 * b * m.a1 + b * b * m.s0;
                total += polynomial(m.s0, y1, y2, static_cast<double>(half) + static_cast<double>(unit) / 2.0);
            }
        }
        return total;
    }

    /// Source bins [from, to) inside [l, r] with one centre (relative to bin l's start).
    double inside_group(std::int64_t from, std::int64_t to, std::int64_t l, std::int64_t centre) const {
        const moments m = sums(from, to);
        if (m.s0 == 0) return 0.0;
        const std::int64_t y1 = m.a1 - from * m.s0;
        const std::int64_t y2 = m.a2 - 2 * from * m.a1 + from * from * m.s0;
        const std::int64_t t0 = unit * (from - l) - centre;
        return polynomial(m.s0, y1, y2, static_cast<double>(t0) + static_cast<double>(unit) / 2.0);
    }

    /// `single` in double (every part is non-negative).
    double single_approx(std::int64_t j, std::int64_t l, std::int64_t dw, std::int64_t half) const {
        const std::int64_t c = counts_[static_cast<std::size_t>(j)];
        if (c == 0) return 0.0;
        const std::int64_t a = (j - l) * unit, e = a + unit;
        const std::int64_t d1 = std::clamp<std::int64_t>(a >= 0 ? a / dw : -1, 0, 255);
        const std::int64_t d2 = std::clamp<std::int64_t>(e >= 0 ? e / dw : -1, 0, 255);
        const std::int64_t c1 = d1 * dw + half, c2 = d2 * dw + half;
        const double cnt = static_cast<double>(c);
        if (d1 == d2) return cnt * (dcube(static_cast<double>(e - c1)) - dcube(static_cast<double>(a - c1)));
        const double h3 = dcube(static_cast<double>(half));
        return cnt * ((h3 - dcube(static_cast<double>(a - c1))) + static_cast<double>(d2 - d1 - 1) * 2.0 * h3 +
                      (dcube(static_cast<double>(e - c2)) + h3));
    }

    /// Source bins [from, to) whose whole extent has one centre `centre` (relative to bin l's start).
    wide group(std::int64_t from, std::int64_t to, std::int64_t l, std::int64_t centre) const {
        if (to <= from) return 0;
        const auto f = static_cast<std::size_t>(from), t = static_cast<std::size_t>(to);
        const wide s0 = fast_ ? static_cast<wide>(q0_[t] - q0_[f]) : p0_[t] - p0_[f];
        if (s0 == 0) return 0;
        const wide s1 = fast_ ? static_cast<wide>(q1_[t] - q1_[f]) : p1_[t] - p1_[f];
        const wide s2 = fast_ ? static_cast<wide>(q2_[t] - q2_[f]) : p2_[t] - p2_[f];
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
    std::vector<wide> p0_, p1_, p2_;  // the prefix sums, when the 64-bit ones could overflow
    bool fast_ = false;
    std::vector<std::int64_t> q0_, q1_, q2_;  // the prefix sums in 64 bits (fast_)
};

/// The clip range HFMG chooses for a histogram: the first candidate with the smallest error.
KVCALI_DECL std::pair<float, float> hfmg_clip_range(const hfmg_histogram& h);

/// Scale and offset of one histogram.
KVCALI_DECL scale_offset hfmg_calibrate(const hfmg_histogram& h, bool with_offset);

/// The HFMG accumulator: one histogram per tensor or per channel; memory does not grow with data.
class hfmg_accumulator final : public accumulator {
public:
    hfmg_accumulator(const hfmg_options& settings, bool per_channel);

    KVCALI_DECL void add_batch(std::span<const float> values, std::size_t channels) override;

    KVCALI_DECL quant_factors finish() override;

private:
    hfmg_options settings_;
    bool per_channel_;
    std::vector<hfmg_histogram> histograms_;  // per tensor: the one histogram
    // Per channel: the counts, channel after channel (`bins` each), and each channel's range.
    detail::layer_buffer counts_;
    std::vector<float> lo_, hi_;
    bool filled_ = false;         // per channel: whether the counts hold a batch
    std::vector<float> columns_;  // per channel: a block of channels, one after the other

    [[noreturn]] KVCALI_COLD KVCALI_DECL void channel_mismatch(std::size_t channels) const;
};

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/hfmg.ipp"  // IWYU pragma: export
#endif
