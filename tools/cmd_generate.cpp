// kvcali generate: write config.json, as AMCT's create_quant_cali_config does.
#include <kvcali/generate.hpp>

#include <cstdio>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

int run_generate(const parsed_args& args) {
    const auto model_path = args.get("model");
    const auto output = args.get("output");
    if (!model_path) throw usage_error("missing --model PATH");
    if (!output) throw usage_error("missing -o PATH (the config.json to write)");
    kvcali::options opts;
    opts.strict = args.has("strict");
    opts.on_warning = stderr_warnings();
    const kvcali::layer_table model = load_model(*model_path, opts.strict);
    const auto layers = quant_layers_from(args);
    std::optional<std::filesystem::path> cfg;
    if (auto c = args.get("cfg")) cfg = *c;
    const kvcali::resolved_config doc = kvcali::create_quant_cali_config(*output, model, layers, cfg, opts);
    if (!args.has("quiet")) std::printf("wrote %s: %s\n", output->c_str(), summary_of(doc).c_str());
    return 0;
}

command make_generate() {
    command c;
    c.name = "generate";
    c.summary = "write config.json: every KV-cache layer with its calibration algorithm";
    c.usage = "kvcali generate --model PATH [--cfg PATH] [--quant-layers JSON|PATH] [--layer NAME]... -o PATH [--strict] [--quiet]";
    c.description =
        "The layers come from the simple config file (--cfg) or, without one, from --quant-layers or --layer.\n"
        "On any error nothing is written and an existing output file is left as it was.";
    c.options = resolve_options();
    c.options.push_back({"output", 'o', true, false, "the config.json to write", "PATH"});
    c.options.push_back({"quiet", 'q', false, false, "print no summary line", ""});
    c.run = run_generate;
    return c;
}

const registrar reg{make_generate()};

}  // namespace
}  // namespace kvcali_cli
