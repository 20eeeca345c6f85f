// A downstream program using kvcali's libtorch adapter (kvcali::torch, kvcali-torch.pc):
//   consumer_torch MODEL.pt QUANT.cfg OUT.json   (a TorchScript model of a conformance case)
#include <kvcali/adapters/torch.hpp>
#include <kvcali/kvcali.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: consumer_torch MODEL.pt QUANT.cfg OUT.json\n");
        return 2;
    }
    try {
        const torch::jit::Module module = kvcali::libtorch::load_script_module(argv[1]);
        const kvcali::libtorch::script_module_graph graph(module);
        kvcali::create_quant_cali_config(argv[3], graph, std::nullopt, std::string(argv[2]));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer_torch: %s\n", e.what());
        return 1;
    }
}
