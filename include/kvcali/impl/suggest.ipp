// kvcali: suggest.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../suggest.hpp"

namespace kvcali {

KVCALI_DECL std::size_t bounded_edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
    const std::size_t too_far = limit + 1;
    if (a.size() > b.size()) std::swap(a, b);
    if (b.size() - a.size() > limit) return too_far;
    const std::size_t n = a.size(), m = b.size();
    thread_local std::vector<std::size_t> prev, cur;
    prev.resize(m + 1);
    cur.resize(m + 1);
    std::fill(prev.begin(), prev.end(), too_far);
    std::fill(cur.begin(), cur.end(), too_far);
    for (std::size_t j = 0; j <= std::min(m, limit); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= n; ++i) {
        const std::size_t lo = i > limit ? i - limit : 1;
        const std::size_t hi = std::min(m, i + limit);
        // Only the band and the cell on each side of it are read, so only they are written: filling
        // the whole row made this O(|a| * |b|) (minutes for two 1 MB names).
        cur[0] = i <= limit ? i : too_far;
        cur[lo - 1] = lo == 1 ? cur[0] : too_far;
        if (hi < m) cur[hi + 1] = too_far;
        std::size_t row_min = cur[0];
        for (std::size_t j = lo; j <= hi; ++j) {
            const std::size_t substitution = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            const std::size_t deletion = prev[j] + 1;
            const std::size_t insertion = cur[j - 1] + 1;
            cur[j] = std::min({substitution, deletion, insertion, too_far});
            row_min = std::min(row_min, cur[j]);
        }
        if (row_min > limit) return too_far;
        std::swap(prev, cur);
    }
    return std::min(prev[m], too_far);
}

namespace detail {
KVCALI_DECL std::vector<std::string> closest_names_at(std::string_view name, std::size_t n,
                                                      function_ref<std::string_view(std::size_t)> name_at, std::size_t count) {
    const std::size_t limit = std::clamp<std::size_t>(name.size() / 3, 1, 8);
    std::vector<std::string_view> found;
    std::vector<std::size_t> distance;  ///< of each found name
    for (std::size_t i = 0; i < n; ++i) {
        const std::string_view other = name_at(i);
        if (other.empty()) continue;
        const std::size_t d = bounded_edit_distance(name, other, limit);
        if (d <= limit) {
            found.push_back(other);
            distance.push_back(d);
        }
    }
    // Nearest first, ties in candidate order: one pass per distance (there are at most 9).
    std::vector<std::string> out;
    for (std::size_t d = 0; d <= limit && out.size() < count; ++d) {
        for (std::size_t i = 0; i < found.size() && out.size() < count; ++i) {
            if (distance[i] == d) out.emplace_back(found[i]);
        }
    }
    return out;
}
}  // namespace detail

KVCALI_DECL std::string did_you_mean(const std::vector<std::string>& names, char quote) {
    if (names.empty()) return {};
    std::string out = "; did you mean ";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
        out += quote;
        out += names[i];
        out += quote;
    }
    out += '?';
    return out;
}

}  // namespace kvcali
