// kvcali: the generator's non-template pipeline (declared in generate.hpp): included at the end of
// that header (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <filesystem>
#include <optional>
#include <utility>

#include "../config_writer.hpp"
#include "../generate.hpp"
#include "../io.hpp"
#include "../quant_cfg.hpp"
#include "../resolve.hpp"

namespace kvcali::detail {

KVCALI_DECL resolved_config resolve_table(const layer_table& table, algorithm_registry algorithms,
                                          const std::optional<quant_layers>& layers,
                                          const std::optional<std::filesystem::path>& config_definition, diagnostics& diags) {
    std::optional<simple_config> cfg;
    if (config_definition) {
        cfg = load_simple_config(*config_definition, algorithms, diags);
        diags.throw_if_errors();  // a file that does not parse has nothing worth resolving
    }
    // The config is this call's own: the result takes its strings rather than copies.
    resolved_config resolved = cfg ? resolve(table, algorithms, std::move(*cfg), layers ? &*layers : nullptr, diags)
                                   : resolve(table, algorithms, nullptr, layers ? &*layers : nullptr, diags);
    diags.throw_if_errors();
    return resolved;
}

KVCALI_DECL void write_config_file(const std::filesystem::path& path, const resolved_config& config) {
    write_config_json_file(path, config);
}

}  // namespace kvcali::detail
