// Must not compile: a graph whose layers have a name() but no type_name(), handed to the generator.
// The test checks that the compiler's message names the missing type_name, not another member.
#include <kvcali/generate.hpp>

#include <string_view>
#include <vector>

struct layer_without_type {
    std::string_view name() const { return "model.layers.0.self_attn.k_proj"; }
};

struct graph_without_types {
    std::vector<layer_without_type> layers() const { return {{}}; }
    bool supports_kv_quant(std::string_view) const { return true; }
};

int main() { kvcali::resolve_quant_cali_config(graph_without_types{}, kvcali::quant_layers{"model.layers.0.self_attn.k_proj"}); }
