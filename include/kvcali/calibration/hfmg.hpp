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

/// Adds `count` values (every `stride`-th from `data`) to `counts` with torch.histc's rule over
/// [lo, hi] in float32 (a degenerate range widened by one on each side).
KVCALI_DECL void histc_into(std::vector<std::int64_t>& counts, const float* data, std::size_t count, std::size_t stride, float lo,
                            float hi);

/// The smallest and largest of `count` values (every `stride`-th), the first of equals (so a -0
/// and a +0 come out as the sequence has them).
KVCALI_DECL std::pair<float, float> histc_min_max(const float* data, std::size_t count, std::size_t stride);

/// A per-thread buffer for the merged counts (reused, not reallocated per batch).
KVCALI_DECL std::vector<std::int64_t>& histc_scratch();

/// A per-thread buffer for the new bins of the old bins' edges (see `hfmg_add`).
KVCALI_DECL std::vector<std::int32_t>& histc_edge_scratch();

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

    explicit hfmg_error_model(const hfmg_histogram& h);

    /// Whether `approximate_error` and `outside_error` are available (the counts are small enough
    /// for exact 64-bit moments: fewer than 2^60 / bins^2 values in all).
    bool has_fast_path() const noexcept { return fast_; }

    /// `scaled_error(l, r)` evaluated in double, within about 1e-12 relative. Requires `has_fast_path()`.
    double approximate_error(std::int64_t l, std::int64_t r) const;

    /// The part of `approximate_error(l, r)` from the bins outside [l, r]: a lower bound of the
    /// error, in O(1). Requires `has_fast_path()`.
    double outside_error(std::int64_t l, std::int64_t r) const;

    /// The error of candidate [l, r] times 3 * 512^3 / width^2 (an exact integer; 0 when the
    /// destination bin width is below FLT_EPSILON, as in the reference).
    wide scaled_error(std::int64_t l, std::int64_t r) const;

    /// The error of candidate [l, r] in the reference's units (for comparisons and tests).
    double error(std::int64_t l, std::int64_t r) const;

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
    double outside(std::int64_t l, std::int64_t r, std::int64_t half) const;

    /// Source bins [from, to) inside [l, r] with one centre (relative to bin l's start).
    double inside_group(std::int64_t from, std::int64_t to, std::int64_t l, std::int64_t centre) const;

    /// `single` in double (every part is non-negative).
    double single_approx(std::int64_t j, std::int64_t l, std::int64_t dw, std::int64_t half) const;

    /// Source bins [from, to) whose whole extent has one centre `centre` (relative to bin l's start).
    wide group(std::int64_t from, std::int64_t to, std::int64_t l, std::int64_t centre) const;

    /// One source bin that crosses destination-bin edges (PyTorch's three-part formula).
    wide single(std::int64_t j, std::int64_t l, std::int64_t dw, std::int64_t half) const;

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

    void add_batch(std::span<const float> values, std::size_t channels) override;

    quant_factors finish() override;

private:
    hfmg_options settings_;
    bool per_channel_;
    std::vector<hfmg_histogram> histograms_;
    std::vector<float> columns_;  // per channel: a block of channels, one after the other
};

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/hfmg.ipp"  // IWYU pragma: export
#endif
