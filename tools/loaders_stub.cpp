// Stubs for model formats this build of kvcali was configured without.
#include <kvcali/error.hpp>

#include "model_loaders.hpp"

namespace kvcali_cli {

namespace {
[[noreturn, maybe_unused]] void unsupported(const std::string& path, const char* what, const char* feature) {
    throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                           .category = kvcali::errc::invalid_model,
                                           .message = std::string("this kvcali was built without ") + what + " support (meson option -D" +
                                                      feature + "=enabled); cannot read " + path,
                                           .where = {path, 0, 0},
                                           .layer = {},
                                           .json_path = {}});
}
}  // namespace

#ifndef KVCALI_CLI_HAVE_TORCH
kvcali::layer_table load_torchscript_model(const std::string& path) { unsupported(path, "TorchScript", "torch"); }
#endif
#ifndef KVCALI_CLI_HAVE_ONNX
kvcali::layer_table load_onnx_model(const std::string& path, bool) { unsupported(path, "ONNX", "onnx"); }
#endif

}  // namespace kvcali_cli
