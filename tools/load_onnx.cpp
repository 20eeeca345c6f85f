// `--model x.onnx`: the main graph's nodes, with PyTorch module paths as extra names (see
// kvcali/adapters/onnx.hpp). Compiled only when kvcali is built with the onnx feature.
#include <kvcali/adapters/onnx_file.hpp>

#include "cli.hpp"
#include "model_loaders.hpp"

namespace kvcali_cli {

kvcali::layer_table load_onnx_model(const std::string& path, bool strict) {
    return kvcali::onnx::load_onnx_layers(path, stderr_warnings(), strict);
}

}  // namespace kvcali_cli
