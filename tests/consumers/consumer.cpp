// A downstream program as a C++ quantization framework would write it: its own model graph type,
// handed to kvcali's generator. Built by the consumer tests through CMake find_package, pkg-config
// and a Meson subproject, header-only and with KVCALI_SEPARATE_COMPILATION (see run_consumers.sh).
//   consumer MODEL.json QUANT.cfg OUT.json   writes the config of that model (a conformance case)
#include <kvcali/kvcali.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace app {

struct node {
    std::string path;
    std::string kind;
    std::string_view name() const { return path; }
    std::string_view type_name() const { return kind; }
};

struct graph {
    std::vector<node> nodes;
    const std::vector<node>& layers() const { return nodes; }
    bool supports_kv_quant(std::string_view type) const { return type == "Linear"; }
};

}  // namespace app

static_assert(kvcali::model_graph<app::graph>);

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: consumer MODEL.json QUANT.cfg OUT.json\n");
        return 2;
    }
    try {
        // The framework's own graph, filled here from the layer-list file of a conformance case.
        app::graph g;
        for (const auto& layer : kvcali::load_layer_list(argv[1])) g.nodes.push_back({layer.name, layer.type});
        kvcali::create_quant_cali_config(argv[3], g, std::nullopt, std::string(argv[2]));
#if defined(KVCALI_SEPARATE_COMPILATION)
        std::printf("separate compilation\n");
#else
        std::printf("header-only\n");
#endif
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
}
