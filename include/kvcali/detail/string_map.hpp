// kvcali internals: the hash tables keyed by strings. One transparent hash for all of them, so a
// std::string_view finds a std::string key without building one, and so tables with the same value
// type are the same type (each distinct std::unordered_map is compiled again in every TU).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvcali::detail {

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// std::string keys, looked up by std::string_view.
template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

}  // namespace kvcali::detail
