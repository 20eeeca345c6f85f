// The TorchScript loader module of the kvcali tool (libkvcali-torchscript.so), the only libtorch
// TU of the tool. It is a separate shared module that `kvcali` opens with dlopen only when a
// command is given a .pt/.pth/.ts model: linking libtorch into the tool itself costs every run
// (a JSON layer list too) about a second of libtorch start-up.
#include <kvcali/adapters/torch.hpp>
#include <kvcali/version.hpp>

#include "torch_module_abi.hpp"

extern "C" {

const char* kvcali_cli_torchscript_abi() { return KVCALI_CLI_TORCHSCRIPT_ABI; }

void kvcali_cli_load_torchscript(const std::string* path, kvcali::layer_table* out) { *out = kvcali::libtorch::load_script_layers(*path); }

}  // extern "C"
