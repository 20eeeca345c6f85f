// The translation unit whose compile time the generate benchmark measures: the umbrella header and
// the generator called on a user graph type and on a layer list.
#include <kvcali/kvcali.hpp>

#include <string>
#include <vector>

namespace {

struct user_layer {
    std::string layer_name, layer_type;
    std::string_view name() const { return layer_name; }
    std::string_view type_name() const { return layer_type; }
};

struct user_graph {
    std::vector<user_layer> items;
    const std::vector<user_layer>& layers() const { return items; }
    bool supports_kv_quant(std::string_view type) const { return type == "Linear"; }
};

}  // namespace

int main(int argc, char** argv) {
    user_graph g{{{"k_proj", "Linear"}, {"v_proj", "Linear"}}};
    const auto doc = kvcali::resolve_quant_cali_config(g, kvcali::quant_layers{"k_proj", "v_proj"});
    if (argc > 1) {
        const kvcali::layer_table model = kvcali::load_layer_list(argv[1]);
        kvcali::create_quant_cali_config("config.json", model, std::nullopt,
                                         argc > 2 ? std::optional<std::filesystem::path>(argv[2]) : std::nullopt);
    }
    return static_cast<int>(doc.layers.size()) == 2 ? 0 : 1;
}
