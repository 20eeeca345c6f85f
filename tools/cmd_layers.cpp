// kvcali layers: every layer of a model with its type and whether it can be KV-cache quantized.
#include <kvcali/json_format.hpp>

#include <algorithm>
#include <cstdio>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

int run_layers(const parsed_args& args) {
    const auto model_path = args.get("model");
    if (!model_path) throw usage_error("missing --model PATH");
    const kvcali::layer_table model = load_model(*model_path);
    const bool only_eligible = args.has("eligible");
    std::string out;
    if (args.has("json")) {
        out += '[';
        bool first = true;
        for (const auto& l : model) {
            if (only_eligible && !l.eligible) continue;
            out += first ? "\n" : ",\n";
            first = false;
            out += "  {\"name\": ";
            kvcali::append_json_string(out, l.name);
            out += ", \"type\": ";
            kvcali::append_json_string(out, l.type);
            out += l.eligible ? ", \"eligible\": true}" : ", \"eligible\": false}";
        }
        out += first ? "]\n" : "\n]\n";
    } else {
        std::size_t name_width = 4, type_width = 4, shown = 0, eligible = 0;
        for (const auto& l : model) {
            if (only_eligible && !l.eligible) continue;
            name_width = std::max(name_width, l.name.size());
            type_width = std::max(type_width, l.type.size());
        }
        name_width = std::min<std::size_t>(name_width, 80);
        auto pad = [](std::string s, std::size_t w) {
            if (s.size() < w) s.append(w - s.size(), ' ');
            return s;
        };
        out += pad("NAME", name_width) + "  " + pad("TYPE", type_width) + "  KV-QUANT\n";
        for (const auto& l : model) {
            eligible += l.eligible ? 1 : 0;
            if (only_eligible && !l.eligible) continue;
            ++shown;
            out += pad(l.name, name_width) + "  " + pad(l.type, type_width) + "  " + (l.eligible ? "yes" : "no") + "\n";
        }
        out += std::to_string(shown) + " layer" + (shown == 1 ? "" : "s") + " shown; " + std::to_string(eligible) + " of " +
               std::to_string(model.size()) + " can be KV-cache quantized\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

command make_layers() {
    command c;
    c.name = "layers";
    c.summary = "list a model's layers: name, type, and whether it can be KV-cache quantized";
    c.usage = "kvcali layers --model PATH [--eligible] [--json]";
    c.description = "In model order. Use it to find the names to write in a quant.cfg.";
    c.options = {
        {"model", 'm', true, false, "the model: .json layer list, .pt/.pth/.ts TorchScript, .onnx", "PATH"},
        {"eligible", 'e', false, false, "only the layers that can be KV-cache quantized", ""},
        {"json", 0, false, false, "print a JSON array of {\"name\", \"type\", \"eligible\"} objects", ""},
    };
    c.run = run_layers;
    return c;
}

const registrar reg{make_layers()};

}  // namespace
}  // namespace kvcali_cli
