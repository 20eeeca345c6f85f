#include "cli.hpp"

#include <kvcali/config_reader.hpp>
#include <kvcali/io.hpp>
#include <kvcali/layer_list.hpp>
#include <kvcali/quant_layers_json.hpp>
#include <kvcali/suggest.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "model_loaders.hpp"

namespace kvcali_cli {

std::vector<command>& commands() {
    static std::vector<command> all;
    return all;
}

registrar::registrar(command c) { commands().push_back(std::move(c)); }

/// Whether the letters of `part` appear in `whole` in order, starting with the same letter: `cfg`
/// in `config`, `out` in `output` (an abbreviation, or a longer form of a name).
static bool abbreviates(std::string_view part, std::string_view whole) {
    if (part.size() < 2 || whole.empty() || part.front() != whole.front()) return false;
    std::size_t i = 0;
    for (const char c : whole) {
        if (i < part.size() && part[i] == c) ++i;
    }
    return i == part.size();
}

/// `; did you mean '--cfg'?` for an unknown option of `cmd` as written (`--config`, `-c`,
/// `-config`); empty when no option is near.
static std::string suggest_option(const command& cmd, std::string_view written) {
    std::vector<option_spec> candidates = cmd.options;
    candidates.push_back({"help", 'h', false, false, "", ""});
    std::vector<std::string> near;
    if (written.size() == 2) {
        // A short form this command does not have: its long options of that letter.
        for (const auto& o : candidates) {
            if (o.long_name.front() == written[1]) near.push_back(o.long_name);
        }
    } else {
        const std::string_view name = written.substr(written.starts_with("--") ? 2 : 1);
        near = kvcali::closest_names(name, candidates, [](const option_spec& o) -> std::string_view { return o.long_name; });
        if (near.empty()) {
            // Option names are short: allow two edits (a swap, `--modle`), and abbreviations.
            for (const auto& o : candidates) {
                if (kvcali::bounded_edit_distance(name, o.long_name, 2) <= 2 || abbreviates(name, o.long_name) ||
                    abbreviates(o.long_name, name)) {
                    near.push_back(o.long_name);
                }
            }
        }
    }
    if (near.size() > 3) near.resize(3);
    for (auto& n : near) n = "--" + n;
    return kvcali::did_you_mean(near, '\'');
}

parsed_args parse_args(const command& cmd, const std::vector<std::string>& args) {
    parsed_args out;
    auto find_long = [&](std::string_view name) -> const option_spec* {
        for (const auto& o : cmd.options) {
            if (o.long_name == name) return &o;
        }
        return nullptr;
    };
    auto find_short = [&](char c) -> const option_spec* {
        for (const auto& o : cmd.options) {
            if (o.short_name == c) return &o;
        }
        return nullptr;
    };
    bool only_positional = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (only_positional || a.size() < 2 || a[0] != '-') {
            out.positional_.push_back(a);
            continue;
        }
        if (a == "--") {
            only_positional = true;
            continue;
        }
        const option_spec* spec = nullptr;
        std::optional<std::string> inline_value;
        std::string shown = a;
        if (a.rfind("--", 0) == 0) {
            std::string name = a.substr(2);
            if (auto eq = name.find('='); eq != std::string::npos) {
                inline_value = name.substr(eq + 1);
                name = name.substr(0, eq);
                shown = "--" + name;
            }
            spec = find_long(name);
        } else if (a.size() == 2) {
            spec = find_short(a[1]);
        }
        if (spec == nullptr) {
            throw usage_error("unknown option '" + shown + "' for 'kvcali " + cmd.name + "'" + suggest_option(cmd, shown));
        }
        if (!spec->takes_value) {
            if (inline_value) throw usage_error("option '--" + spec->long_name + "' takes no value");
            out.values_[spec->long_name].push_back("");
            continue;
        }
        std::string value;
        if (inline_value) {
            value = *inline_value;
        } else {
            if (i + 1 >= args.size()) throw usage_error("option '" + shown + "' needs a value (" + spec->value_name + ")");
            value = args[++i];
        }
        // `--model=` (or `--model ""`): an empty path or name is never what was meant.
        if (value.empty()) throw usage_error("option '" + shown + "' needs a value (" + spec->value_name + "), not an empty one");
        auto& slot = out.values_[spec->long_name];
        if (!spec->repeatable && !slot.empty()) throw usage_error("option '--" + spec->long_name + "' given more than once");
        slot.push_back(std::move(value));
    }
    if (out.positional_.size() > cmd.max_positional) {
        throw usage_error("unexpected argument '" + out.positional_[cmd.max_positional] + "' for 'kvcali " + cmd.name + "'");
    }
    return out;
}

