// kvcali: calibration/hfmg.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../calibration/hfmg.hpp"
#include "../error.hpp"

namespace kvcali {

namespace detail {

KVCALI_DECL void histc_into(std::span<std::int64_t> counts, const float* data, std::size_t count, std::size_t stride, float lo, float hi) {
    if (lo == hi) {
        lo = lo - 1.0f;
        hi = hi + 1.0f;
    }
    const auto n = static_cast<std::int64_t>(counts.size());
    const float nf = static_cast<float>(n);
    const float range = hi - lo;
    std::int64_t* c = counts.data();
    if (stride == 1 && n <= (std::int64_t{1} << 24)) {
        // Contiguous, and every bin number a float: the bin numbers of a chunk in one loop that
        // vectorises (the same float32 expression; clamping in float before the conversion gives
        // what clamping the 64-bit truncation below gives: NaN and 2^63 or more, where x86's
        // truncation yields INT64_MIN, give bin 0), then the counts.
        const float top = nf - 1.0f;
        constexpr float too_large = 0x1p63f;
        constexpr std::size_t chunk = 1024;
        std::int32_t index[chunk];
        for (std::size_t begin = 0; begin < count; begin += chunk) {
            const std::size_t m = std::min(chunk, count - begin);
            const float* part = data + begin;
            for (std::size_t i = 0; i < m; ++i) {
                const float f = (part[i] - lo) * nf / range;
                const float t = f < too_large ? f : 0.0f;
                const float g = t > 0.0f ? t : 0.0f;
                index[i] = static_cast<std::int32_t>(g < top ? g : top);
            }
            for (std::size_t i = 0; i < m; ++i) ++c[index[i]];
        }
        return;
    }
    for (std::size_t i = 0; i < count; ++i) {
        const float x = data[i * stride];
        auto bin = detail::trunc_to_int64((x - lo) * nf / range);
        if (bin >= n) bin = n - 1;
        if (bin < 0) bin = 0;
        ++c[bin];
    }
}

KVCALI_DECL std::pair<float, float> histc_min_max(const float* data, std::size_t count, std::size_t stride) {
    float mn = data[0], mx = data[0];
    if (stride == 1 && count >= 64) {
        // Eight independent lanes (vectorises); a zero result is then taken from the sequence
        // itself, the only case where the lanes' order could change the answer (-0 against +0).
        constexpr std::size_t lanes = 8;
        float lmn[lanes], lmx[lanes];
        for (std::size_t k = 0; k < lanes; ++k) lmn[k] = lmx[k] = data[k];
        std::size_t i = lanes;
        for (; i + lanes <= count; i += lanes) {
            for (std::size_t k = 0; k < lanes; ++k) {
                const float x = data[i + k];
                lmn[k] = x < lmn[k] ? x : lmn[k];
                lmx[k] = x > lmx[k] ? x : lmx[k];
            }
        }
        for (std::size_t k = 0; k < lanes; ++k) {
            mn = lmn[k] < mn ? lmn[k] : mn;
            mx = lmx[k] > mx ? lmx[k] : mx;
        }
        for (; i < count; ++i) {
            const float x = data[i];
            mn = x < mn ? x : mn;
            mx = x > mx ? x : mx;
        }
        if (mn == 0.0f) mn = *std::find(data, data + count, 0.0f);
        if (mx == 0.0f) mx = *std::find(data, data + count, 0.0f);
        return {mn, mx};
    }
    for (std::size_t i = 1; i < count; ++i) {
        const float x = data[i * stride];
        mn = x < mn ? x : mn;
        mx = x > mx ? x : mx;
    }
    return {mn, mx};
}

KVCALI_DECL std::vector<std::int64_t>& histc_scratch() {
    thread_local std::vector<std::int64_t> scratch;
    return scratch;
}

KVCALI_DECL std::vector<std::int32_t>& histc_edge_scratch() {
    thread_local std::vector<std::int32_t> scratch;
    return scratch;
}

}  // namespace detail

namespace detail {

KVCALI_DECL std::vector<std::int64_t>* hfmg_add_counts(std::span<std::int64_t> counts, float& h_lo, float& h_hi, bool empty,
                                                       const float* data, std::size_t count, std::size_t stride) {
    if (count == 0) return nullptr;
    const auto [mn, mx] = histc_min_max(data, count, stride);
    if (empty) {
        h_lo = mn;
        h_hi = mx;
        std::fill(counts.begin(), counts.end(), std::int64_t{0});
        histc_into(counts, data, count, stride, mn, mx);
        return nullptr;
    }
    const float lo = std::min(h_lo, mn), hi = std::max(h_hi, mx);
    if (std::fabs(lo - h_lo) < flt_epsilon && std::fabs(hi - h_hi) < flt_epsilon) {
        // The new counts over [lo, hi] plus the old ones, bin by bin: counted in place.
        histc_into(counts, data, count, stride, lo, hi);
        h_lo = lo;
        h_hi = hi;
        return nullptr;
    }
    std::vector<std::int64_t>& merged = histc_scratch();
    merged.assign(counts.size(), 0);
    histc_into(merged, data, count, stride, lo, hi);
    {
        const auto n = static_cast<std::int64_t>(counts.size());
        const float nf = static_cast<float>(n);
        const float old_width = (h_hi - h_lo) / nf;
        const float width = (hi - lo) / nf;
        // Every bin number a float: the new bins of each old bin's edges in a loop that vectorises
        // (floor, then clamping the 64-bit truncation, is clamping in float and truncating, as in
        // histc_into: NaN and 2^63 or more give 0).
        const bool small = n <= (std::int64_t{1} << 24);
        std::vector<std::int32_t>& edges = histc_edge_scratch();
        if (small) {
            edges.resize(2 * static_cast<std::size_t>(n));
            const float top = nf - 1.0f;
            constexpr float too_large = 0x1p63f;
            std::int32_t* ed = edges.data();
            for (std::int32_t b = 0; b < static_cast<std::int32_t>(n); ++b) {
                const float a = h_lo + static_cast<float>(b) * old_width;
                const float e = a + old_width;
                const float fa = (a - lo) / width, fe = (e - lo) / width;
                const float ta = fa < too_large ? fa : 0.0f, te = fe < too_large ? fe : 0.0f;
                const float ga = ta > 0.0f ? ta : 0.0f, ge = te > 0.0f ? te : 0.0f;
                ed[2 * b] = static_cast<std::int32_t>(ga < top ? ga : top);
                ed[2 * b + 1] = static_cast<std::int32_t>(ge < top ? ge : top);
            }
        }
        for (std::int64_t b = 0; b < n; ++b) {
            const std::int64_t c = counts[static_cast<std::size_t>(b)];
            if (c == 0) continue;
            const float a = h_lo + static_cast<float>(b) * old_width;
            const float e = a + old_width;
            std::int64_t first, last;
            if (small) {
                first = edges[2 * static_cast<std::size_t>(b)];
                last = edges[2 * static_cast<std::size_t>(b) + 1];
            } else {
                first = std::clamp<std::int64_t>(detail::trunc_to_int64(std::floor((a - lo) / width)), 0, n - 1);
                last = std::clamp<std::int64_t>(detail::trunc_to_int64(std::floor((e - lo) / width)), 0, n - 1);
            }
            if (first >= last || !(e > a)) {
                merged[static_cast<std::size_t>(first)] += c;
                continue;
            }
            const float boundary = lo + static_cast<float>(first + 1) * width;
            const std::int64_t lower = detail::trunc_to_int64(static_cast<float>(c) * (boundary - a) / (e - a));
            // Two's complement wrap-around where lower is INT64_MIN (a NaN or huge quotient), as the
            // reference's int64 arithmetic has it, without signed overflow.
            auto wrap_add = [](std::int64_t& to, std::uint64_t v) { to = static_cast<std::int64_t>(static_cast<std::uint64_t>(to) + v); };
            wrap_add(merged[static_cast<std::size_t>(first)], static_cast<std::uint64_t>(lower));
            wrap_add(merged[static_cast<std::size_t>(last)], static_cast<std::uint64_t>(c) - static_cast<std::uint64_t>(lower));
        }
    }
    h_lo = lo;
    h_hi = hi;
    return &merged;
}

}  // namespace detail

KVCALI_DECL void hfmg_add(hfmg_histogram& h, std::uint32_t bins, const float* data, std::size_t count, std::size_t stride) {
    if (count == 0) return;
    const bool empty = h.empty();
    if (empty) {
        h.bins = bins;
        h.counts.resize(bins);
    }
    if (auto* merged = detail::hfmg_add_counts(h.counts, h.lo, h.hi, empty, data, count, stride))
        h.counts.swap(*merged);  // the old counts' storage becomes the next scratch
}

namespace detail {

KVCALI_DECL std::vector<std::pair<std::int64_t, std::int64_t>> hfmg_candidates(const hfmg_counts_view& h) {
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

KVCALI_DECL std::pair<float, float> hfmg_clip_range(const hfmg_counts_view& h, std::size_t* hint) {
    const auto candidates = hfmg_candidates(h);
    const float width = (h.hi - h.lo) / static_cast<float>(h.bins);
    std::int64_t l = 0, r = static_cast<std::int64_t>(h.bins) - 1;
    if (!candidates.empty()) {
        const hfmg_error_model model(h);
        if (model.has_fast_path()) {
            // Double errors (within ~1e-12) with pruning by the error outside the range, and given
            // up once past the smallest so far; then the exact error of every candidate within 1e-9
            // of the double minimum decides. (A candidate given up is more than 1e-9 above the
            // minimum, so it is not among those; the hint's candidate first only makes the smallest
            // so far small sooner.)
            constexpr double margin = 1e-9;
            std::vector<double> approx(candidates.size(), std::numeric_limits<double>::infinity());
            double best = std::numeric_limits<double>::infinity();
            auto score = [&](std::size_t k) {
                const auto [cl, cr] = candidates[k];
                const double limit = best * (1.0 + margin);
                if (model.outside_error(cl, cr) > limit) return;
                approx[k] = model.approximate_error(cl, cr, limit);
                best = std::min(best, approx[k]);
            };
            const std::size_t hinted = hint != nullptr && *hint < candidates.size() ? *hint : candidates.size();
            if (hinted < candidates.size()) score(hinted);
            for (std::size_t k = 0; k < candidates.size(); ++k) {
                if (k != hinted) score(k);
            }
            hfmg_error_model::wide exact_best = 0;
            std::size_t chosen = candidates.size();  // none yet
            for (std::size_t k = 0; k < candidates.size(); ++k) {
                if (!(approx[k] <= best * (1.0 + margin))) continue;
                const auto e = model.scaled_error(candidates[k].first, candidates[k].second);
                if (chosen == candidates.size() || e < exact_best) {
                    exact_best = e;
                    chosen = k;
                }
            }
            if (chosen < candidates.size()) {
                if (hint != nullptr) *hint = chosen;
                l = candidates[chosen].first;
                r = candidates[chosen].second;
            }
            return {h.lo + static_cast<float>(l) * width, h.lo + static_cast<float>(r + 1) * width};
        }
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

}  // namespace detail

KVCALI_DECL std::vector<std::pair<std::int64_t, std::int64_t>> hfmg_candidates(const hfmg_histogram& h) {
    return detail::hfmg_candidates(detail::view_of(h));
}

KVCALI_DECL std::pair<float, float> hfmg_clip_range(const hfmg_histogram& h) { return detail::hfmg_clip_range(detail::view_of(h)); }

KVCALI_DECL scale_offset hfmg_calibrate(const hfmg_histogram& h, bool with_offset) {
    if (h.empty())
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = "HFMG needs at least one value",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    const auto [lo, hi] = hfmg_clip_range(h);
    return scale_offset_from_range(lo, hi, with_offset);
}

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL hfmg_accumulator::hfmg_accumulator(const hfmg_options& settings, bool per_channel)
    : settings_(settings), per_channel_(per_channel) {
    if (settings_.num_of_bins == 0) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_value,
                               .message = "num_of_bins must be positive",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    }
}

KVCALI_DECL void hfmg_accumulator::add_batch(std::span<const float> values, std::size_t channels) {
    if (values.empty()) return;
    if (!per_channel_ || channels <= 1) {
        if (!lo_.empty()) channel_mismatch(1);
        if (histograms_.empty()) histograms_.resize(1);
        hfmg_add(histograms_.front(), settings_.num_of_bins, values.data(), values.size(), 1);
        return;
    }
    if (!histograms_.empty()) channel_mismatch(channels);
    const std::size_t bins = settings_.num_of_bins;
    const bool first = lo_.empty();
    if (first) {
        counts_ = detail::layer_buffer(channels * bins * sizeof(std::int64_t));
        lo_.assign(channels, 0.0f);
        hi_.assign(channels, 0.0f);
    } else if (channels != lo_.size()) {
        channel_mismatch(channels);
    }
    const std::size_t rows = values.size() / channels;
    if (rows == 0) return;
    // By blocks of channels copied out column by column, so that every channel's histogram
    // reads contiguous values.
    columns_.resize(detail::channel_block * rows);
    float* out[detail::channel_block];
    for (std::size_t c = 0; c < detail::channel_block; ++c) out[c] = columns_.data() + c * rows;
    for (std::size_t c0 = 0; c0 < channels; c0 += detail::channel_block) {
        const std::size_t width = std::min(detail::channel_block, channels - c0);
        detail::copy_channels(values.data(), rows, channels, c0, width, out);
        for (std::size_t c = 0; c < width; ++c) {
            const std::span<std::int64_t> counts(counts_.as<std::int64_t>() + (c0 + c) * bins, bins);
            if (const auto* merged = detail::hfmg_add_counts(counts, lo_[c0 + c], hi_[c0 + c], !filled_, out[c], rows, 1))
                std::copy(merged->begin(), merged->end(), counts.begin());
        }
    }
    filled_ = true;
}

KVCALI_DECL quant_factors hfmg_accumulator::finish() {
    quant_factors out;
    for (const auto& h : histograms_) {
        const scale_offset so = hfmg_calibrate(h, settings_.with_offset);
        out.scale.push_back(so.scale);
        out.offset.push_back(so.offset);
    }
    const std::size_t bins = settings_.num_of_bins;
    if (!lo_.empty() && !filled_) hfmg_calibrate(hfmg_histogram{}, settings_.with_offset);  // the error of a histogram without values
    std::size_t hint = std::numeric_limits<std::size_t>::max();                             // the previous channel's choice
    for (std::size_t c = 0; c < lo_.size(); ++c) {
        const std::span<const std::int64_t> counts(counts_.as<std::int64_t>() + c * bins, bins);
        const auto [lo, hi] = detail::hfmg_clip_range(detail::hfmg_counts_view{settings_.num_of_bins, lo_[c], hi_[c], counts}, &hint);
        const scale_offset so = scale_offset_from_range(lo, hi, settings_.with_offset);
        out.scale.push_back(so.scale);
        out.offset.push_back(so.offset);
    }
    histograms_.clear();
    counts_.reset();  // to the calibrator's pool (if any), for the next layer
    std::vector<float>().swap(lo_);
    std::vector<float>().swap(hi_);
    std::vector<float>().swap(columns_);
    filled_ = false;
    return out;
}

KVCALI_DECL void hfmg_accumulator::channel_mismatch(std::size_t channels) const {
    detail::throw_channel_count_changed(channels, histograms_.empty() ? lo_.size() : 1);
}

}  // namespace kvcali
