// kvcali: the layer-list model format, a JSON array any framework can dump:
//   [{"name": "model.layers.0.self_attn.k_proj", "type": "Linear", "in": 8, "out": 8}, ...]
// The dotted prefixes of the names exist as containers of type `Module` (as PyTorch's
// named_modules() lists them): a container comes just before its first descendant; an explicit
// entry for a prefix name sets its type and keeps that first position. The root (empty name) is
// not a layer. A name listed twice is an `invalid_model` error. Eligible type: `Linear`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "detail/config.hpp"
#include "error.hpp"
#include "layer_table.hpp"

namespace kvcali {

/// Which type names support KV-cache quantization in a layer list (PyTorch's: exactly `Linear`).
using type_predicate = std::function<bool(std::string_view type_name)>;

inline bool is_torch_linear(std::string_view type_name) { return type_name == "Linear"; }

/// Parses a layer list from JSON text; `file` names it in messages. Problems are recorded in
/// `diags` as `invalid_model` with the line and column, the JSON path (`[3].name`) and the layer:
/// not a JSON array, an element that is not an object, a missing or non-string "name" or "type"
/// (with a did-you-mean for a misspelt key: `"typ"`), an empty name, a name listed twice, and
/// "in" or "out" that is not a non-negative integer (they are optional and otherwise unused).
KVCALI_DECL layer_table parse_layer_list(std::string_view text, const std::string& file, diagnostics& diags,
                                         const type_predicate& eligible = is_torch_linear);

/// Reads a layer-list file; throws `kvcali::error` (io_error or invalid_model).
KVCALI_DECL layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible = is_torch_linear);

namespace detail {

/// An entry of a layer list as read, for readers of its other members ("out": the channel count).
struct layer_list_entry {
    std::string_view name, type;
    std::optional<std::uint64_t> out;
};

/// load_layer_list, calling `each` (when set) with every entry added to the table.
KVCALI_COLD KVCALI_DECL layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible,
                                                    const std::function<void(const layer_list_entry&)>& each);

}  // namespace detail

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/layer_list.ipp"  // IWYU pragma: export
#endif
