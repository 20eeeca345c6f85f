// kvcali: calibration/ifmr.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation). The search kernels are here;
// the per-value helpers (levels, keys) stay inline in the header.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../calibration/ifmr.hpp"
#include "../error.hpp"

namespace kvcali {

namespace detail {

KVCALI_DECL std::string shortest_text(double v) {
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

}  // namespace detail

KVCALI_DECL std::vector<float> ifmr_ratios(const ifmr_options& s) {
    const double count = std::ceil((s.search_range_end - s.search_range_start) / s.search_step);
    if (!(count >= 1.0)) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_value,
                               .message = "the IFMR search range [" + detail::shortest_text(s.search_range_start) + ", " +
                                          detail::shortest_text(s.search_range_end) + "] with step " +
                                          detail::shortest_text(s.search_step) +
                                          " holds no candidate (expected search_range_start < search_range_end and search_step > 0)",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    }
    if (count > ifmr_max_candidates) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_value,
                               .message = "the IFMR search holds " + std::to_string(static_cast<long long>(count)) +
                                          " candidates (expected at most 100000: raise search_step)",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    }
    std::vector<float> ratios;
    ratios.reserve(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) {
        ratios.push_back(static_cast<float>(s.search_range_start + static_cast<double>(i) * s.search_step));
    }
    return ratios;
}

namespace detail {

KVCALI_DECL const std::uint32_t* sort_keys(std::uint32_t* keys, std::size_t n, std::vector<std::uint32_t>& scratch,
                                           std::vector<std::uint32_t>& counts) {
    if (n < 2048 || n >= (std::size_t{1} << 32)) {
        std::sort(keys, keys + n);
        return keys;
    }
    constexpr unsigned shift[3] = {0, 11, 22};
    constexpr std::uint32_t mask[3] = {0x7FF, 0x7FF, 0x3FF};
    counts.assign(3 * 2048, 0);
    std::uint32_t* count = counts.data();
    std::uint32_t low_bits = 0;  // the low 11 bits of every key's float
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t k = keys[i];
        low_bits |= ((k & 0x80000000u) ? k : ~k) & 0x7FFu;
        ++count[k & 0x7FF];
        ++count[2048 + ((k >> 11) & 0x7FF)];
        ++count[4096 + (k >> 22)];
    }
    scratch.resize(n);
    std::uint32_t* from = keys;
    std::uint32_t* to = scratch.data();
    for (int d = 0; d < 3; ++d) {
        std::uint32_t* digit = count + static_cast<std::size_t>(d) * 2048;
        // Passes that move nothing are skipped: a digit shared by every key, and the low digit when
        // every float's low 11 bits are 0 (float16 and bfloat16 data widened): that digit is then 0
        // for positive values and 0x7FF for negative ones, so keys alike above it are alike in it.
        if (digit[(keys[0] >> shift[d]) & mask[d]] == n || (d == 0 && low_bits == 0)) continue;
        std::uint32_t sum = 0;
        for (std::size_t b = 0; b <= mask[d]; ++b) {
            const std::uint32_t c = digit[b];
            digit[b] = sum;
            sum += c;
        }
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint32_t k = from[i];
            to[digit[(k >> shift[d]) & mask[d]]++] = k;
        }
        std::swap(from, to);
    }
    return from;
}

}  // namespace detail

KVCALI_DECL void sort_float_keys(std::vector<std::uint32_t>& keys) {
    std::vector<std::uint32_t> scratch, counts;
    if (detail::sort_keys(keys.data(), keys.size(), scratch, counts) != keys.data()) keys.swap(scratch);
}

