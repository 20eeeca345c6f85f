// kvcali: "did you mean" suggestions at bounded cost.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "detail/config.hpp"

namespace kvcali {

/// Levenshtein distance between `a` and `b` if it is at most `limit`, else `limit + 1`.
/// Banded dynamic programming: O(limit * min(|a|, |b|)) time, O(|b|) space.
KVCALI_DECL std::size_t bounded_edit_distance(std::string_view a, std::string_view b, std::size_t limit);

/// Up to `count` names among `candidates` closest to `name` (edit distance at most about a third
/// of its length, at most 8), nearest first, ties in candidate order.
template <class Range, class NameOf>
std::vector<std::string> closest_names(std::string_view name, const Range& candidates, NameOf&& name_of, std::size_t count = 3) {
    const std::size_t limit = std::clamp<std::size_t>(name.size() / 3, 1, 8);
    std::vector<std::string_view> found;
    std::vector<std::size_t> distance;  ///< of each found name
    for (const auto& candidate : candidates) {
        std::string_view other = name_of(candidate);
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

/// `; did you mean "a", "b" or "c"?` (empty when there is nothing to suggest); `quote` is the
/// quotation mark around each name (`'` for the command line's `'--cfg'`).
KVCALI_DECL std::string did_you_mean(const std::vector<std::string>& names, char quote = '"');

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/suggest.ipp"  // IWYU pragma: export
#endif
