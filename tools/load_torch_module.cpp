// `--model model.pt|.pth|.ts`: opens the TorchScript loader module (load_torch.cpp, built as
// libkvcali-torchscript.so) on first use. Looked for in $KVCALI_MODULE_DIR, beside the kvcali
// executable (the build tree), in <executable>/../<libdir>/kvcali and in the configured
// <prefix>/<libdir>/kvcali.
#include <kvcali/error.hpp>

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "model_loaders.hpp"
#include "torch_module_abi.hpp"

#ifndef KVCALI_CLI_MODULE_LIBDIR
#error "KVCALI_CLI_MODULE_LIBDIR (the libdir relative to the prefix) must be defined by the build"
#endif
#ifndef KVCALI_CLI_MODULE_INSTALL_DIR
#error "KVCALI_CLI_MODULE_INSTALL_DIR (the absolute install folder of the module) must be defined by the build"
#endif

namespace kvcali_cli {

namespace {

constexpr const char* module_file = "libkvcali-torchscript.so";

[[noreturn]] void fail(const std::string& model, const std::string& why) {
    throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                           .category = kvcali::errc::invalid_model,
                                           .message = "cannot read TorchScript model " + model + ": " + why,
                                           .where = {model, 0, 0},
                                           .layer = {},
                                           .json_path = {}});
}

std::vector<std::filesystem::path> module_dirs() {
    std::vector<std::filesystem::path> dirs;
    if (const char* env = std::getenv("KVCALI_MODULE_DIR"); env && *env) dirs.emplace_back(env);
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        dirs.push_back(exe.parent_path());
        dirs.push_back(exe.parent_path().parent_path() / KVCALI_CLI_MODULE_LIBDIR / "kvcali");
    }
    dirs.emplace_back(KVCALI_CLI_MODULE_INSTALL_DIR);
    return dirs;
}

using load_fn = void (*)(const std::string*, kvcali::layer_table*);

load_fn open_module(const std::string& model) {
    static load_fn cached = nullptr;
    if (cached) return cached;
    std::string tried;
    for (const auto& dir : module_dirs()) {
        const auto file = dir / module_file;
        std::error_code ec;
        if (!std::filesystem::is_regular_file(file, ec)) {
            tried += (tried.empty() ? "" : ", ") + dir.string();
            continue;
        }
        void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            const char* err = ::dlerror();
            fail(model, "its loader module " + file.string() + " could not be opened: " + (err ? err : "unknown error"));
        }
        using abi_fn = const char* (*)();
        auto abi = reinterpret_cast<abi_fn>(::dlsym(handle, "kvcali_cli_torchscript_abi"));
        auto load = reinterpret_cast<load_fn>(::dlsym(handle, "kvcali_cli_load_torchscript"));
        if (!abi || !load) fail(model, "its loader module " + file.string() + " is not a kvcali TorchScript module");
        if (std::strcmp(abi(), KVCALI_CLI_TORCHSCRIPT_ABI) != 0) {
            fail(model, "its loader module " + file.string() + " belongs to another kvcali build (" + abi() + ", expected " +
                            KVCALI_CLI_TORCHSCRIPT_ABI + ")");
        }
        cached = load;  // the module stays loaded until exit
        return cached;
    }
    fail(model, std::string("this kvcali's TorchScript module ") + module_file + " is not installed (looked in " + tried +
                    "; set KVCALI_MODULE_DIR to its folder)");
}

}  // namespace

kvcali::layer_table load_torchscript_model(const std::string& path) {
    const load_fn load = open_module(path);
    kvcali::layer_table out;
    load(&path, &out);
    return out;
}

}  // namespace kvcali_cli
