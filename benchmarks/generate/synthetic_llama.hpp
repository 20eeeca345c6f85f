// Synthetic LLaMA-shaped models for the generate benchmark and the hostile-input tests: the layer
// list (as PyTorch's named_modules() lists a LlamaForCausalLM) and a quant.cfg that names every K
// and V projection and overrides every other V projection.
#pragma once

#include <cstddef>
#include <string>

namespace kvcali_bench {

/// Layers of one decoder block: the block, self_attn (+ q/k/v/o, rotary_emb), mlp (+ gate/up/down,
/// act_fn), two norms.
inline constexpr std::size_t llama_layers_per_block = 14;
/// Layers outside the blocks: model, model.embed_tokens, model.layers, model.norm, lm_head.
inline constexpr std::size_t llama_outer_layers = 5;

inline std::size_t llama_layer_count(std::size_t blocks) { return blocks * llama_layers_per_block + llama_outer_layers; }

/// The number of decoder blocks of a model with about `layers` layers in all (at least one).
inline std::size_t llama_blocks_for(std::size_t layers) {
    return layers > llama_outer_layers + llama_layers_per_block ? (layers - llama_outer_layers) / llama_layers_per_block : 1;
}

/// The layer list JSON of a model with `blocks` decoder blocks, one entry per line.
inline std::string llama_layer_list(std::size_t blocks) {
    std::string out;
    out.reserve(blocks * 900 + 512);
    auto entry = [&](const std::string& name, const char* type) {
        out += out.size() <= 2 ? "" : ",\n";
        out += "{\"name\": \"" + name + "\", \"type\": \"" + type + "\"}";
    };
    out += "[\n";
    entry("model", "LlamaModel");
    entry("model.embed_tokens", "Embedding");
    entry("model.layers", "ModuleList");
    for (std::size_t b = 0; b < blocks; ++b) {
        const std::string p = "model.layers." + std::to_string(b);
        entry(p, "LlamaDecoderLayer");
        entry(p + ".self_attn", "LlamaAttention");
        entry(p + ".self_attn.q_proj", "Linear");
        entry(p + ".self_attn.k_proj", "Linear");
        entry(p + ".self_attn.v_proj", "Linear");
        entry(p + ".self_attn.o_proj", "Linear");
        entry(p + ".self_attn.rotary_emb", "LlamaRotaryEmbedding");
        entry(p + ".mlp", "LlamaMLP");
        entry(p + ".mlp.gate_proj", "Linear");
        entry(p + ".mlp.up_proj", "Linear");
        entry(p + ".mlp.down_proj", "Linear");
        entry(p + ".mlp.act_fn", "SiLUActivation");
        entry(p + ".input_layernorm", "LlamaRMSNorm");
        entry(p + ".post_attention_layernorm", "LlamaRMSNorm");
    }
    entry("model.norm", "LlamaRMSNorm");
    entry("lm_head", "Linear");
    out += "\n]\n";
    return out;
}

/// A quant.cfg naming every K and V projection (IFMR for all), with the V projection of every
/// other block overridden to HFMG.
inline std::string llama_quant_cfg(std::size_t blocks) {
    std::string out;
    out.reserve(blocks * 250 + 512);
    out += "batch_num: 4\nkv_cache_quant_config {\n";
    for (std::size_t b = 0; b < blocks; ++b) {
        const std::string p = "    quant_layers: \"model.layers." + std::to_string(b) + ".self_attn.";
        out += p + "k_proj\"\n";
        out += p + "v_proj\"\n";
    }
    out += "    calibration_config { ifmr_quantize { search_range_start: 0.7 search_range_end: 1.3 search_step: 0.01 } }\n}\n";
    for (std::size_t b = 0; b < blocks; b += 2) {
        out += "override_layers_configs {\n    layer_name: \"model.layers." + std::to_string(b) +
               ".self_attn.v_proj\"\n    kv_data_quant_config { hfmg_quantize { num_of_bins: 2048 } }\n}\n";
    }
    return out;
}

}  // namespace kvcali_bench
