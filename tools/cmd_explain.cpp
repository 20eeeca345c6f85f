// kvcali explain: every layer's algorithm and parameters, and where each value came from.
#include <kvcali/generate.hpp>
#include <kvcali/json_format.hpp>

#include <algorithm>
#include <array>
#include <cstdio>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

std::string position(const kvcali::source_location& where) {
    if (where.file.empty()) return {};
    std::string s = where.file;
    if (where.has_position()) s += ":" + std::to_string(where.line);
    return s;
}

/// "policy default", "common config at quant.cfg:5", "override at quant.cfg:9", ...
std::string describe(const kvcali::provenance& p) {
    std::string s;
    switch (p.from) {
        case kvcali::origin::policy_default: return "policy default";
        case kvcali::origin::global_default: return "default";
        case kvcali::origin::quant_layers_arg: return "quant_layers argument";
        case kvcali::origin::config_file: s = "config file"; break;
        case kvcali::origin::common_config: s = "common config"; break;
        case kvcali::origin::override_config: s = "override"; break;
    }
    const std::string at = position(p.where);
    return at.empty() ? s : s + " at " + at;
}

std::string show(const kvcali::param_desc& p, const kvcali::param_value& v) {
    if (v.type == kvcali::param_type::enumeration) {
        for (const auto& e : p.enumerators) {
            if (e.number == v.enumerator) return std::string(e.name);
        }
    }
    std::string s;
    switch (v.type) {
        case kvcali::param_type::boolean: s = v.boolean ? "true" : "false"; break;
        case kvcali::param_type::uint32: s = std::to_string(v.uint); break;
        case kvcali::param_type::float32: kvcali::append_float32_repr(s, v.real); break;
        case kvcali::param_type::enumeration: s = std::to_string(v.enumerator); break;
    }
    return s;
}

void append_json_value(std::string& out, const kvcali::param_value& v) {
    switch (v.type) {
        case kvcali::param_type::boolean: out += v.boolean ? "true" : "false"; break;
        case kvcali::param_type::uint32: out += std::to_string(v.uint); break;
        case kvcali::param_type::float32: kvcali::append_float32_repr(out, v.real); break;
        case kvcali::param_type::enumeration: out += std::to_string(v.enumerator); break;
    }
}

void append_json_source(std::string& out, const kvcali::provenance& p) {
    out += "{\"origin\": ";
    kvcali::append_json_string(out, kvcali::to_string(p.from));
    if (!p.where.file.empty()) {
        out += ", \"file\": ";
        kvcali::append_json_string(out, p.where.file);
        if (p.where.has_position())
            out += ", \"line\": " + std::to_string(p.where.line) + ", \"column\": " + std::to_string(p.where.column);
    }
    out += ", \"text\": ";
    kvcali::append_json_string(out, describe(p));
    out += '}';
}

std::string explain_json(const kvcali::resolved_config& doc) {
    std::string out = "{\n  \"batch_num\": {\"value\": " + std::to_string(doc.batch_num) + ", \"source\": ";
    append_json_source(out, doc.batch_num_source);
    out += std::string("},\n  \"activation_offset\": {\"value\": ") + (doc.activation_offset ? "true" : "false") + ", \"source\": ";
    append_json_source(out, doc.activation_offset_source);
    out += "},\n  \"layers\": [";
    bool first_layer = true;
    for (const auto& layer : doc.layers) {
        const auto& algo = doc.algorithm_of(layer);
        out += first_layer ? "\n    {" : ",\n    {";
        first_layer = false;
        out += "\"name\": ";
        kvcali::append_json_string(out, layer.name);
        out += ", \"selector\": ";
        kvcali::append_json_string(out, layer.selector);
        out += ", \"listed\": ";
        append_json_source(out, layer.listed);
        out += ", \"algorithm\": {\"value\": ";
        kvcali::append_json_string(out, algo.act_algo);
        out += ", \"source\": ";
        append_json_source(out, layer.algorithm_source);
        out += "}, \"params\": [";
        for (std::size_t i = 0; i < algo.params.size(); ++i) {
            out += i == 0 ? "" : ", ";
            out += "{\"name\": ";
            kvcali::append_json_string(out, algo.params[i].cfg_name);
            out += ", \"value\": ";
            if (layer.values[i]) {
                append_json_value(out, *layer.values[i]);
            } else {
                out += "null";
            }
            out += ", \"source\": ";
            append_json_source(out, layer.sources[i]);
            out += '}';
        }
        out += "]}";
    }
    out += first_layer ? "]\n}\n" : "\n  ]\n}\n";
    return out;
}

