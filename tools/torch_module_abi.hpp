// The interface between `kvcali` and its TorchScript loader module (load_torch.cpp). Both sides
// are C++ built by the same build: the module's functions take and fill kvcali types and may
// throw kvcali::error. The ABI string guards against a module left over from another build.
#pragma once

#include <kvcali/layer_table.hpp>
#include <kvcali/version.hpp>

#include <string>

#define KVCALI_CLI_TORCHSCRIPT_ABI "kvcali-torchscript/1/" KVCALI_VERSION_STRING "/" __VERSION__

extern "C" {
/// The module's KVCALI_CLI_TORCHSCRIPT_ABI.
const char* kvcali_cli_torchscript_abi();
/// Fills *out with the layers of the TorchScript file *path; throws kvcali::error.
void kvcali_cli_load_torchscript(const std::string* path, kvcali::layer_table* out);
}