std::string help_text(const command& cmd) {
    std::string out = "Usage: " + cmd.usage + "\n\n" + cmd.summary + "\n";
    if (!cmd.description.empty()) out += "\n" + cmd.description + "\n";
    out += "\nOptions:\n";
    for (const auto& o : cmd.options) {
        std::string left = "  ";
        left += o.short_name ? std::string("-") + o.short_name + ", " : std::string("    ");
        left += "--" + o.long_name;
        if (o.takes_value) left += " " + o.value_name;
        if (left.size() < 30)
            left.append(30 - left.size(), ' ');
        else
            left += "  ";
        out += left + o.help + "\n";
    }
    out += "  -h, --help                  this help\n";
    return out;
}

static bool colour_allowed(int fd) {
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour != nullptr && no_colour[0] != '\0') return false;
    return ::isatty(fd) == 1;
}

bool colour_stdout() { return colour_allowed(1); }
bool colour_stderr() { return colour_allowed(2); }

void print_diagnostic(const kvcali::diagnostic& d) {
    const bool colour = colour_stderr();
    std::string line;
    if (!d.where.file.empty()) {
        line += colour ? "\033[1m" : "";
        line += d.where.file;
        if (d.where.has_position()) line += ':' + std::to_string(d.where.line) + ':' + std::to_string(d.where.column);
        line += ": ";
        line += colour ? "\033[0m" : "";
    }
    if (colour) line += d.is_error() ? "\033[1;31m" : "\033[1;35m";
    line += d.is_error() ? "error: " : "warning: ";
    if (colour) line += "\033[0m";
    line += d.message;
    line += " [";
    line += kvcali::to_string(d.category);
    line += "]\n";
    std::fputs(line.c_str(), stderr);
}

void print_diagnostics(const std::vector<kvcali::diagnostic>& ds) {
    for (const auto& d : ds) print_diagnostic(d);
}

kvcali::warning_sink stderr_warnings() {
    return [](const kvcali::diagnostic& d) { print_diagnostic(d); };
}

static bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

kvcali::layer_table load_model(const std::string& path, bool strict) {
    if (ends_with(path, ".json")) return kvcali::load_layer_list(path);
    if (ends_with(path, ".pt") || ends_with(path, ".pth") || ends_with(path, ".ts")) return load_torchscript_model(path);
    if (ends_with(path, ".onnx")) return load_onnx_model(path, strict);
    throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                           .category = kvcali::errc::invalid_argument,
                                           .message = "cannot tell the model format of " + path +
                                                      " from its name: expected .json (layer list), .pt/.pth/.ts (TorchScript) or .onnx",
                                           .where = {path, 0, 0},
                                           .layer = {},
                                           .json_path = {}});
}

std::optional<kvcali::quant_layers> quant_layers_from(const parsed_args& args) {
    const auto json = args.get("quant-layers");
    const auto names = args.all("layer");
    if (json && !names.empty()) {
        throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                               .category = kvcali::errc::invalid_argument,
                                               .message = "give the layers either with --quant-layers or with --layer, not both",
                                               .where = {},
                                               .layer = {},
                                               .json_path = {}});
    }
    if (!names.empty()) {
        kvcali::quant_layers q(names);
        q.origin = "--layer";
        return q;
    }
    if (!json) return std::nullopt;
    std::string text = *json;
    std::string origin = "--quant-layers";
    if (quant_layers_names_a_file(text)) {
        origin = text;
        text = kvcali::read_file(text);
    }
    kvcali::diagnostics diags(false, stderr_warnings());
    // `[...]`: a bare array of names; anything else is read as the argument's object form.
    const auto first = text.find_first_not_of(" \t\r\n");
    auto parsed = first != std::string::npos && text[first] == '[' ? kvcali::parse_layer_names_json(text, origin, diags)
                                                                   : kvcali::parse_quant_layers_json(text, origin, diags);
    diags.throw_if_errors();
    if (parsed) parsed->origin = "quant_layers";
    return parsed;
}

bool quant_layers_names_a_file(std::string_view value) {
    const auto first = value.find_first_not_of(" \t\r\n");
    return first == std::string_view::npos || (value[first] != '{' && value[first] != '[');
}

