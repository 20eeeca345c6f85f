// kvcali: "did you mean" suggestions at bounded cost.
#pragma once

#include <cstddef>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "detail/config.hpp"
#include "detail/function_ref.hpp"

namespace kvcali {

/// Levenshtein distance between `a` and `b` if it is at most `limit`, else `limit + 1`.
/// Banded dynamic programming: O(limit * min(|a|, |b|)) time, O(|b|) space.
KVCALI_COLD KVCALI_DECL std::size_t bounded_edit_distance(std::string_view a, std::string_view b, std::size_t limit);

namespace detail {
/// closest_names' work (one copy for every range it is called on): the candidates are
/// `name_at(i)` for i < n, an empty name standing for none.
KVCALI_COLD KVCALI_DECL std::vector<std::string> closest_names_at(std::string_view name, std::size_t n,
                                                                  function_ref<std::string_view(std::size_t)> name_at, std::size_t count);
}  // namespace detail

/// Up to `count` names among `candidates` (a random-access range; `name_of(candidate)` is its
/// name, empty for one to pass over) closest to `name` (edit distance at most about a third of its
/// length, at most 8), nearest first, ties in candidate order.
template <class Range, class NameOf>
std::vector<std::string> closest_names(std::string_view name, const Range& candidates, NameOf&& name_of, std::size_t count = 3) {
    const auto first = std::ranges::begin(candidates);
    auto name_at = [&](std::size_t i) -> std::string_view { return name_of(first[static_cast<std::ptrdiff_t>(i)]); };
    return detail::closest_names_at(name, static_cast<std::size_t>(std::ranges::size(candidates)), name_at, count);
}

/// `; did you mean "a", "b" or "c"?` (empty when there is nothing to suggest); `quote` is the
/// quotation mark around each name (`'` for the command line's `'--cfg'`).
KVCALI_COLD KVCALI_DECL std::string did_you_mean(const std::vector<std::string>& names, char quote = '"');

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/suggest.ipp"  // IWYU pragma: export
#endif
