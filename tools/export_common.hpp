// The kvcali command-line tool: what `export` and `validate --record` share (options, inputs).
#pragma once

#include <kvcali/calibration/record.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/export/plan.hpp>
#include <kvcali/io.hpp>

#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"

namespace kvcali_cli {

/// The options that choose and shape an export's format (without -o / --into).
inline std::vector<option_spec> export_format_options() {
    return {
        {"format", 0, true, false, "ascend-c8 (MindIE, vLLM-Ascend), compressed-tensors (vLLM), vllm-scales-json", "FORMAT"},
        {"dtype", 0, true, false, "ascend-c8: float16 (default), bfloat16 or float32", "DTYPE"},
        {"kv-dtype", 0, true, false, "compressed-tensors: fp8 (default, E4M3) or int8 (symmetric records only)", "DTYPE"},
        {"strategy", 0, true, false, "compressed-tensors: tensor (default) or attn_head (with --kv-heads)", "STRATEGY"},
        {"kv-heads", 0, true, false, "compressed-tensors attn_head: the number of KV heads", "H"},
        {"model-type", 0, true, false, "vllm-scales-json: the model_type to write (default null)", "NAME"},
    };
}

/// The export options of the command line (format default: `default_format`). Throws usage_error.
inline kvcali::export_options export_options_from(const parsed_args& args, const std::string& default_format = "ascend-c8") {
    kvcali::export_options o;
    const std::string format = args.get("format").value_or(default_format);
    const auto f = kvcali::parse_export_format(format);
    if (!f) throw usage_error("unknown --format " + format + " (ascend-c8, compressed-tensors or vllm-scales-json)");
    o.format = *f;
    if (auto d = args.get("dtype")) {
        if (*d == "float16")
            o.dtype = kvcali::tensor_dtype::float16;
        else if (*d == "bfloat16")
            o.dtype = kvcali::tensor_dtype::bfloat16;
        else if (*d == "float32")
            o.dtype = kvcali::tensor_dtype::float32;
        else
            throw usage_error("unknown --dtype " + *d + " (float16, bfloat16 or float32)");
        if (o.format != kvcali::export_format::ascend_c8)
            throw usage_error("--dtype is for --format ascend-c8 (compressed-tensors writes float32)");
    }
    const bool ct = o.format == kvcali::export_format::compressed_tensors;
    if (auto d = args.get("kv-dtype")) {
        if (!ct) throw usage_error("--kv-dtype is for --format compressed-tensors");
        if (*d == "fp8")
            o.kv_dtype = kvcali::kv_cache_dtype::fp8;
        else if (*d == "int8")
            o.kv_dtype = kvcali::kv_cache_dtype::int8;
        else
            throw usage_error("unknown --kv-dtype " + *d + " (fp8 or int8)");
    }
    if (auto s = args.get("strategy")) {
        if (!ct) throw usage_error("--strategy is for --format compressed-tensors");
        if (*s == "tensor")
            o.strategy = kvcali::kv_scale_strategy::tensor;
        else if (*s == "attn_head")
            o.strategy = kvcali::kv_scale_strategy::attn_head;
        else
            throw usage_error("unknown --strategy " + *s + " (tensor or attn_head)");
    }
    if (auto h = args.get("kv-heads")) {
        if (o.strategy != kvcali::kv_scale_strategy::attn_head) throw usage_error("--kv-heads is for --strategy attn_head");
        unsigned long v = 0;
        std::size_t used = 0;
        try {
            v = std::stoul(*h, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != h->size() || v == 0 || v > 65536 || (*h)[0] == '-' || (*h)[0] == '+') {
            throw usage_error("--kv-heads needs a positive whole number, not " + *h);
        }
        o.kv_heads = static_cast<std::uint32_t>(v);
    } else if (o.strategy == kvcali::kv_scale_strategy::attn_head) {
        throw usage_error("--strategy attn_head needs --kv-heads H (the number of KV heads)");
    }
    if (auto t = args.get("model-type")) {
        if (o.format != kvcali::export_format::vllm_scales_json) throw usage_error("--model-type is for --format vllm-scales-json");
        o.model_type = *t;
    }
    o.strict = args.has("strict");
    o.on_warning = stderr_warnings();
    return o;
}

/// Output features per layer of `--model PATH`: a layer list's "out" values; other model formats
/// name their layers only (the channel count is then not checked).
inline kvcali::layer_output_features export_model_features(const std::string& path) {
    if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) return kvcali::read_layer_output_features(path);
    kvcali::layer_output_features out;
    const kvcali::layer_table table = load_model(path);
    for (const auto& l : table) out[l.name] = std::nullopt;
    return out;
}

/// The record file, parsed. Throws kvcali::error (io_error, parse_error).
inline std::vector<kvcali::layer_record> read_record_file(const std::string& path) {
    return kvcali::parse_record(kvcali::read_file(path), path);
}

}  // namespace kvcali_cli
