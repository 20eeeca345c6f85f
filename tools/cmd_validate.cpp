// kvcali validate: check a config.json as the reference's consumer does (and optionally against a model).
#include <kvcali/config_reader.hpp>

#include <cstdio>
#include <map>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

int run_validate(const parsed_args& args) {
    const auto option = args.get("config");
    if (option && !args.positional().empty()) throw usage_error("give the config.json either as the argument or with --config, not both");
    if (!option && args.positional().empty()) throw usage_error("missing the config.json to check");
    const std::string path = option ? *option : args.positional().front();

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
    c.usage = "kvcali validate [--config] config.json [--model PATH] [--strict] [--quiet]";
    c.description =
        "Checks what the reference's consumer checks: JSON syntax, duplicate keys at any depth, every top-level\n"
        "key other than batch_num and activation_offset a layer object holding kv_data_quant_config, JSON types\n"
        "(a float written as an integer, \"max_percentile\":1, is an error) and values. Unknown keys inside\n"
        "kv_data_quant_config are ignored with a warning. With --model, every layer must exist and be eligible.\n"
        "Warnings do not fail the check unless --strict is given. A quant.cfg is not a config.json: check one with\n"
        "`kvcali check --model PATH --cfg quant.cfg`.";
    c.options = {
        {"config", 0, true, false, "the config.json to check (or give it as the argument)", "PATH"},
        {"model", 'm', true, false, "also check the layers against this model: .json layer list, .pt/.pth/.ts, .onnx", "PATH"},
        {"strict", 0, false, false, "treat warnings as errors", ""},
        {"quiet", 'q', false, false, "print nothing when the file is valid (warnings still go to stderr)", ""},
    };
    c.max_positional = 1;
    c.run = run_validate;
    return c;
}

const registrar reg{make_validate()};

}  // namespace
}  // namespace kvcali_cli
