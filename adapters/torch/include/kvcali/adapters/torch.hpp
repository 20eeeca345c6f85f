// kvcali: libtorch models as model graphs.
//
// Two views, both snapshots that own the names they hand out:
//   kvcali::libtorch::module_graph         a torch::nn::Module tree (C++ modules, user subclasses,
//                                          Sequential, ModuleList, ModuleDict, ...)
//   kvcali::libtorch::script_module_graph  a torch::jit::Module (TorchScript, e.g. from a .pt file)
// Layers are the submodules in PyTorch's named_modules() order, root excluded; their type names
// are PyTorch's class names (`torch::nn::LinearImpl` -> `Linear`,
// `__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear` -> `Linear`, a user module keeps its
// own class name). Only type `Linear` supports KV-cache quantization, as in the reference (a
// subclass with another name does not).
//
// The module types themselves are model graphs too (traits below), so
// `kvcali::create_quant_cali_config("config.json", *model, layers)` works on a module, a
// ModuleHolder (`torch::nn::Linear`, TORCH_MODULE types) or a torch::jit::Module.
//
// Including this header costs a libtorch compile (~25 s, 1.5 GB): keep it in few translation units.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/script.h>

#include <kvcali/error.hpp>
#include <kvcali/layer_table.hpp>

#include <concepts>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kvcali::libtorch {

/// One layer of a torch model: its dotted path (as named_modules() gives it) and its PyTorch class
/// name. Owns both strings.
struct layer {
    std::string path;
    std::string type;

    std::string_view name() const noexcept { return path; }
    std::string_view type_name() const noexcept { return type; }
    friend bool operator==(const layer&, const layer&) = default;
};

/// Which type names support KV-cache quantization (the reference: exactly `Linear`).
using eligibility = std::function<bool(std::string_view type_name)>;

inline bool is_linear(std::string_view type_name) noexcept { return type_name == "Linear"; }

/// PyTorch's class name for a C++ module type name as `torch::nn::Module::name()` gives it: the
/// unqualified class name, with libtorch's `Impl` suffix dropped for modules of `torch::nn`
/// (`torch::nn::LinearImpl` -> `Linear`, `my::LlamaAttention` -> `LlamaAttention`,
/// `(anonymous namespace)::Block` -> `Block`). A name a module gave itself (`Module("MyLinear")`)
/// is kept, less any namespace.
inline std::string python_class_name(std::string_view cpp_name) {
    // The last `::` outside template arguments and parentheses separates the class name.
    std::size_t start = 0;
    int depth = 0;
    for (std::size_t i = 0; i < cpp_name.size(); ++i) {
        const char c = cpp_name[i];
        if (c == '<' || c == '(') {
            ++depth;
        } else if (c == '>' || c == ')') {
            --depth;
        } else if (c == ':' && depth == 0 && i + 1 < cpp_name.size() && cpp_name[i + 1] == ':') {
            start = i + 2;
            ++i;
        }
    }
    std::string_view cls = cpp_name.substr(start);
    constexpr std::string_view torch_nn = "torch::nn::";
    constexpr std::string_view impl = "Impl";
    if (cpp_name.substr(0, torch_nn.size()) == torch_nn && cls.size() > impl.size() && cls.substr(cls.size() - impl.size()) == impl &&
        cls.find('<') == std::string_view::npos) {
        cls.remove_suffix(impl.size());
    }
    return std::string(cls);
}

/// PyTorch's class name of a TorchScript module: the last atom of its qualified type name
/// (`__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear` -> `Linear`,
/// `__torch__.LlamaAttention` -> `LlamaAttention`).
inline std::string python_class_name(const torch::jit::Module& module) {
    const auto& qualified = module.type()->name();
    return qualified ? qualified->name() : std::string("Module");
}

/// The layers of a `torch::nn::Module` tree, as a model graph.
/// Order and names follow PyTorch's `named_modules()`: depth first, children in registration
/// order, root excluded; a module registered in several places (shared) is listed once, under its
/// first name, as PyTorch does.
/// Example: `kvcali::libtorch::module_graph graph(*model); kvcali::resolve_quant_cali_config(graph, layers);`
class module_graph {
public:
    explicit module_graph(const torch::nn::Module& root, eligibility eligible = is_linear) : eligible_(std::move(eligible)) {
        std::unordered_set<const torch::nn::Module*> seen{&root};
        collect(root, "", seen);
    }
    template <class M>
    explicit module_graph(const torch::nn::ModuleHolder<M>& root, eligibility eligible = is_linear)
        : module_graph(*root.ptr(), std::move(eligible)) {}
    template <std::derived_from<torch::nn::Module> M>
    explicit module_graph(const std::shared_ptr<M>& root, eligibility eligible = is_linear)
        : module_graph(static_cast<const torch::nn::Module&>(*root), std::move(eligible)) {}

    const std::vector<layer>& layers() const& noexcept { return layers_; }
    /// On a temporary view the layers are moved out, so `for (auto& l : view(m).layers())` is safe.
    std::vector<layer> layers() && noexcept { return std::move(layers_); }
    bool supports_kv_quant(std::string_view type_name) const { return eligible_(type_name); }

private:
    void collect(const torch::nn::Module& module, const std::string& prefix, std::unordered_set<const torch::nn::Module*>& seen) {
        for (const auto& child : module.named_children()) {
            const torch::nn::Module* sub = child.value().get();
            if (sub == nullptr || !seen.insert(sub).second) continue;
            std::string path = prefix.empty() ? child.key() : prefix + "." + child.key();
            layers_.push_back({path, python_class_name(sub->name())});
            collect(*sub, path, seen);
        }
    }

