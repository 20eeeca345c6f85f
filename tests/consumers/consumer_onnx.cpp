// A downstream program using kvcali's .onnx file adapter (kvcali::onnx, kvcali-onnx.pc):
//   consumer_onnx MODEL.onnx QUANT.cfg OUT.json   (an .onnx model of a conformance case)
#include <kvcali/adapters/onnx_file.hpp>
#include <kvcali/kvcali.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: consumer_onnx MODEL.onnx QUANT.cfg OUT.json\n");
        return 2;
    }
    try {
        const kvcali::layer_table table = kvcali::onnx::load_onnx_layers(argv[1]);
        kvcali::create_quant_cali_config(argv[3], table, std::nullopt, std::string(argv[2]));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer_onnx: %s\n", e.what());
        return 1;
    }
}
