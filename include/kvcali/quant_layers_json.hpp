// kvcali: the quant_layers argument written as JSON: {"kv_cache_quant_layers": ["name", ...]}.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "detail/config.hpp"
#include "error.hpp"
#include "simple_config.hpp"

namespace kvcali {

/// Parses the quant_layers argument (spec §1): `{}` or an empty list give an empty list (the call
/// then fails with no_quant_layers); a non-empty object without `kv_cache_quant_layers`, a value
/// that is not an array of strings, or a non-object is `invalid_argument`; other keys beside
/// `kv_cache_quant_layers` are ignored with a warning. `origin` names the argument in messages.
KVCALI_DECL std::optional<quant_layers> parse_quant_layers_json(std::string_view text, const std::string& origin, diagnostics& diags);

/// Parses a bare JSON array of layer names, `["a", "b"]`: the command line's shorthand for
/// `{"kv_cache_quant_layers": ["a", "b"]}` (the call's argument itself is always the object).
/// Requires: `text` is a JSON array. Errors: recorded in `diags` as `invalid_argument` (not JSON,
/// not an array, an element that is not a string); then the result is empty. An empty array gives
/// an empty list (the call then fails with no_quant_layers).
/// Example: `parse_layer_names_json(R"(["k_proj", "v_proj"])", "--quant-layers", diags)`
KVCALI_DECL std::optional<quant_layers> parse_layer_names_json(std::string_view text, const std::string& origin, diagnostics& diags);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/quant_layers_json.ipp"  // IWYU pragma: export
#endif