    std::vector<layer> layers_;
    eligibility eligible_;
};

/// The layers of a TorchScript module, as a model graph.
/// Order and names follow `torch::jit::Module::named_modules()` (the same as PyTorch's
/// named_modules() of the loaded ScriptModule), root excluded. Scripting copies a shared submodule
/// into each attribute, so a TorchScript model lists it under every name.
/// Example: `kvcali::libtorch::script_module_graph graph(torch::jit::load("model.pt"));`
class script_module_graph {
public:
    explicit script_module_graph(const torch::jit::Module& root, eligibility eligible = is_linear) : eligible_(std::move(eligible)) {
        for (const auto& item : root.named_modules()) {
            if (item.name.empty()) continue;  // the root
            layers_.push_back({item.name, python_class_name(item.value)});
        }
    }

    const std::vector<layer>& layers() const& noexcept { return layers_; }
    /// On a temporary view the layers are moved out, so `for (auto& l : view(m).layers())` is safe.
    std::vector<layer> layers() && noexcept { return std::move(layers_); }
    bool supports_kv_quant(std::string_view type_name) const { return eligible_(type_name); }

private:
    std::vector<layer> layers_;
    eligibility eligible_;
};

namespace detail {
/// The first line of an exception message (libtorch appends a C++ backtrace after it).
inline std::string first_line(const char* what) {
    std::string_view text = what == nullptr ? std::string_view{} : std::string_view(what);
    if (auto nl = text.find('\n'); nl != std::string_view::npos) text = text.substr(0, nl);
    return std::string(text);
}
}  // namespace detail

/// Loads a TorchScript module (saved with `torch.jit.save` / `ScriptModule.save`) on the CPU.
/// Errors: throws `kvcali::error` with `io_error` when the file cannot be opened (missing, a
/// folder, unreadable) and `invalid_model` when it is not TorchScript (a `torch.save`d state dict
/// or module, a truncated file, anything else).
/// Example: `auto module = kvcali::libtorch::load_script_module("model.pt");`
inline torch::jit::Module load_script_module(const std::filesystem::path& path) {
    const std::string name = path.string();
    auto fail = [&](errc category, const std::string& message) -> torch::jit::Module {
        throw kvcali::error(diagnostic{
            .severity = severity::error, .category = category, .message = message, .where = {name, 0, 0}, .layer = {}, .json_path = {}});
    };
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status)) return fail(errc::io_error, "cannot read " + name + ": no such file");
    if (std::filesystem::is_directory(status)) return fail(errc::io_error, "cannot read " + name + ": it is a directory");
    if (!std::ifstream(path, std::ios::binary)) return fail(errc::io_error, "cannot open " + name);
    const std::string hint =
        "; save the model with torch.jit.save(torch.jit.script(model), path) (or a traced module): torch.save of a "
        "module or a state dict is not TorchScript";
    try {
        return torch::jit::load(name, torch::kCPU);
    } catch (const c10::Error& e) {
        return fail(errc::invalid_model, "not a TorchScript model (" + detail::first_line(e.what_without_backtrace()) + ")" + hint);
    } catch (const std::exception& e) {
        return fail(errc::invalid_model, "not a TorchScript model (" + detail::first_line(e.what()) + ")" + hint);
    }
}

/// The layer table of a TorchScript model file: `load_script_module` then `script_module_graph`.
/// Errors: as `load_script_module`.
inline layer_table load_script_layers(const std::filesystem::path& path, eligibility eligible = is_linear) {
    const script_module_graph graph(load_script_module(path), std::move(eligible));
    const std::string name = path.string();
    diagnostics diags;
    layer_table table = extract_layers(graph, [&](std::string_view layer_name) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_model,
                   .message = "the model has two layers named \"" + std::string(layer_name) + "\"",
                   .where = {name, 0, 0},
                   .layer = std::string(layer_name),
                   .json_path = {}});
    });
    diags.throw_if_errors();
    return table;
}

}  // namespace kvcali::libtorch

namespace kvcali {

namespace detail {
template <class M>
concept torch_module =
    // ModuleHolder derives privately from its indicator: is_base_of, not derived_from.
    std::derived_from<M, ::torch::nn::Module> || std::is_base_of_v<::torch::detail::ModuleHolderIndicator, M> ||
    std::same_as<M, ::torch::jit::Module>;
}  // namespace detail

/// libtorch modules (`torch::nn::Module` and subclasses, ModuleHolders such as `torch::nn::Linear`
/// or TORCH_MODULE types, `torch::jit::Module`) are model graphs: their layers are those of the
/// matching view above, taken when the model is read.
template <detail::torch_module M>
requires(!detail::graph_with_members<M>) struct model_graph_traits<M> {
    static std::vector<libtorch::layer> layers(const M& module) {
        if constexpr (std::same_as<M, ::torch::jit::Module>) {
            return libtorch::script_module_graph(module).layers();
        } else if constexpr (std::derived_from<M, ::torch::nn::Module>) {
            return libtorch::module_graph(static_cast<const ::torch::nn::Module&>(module)).layers();
        } else {
            return libtorch::module_graph(module).layers();
        }
    }
    static std::string_view name(const libtorch::layer& l) noexcept { return l.path; }
    static std::string_view type_name(const libtorch::layer& l) noexcept { return l.type; }
    static bool supports_kv_quant(const M&, std::string_view type_name) noexcept { return libtorch::is_linear(type_name); }
};

}  // namespace kvcali
