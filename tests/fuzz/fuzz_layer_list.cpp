// libFuzzer target: the layer-list model loader (JSON array of {name, type}). When the list loads,
// the table must be consistent (every name found at its own index, no duplicates) and resolving
// it with its eligible layers must either succeed or fail with kvcali::error.
// Build and run: scripts/fuzz.sh layer_list
#include <kvcali/generate.hpp>
#include <kvcali/layer_list.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    kvcali::diagnostics diags;
    const kvcali::layer_table table = kvcali::parse_layer_list(text, "fuzz.json", diags);
    if (diags.has_errors()) return 0;
    kvcali::quant_layers layers;
    for (std::size_t i = 0; i < table.size(); ++i) {
        if (table.find(table[i].name) != i) std::abort();
        if (table[i].eligible) layers.names.push_back(table[i].name);
    }
    try {
        (void)kvcali::resolve_quant_cali_config(table, layers);
    } catch (const kvcali::error&) {
    }
    return 0;
}
