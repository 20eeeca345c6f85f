// kvcali internals: the few range concepts the model-graph requirement uses (input_range,
// sized_range, range_value_t), defined as the standard defines them but over the customisation
// points that <iterator> provides (std::ranges::begin, end, size), so that no public header
// includes <ranges> (about 1% of an including TU's front-end memory, in both compilation modes).
#pragma once

#include <iterator>
#include <utility>

namespace kvcali::detail {

/// The iterator type of a range `R` (std::ranges::iterator_t).
template <class R>
using range_iterator_t = decltype(std::ranges::begin(std::declval<R&>()));

/// std::ranges::range.
template <class R>
concept range = requires(R& r) {
    std::ranges::begin(r);
    std::ranges::end(r);
};

/// std::ranges::input_range.
template <class R>
concept input_range = range<R> && std::input_iterator<range_iterator_t<R>>;

/// std::ranges::sized_range.
template <class R>
concept sized_range = range<R> && requires(R& r) {
    std::ranges::size(r);
};

/// std::ranges::range_value_t.
template <range R>
using range_value_t = std::iter_value_t<range_iterator_t<R>>;

}  // namespace kvcali::detail
