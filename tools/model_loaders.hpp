// Model loaders of optional formats; each lives in its own translation unit (torch and ONNX are
// heavy to compile) and is replaced by a stub when the feature is off.
#pragma once

#include <kvcali/layer_table.hpp>

#include <string>

namespace kvcali_cli {
kvcali::layer_table load_torchscript_model(const std::string& path);
kvcali::layer_table load_onnx_model(const std::string& path, bool strict);
}  // namespace kvcali_cli
