// kvcali generate: write config.json, as AMCT's create_quant_cali_config does.
#include <kvcali/config_writer.hpp>
#include <kvcali/generate.hpp>

#include <cstdio>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

int run_generate(const parsed_args& args) {
    const std::string model = required(args, "model", "missing --model PATH");
    const std::string output = required(args, "output", "missing -o PATH (the config.json to write)");
    // Before anything is read: an output over an input would replace it with the config.
    std::vector<named_input> inputs{{"--model", model}};
    if (auto cfg = args.get("cfg")) inputs.push_back({"--cfg", *cfg});
    if (auto q = args.get("quant-layers"); q && quant_layers_names_a_file(*q)) inputs.push_back({"--quant-layers", *q});
    refuse_output_over_inputs(output, inputs);
    const resolve_request req = read_resolve_request(args);
    if (names_stdout(output)) {
        // The config is the output: no summary line after it.
        write_to_stdout(kvcali::write_config_json(kvcali::resolve_quant_cali_config(req.model, req.layers, req.cfg, req.opts)));
        return 0;
    }
    const kvcali::resolved_config doc = kvcali::create_quant_cali_config(output, req.model, req.layers, req.cfg, req.opts);
    if (!args.has("quiet")) std::printf("wrote %s: %s\n", output.c_str(), summary_of(doc).c_str());
    return 0;
}

command make_generate() {
    command c;
    c.name = "generate";
    c.summary = "write config.json: every KV-cache layer with its calibration algorithm";
    c.usage = "kvcali generate --model PATH [--cfg PATH] [--quant-layers JSON|PATH] [--layer NAME]... -o PATH [--strict] [--quiet]";
    c.description =
        "The layers come from the simple config file (--cfg) or, without one, from --quant-layers or --layer.\n"
        "On any error nothing is written and an existing output file is left as it was. A symbolic link as the\n"
        "output is followed (the file it leads to is replaced, the link kept). `-o -` (or /dev/stdout) writes the\n"
        "config to stdout, with no summary line. An output that is one of the input files (--model, --cfg, a\n"
        "--quant-layers file) is refused (invalid_argument).";
    c.options = resolve_options();
    c.options.push_back({"output", 'o', true, false, "the config.json to write (- for stdout)", "PATH"});
    c.options.push_back({"quiet", 'q', false, false, "print no summary line", ""});
    c.run = run_generate;
    return c;
}

const registrar reg{make_generate()};

}  // namespace
}  // namespace kvcali_cli
