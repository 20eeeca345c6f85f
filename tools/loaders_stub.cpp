// Stubs for model formats this build of kvcali was configured without.
#include <kvcali/error.hpp>

#include "model_loaders.hpp"

namespace kvcali_cli {

namespace {
[[noreturn, maybe_unused]] void unsupported(const std::string& path, const char* what, const char* feature) {
    throw kvcali::error(kvcali::diagnostic{kvcali::severity::error, kvcali::errc::invalid_model,
                                           std::string("this kvcali was built without ") + what + " support (meson option -D" +
                                               feature + "=enabled); cannot read " + path,
                                           {path, 0, 0}, {}, {}});
}
}  // namespace

#ifndef KVCALI_CLI_HAVE_TORCH
kvcali::layer_table load_torchscript_model(const std::string& path) { unsupported(path, "TorchScript", "torch"); }
#endif
#ifndef KVCALI_CLI_HAVE_ONNX
kvcali::layer_table load_onnx_model(const std::string& path, bool) { unsupported(path, "ONNX", "onnx"); }
#endif

}  // namespace kvcali_cli