void refuse_output_over_inputs(const std::string& output, const std::vector<named_input>& inputs) {
    namespace fs = std::filesystem;
    if (output.empty() || names_stdout(output)) return;
    std::error_code ec;
    const bool output_exists = fs::exists(output, ec);
    auto normal = [](const std::string& p) {
        std::error_code e;
        const fs::path absolute = fs::absolute(p, e);
        return (e ? fs::path(p) : absolute).lexically_normal();
    };
    std::vector<kvcali::diagnostic> found;
    for (const auto& in : inputs) {
        if (in.path.empty()) continue;
        std::error_code e;
        bool same = false;
        if (output_exists && fs::exists(in.path, e)) {
            same = fs::equivalent(output, in.path, e) && !e;
        } else {
            same = normal(output) == normal(in.path);
        }
        if (!same) continue;
        found.push_back({.severity = kvcali::severity::error,
                         .category = kvcali::errc::invalid_argument,
                         .message = "the output (-o " + output + ") is the input given with " + in.option + " " + in.path +
                                    ": writing it would destroy that file; choose another output path",
                         .where = {output, 0, 0},
                         .layer = {},
                         .json_path = {}});
    }
    if (!found.empty()) throw kvcali::error(kvcali::errc::invalid_argument, std::move(found));
}

void require_layers(const kvcali::layer_table& model, const std::string& path) {
    if (!model.empty()) return;
    throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                           .category = kvcali::errc::invalid_model,
                                           .message = std::string(kvcali::model_has_no_layers),
                                           .where = {path, 0, 0},
                                           .layer = {},
                                           .json_path = {}});
}

/// Whether a file that is not JSON reads like a quant.cfg: after blank lines and `#` comments,
/// a field name followed by `:`, `{` or `<` (`batch_num: 4`, `kv_cache_quant_config {`), or only
/// comments.
static bool looks_like_quant_cfg(const std::string& path) {
    std::string text;
    try {
        text = kvcali::read_file(path, std::uintmax_t{1} << 26);
    } catch (const kvcali::error&) {
        return false;
    }
    bool comment = false;
    std::size_t i = 0;
    for (;;) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) ++i;
        if (i < text.size() && text[i] == '#') {
            comment = true;
            while (i < text.size() && text[i] != '\n') ++i;
            continue;
        }
        break;
    }
    if (i == text.size()) return comment;
    auto identifier_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
    if (!(std::isalpha(static_cast<unsigned char>(text[i])) != 0 || text[i] == '_')) return false;
    while (i < text.size() && identifier_char(text[i])) ++i;
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    return i < text.size() && (text[i] == ':' || text[i] == '{' || text[i] == '<');
}

kvcali::resolved_config read_config_json(const std::string& path, const kvcali::reader_options& opts) {
    try {
        return kvcali::read_quant_cali_config(path, opts);
    } catch (const kvcali::error& e) {
        if (!e.has(kvcali::errc::parse_error) || !looks_like_quant_cfg(path)) throw;
        throw kvcali::error(kvcali::diagnostic{
            .severity = kvcali::severity::error,
            .category = kvcali::errc::parse_error,
            .message = "this looks like a quant.cfg (the simple config file, protobuf text format), not a config.json: check it with "
                       "`kvcali check --model MODEL --cfg " +
                       path + "`, and write the config.json from it with `kvcali generate`",
            .where = {path, 0, 0},
            .layer = {},
            .json_path = {}});
    }
}

std::vector<option_spec> resolve_options() {
    return {
        {"model", 'm', true, false, "the model: .json layer list, .pt/.pth/.ts TorchScript, .onnx", "PATH"},
        {"cfg", 'c', true, false, "the simple config file (quant.cfg, or its JSON form ending in .json)", "PATH"},
        {"quant-layers", 0, true, false,
         "the layers: {\"kv_cache_quant_layers\": [...]} or [\"name\", ...] inline, or a file holding either", "JSON|PATH"},
        {"layer", 'l', true, true, "a layer to quantize (repeatable; instead of --quant-layers)", "NAME"},
        {"strict", 0, false, false, "treat warnings as errors", ""},
    };
}

std::string required(const parsed_args& args, std::string_view name, const char* missing) {
    auto value = args.get(name);
    if (!value) throw usage_error(missing);
    return *value;
}

