// kvcali check: everything generate checks, nothing written.
#include <kvcali/generate.hpp>

#include <cstdio>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

int run_check(const parsed_args& args) {
    const resolve_request req = read_resolve_request(args);
    const kvcali::resolved_config doc = kvcali::resolve_quant_cali_config(req.model, req.layers, req.cfg, req.opts);
    if (!args.has("quiet")) std::printf("ok: %s\n", summary_of(doc).c_str());
    return 0;
}

command make_check() {
    command c;
    c.name = "check";
    c.summary = "check a model, quant.cfg and layer list as generate would, writing nothing";
    c.usage = "kvcali check --model PATH [--cfg PATH] [--quant-layers JSON|PATH] [--layer NAME]... [--strict] [--quiet]";
    c.description = "Prints every diagnostic; exit status 0 when generate would succeed, 1 when it would fail.";
    c.options = resolve_options();
    c.options.push_back({"quiet", 'q', false, false, "print nothing on success", ""});
    c.run = run_check;
    return c;
}

const registrar reg{make_check()};

}  // namespace
}  // namespace kvcali_cli