/// A short source tag for the table: `default`, `common:12`, `override:20`, `argument`, `file:3`.
std::string tag(const kvcali::provenance& p) {
    switch (p.from) {
        case kvcali::origin::policy_default: return "default";
        case kvcali::origin::global_default: return "default";
        case kvcali::origin::quant_layers_arg: return "argument";
        case kvcali::origin::config_file: return "file:" + std::to_string(p.where.line);
        case kvcali::origin::common_config: return "common:" + std::to_string(p.where.line);
        case kvcali::origin::override_config: return "override:" + std::to_string(p.where.line);
    }
    return "?";
}

std::string pad(std::string s, std::size_t width) {
    if (s.size() < width) s.append(width - s.size(), ' ');
    return s;
}

/// One row per layer: LAYER, ALGORITHM (with its source), then every parameter as
/// `name=value (source)`; the globals first, a legend of the source tags last.
std::string explain_text(const kvcali::resolved_config& doc) {
    std::string cfg_file;
    auto note_file = [&](const kvcali::provenance& p) {
        if (cfg_file.empty() && !p.where.file.empty()) cfg_file = p.where.file;
    };
    std::string out = "batch_num = " + std::to_string(doc.batch_num) + " (" + describe(doc.batch_num_source) + ")\n";
    out += std::string("activation_offset = ") + (doc.activation_offset ? "true" : "false") + " (" +
           describe(doc.activation_offset_source) + ")\n\n";
    bool any_unset = false;
    std::vector<std::array<std::string, 3>> rows;
    rows.push_back({"LAYER", "ALGORITHM", "PARAMETERS (value (source))"});
    for (const auto& layer : doc.layers) {
        const auto& algo = doc.algorithm_of(layer);
        std::string name = layer.name;
        if (!layer.selector.empty() && layer.selector != layer.name) name += " <- " + layer.selector;
        note_file(layer.algorithm_source);
        std::string params;
        for (std::size_t i = 0; i < algo.params.size(); ++i) {
            const auto& p = algo.params[i];
            if (!params.empty()) params += "  ";
            params += std::string(p.cfg_name) + "=";
            if (layer.values[i]) {
                params += show(p, *layer.values[i]) + " (" + tag(layer.sources[i]) + ")";
                note_file(layer.sources[i]);
            } else {
                params += "unset (activation_offset)";
                any_unset = true;
            }
        }
        rows.push_back({name, std::string(algo.act_algo) + " (" + tag(layer.algorithm_source) + ")", params});
    }
    std::size_t w0 = 0, w1 = 0;
    for (const auto& r : rows) {
        w0 = std::max(w0, r[0].size());
        w1 = std::max(w1, r[1].size());
    }
    for (const auto& r : rows) out += pad(r[0], w0) + "  " + pad(r[1], w1) + "  " + r[2] + "\n";
    out += "\nsources: default = the algorithm policy's default (origin \"policy default\" in --json)";
    if (!cfg_file.empty()) {
        out += "; common:N = kv_cache_quant_config at " + cfg_file + ":N; override:N = override_layers_configs at " + cfg_file + ":N";
    }
    out += "; argument = the quant_layers argument (--layer, --quant-layers)\n";
    if (any_unset) {
        out +=
            "unset (activation_offset) = set nowhere, so not written to config.json: calibration then takes the value of "
            "activation_offset (an offset when it is true)\n";
    }
    return out;
}

int run_explain(const parsed_args& args) {
    const resolve_request req = read_resolve_request(args);
    const kvcali::resolved_config doc = kvcali::resolve_quant_cali_config(req.model, req.layers, req.cfg, req.opts);
    const std::string out = args.has("json") ? explain_json(doc) : explain_text(doc);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

command make_explain() {
    command c;
    c.name = "explain";
    c.summary = "show each layer's algorithm and parameters, and where every value came from";
    c.usage = "kvcali explain --model PATH [--cfg PATH] [--quant-layers JSON|PATH] [--layer NAME]... [--strict] [--json]";
    c.description =
        "Sources: policy default, the common config (kv_cache_quant_config) at FILE:LINE, an override at FILE:LINE,\n"
        "the quant_layers argument (--layer, --quant-layers). A parameter shown as `unset (activation_offset)` is set\n"
        "nowhere and not written to config.json: calibration takes activation_offset's value for it. With --json each\n"
        "value has a \"source\": origin \"policy default\" is the algorithm policy's default (no file), \"default\" the\n"
        "schema default of batch_num or activation_offset, and a null value is an unset parameter. Nothing is written.";
    c.options = resolve_options();
    c.options.push_back({"json", 0, false, false, "print the same as JSON", ""});
    c.run = run_explain;
    return c;
}

const registrar reg{make_explain()};

}  // namespace
}  // namespace kvcali_cli
