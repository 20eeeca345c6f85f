// `kvcali ... --model model.pt|.pth|.ts`: TorchScript models (the only libtorch TU of the tool).
#include <kvcali/adapters/torch.hpp>

#include "model_loaders.hpp"

namespace kvcali_cli {

kvcali::layer_table load_torchscript_model(const std::string& path) { return kvcali::libtorch::load_script_layers(path); }

}  // namespace kvcali_cli
