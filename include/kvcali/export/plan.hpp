// kvcali export: from a record and its config.json to what a serving engine reads (tensors and
// JSON objects of one format), as data, before anything is written. See ../shared/spec/export.md.
#pragma once

#include <boost/json/object.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../calibration/record.hpp"
#include "../config_reader.hpp"
#include "../detail/config.hpp"
#include "../error.hpp"
#include "../resolved_config.hpp"
#include "safetensors.hpp"

namespace kvcali {

/// The checkpoint layouts `kvcali export` writes.
enum class export_format {
    ascend_c8,           ///< msModelSlim's AscendV1 C8 layout (MindIE, vLLM-Ascend)
    compressed_tensors,  ///< llm-compressor's layout (vLLM on GPUs)
    vllm_scales_json,    ///< vLLM's older --quantization-param-path JSON
};

constexpr std::string_view to_string(export_format f) noexcept {
    switch (f) {
        case export_format::ascend_c8: return "ascend-c8";
        case export_format::compressed_tensors: return "compressed-tensors";
        case export_format::vllm_scales_json: return "vllm-scales-json";
    }
    return "?";
}

/// The format of a command-line name (`ascend-c8`, `compressed-tensors`, `vllm-scales-json`).
KVCALI_DECL std::optional<export_format> parse_export_format(std::string_view name) noexcept;

/// compressed-tensors: the KV-cache element type the scales are for.
enum class kv_cache_dtype { fp8, int8 };
/// compressed-tensors: one scale per K or V tensor, or one per attention head.
enum class kv_scale_strategy { tensor, attn_head };

/// The largest magnitude of a KV-cache element type: 448 (fp8 E4M3) or 127 (int8).
constexpr float kv_cache_max(kv_cache_dtype t) noexcept { return t == kv_cache_dtype::fp8 ? 448.0f : 127.0f; }

/// Output features (channels) per layer of a model, for the channel check; a layer listed without
/// a count is not checked.
using layer_output_features = std::map<std::string, std::optional<std::uint64_t>, std::less<>>;

/// Options of `plan_export`.
struct export_options {
    export_format format = export_format::ascend_c8;
    tensor_dtype dtype = tensor_dtype::float16;              ///< ascend-c8: the tensors' dtype
    kv_cache_dtype kv_dtype = kv_cache_dtype::fp8;           ///< compressed-tensors
    kv_scale_strategy strategy = kv_scale_strategy::tensor;  ///< compressed-tensors
    std::uint32_t kv_heads = 0;                              ///< compressed-tensors attn_head: heads per K or V
    std::optional<std::string> model_type = std::nullopt;    ///< vllm-scales-json: "model_type" (null when unset)
    bool strict = false;                                     ///< warnings are errors
    warning_sink on_warning = {};                            ///< receives each warning (the library never prints)
    const layer_output_features* model = nullptr;            ///< when set: every layer must be there, channels must match
    std::string record_name = "record";                      ///< how messages name the record
};

/// A JSON document of an export: its file name in the output folder and its object.
struct export_document {
    std::string file_name;
    boost::json::object content;
};

/// What one format holds, as data: the tensors (in the file's order) and the JSON documents.
struct export_plan {
    export_format format = export_format::ascend_c8;
    std::string tensor_file;  ///< the safetensors file's name; empty when the format has none
    std::vector<export_tensor> tensors;
    std::vector<export_document> documents;
    std::size_t layers = 0;            ///< record layers exported
    std::size_t modules = 0;           ///< attention modules (compressed-tensors), decoder layers (vllm-scales-json)
    std::vector<diagnostic> warnings;  ///< the warnings found
};

/// The clip range a record's (scale, offset) stands for, as its largest magnitude:
/// `max(|(-128 - offset) * scale|, |(127 - offset) * scale|)` in float32.
inline float clip_amax(float scale, std::int32_t offset) noexcept {
    const float lo = static_cast<float>(-128 - offset) * scale;
    const float hi = static_cast<float>(127 - offset) * scale;
    return std::max(std::fabs(lo), std::fabs(hi));
}

/// The attention module of a layer: its parent path (`a.b.k_proj` -> `a.b`; "" for a top-level name).
inline std::string_view attention_module_of(std::string_view layer) noexcept {
    const auto dot = layer.rfind('.');
    return dot == std::string_view::npos ? std::string_view() : layer.substr(0, dot);
}

/// The decoder layer index of a name: its first `.<digits>.` segment (`model.layers.12.self_attn.k_proj`
/// -> 12); none when it has no such segment.
KVCALI_DECL std::optional<std::uint64_t> decoder_layer_index(std::string_view name) noexcept;

/// Checks a record against its config.json and builds what `opts.format` holds, writing nothing.
/// Checks (all reported at once): every scale finite and > 0, every offset in [-128, 127], one
/// offset per scale (invalid_data); every config.json layer in the record (incomplete_calibration)
/// and every record key in config.json (unknown_layer); a per-tensor layer has one value; K and V of
/// one attention module have the same channel count; with `opts.model` the channel count of a
/// per-channel layer equals the layer's output features (invalid_data; unknown_layer when absent);
/// K without V or V without K is a warning (`incomplete_calibration`, strict: error). Per format:
/// roles (compressed-tensors, vllm-scales-json: a layer that is not K or V, or a fused QKV, is
/// invalid_argument); ascend-c8: each value must fit `opts.dtype` (invalid_data); compressed-tensors
/// int8: offsets must be 0 (invalid_data), attn_head: C divisible by H (invalid_argument);
/// vllm-scales-json: decoder indices 0..max all present (incomplete_calibration).
/// Errors: throws `kvcali::error` with every diagnostic.
/// Example: `auto plan = kvcali::plan_export(records, config, {.format = kvcali::export_format::ascend_c8});`
KVCALI_DECL export_plan plan_export(std::span<const layer_record> records, const resolved_config& config, const export_options& opts);

/// The non-throwing form of `plan_export`: the plan (with its warnings), or every diagnostic.
/// Example: `if (auto r = kvcali::try_plan_export(records, config, opts); !r) print(r.diagnostics());`
KVCALI_DECL outcome<export_plan> try_plan_export(std::span<const layer_record> records, const resolved_config& config,
                                                 const export_options& opts);

/// Output features of every layer of a layer-list model (`[{"name", "type", "in", "out"}, ...]`),
/// read by the layer-list reader (load_layer_list): `"out"` is the channel count; a layer without
/// it is listed with none. Errors: `kvcali::error` (io_error, invalid_model) naming the file, as
/// load_layer_list reports them.
KVCALI_DECL layer_output_features read_layer_output_features(const std::filesystem::path& path);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/export_plan.ipp"  // IWYU pragma: export
#endif
