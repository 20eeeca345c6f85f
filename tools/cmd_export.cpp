// kvcali export: the record file's scales into the checkpoint files serving engines read.
#include <kvcali/export.hpp>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include "cli.hpp"
#include "export_common.hpp"

namespace kvcali_cli {
namespace {

int run_export(const parsed_args& args) {
    const std::string record = required(args, "record", "missing --record PATH (the record file `kvcali calibrate` or AMCT wrote)");
    const std::string config_path = required(args, "config", "missing --config PATH (the config.json the record was calibrated with)");
    if (!args.get("format")) throw usage_error("missing --format FORMAT (ascend-c8, compressed-tensors or vllm-scales-json)");
    const auto output = args.get("output");
    const auto into = args.get("into");
    if (output && into) throw usage_error("give either -o DIR (a new export) or --into DIR (merge into a checkpoint), not both");
    if (!output && !into) throw usage_error("missing -o DIR (the folder to write) or --into DIR (a checkpoint folder to merge into)");
    kvcali::export_options opts = export_options_from(args);
    opts.record_name = record;

    kvcali::reader_options reader;
    reader.strict = opts.strict;
    reader.on_warning = opts.on_warning;
    const kvcali::resolved_config config = read_config_json(config_path, reader);
    const auto records = read_record_file(record);
    std::optional<kvcali::layer_output_features> features;
    if (auto m = args.get("model")) {
        features = export_model_features(*m);
        opts.model = &*features;
    }
    const kvcali::export_plan plan = kvcali::plan_export(records, config, opts);
    const std::filesystem::path dir = output ? *output : *into;
    const auto files = kvcali::prepare_export(plan, dir, into.has_value());
    // No file of the export may be an input (a kvcali config.json named config.json in the --into folder).
    std::vector<named_input> inputs{{"--record", record}, {"--config", config_path}};
    if (auto m = args.get("model")) inputs.push_back({"--model", *m});
    for (const auto& f : files) refuse_output_over_inputs(f.path.string(), inputs);
    kvcali::commit_export(files);

    if (args.has("quiet")) return 0;
    std::string line = "wrote ";
    bool first = true;
    for (const auto& f : files) {
        if (!first) line += "; ";
        first = false;
        line += f.path.string();
        if (f.path.filename() == plan.tensor_file) {
            const std::size_t n = plan.tensors.size();
            line += ": " + std::to_string(n) + (n == 1 ? " tensor (" : " tensors (");
            if (plan.format == kvcali::export_format::compressed_tensors) {
                line +=
                    std::to_string(plan.modules) + (plan.modules == 1 ? " attention module), float32, " : " attention modules), float32, ");
                line += opts.kv_dtype == kvcali::kv_cache_dtype::fp8 ? "fp8" : "int8";
                line += opts.strategy == kvcali::kv_scale_strategy::tensor ? " per tensor"
                                                                           : " per attention head (" + std::to_string(opts.kv_heads) + ")";
            } else {
                line += std::to_string(plan.layers) + (plan.layers == 1 ? " layer), " : " layers), ");
                line += std::string(kvcali::to_string(opts.dtype));
            }
        } else if (plan.format == kvcali::export_format::vllm_scales_json) {
            line += ": " + std::to_string(plan.modules) + (plan.modules == 1 ? " decoder layer" : " decoder layers") + ", float8_e4m3fn";
        }
    }
    std::printf("%s\n", line.c_str());
    return 0;
}

command make_export() {
    command c;
    c.name = "export";
    c.summary = "write calibrated KV-cache scales into serving-engine checkpoints (MindIE/vLLM-Ascend, vLLM)";
    c.usage =
        "kvcali export --record PATH --config PATH --format FORMAT -o DIR | --into DIR [--dtype DTYPE] [--kv-dtype DTYPE] "
        "[--strategy STRATEGY] [--kv-heads H] [--model-type NAME] [--model PATH] [--strict] [--quiet]";
    c.description =
        "Formats (see README.md): ascend-c8 writes DIR/kv_cache_c8.safetensors (L.kv_cache_scale and L.kv_cache_offset\n"
        "per K or V layer L, --dtype, default float16) and DIR/quant_model_description.json (msModelSlim's C8 layout:\n"
        "MindIE, vLLM-Ascend). compressed-tensors writes DIR/kv_cache_scales.safetensors (A.k_scale and A.v_scale on\n"
        "each attention module A, float32, for --kv-dtype fp8 or int8, --strategy tensor or attn_head --kv-heads H) and\n"
        "DIR/kv_cache_scheme.json (vLLM). vllm-scales-json writes DIR/kv_cache_scales.json (vLLM's older\n"
        "--quantization-param-path file). --into DIR merges into a checkpoint folder: other tensors and JSON keys are\n"
        "kept, compressed-tensors' scheme goes into DIR/config.json, model.safetensors.index.json's weight_map gets the\n"
        "new tensors. Every check is made before anything is written, every problem is reported, and on any error no\n"
        "file changes. One line is printed on success.";
    c.options.push_back({"record", 0, true, false, "the record file (`kvcali calibrate` or AMCT)", "PATH"});
    c.options.push_back({"config", 0, true, false, "the config.json the record was calibrated with", "PATH"});
    for (auto& o : export_format_options()) c.options.push_back(o);
    c.options.push_back({"output", 'o', true, false, "the folder to write (created when missing)", "DIR"});
    c.options.push_back({"into", 0, true, false, "a checkpoint or export folder to merge into", "DIR"});
    c.options.push_back({"model", 'm', true, false, "check layers and channel counts against this model (layer list: \"out\")", "PATH"});
    c.options.push_back({"strict", 0, false, false, "treat warnings (K without V) as errors", ""});
    c.options.push_back({"quiet", 'q', false, false, "print nothing on success", ""});
    c.run = run_export;
    return c;
}

const registrar reg{make_export()};

}  // namespace
}  // namespace kvcali_cli