KVCALI_DECL double ifmr_candidate_error(const ifmr_sorted_sample& sample, const ifmr_candidate& c) {
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

KVCALI_DECL std::vector<double> ifmr_losses(const ifmr_sorted_sample& sample, const ifmr_options& s) {
    const auto ratios = ifmr_ratios(s);
    const ifmr_start start = ifmr_start_points(sample.values(), s);
    std::vector<double> losses;
    losses.reserve(ratios.size());
    for (float r : ratios) {
        losses.push_back(ifmr_candidate_error(sample, ifmr_candidate_at(start, r, s.with_offset)) / static_cast<double>(sample.size()));
    }
    return losses;
}

KVCALI_DECL scale_offset ifmr_choose(const ifmr_sorted_sample& sample, const ifmr_options& s) {
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

KVCALI_DECL std::optional<scale_offset> ifmr_choose_sorted(std::span<const float> x, const ifmr_options& s, ifmr_walk_workspace& ws,
                                                           std::vector<double>* errors) {
    const std::size_t n = x.size();
    if (n == 0 || n >= (std::size_t{1} << 32)) return std::nullopt;
    const auto ratios = ifmr_ratios(s);
    const ifmr_start start = ifmr_start_points(x, s);

    // Prefix sums within blocks of `block` (B) values, each shifted by its block's middle value, so
    // that a run's sums keep their precision (no cancellation against far-away values); a cell of
    // at most 8 values is summed directly, as the straightforward loss does. B = 128: a dense cell
    // (tens of values) spans one or two blocks, rarely a whole one between (B = 32 took 10% longer
    // per channel on 128 x 8192 normal values, B = 256 3% longer).
    // Block k has B + 1 slots, k * (B + 1) + j for j = 0 .. B: the sums over its first j values, so
    // that position i of block k (k * B <= i <= k * B + B, the block's end included) is slot i + k
    // and any run inside one block is a difference of two slots, without a branch for the block's end.
    constexpr std::size_t block = 128;
    const std::size_t blocks = (n + block - 1) / block;
    ws.sums.resize(2 * blocks * (block + 1));
    ws.block_shift.resize(blocks);
    ws.block_s1.resize(blocks);
    ws.block_s2.resize(blocks);
    double* sums = ws.sums.data();
    for (std::size_t k = 0; k < blocks; ++k) {
        const std::size_t lo = k * block, hi = std::min(n, lo + block);
        const double shift = static_cast<double>(x[(lo + hi) / 2]);
        double a1 = 0.0, a2 = 0.0;
        double* slot = sums + 2 * k * (block + 1);
        for (std::size_t i = lo; i < hi; ++i, slot += 2) {
            slot[0] = a1;
            slot[1] = a2;
            const double d = static_cast<double>(x[i]) - shift;
            a1 += d;
            a2 += d * d;
        }
        // The block's end (and, for a short last block, every slot after its last value).
        for (std::size_t j = hi - lo; j <= block; ++j, slot += 2) {
            slot[0] = a1;
            slot[1] = a2;
        }
        ws.block_shift[k] = shift;
        ws.block_s1[k] = a1;
        ws.block_s2[k] = a2;
    }
    const double* block_shift = ws.block_shift.data();
    const double* block_s1 = ws.block_s1.data();
    const double* block_s2 = ws.block_s2.data();
    // The sum of (x - v)^2 over [b, e), a run inside block k (k * B <= b <= e <= k * B + B; an
    // empty run gives 0).
    auto block_error = [&](std::size_t k, std::size_t b, std::size_t e, double v) KVCALI_ALWAYS_INLINE {
        const double* from = sums + 2 * (b + k);
        const double* to = sums + 2 * (e + k);
        const double r1 = to[0] - from[0];
        const double r2 = to[1] - from[1];
        const double d = v - block_shift[k];
        return r2 - 2.0 * d * r1 + static_cast<double>(e - b) * d * d;
    };
    // The grid: two buckets per value over the central range (the 1/4096 most extreme values at
    // either end share the end buckets). bucket(y) is monotone in y, so the values below a
    // threshold t are all those of lower buckets plus some of bucket(t).
    const std::size_t buckets = std::clamp<std::size_t>(2 * n, 1, std::size_t{1} << 24);
    const std::size_t tail = n / 4096;
    const float origin = x[tail];
    const float range = x[n - 1 - tail] - origin;
    float inverse_width = range > 0.0f ? static_cast<float>(buckets) / range : 0.0f;
    if (!std::isfinite(inverse_width)) inverse_width = 0.0f;
    const float last_bucket = static_cast<float>(buckets - 1);
    auto bucket = [&](float y) KVCALI_ALWAYS_INLINE -> std::size_t {
        const float f = (y - origin) * inverse_width;  // NaN only as inf * 0: bucket 0
        // Through int32 (the bucket count is at most 2^24): one instruction, where a float to
        // 64-bit unsigned conversion takes a compare and two paths on x86-64.
        return f > 0.0f ? static_cast<std::size_t>(static_cast<std::int32_t>(std::min(f, last_bucket))) : 0;
    };
    ws.grid.assign(buckets + 1, 0);
    for (std::size_t i = 0; i < n; ++i) ++ws.grid[bucket(x[i]) + 1];
    for (std::size_t g = 1; g <= buckets; ++g) ws.grid[g] += ws.grid[g - 1];
    const std::uint32_t* grid = ws.grid.data();
    // The first index whose value is >= t: a few steps without branches in a small bucket.
    auto lower_bound = [&](float t) KVCALI_ALWAYS_INLINE -> std::size_t {
        const std::size_t g = bucket(t);
        std::size_t i = grid[g];
        const std::size_t end = grid[g + 1];
        if (end - i <= 4 && i + 4 <= n) {
            // The values of the bucket are sorted, and those past it are above t (their buckets
            // are higher, and bucket(y) is monotone): the count below t among the next four is the
            // offset; four independent loads, no chain.
            std::size_t below = 0;
            for (std::size_t k = 0; k < 4; ++k) below += static_cast<std::size_t>(x[i + k] < t);
            return i + below;
        }
        return static_cast<std::size_t>(std::partition_point(x.begin() + static_cast<std::ptrdiff_t>(i),
                                                             x.begin() + static_cast<std::ptrdiff_t>(end), [&](float v) { return v < t; }) -
                                        x.begin());
    };
    auto run_error = [&](std::size_t b, std::size_t e, double v) KVCALI_ALWAYS_INLINE {
        if (e - b <= 8) {
            double total = 0.0;
            for (std::size_t i = b; i < e; ++i) {
                const double d = static_cast<double>(x[i]) - v;
                total += d * d;
            }
            return total;
        }
        const std::size_t kb = b / block, ke = (e - 1) / block;
        // One or two blocks without a branch: when kb == ke the second part is empty.
        const std::size_t mid = std::min(e, (kb + 1) * block);
        double total = block_error(kb, b, mid, v) + block_error(ke, std::max(ke * block, mid), e, v);
        for (std::size_t k = kb + 1; k < ke; ++k) {
            const double d = v - block_shift[k];
            total += block_s2[k] - 2.0 * d * block_s1[k] + static_cast<double>(block) * d * d;
        }
        return total;
    };

    // The candidates, checked up front (the walk needs lo <= hi and a bounded level count).
    std::vector<ifmr_candidate>& candidates = ws.candidates;
    candidates.clear();
    for (float r : ratios) {
        const ifmr_candidate c = ifmr_candidate_at(start, r, s.with_offset);
        // A reversed range, a huge level count or a range near the float limit: ifmr_choose.
        if (!(c.lo <= c.hi) || !(std::fabs(c.lo) < 1e37f && c.hi < 1e37f)) return std::nullopt;
        if (!(ifmr_level(c, x[n - 1]) - ifmr_level(c, x[0]) <= 65536.0f)) return std::nullopt;
        candidates.push_back(c);
    }
    // A candidate's squared error sum: its top cell (where clipping errors gather) first, then the
    // cells from the bottom up. The partial sums only grow (the terms are not negative), so a
    // candidate is given up (+inf) as soon as one exceeds `limit`: it cannot be the smallest.
    auto candidate_error = [&](const ifmr_candidate& c, double limit) {
        const float first = ifmr_level(c, x[0]), last = ifmr_level(c, x[n - 1]);
        const double scale = static_cast<double>(c.scale);
        // The first index whose level reaches q (first < q <= last). Values more than 2^-20
        // (relative) below the rounding point (q - 0.5) * scale have a lower level, those as far
        // above it level q or more; only the values between are quantized with the reference's
        // arithmetic.
        auto cell_start = [&](float q) KVCALI_ALWAYS_INLINE {
            const double a = (static_cast<double>(q) - 0.5) * scale;
            const double margin = std::fabs(a) * 0x1p-19;  // 2^-20 after rounding to float
            const auto below = static_cast<float>(a - margin), above = static_cast<float>(a + margin);
            std::size_t i = lower_bound(below);
            while (i < n && x[i] < above && ifmr_level(c, x[i]) < q) ++i;
            return i;
        };
        if (!(first < last)) return run_error(0, n, static_cast<double>(first * c.scale));
        const std::size_t top = cell_start(last);
        double total = run_error(top, n, static_cast<double>(last * c.scale));
        if (total > limit) return std::numeric_limits<double>::infinity();
        // The other cells from the median's level outwards, one up and one down in turn: the dense
        // middle carries most of the error, so a candidate that cannot win passes `limit` after
        // few cells. Up: the cell of level `up_level` starts at `up_begin`; down: the cell below
        // `down_level` ends at `down_end`. Empty cells are skipped: every level from q to the
        // level of the value at a cell's edge starts (or ends) there, as the levels are monotone
        // in x (tried only when that value lies past the next level's centre, a hint; the skip
        // itself is exact).
        const float middle = std::clamp(ifmr_level(c, x[n / 2]), first, last - 1.0f);
        std::size_t up_begin = middle > first ? cell_start(middle) : 0, down_end = up_begin;
        float up_level = middle, down_level = middle;
        bool up = true, down = middle > first && down_end > 0;
        while (up || down) {
            // In the dense middle (the next cell each way holds 16 values or more), `batch` cells
            // each way at once: their starts are independent lookups, which the processor overlaps,
            // where one cell at a time waits for each. The candidate is given up after the batch.
            constexpr int batch = 8;
            constexpr auto batch_levels = static_cast<float>(batch);
            if (up && down && up_level + batch_levels < last && down_level - batch_levels > first && up_begin + 16 < top && down_end > 16 &&
                static_cast<double>(x[up_begin + 16]) < (static_cast<double>(up_level) + 0.5) * scale &&
                static_cast<double>(x[down_end - 16]) > (static_cast<double>(down_level) - 1.5) * scale) {
                std::size_t ends[batch], begins[batch];  // of the cells up_level + j and down_level - 1 - j
                for (int j = 0; j < batch; ++j) ends[j] = cell_start(up_level + static_cast<float>(j + 1));
                for (int j = 0; j < batch; ++j) begins[j] = cell_start(down_level - static_cast<float>(j + 1));
                double part = 0.0;
                std::size_t from = up_begin, to = down_end;
                for (int j = 0; j < batch; ++j) {
                    part += run_error(from, ends[j], static_cast<double>((up_level + static_cast<float>(j)) * c.scale));
                    from = ends[j];
                }
                for (int j = 0; j < batch; ++j) {
                    part += run_error(begins[j], to, static_cast<double>((down_level - static_cast<float>(j + 1)) * c.scale));
                    to = begins[j];
                }
                total += part;
                if (total > limit) return std::numeric_limits<double>::infinity();
                up_begin = from;
                up_level += batch_levels;
                down_end = to;
                down_level -= batch_levels;
                up = up_begin < top;
                down = down_end > 0;
                continue;
            }
            if (up) {
                const float q = up_level + 1.0f;
                const std::size_t end = q < last ? cell_start(q) : top;
                if (end > up_begin) {
                    total += run_error(up_begin, end, static_cast<double>(up_level * c.scale));
                    if (total > limit) return std::numeric_limits<double>::infinity();
                    up_begin = end;
                }
                up_level = q;
                if (!(q < last) || end >= top) {
                    // The cells from q up to the top one are empty when the next values are the top cell's.
                    up = false;
                } else if (static_cast<double>(x[end]) > (static_cast<double>(q) + 1.5) * scale) {
                    up_level = std::max(q, std::min(ifmr_level(c, x[end]), last - 1.0f));
                }
            }
            if (down) {
                const float q = down_level - 1.0f;  // the level whose cell ends at down_end
                const std::size_t begin = q > first ? cell_start(q) : 0;
                if (down_end > begin) {
                    total += run_error(begin, down_end, static_cast<double>(q * c.scale));
                    if (total > limit) return std::numeric_limits<double>::infinity();
                    down_end = begin;
                }
                down_level = q;
                if (!(q > first) || begin == 0) {
                    down = false;
                } else if (static_cast<double>(x[begin - 1]) < (static_cast<double>(q) - 1.5) * scale) {
                    down_level = std::min(q, std::max(ifmr_level(c, x[begin - 1]), first) + 1.0f);
                }
            }
        }
        return total;
    };

    // The smallest error, the first candidate among equals. Without `errors`, the previous
    // sample's winner (neighbouring channels are alike) is tried first, which lets most other
    // candidates be given up early; the choice is the same in any order.
    if (errors) errors->assign(candidates.size(), 0.0);
    const std::size_t hint = !errors && ws.hint < candidates.size() ? ws.hint : 0;
    double best = std::numeric_limits<double>::infinity();
    std::size_t chosen = 0;
    for (std::size_t step = 0; step < candidates.size(); ++step) {
        const std::size_t k = step == 0 ? hint : (step <= hint ? step - 1 : step);
        const double total = candidate_error(candidates[k], errors ? std::numeric_limits<double>::infinity() : best);
        if (errors) (*errors)[k] = total;
        if (total < best || (total == best && k < chosen)) {
            best = total;
            chosen = k;
        }
    }
    ws.hint = chosen;
    scale_offset so{candidates[chosen].scale, 0};
    if (s.with_offset) so.offset = static_cast<std::int32_t>(-round_half_even(start.min0 / candidates[chosen].scale)) - 128;
    return finish_scale(so, s.with_offset);
}

KVCALI_DECL std::span<const float> ifmr_sort_sample(std::span<const float> values, ifmr_walk_workspace& ws) {
    const std::size_t n = values.size();
    ws.keys.resize(n);
    ws.sorted.resize(n);
    for (std::size_t i = 0; i < n; ++i) ws.keys[i] = float_key(values[i]);
    const std::uint32_t* keys = detail::sort_keys(ws.keys.data(), n, ws.radix_scratch, ws.radix_counts);
    for (std::size_t i = 0; i < n; ++i) ws.sorted[i] = key_float(keys[i]);
    return ws.sorted;
}

namespace detail {

KVCALI_DECL void add_high_key_histogram(std::vector<std::uint32_t>& high, std::span<const float> values) {
    if (high.size() != 65536) high.assign(65536, 0);
    for (float v : values) ++high[float_key(v) >> 16];
}

KVCALI_DECL std::pair<float, float> select_two(std::span<const float> values, std::size_t r1, std::size_t r2,
                                               std::vector<std::uint32_t> high) {
    if (high.size() != 65536) add_high_key_histogram(high, values);
    auto locate = [](const std::vector<std::uint32_t>& counts, std::size_t& rank) {
        std::size_t b = 0;
        while (rank >= counts[b]) rank -= counts[b++];
        return static_cast<std::uint32_t>(b);
    };
    const std::uint32_t b1 = locate(high, r1), b2 = locate(high, r2);
    std::vector<std::uint32_t> low1(65536, 0), low2(65536, 0);
    // Each bucket is a closed float interval (a superset at -0/+0): a plain comparison filter
    // (which vectorises) skips the blocks that hold none of its values.
    const float lo1 = key_float(b1 << 16), hi1 = key_float((b1 << 16) | 0xFFFFu);
    const float lo2 = key_float(b2 << 16), hi2 = key_float((b2 << 16) | 0xFFFFu);
    constexpr std::size_t block = 256;
    for (std::size_t begin = 0; begin < values.size(); begin += block) {
        const std::span<const float> part = values.subspan(begin, std::min(block, values.size() - begin));
        unsigned hits = 0;
        for (float v : part) hits |= static_cast<unsigned>((v >= lo1) & (v <= hi1)) | static_cast<unsigned>((v >= lo2) & (v <= hi2));
        if (hits == 0) continue;
        for (float v : part) {
            const std::uint32_t k = float_key(v);
            const std::uint32_t top = k >> 16;
            if (top == b1) ++low1[k & 0xFFFFu];
            if (top == b2) ++low2[k & 0xFFFFu];
        }
    }
    const std::uint32_t k1 = (b1 << 16) | locate(low1, r1), k2 = (b2 << 16) | locate(low2, r2);
    return {key_float(k1), key_float(k2)};
}

KVCALI_DECL float ifmr_threshold(const ifmr_candidate& c, float q) {
    const std::uint32_t lo_key = float_key(c.lo), hi_key = float_key(c.hi);
    const float guess = std::clamp((q - 0.5f) * c.scale, c.lo, c.hi);
    const std::uint32_t g = float_key(guess);
    std::uint32_t below = g - lo_key > 4 ? g - 4 : lo_key;  // level(below) < q
    std::uint32_t above = hi_key - g > 4 ? g + 4 : hi_key;  // level(above) >= q
    if (!(ifmr_level(c, key_float(below)) < q)) below = lo_key;
    if (!(ifmr_level(c, key_float(above)) >= q)) above = hi_key;
    while (above - below > 1) {
        const std::uint32_t mid = below + (above - below) / 2;
        if (ifmr_level(c, key_float(mid)) >= q) {
            above = mid;
        } else {
            below = mid;
        }
    }
    return key_float(above);
}

KVCALI_DECL bool ifmr_build_cells(const std::vector<ifmr_candidate>& candidates, ifmr_cells& cells) {
    std::vector<float> all;
    cells.first_level.clear();
    for (const auto& c : candidates) {
        if (!(c.lo <= c.hi)) return false;
        const float first = ifmr_level(c, c.lo), last = ifmr_level(c, c.hi);
        if (!(last - first <= 4096.0f)) return false;
        cells.first_level.push_back(first);
        for (float q = first + 1.0f; q <= last; q += 1.0f) all.push_back(ifmr_threshold(c, q));
    }
    std::sort(all.begin(), all.end());
    all.erase(std::unique(all.begin(), all.end()), all.end());
    const std::size_t m = all.size();
    cells.bounds.assign(candidates.size(), {});
    for (std::size_t k = 0; k < candidates.size(); ++k) {
        const auto& c = candidates[k];
        auto& b = cells.bounds[k];
        b.push_back(0);
        const float last = ifmr_level(c, c.hi);
        for (float q = cells.first_level[k] + 1.0f; q <= last; q += 1.0f) {
            const float t = ifmr_threshold(c, q);
            b.push_back(static_cast<std::uint32_t>(std::lower_bound(all.begin(), all.end(), t) - all.begin()) + 1u);
        }
        b.push_back(static_cast<std::uint32_t>(m) + 1u);
    }
    // A uniform grid of about 8 buckets per threshold over [first, last threshold] (at most 2^22
    // buckets, so every bucket number is a float).
    const std::size_t buckets = std::clamp<std::size_t>(8 * m, 1, std::size_t{1} << 22);
    cells.grid.assign(buckets + 1, 0);
    cells.origin = m ? all.front() : 0.0f;
    const float range = m ? all.back() - cells.origin : 0.0f;
    cells.inverse_width = range > 0.0f && std::isfinite(range) ? static_cast<float>(buckets) / range : 0.0f;
    if (!std::isfinite(cells.inverse_width)) cells.inverse_width = 0.0f;
    cells.last_bucket = static_cast<float>(buckets - 1);
    cells.thresholds = std::move(all);
    // grid[g] = the number of thresholds whose bucket is below g (the same bucket function as the
    // values use, so a value's interval lies between grid[bucket] and grid[bucket + 1]).
    std::vector<std::uint32_t> per_bucket(buckets + 1, 0);
    for (float t : cells.thresholds) ++per_bucket[cells.bucket(t) + 1];
    for (std::size_t g = 1; g <= buckets; ++g) cells.grid[g] = cells.grid[g - 1] + per_bucket[g];
    cells.thresholds.push_back(std::numeric_limits<float>::infinity());
    return true;
}

}  // namespace detail

KVCALI_DECL ifmr_unsorted_result ifmr_search_unsorted(std::span<const float> values, const ifmr_options& s,
                                                      std::vector<std::uint32_t> high_keys) {
    ifmr_unsorted_result out;
    const std::size_t n = values.size();
    const auto ratios = ifmr_ratios(s);
    if (n == 0 || n >= (std::size_t{1} << 32)) return out;
    const auto [upper, lower] = detail::select_two(values, n - ifmr_percentile_rank(n, s.max_percentile),
                                                   ifmr_percentile_rank(n, s.min_percentile) - 1, std::move(high_keys));
    out.start = ifmr_start_from(upper, lower, s);
    for (float r : ratios) out.candidates.push_back(ifmr_candidate_at(out.start, r, s.with_offset));
    detail::ifmr_cells cells;
    if (!detail::ifmr_build_cells(out.candidates, cells)) return out;

    // One pass: per interval, count and sums shifted by the interval's first value (so a run of
    // equal values has exactly zero spread).
    struct running {
        double s1 = 0.0, s2 = 0.0;
        float shift = 0.0f;
        std::uint32_t count = 0;
    };
    std::vector<running> acc(cells.thresholds.size());
    // In chunks: grid buckets (plain arithmetic), then intervals, then the sums; separate loops
    // keep more independent loads in flight than one loop doing all three.
    constexpr std::size_t chunk = 1024;
    std::uint32_t index[chunk];
    const std::uint32_t* grid = cells.grid.data();
    const float* thresholds = cells.thresholds.data();
    for (std::size_t begin = 0; begin < n; begin += chunk) {
        const std::span<const float> part = values.subspan(begin, std::min(chunk, n - begin));
        for (std::size_t i = 0; i < part.size(); ++i) index[i] = static_cast<std::uint32_t>(cells.bucket(part[i]));
        for (std::size_t i = 0; i < part.size(); ++i) {
            const float x = part[i];
            std::uint32_t j = grid[index[i]];
            const std::uint32_t end = grid[index[i] + 1];
            if (end - j <= 1) {
                j += thresholds[j] <= x ? 1u : 0u;
            } else {
                while (j < end && thresholds[j] <= x) ++j;
            }
            index[i] = j;
        }
        for (std::size_t i = 0; i < part.size(); ++i) {
            const float x = part[i];
            running& r = acc[index[i]];
            const float shift = r.count != 0 ? r.shift : x;
            r.shift = shift;
            const double d = static_cast<double>(x) - static_cast<double>(shift);
            r.s1 += d;
            r.s2 += d * d;
            ++r.count;
        }
    }
    std::vector<detail::moment_stat> leaves(acc.size());
    for (std::size_t i = 0; i < acc.size(); ++i) {
        const running& r = acc[i];
        if (r.count == 0) continue;
        const double cnt = static_cast<double>(r.count);
        leaves[i] = {cnt, static_cast<double>(r.shift) + r.s1 / cnt, std::max(0.0, r.s2 - r.s1 * r.s1 / cnt)};
    }
    const detail::moment_tree tree(std::move(leaves));
    out.errors.reserve(out.candidates.size());
    for (std::size_t k = 0; k < out.candidates.size(); ++k) {
        const auto& c = out.candidates[k];
        const auto& b = cells.bounds[k];
        double total = 0.0;
        float level = cells.first_level[k];
        for (std::size_t q = 0; q + 1 < b.size(); ++q, level += 1.0f) {
            if (b[q + 1] > b[q]) total += tree.squared_error(b[q], b[q + 1], static_cast<double>(level * c.scale));
        }
        out.errors.push_back(total);
    }
    return out;
}

KVCALI_DECL std::vector<double> ifmr_losses_unsorted(std::span<const float> values, const ifmr_options& s) {
    auto r = ifmr_search_unsorted(values, s);
    for (double& e : r.errors) e /= static_cast<double>(values.size());
    return std::move(r.errors);
}

namespace detail {

KVCALI_DECL scale_offset ifmr_scale_offset(const ifmr_start& start, const ifmr_candidate& chosen, bool with_offset) {
    scale_offset so{chosen.scale, 0};
    if (with_offset) so.offset = static_cast<std::int32_t>(-round_half_even(start.min0 / chosen.scale)) - 128;
    return finish_scale(so, with_offset);
}

}  // namespace detail

KVCALI_DECL bool ifmr_prefers_unsorted(std::size_t count, const ifmr_options& s) {
    const double thresholds = std::ceil((s.search_range_end - s.search_range_start) / s.search_step) * 257.0;
    return count < (std::size_t{1} << 32) && static_cast<double>(count) >= thresholds;
}

KVCALI_DECL std::optional<scale_offset> ifmr_choose_unsorted(std::span<const float> values, const ifmr_options& s,
                                                             std::vector<std::uint32_t> high_keys) {
    const auto r = ifmr_search_unsorted(values, s, std::move(high_keys));
    if (r.errors.empty()) return std::nullopt;
    std::size_t best = 0;
    for (std::size_t k = 1; k < r.errors.size(); ++k) {
        if (r.errors[k] < r.errors[best]) best = k;
    }
    return detail::ifmr_scale_offset(r.start, r.candidates[best], s.with_offset);
}

KVCALI_DECL ifmr_sorted_sample ifmr_prepare(std::vector<std::uint32_t> keys) {
    sort_float_keys(keys);
    return ifmr_sorted_sample(keys);
}

KVCALI_DECL scale_offset ifmr_calibrate(std::span<const float> values, const ifmr_options& s, ifmr_walk_workspace& ws,
                                        std::vector<std::uint32_t> high_keys) {
    if (values.empty()) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = "IFMR needs at least one value",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    }
    if (ifmr_prefers_unsorted(values.size(), s)) {
        if (const auto so = ifmr_choose_unsorted(values, s, std::move(high_keys))) return *so;
    }
    const std::span<const float> sorted = ifmr_sort_sample(values, ws);
    if (const auto so = ifmr_choose_sorted(sorted, s, ws)) return *so;
    return ifmr_choose(ifmr_sorted_sample(std::vector<float>(sorted.begin(), sorted.end())), s);
}

KVCALI_DECL scale_offset ifmr_calibrate(std::span<const float> values, const ifmr_options& s, std::vector<std::uint32_t> high_keys) {
    ifmr_walk_workspace ws;
    return ifmr_calibrate(values, s, ws, std::move(high_keys));
}

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL void ifmr_accumulator::add_batch(std::span<const float> values, std::size_t channels) {
    const bool per_tensor = !per_channel_ || channels <= 1;
    const std::size_t width = per_tensor ? 1 : channels;
    const std::size_t rows = values.size() / width;
    if (channels_ == 0) channels_ = width;
    if (width != channels_) detail::throw_channel_count_changed(width, channels_);
    if (rows_ + rows > capacity_) {
        // Room for every batch at the first (batch_num, when known), else twice the room: the
        // values kept so far are copied into the larger buffer.
        const std::size_t capacity = std::max({rows_ + rows, capacity_ * 2, rows * std::max<std::size_t>(1, expected_batches_)});
        // Channels a cache line more than a whole number of lines apart: at a stride of a power of
        // two (8192 values), the 16 channels copy_channels writes at once would share one set of the
        // L1 cache (copying 128 x 8192 values took 1.8-2.2 ms instead of 1.0-1.4 ms).
        const std::size_t stride = channels_ > 1 ? (capacity + 15) / 16 * 16 + 16 : capacity;
        detail::layer_buffer larger(channels_ * stride * sizeof(float));
        for (std::size_t c = 0; c < channels_ && rows_ > 0; ++c)
            std::copy_n(values_.as<float>() + c * stride_, rows_, larger.as<float>() + c * stride);
        values_ = std::move(larger);
        capacity_ = capacity;
        stride_ = stride;
    }
    float* const base = values_.as<float>();
    if (per_tensor) {
        std::copy(values.begin(), values.end(), base + rows_);
        rows_ += rows;
        detail::add_high_key_histogram(high_keys_, values);  // the first selection pass, while the batch is warm
        return;
    }
    float* out[detail::channel_block];
    for (std::size_t c0 = 0; c0 < channels; c0 += detail::channel_block) {
        const std::size_t block = std::min(detail::channel_block, channels - c0);
        for (std::size_t c = 0; c < block; ++c) out[c] = base + (c0 + c) * stride_ + rows_;
        detail::copy_channels(values.data(), rows, channels, c0, block, out);
    }
    rows_ += rows;
}

KVCALI_DECL quant_factors ifmr_accumulator::finish() {
    quant_factors out;
    for (std::size_t c = 0; c < channels_; ++c) {
        const std::span<const float> sample(values_.as<float>() + c * stride_, rows_);
        const scale_offset so = ifmr_calibrate(sample, settings_, workspace_, std::move(high_keys_));
        high_keys_ = {};
        out.scale.push_back(so.scale);
        out.offset.push_back(so.offset);
    }
    values_.reset();  // to the calibrator's pool (if any), for the next layer
    channels_ = rows_ = capacity_ = stride_ = 0;
    return out;
}

}  // namespace kvcali