resolve_request read_resolve_request(const parsed_args& args) {
    const std::string model_path = required(args, "model", "missing --model PATH");
    if (!args.has("cfg") && !args.has("quant-layers") && !args.has("layer")) {
        // The library's message names its own arguments (quant_layers, the simple config file).
        throw kvcali::error(
            kvcali::diagnostic{.severity = kvcali::severity::error,
                               .category = kvcali::errc::no_quant_layers,
                               .message = "no layer to quantize: give a quant.cfg with --cfg PATH, or the layers with --layer NAME "
                                          "(repeatable) or --quant-layers JSON|PATH",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    }
    resolve_request r;
    r.opts.strict = args.has("strict");
    r.opts.on_warning = stderr_warnings();
    r.model = load_model(model_path, r.opts.strict);
    require_layers(r.model, model_path);
    r.layers = quant_layers_from(args);
    if (auto c = args.get("cfg")) r.cfg = *c;
    return r;
}

std::string algorithm_counts(const kvcali::resolved_config& doc) {
    std::vector<std::pair<std::string_view, std::size_t>> per_algorithm;
    for (const auto& l : doc.layers) {
        const auto name = doc.algorithm_of(l).act_algo;
        auto it = std::find_if(per_algorithm.begin(), per_algorithm.end(), [&](const auto& p) { return p.first == name; });
        if (it == per_algorithm.end()) {
            per_algorithm.emplace_back(name, 1);
        } else {
            ++it->second;
        }
    }
    std::string algos;
    for (const auto& [algo, n] : per_algorithm) {
        if (!algos.empty()) algos += ", ";
        algos += std::string(algo) + " " + std::to_string(n);
    }
    return algos;
}

std::string summary_of(const kvcali::resolved_config& doc) {
    const std::string algos = algorithm_counts(doc);
    return std::to_string(doc.layers.size()) + " layer" + (doc.layers.size() == 1 ? "" : "s") + " (" + algos + "), batch_num " +
           std::to_string(doc.batch_num) + ", activation_offset " + (doc.activation_offset ? "true" : "false");
}

bool names_stdout(const std::string& path) {
    if (path == "-") return true;
    struct ::stat out {
    }, named{};
    if (::fstat(1, &out) != 0 || ::stat(path.c_str(), &named) != 0) return false;
    return out.st_dev == named.st_dev && out.st_ino == named.st_ino;
}

void write_to_stdout(std::string_view bytes) {
    std::fflush(stdout);
    while (!bytes.empty()) {
        const ssize_t n = ::write(1, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            const std::string why = std::strerror(errno);
            throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                                   .category = kvcali::errc::io_error,
                                                   .message = "cannot write <stdout>: " + why,
                                                   .where = {"<stdout>", 0, 0},
                                                   .layer = {},
                                                   .json_path = {}});
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

int guarded(const std::function<int()>& body) {
    try {
        return body();
    } catch (const kvcali::error& e) {
        // Warnings were printed as they came; print the rest (errors, and strict-mode warnings).
        for (const auto& d : e.diagnostics()) {
            if (d.is_error()) print_diagnostic(d);
        }
        return 1;
    } catch (const usage_error&) {
        throw;
    } catch (const std::bad_alloc&) {
        print_diagnostic({.severity = kvcali::severity::error,
                          .category = kvcali::errc::io_error,
                          .message = "out of memory",
                          .where = {},
                          .layer = {},
                          .json_path = {}});
        return 1;
    }
}

}  // namespace kvcali_cli

namespace kvcali_cli {

progress_bar::progress_bar(std::string label, bool enabled, std::size_t layers, std::uint64_t total_bytes)
    : label_(std::move(label)), enabled_(enabled), layers_(layers), total_bytes_(total_bytes), start_(clock::now()), last_(start_) {}

void progress_bar::update(std::size_t done, std::uint64_t values, std::uint64_t bytes, bool force) {
    if (!enabled_) return;
    const auto now = clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double rate = seconds > 0 ? static_cast<double>(values) / seconds : 0.0;
    constexpr std::size_t width = 30;
    const std::size_t filled = layers_ == 0 ? width : done * width / layers_;
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    char left[32] = "";
    if (done == layers_) {
        std::snprintf(left, sizeof left, "done in %.1f s", seconds);
    } else if (total_bytes_ > 0 && bytes > 0 && seconds > 0.2) {
        const double remaining = seconds * static_cast<double>(total_bytes_ - std::min(bytes, total_bytes_)) / static_cast<double>(bytes);
        std::snprintf(left, sizeof left, "%.0f s left", remaining);
    }
    std::fprintf(stderr, "\r%s [%s] %zu/%zu layers, %.1f M values/s, %s   ", label_.c_str(), bar.c_str(), done, layers_, rate / 1e6, left);
    std::fflush(stderr);
}

void progress_bar::close() {
    if (enabled_) std::fputc('\n', stderr);
}

}  // namespace kvcali_cli
