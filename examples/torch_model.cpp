// Builds a small LLaMA-like model with libtorch's C++ API and writes its KV-cache quantization
// config: the k_proj and v_proj layers of every decoder layer, calibrated with IFMR.
//
//   torch_model [config.json]     (default: ./torch_model_config.json)
#include <torch/torch.h>

#include <kvcali/adapters/torch.hpp>
#include <kvcali/generate.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Attention : torch::nn::Module {
    explicit Attention(int64_t hidden) {
        for (const char* name : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
            register_module(name, torch::nn::Linear(torch::nn::LinearOptions(hidden, hidden).bias(false)));
        }
    }
};

struct DecoderLayer : torch::nn::Module {
    explicit DecoderLayer(int64_t hidden) {
        register_module("self_attn", std::make_shared<Attention>(hidden));
        register_module(
            "mlp", torch::nn::Sequential(torch::nn::Linear(hidden, 4 * hidden), torch::nn::SiLU(), torch::nn::Linear(4 * hidden, hidden)));
        register_module("input_layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
    }
};

struct TinyLlama : torch::nn::Module {
    TinyLlama(int64_t layers, int64_t hidden, int64_t vocab) {
        register_module("embed_tokens", torch::nn::Embedding(vocab, hidden));
        torch::nn::ModuleList list;
        for (int64_t i = 0; i < layers; ++i) list->push_back(std::make_shared<DecoderLayer>(hidden));
        register_module("layers", list);
        register_module("lm_head", torch::nn::Linear(hidden, vocab));
    }
};

}  // namespace

int main(int argc, char** argv) {
    const std::string config_file = argc > 1 ? argv[1] : "torch_model_config.json";
    const auto model = std::make_shared<TinyLlama>(/*layers=*/2, /*hidden=*/16, /*vocab=*/32);

    // Any torch::nn::Module is a model graph; its layer names are those of named_modules().
    std::vector<std::string> kv_layers;
    for (const auto& layer : kvcali::libtorch::module_graph(*model).layers()) {
        if (layer.path.ends_with(".k_proj") || layer.path.ends_with(".v_proj")) kv_layers.push_back(layer.path);
    }
    try {
        const auto config = kvcali::create_quant_cali_config(config_file, *model, kvcali::quant_layers(kv_layers));
        std::printf("wrote %s: %zu KV-cache layers\n", config_file.c_str(), config.layers.size());
    } catch (const kvcali::error& e) {
        for (const auto& d : e.diagnostics()) std::fprintf(stderr, "%s\n", d.to_string().c_str());
        return 1;
    }
    return 0;
}
