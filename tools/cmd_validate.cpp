// kvcali validate: check a config.json as the reference's consumer does (and optionally against a model).
#include <kvcali/config_reader.hpp>
#include <kvcali/export/plan.hpp>

#include <cstdio>
#include <map>

#include "cli.hpp"
#include "export_common.hpp"

namespace kvcali_cli {
namespace {

int run_validate(const parsed_args& args) {
    const auto option = args.get("config");
    if (option && !args.positional().empty()) throw usage_error("give the config.json either as the argument or with --config, not both");
    if (!option && args.positional().empty()) throw usage_error("missing the config.json to check");
    const std::string path = option ? *option : args.positional().front();
    const auto record = args.get("record");
    if (!record) {
        for (const char* o : {"format", "dtype", "kv-dtype", "strategy", "kv-heads", "model-type"}) {
            if (args.has(o)) throw usage_error(std::string("--") + o + " is for checking a record (--record PATH)");
        }
    }

    kvcali::reader_options opts;
    opts.strict = args.has("strict");
    std::size_t warnings = 0;
    const auto print = stderr_warnings();
    opts.on_warning = [&](const kvcali::diagnostic& d) {
        ++warnings;
        print(d);
    };
    std::optional<kvcali::layer_table> model;
    if (auto m = args.get("model")) {
        model = load_model(*m);
        require_layers(*model, *m);
        opts.model = &*model;
    }
    const kvcali::resolved_config doc = read_config_json(path, opts);
    if (record) {
        // The export checks on the record, for a format (default ascend-c8), writing nothing.
        kvcali::export_options eo = export_options_from(args);
        eo.record_name = *record;
        eo.strict = opts.strict;
        eo.on_warning = opts.on_warning;
        std::optional<kvcali::layer_output_features> features;
        if (auto m = args.get("model")) {
            features = export_model_features(*m);
            eo.model = &*features;
        }
        const kvcali::export_plan plan = kvcali::plan_export(read_record_file(*record), doc, eo);
        if (!args.has("quiet")) {
            std::printf("%s: valid for export (%s): %zu layer%s of %s, %zu tensor%s%s%s\n", record->c_str(),
                        std::string(kvcali::to_string(eo.format)).c_str(), plan.layers, plan.layers == 1 ? "" : "s", path.c_str(),
                        plan.tensors.size(), plan.tensors.size() == 1 ? "" : "s", warnings ? ", warnings: " : "",
                        warnings ? std::to_string(warnings).c_str() : "");
        }
        return 0;
    }
    if (!args.has("quiet")) {
        std::map<std::string_view, std::size_t> per_algorithm;
        for (const auto& l : doc.layers) ++per_algorithm[doc.algorithm_of(l).act_algo];
        std::string algos;
        for (const auto& [algo, n] : per_algorithm) {
            if (!algos.empty()) algos += ", ";
            algos += std::string(algo) + " " + std::to_string(n);
        }
        std::printf("%s: valid: %zu layer%s (%s), batch_num %u, activation_offset %s%s%s\n", path.c_str(), doc.layers.size(),
                    doc.layers.size() == 1 ? "" : "s", algos.c_str(), doc.batch_num, doc.activation_offset ? "true" : "false",
                    warnings ? ", warnings: " : "", warnings ? std::to_string(warnings).c_str() : "");
    }
    return 0;
}

command make_validate() {
    command c;
    c.name = "validate";
    c.summary = "check a config.json as calibration reads it (exit 0 valid, 1 invalid)";
    c.usage =
        "kvcali validate [--config] config.json [--model PATH] [--strict] [--quiet] [--record PATH] [--format FORMAT] [--dtype DTYPE] "
        "[--kv-dtype DTYPE] [--strategy STRATEGY] [--kv-heads H] [--model-type NAME]";
    c.description =
        "Checks what the reference's consumer checks: JSON syntax, duplicate keys at any depth, every top-level\n"
        "key other than batch_num and activation_offset a layer object holding kv_data_quant_config, JSON types\n"
        "(a float written as an integer, \"max_percentile\":1, is an error) and values. Unknown keys inside\n"
        "kv_data_quant_config are ignored with a warning. With --model, every layer must exist and be eligible.\n"
        "Warnings do not fail the check unless --strict is given. A quant.cfg is not a config.json: check one with\n"
        "`kvcali check --model PATH --cfg quant.cfg`.\n"
        "With --record PATH: also runs the checks of `kvcali export` on the record (for --format, default ascend-c8;\n"
        "with --model, channel counts against a layer list's \"out\") and writes nothing.";
    c.options = {
        {"config", 0, true, false, "the config.json to check (or give it as the argument)", "PATH"},
        {"model", 'm', true, false, "also check the layers against this model: .json layer list, .pt/.pth/.ts, .onnx", "PATH"},
        {"strict", 0, false, false, "treat warnings as errors", ""},
        {"quiet", 'q', false, false, "print nothing when the file is valid (warnings still go to stderr)", ""},
        {"record", 0, true, false, "a record file to check for export against the config.json", "PATH"},
    };
    for (auto& o : export_format_options()) c.options.push_back(o);
    c.max_positional = 1;
    c.run = run_validate;
    return c;
}

const registrar reg{make_validate()};

}  // namespace
}  // namespace kvcali_cli
