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
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../detail/config.hpp"
#include "../detail/layer_buffer.hpp"
#include "../error.hpp"
#include "accumulator.hpp"
#include "scale.hpp"
#include "settings.hpp"

namespace kvcali {

/// The largest number of candidates IFMR accepts.
inline constexpr double ifmr_max_candidates = 100000.0;

namespace detail {
/// The shortest decimal text that reads back as `v` (`0.7`, not `0.700000`), for messages.
KVCALI_DECL std::string shortest_text(double v);
}  // namespace detail

/// The candidate clip factors `float32(start + i * step)`, i = 0 .. ceil((end - start) / step) - 1.
/// Throws `kvcali::error` (invalid_value) when there is no candidate or more than 100000.
KVCALI_DECL std::vector<float> ifmr_ratios(const ifmr_options& s);

/// The starting points of the search.
struct ifmr_start {
    float max0 = 0.0f;      ///< the upper bound (symmetric: the larger magnitude)
    float min0 = 0.0f;      ///< the lower bound (asymmetric only)
    bool negative = false;  ///< symmetric: the negative side is the larger one
};

/// The rank k (1 = the extreme value) of a percentile starting point in a sample of n values.
inline std::size_t ifmr_percentile_rank(std::size_t n, double percentile) noexcept {
    if (1.0 - percentile < static_cast<double>(flt_epsilon)) return 1;
    const double k = static_cast<double>(n) - std::trunc(percentile * static_cast<double>(n));
    if (!(k >= 1.0)) return 1;
    if (k >= static_cast<double>(n)) return n;
    return static_cast<std::size_t>(k);
}

/// The starting points from the k_max-th largest and the k_min-th smallest value.
inline ifmr_start ifmr_start_from(float kth_largest, float kth_smallest, const ifmr_options& s) noexcept {
    ifmr_start start;
    start.max0 = std::max(kth_largest, 0.0f);
    start.min0 = std::min(kth_smallest, 0.0f);
    if (!s.with_offset) {
        start.negative = std::fabs(start.max0) < std::fabs(start.min0);
        start.max0 = std::max(std::fabs(start.max0), std::fabs(start.min0));
    }
    return start;
}

/// Percentile starting points of a sorted, non-empty sample.
inline ifmr_start ifmr_start_points(std::span<const float> sorted, const ifmr_options& s) {
    const std::size_t n = sorted.size();
    return ifmr_start_from(sorted[n - ifmr_percentile_rank(n, s.max_percentile)], sorted[ifmr_percentile_rank(n, s.min_percentile) - 1], s);
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
KVCALI_DECL void sort_float_keys(std::vector<std::uint32_t>& keys);

namespace detail {
/// sort_float_keys on `n` keys at `keys`, with its buffers given (kept from one sample to the next
/// by ifmr_sort_sample): returns where the sorted keys are, `keys` or `scratch.data()`.
KVCALI_DECL const std::uint32_t* sort_keys(std::uint32_t* keys, std::size_t n, std::vector<std::uint32_t>& scratch,
                                           std::vector<std::uint32_t>& counts);
}  // namespace detail

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
            for (std::size_t i = lo; i < hi; ++i) sum += static_cast<double>(x_[i]);
            const double mean = sum / static_cast<double>(hi - lo);
            double m2 = 0.0;
            for (std::size_t i = lo; i < hi; ++i) {
                const double d = static_cast<double>(x_[i]) - mean;
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
KVCALI_DECL double ifmr_candidate_error(const ifmr_sorted_sample& sample, const ifmr_candidate& c);

/// Every candidate's loss (the mean squared error), in candidate order.
KVCALI_DECL std::vector<double> ifmr_losses(const ifmr_sorted_sample& sample, const ifmr_options& s);

/// The scale and offset IFMR chooses for a sorted, non-empty sample.
KVCALI_DECL scale_offset ifmr_choose(const ifmr_sorted_sample& sample, const ifmr_options& s);

// ---------------------------------------------------------------------------------------------
// The cell walk: the sorted path for many small samples (per channel). The sample is sorted once;
// prefix sums of x and x^2 (within blocks of 128 values, each shifted by its block's middle value
// against cancellation; cells of at most 8 values summed directly) give any run's squared error in
// O(1 + run / 128), and a uniform grid from value to index finds where a cell starts in O(1): the
// first value whose level reaches q. Every value more than 2^-20 (relative) away from the rounding
// point `(q - 0.5) * scale` is on a known side of it, so the reference's float32 level is evaluated
// only for values inside that window (almost never). The cost per candidate is O(levels), with no
// binary search and no division per level (in the dense middle, eight cells each way are looked
// up at once); a candidate is given up as soon as its partial sum exceeds the best full one, and
// the previous sample's winner is tried first.

/// Buffers for `ifmr_choose_sorted`, reused from one sample to the next (per channel: one per layer).
struct ifmr_walk_workspace {
    std::vector<double> sums;                ///< per block, 129 slots of (prefix of x - shift, prefix of (x - shift)^2), see ifmr.ipp
    std::vector<double> block_shift;         ///< per block: its shift (the middle value)
    std::vector<double> block_s1, block_s2;  ///< per block: the sums over the whole block
    std::vector<std::uint32_t> grid;         ///< grid bucket -> the number of values in lower buckets
    std::vector<ifmr_candidate> candidates;
    std::size_t hint = 0;                      ///< the previous sample's winner, tried first
    std::vector<std::uint32_t> keys;           ///< sort keys (ifmr_sort_sample)
    std::vector<std::uint32_t> radix_scratch;  ///< the radix sort's second buffer (ifmr_sort_sample)
    std::vector<std::uint32_t> radix_counts;   ///< the radix sort's digit counts (ifmr_sort_sample)
    std::vector<float> sorted;                 ///< the sorted sample (ifmr_sort_sample)
};

/// Sorts a sample into `ws.sorted` (radix sort on float_key) and returns it.
KVCALI_DECL std::span<const float> ifmr_sort_sample(std::span<const float> values, ifmr_walk_workspace& ws);

/// IFMR over a sorted, non-empty sample by the cell walk (see above): the same choice as
/// `ifmr_choose` (both sum the squared errors in double; they agree within 1e-9 relative, so only
/// candidates tied that closely could be ordered differently). `errors`, when given, receives every
/// candidate's squared error sum (not divided by the count; then no candidate is given up early and
/// `ws.hint` is not used). Returns nothing for a search the walk
/// does not take (a candidate with a reversed range, from a negative search_range_start, or more
/// than 65536 levels): use `ifmr_choose` then. Throws like `ifmr_ratios`.
/// Example: `kvcali::ifmr_walk_workspace ws; auto so = kvcali::ifmr_choose_sorted(kvcali::ifmr_sort_sample(v, ws), {}, ws);`
KVCALI_DECL std::optional<scale_offset> ifmr_choose_sorted(std::span<const float> x, const ifmr_options& s, ifmr_walk_workspace& ws,
                                                           std::vector<double>* errors = nullptr);

// ---------------------------------------------------------------------------------------------
// The unsorted path: no sort at all. Every candidate's quantization cells are bounded by float
// thresholds (the smallest x whose level reaches q, found with the reference's own arithmetic),
// computable without the data. One pass puts each value into the interval between consecutive
// thresholds of all candidates (a uniform grid over the thresholds finds it in O(1)) and keeps
// count, mean and spread per interval; each cell is then a run of intervals, summed with a 16-ary
// hierarchy. The percentile starting points come from a two-pass radix selection.

namespace detail {

/// Adds values to a histogram of the upper 16 bits of their float_key (65536 counters).
KVCALI_DECL void add_high_key_histogram(std::vector<std::uint32_t>& high, std::span<const float> values);

/// The values of 0-based ranks `r1` and `r2` in float_key order, by a 16-bit + 16-bit radix
/// selection (two passes, no copy; one when `high` already holds the first pass's histogram of
/// these values). Requires r1, r2 < values.size() < 2^32.
KVCALI_DECL std::pair<float, float> select_two(std::span<const float> values, std::size_t r1, std::size_t r2,
                                               std::vector<std::uint32_t> high = {});

/// The smallest float x (in float_key order) whose level reaches `q`, for level(lo) < q <= level(hi):
/// a binary search on keys, started in a few ulps around the nearest rounding point.
KVCALI_DECL float ifmr_threshold(const ifmr_candidate& c, float q);

/// Count, mean and centred second moment of a run of values.
struct moment_stat {
    double count = 0.0;
    double mean = 0.0;
    double m2 = 0.0;
};

inline moment_stat merge_moments(const moment_stat& a, const moment_stat& b) noexcept {
    if (a.count == 0.0) return b;
    if (b.count == 0.0) return a;
    const double n = a.count + b.count;
    const double delta = b.mean - a.mean;
    return {n, a.mean + delta * b.count / n, a.m2 + b.m2 + delta * delta * a.count * b.count / n};
}

/// Leaf statistics in a 16-ary hierarchy: the sum of `(x - v)^2` over a run of leaves in O(log).
class moment_tree {
public:
    static constexpr std::size_t fan = 16;

    explicit moment_tree(std::vector<moment_stat> leaves) {
        levels_.push_back(std::move(leaves));
        while (levels_.back().size() > fan) {
            const auto& below = levels_.back();
            std::vector<moment_stat> up((below.size() + fan - 1) / fan);
            for (std::size_t u = 0; u < up.size(); ++u) {
                moment_stat acc{};
                for (std::size_t b = u * fan; b < std::min(below.size(), (u + 1) * fan); ++b) acc = merge_moments(acc, below[b]);
                up[u] = acc;
            }
            levels_.push_back(std::move(up));
        }
    }

    /// The sum of `(x - v)^2` over the values of leaves [first, last).
    double squared_error(std::size_t first, std::size_t last, double v) const {
        double total = 0.0;
        for (std::size_t level = 0;; ++level) {
            const auto& stats = levels_[level];
            auto add = [&](std::size_t a, std::size_t b) {
                for (std::size_t i = a; i < b; ++i) {
                    if (stats[i].count == 0.0) continue;
                    const double d = stats[i].mean - v;
                    total += stats[i].m2 + stats[i].count * d * d;
                }
            };
            const std::size_t a2 = (first + fan - 1) / fan * fan, b2 = last / fan * fan;
            if (level + 1 == levels_.size() || a2 >= b2) {
                add(first, last);
                return total;
            }
            add(first, a2);
            add(b2, last);
            first = a2 / fan;
            last = b2 / fan;
        }
    }

private:
    std::vector<std::vector<moment_stat>> levels_;
};

/// The cells of every candidate as runs of threshold intervals, and a locator for the intervals.
struct ifmr_cells {
    std::vector<float> thresholds;                   // sorted, distinct; +inf sentinel at the end
    std::vector<std::vector<std::uint32_t>> bounds;  // per candidate: interval index where each cell starts, then the end
    std::vector<float> first_level;                  // per candidate: the level of its first cell
    std::vector<std::uint32_t> grid;                 // grid bucket -> index of its first threshold
    float origin = 0.0f, inverse_width = 0.0f, last_bucket = 0.0f;

    /// Monotone in x (float subtraction, multiplication by a non-negative factor and clamping all
    /// are), which is all the locator needs from it.
    std::size_t bucket(float x) const noexcept {
        const float f = (x - origin) * inverse_width;  // NaN only as inf * 0, when every bucket is 0
        return f >= 0.0f ? static_cast<std::size_t>(static_cast<std::int32_t>(std::min(f, last_bucket))) : 0;  // at most 2^22 buckets
    }
    /// The number of thresholds <= x.
    std::uint32_t interval(float x) const noexcept {
        const std::size_t g = bucket(x);
        std::uint32_t j = grid[g];
        const std::uint32_t end = grid[g + 1];
        if (end - j <= 1) return j + (thresholds[j] <= x ? 1u : 0u);
        while (j < end && thresholds[j] <= x) ++j;
        return j;
    }
};

/// Builds the cells of `candidates`; false when a candidate is unusual (reversed range, or more
/// than 4096 levels), for the sorted path to handle.
KVCALI_DECL bool ifmr_build_cells(const std::vector<ifmr_candidate>& candidates, ifmr_cells& cells);

}  // namespace detail

/// Every candidate's squared error sum (not divided by the count), computed over an unsorted
/// sample without sorting it; empty when the sample or the candidates need the sorted path.
struct ifmr_unsorted_result {
    ifmr_start start;
    std::vector<ifmr_candidate> candidates;
    std::vector<double> errors;  ///< per candidate; empty: use the sorted path
};

/// Runs the unsorted path (see above) over a non-empty sample of fewer than 2^32 values.
/// `high_keys` may hold `detail::add_high_key_histogram` of the values (saves one pass).
KVCALI_DECL ifmr_unsorted_result ifmr_search_unsorted(std::span<const float> values, const ifmr_options& s,
                                                      std::vector<std::uint32_t> high_keys = {});

/// Every candidate's loss (the mean squared error) by the unsorted path, in candidate order;
/// empty when the sample needs the sorted path.
KVCALI_DECL std::vector<double> ifmr_losses_unsorted(std::span<const float> values, const ifmr_options& s);

namespace detail {
KVCALI_DECL scale_offset ifmr_scale_offset(const ifmr_start& start, const ifmr_candidate& chosen, bool with_offset);
}  // namespace detail

/// Whether `ifmr_calibrate` takes the unsorted path for `count` values: when the values outnumber
/// the thresholds (the candidates times 257), so the per-threshold work does not dominate.
KVCALI_DECL bool ifmr_prefers_unsorted(std::size_t count, const ifmr_options& s);

/// The scale and offset IFMR chooses by the unsorted path, or nothing when the sample needs the
/// sorted path.
KVCALI_DECL std::optional<scale_offset> ifmr_choose_unsorted(std::span<const float> values, const ifmr_options& s,
                                                             std::vector<std::uint32_t> high_keys = {});

/// Sorts keys (from `float_key`) and returns the sample ready for the search.
KVCALI_DECL ifmr_sorted_sample ifmr_prepare(std::vector<std::uint32_t> keys);

/// IFMR over one sample given as values in any order: the unsorted path for large samples
/// (`ifmr_prefers_unsorted`), else the sorted one (the cell walk, `ifmr_choose_sorted`); all
/// give the same losses within 1e-9 relative.
/// `high_keys` may hold `detail::add_high_key_histogram` of the values.
/// `ws` holds the sorted path's buffers (reused by a caller with many samples, such as per channel).
KVCALI_DECL scale_offset ifmr_calibrate(std::span<const float> values, const ifmr_options& s, ifmr_walk_workspace& ws,
                                        std::vector<std::uint32_t> high_keys = {});

KVCALI_DECL scale_offset ifmr_calibrate(std::span<const float> values, const ifmr_options& s, std::vector<std::uint32_t> high_keys = {});

/// The IFMR accumulator: keeps every value (per tensor, or per channel) until the last batch: the
/// float32 values of all batches, and (per tensor) a 65536-entry histogram. `expected_batches`
/// (batch_num, when known) lets it reserve room for all batches at the first, so that the storage
/// is allocated once, not regrown (which would briefly hold the values twice).
class ifmr_accumulator final : public accumulator {
public:
    ifmr_accumulator(const ifmr_options& settings, bool per_channel, std::uint32_t expected_batches = 0)
        : settings_(settings), per_channel_(per_channel), expected_batches_(expected_batches) {
        ifmr_ratios(settings_);  // refuse a search without candidates before any data is taken
    }

    KVCALI_DECL void add_batch(std::span<const float> values, std::size_t channels) override;

    KVCALI_DECL quant_factors finish() override;

private:
    ifmr_options settings_;
    bool per_channel_;
    std::uint32_t expected_batches_;
    // The values, channel after channel: channel c's `rows_` values (room for `capacity_`) start at
    // `c * stride_`.
    detail::layer_buffer values_;
    std::size_t channels_ = 0;  // 0 until the first batch
    std::size_t rows_ = 0, capacity_ = 0, stride_ = 0;
    std::vector<std::uint32_t> high_keys_;  // per tensor: histogram of the upper key bits
    ifmr_walk_workspace workspace_;         // the sorted path's buffers, shared by the channels
};

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/ifmr.ipp"  // IWYU pragma: export
#endif
