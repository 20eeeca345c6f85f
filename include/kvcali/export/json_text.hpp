// kvcali export: JSON documents as text, with numbers written as Python writes them (Boost.JSON
// 1.81's own serializer writes doubles with more digits than they need).
#pragma once

#include <boost/json/value.hpp>

#include <string>

#include "../detail/config.hpp"

namespace kvcali {

namespace detail {

KVCALI_DECL void append_json_text(std::string& out, const boost::json::value& v, int indent, int depth);

}  // namespace detail

/// `v` as JSON text indented by `indent` spaces per level (0: one line), keys in the object's
/// order, ending with a newline when indented. Doubles as Python's repr, strings as Python's json
/// module writes them with ensure_ascii.
/// Example: `kvcali::json_text(boost::json::object{{"num_bits", 8}})`.
KVCALI_DECL std::string json_text(const boost::json::value& v, int indent = 2);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/export_json_text.ipp"  // IWYU pragma: export
#endif
