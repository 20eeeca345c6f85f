// kvcali: resolution. Layer table + simple config (or the quant_layers argument) -> the resolved
// document, with every problem collected (spec §3). Plain, non-template code.
#pragma once

#include <cstddef>

#include "detail/config.hpp"
#include "error.hpp"
#include "layer_table.hpp"
#include "resolved_config.hpp"
#include "simple_config.hpp"

namespace kvcali {

/// How many unknown names get "did you mean" suggestions (each costs one pass over the model).
inline constexpr std::size_t max_suggested_names = 16;

namespace detail {

/// resolve(); when `consumed` is not null it is `config`, owned by the caller and given up: the
/// strings the result needs are moved out of it (through `consumed`) instead of copied.
KVCALI_DECL resolved_config resolve_config(const layer_table& table, algorithm_registry algorithms, const simple_config* config,
                                           simple_config* consumed, const quant_layers* arg, diagnostics& diags);

}  // namespace detail

/// Resolves the layer list and every layer's algorithm (spec §3). Problems go to `diags`; the
/// result is meaningful only when `diags` has no errors afterwards. An empty `table` is one
/// `invalid_model` error ("the model has no layers") and nothing else is checked.
/// `config`: the parsed simple config file, or null; `arg`: the quant_layers argument, or null.
KVCALI_DECL resolved_config resolve(const layer_table& table, algorithm_registry algorithms, const simple_config* config,
                                    const quant_layers* arg, diagnostics& diags);

/// As above, consuming the parsed config: the strings the result needs (the names as written, their
/// places) are moved out of it rather than copied.
KVCALI_DECL resolved_config resolve(const layer_table& table, algorithm_registry algorithms, simple_config&& config,
                                    const quant_layers* arg, diagnostics& diags);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/resolve.ipp"  // IWYU pragma: export
#endif
