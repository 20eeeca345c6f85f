// The kvcali command-line tool: shared pieces of its commands.
#pragma once

#include <kvcali/error.hpp>
#include <kvcali/generate.hpp>
#include <kvcali/layer_table.hpp>
#include <kvcali/resolved_config.hpp>
#include <kvcali/simple_config.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvcali {
struct reader_options;  // config_reader.hpp
}  // namespace kvcali

namespace kvcali_cli {

/// Command-line syntax errors (unknown command or option, missing value): exit status 2.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// One option a command accepts.
struct option_spec {
    std::string long_name;  ///< without dashes: "model"
    char short_name = 0;    ///< 'o', or 0
    bool takes_value = true;
    bool repeatable = false;
    std::string help;
    std::string value_name = "VALUE";
};

/// Parsed arguments of one command.
class parsed_args {
public:
    bool has(std::string_view name) const { return values_.contains(std::string(name)); }
    std::optional<std::string> get(std::string_view name) const {
        auto it = values_.find(std::string(name));
        if (it == values_.end() || it->second.empty()) return std::nullopt;
        return it->second.back();
    }
    std::vector<std::string> all(std::string_view name) const {
        auto it = values_.find(std::string(name));
        return it == values_.end() ? std::vector<std::string>{} : it->second;
    }
    const std::vector<std::string>& positional() const { return positional_; }

    std::map<std::string, std::vector<std::string>> values_;
    std::vector<std::string> positional_;
};

/// A subcommand of `kvcali`.
struct command {
    std::string name;
    std::string summary;
    std::string usage;        ///< "kvcali generate --model PATH ..."
    std::string description;  ///< paragraphs after the usage line
    std::vector<option_spec> options;
    std::size_t max_positional = 0;
    std::function<int(const parsed_args&)> run;
};

/// A one-line progress bar on stderr for the commands that read activations (calibrate, report),
/// redrawn at most ten times a second: `LABEL [####....] done/layers layers, M values/s` and, at the
/// end, the time taken; with `total_bytes` (all the files' bytes), also the time left while reading.
/// Disabled (it draws nothing) when `enabled` is false: --quiet, or stderr not a terminal.
class progress_bar {
public:
    progress_bar(std::string label, bool enabled, std::size_t layers, std::uint64_t total_bytes = 0);
    void update(std::size_t done, std::uint64_t values, std::uint64_t bytes = 0, bool force = false);
    void close();

private:
    using clock = std::chrono::steady_clock;
    std::string label_;
    bool enabled_;
    std::size_t layers_;
    std::uint64_t total_bytes_;
    clock::time_point start_, last_;
};

/// Every registered command, in registration order.
std::vector<command>& commands();

/// Registers a command at static-initialisation time: `static registrar r{command{...}};`.
struct registrar {
    explicit registrar(command c);
};

/// Parses `args` for `cmd`; throws usage_error: an unknown option (with a did-you-mean: `--config`
/// for `--cfg`), a missing or empty value (`--model=`), a value given to a flag, an option given
/// twice that may not be, too many arguments. `--help` is handled by the caller.
parsed_args parse_args(const command& cmd, const std::vector<std::string>& args);

/// The help text of a command.
std::string help_text(const command& cmd);

/// Prints one diagnostic to stderr like a compiler (colour only on a terminal without NO_COLOR).
void print_diagnostic(const kvcali::diagnostic& d);
void print_diagnostics(const std::vector<kvcali::diagnostic>& ds);

/// A warning sink printing to stderr.
kvcali::warning_sink stderr_warnings();

/// Loads a model by its file name: `.json` (layer list), `.pt`/`.pth`/`.ts` (TorchScript, when
/// built with torch), `.onnx` (when built with ONNX). Throws kvcali::error. With `strict`, the
/// loader's warnings (an eligible ONNX node inside a subgraph) are errors.
kvcali::layer_table load_model(const std::string& path, bool strict = false);

/// The `--quant-layers JSON|PATH` and `--layer NAME` options as the quant_layers argument (empty
/// when neither is given). Text starting with `{` (the object {"kv_cache_quant_layers": [...]}) or
/// `[` (a bare array of names) is inline JSON; anything else is a file path, whose text may be
/// either form too.
std::optional<kvcali::quant_layers> quant_layers_from(const parsed_args& args);

/// Whether `--quant-layers VALUE` names a file (rather than giving JSON inline).
bool quant_layers_names_a_file(std::string_view value);

/// An input file of a command, as its option names it: {"--cfg", "quant.cfg"}.
struct named_input {
    std::string option;
    std::string path;
};

/// Refuses an output path that names one of the inputs (the same file, through any link, or the
/// same path lexically when either does not exist): writing it would destroy the input. `-` and
/// paths naming stdout are never an input. Errors: throws kvcali::error (invalid_argument) naming
/// the output and the option of the input.
/// Example: `refuse_output_over_inputs(output, {{"--model", model}, {"--cfg", cfg}});`
void refuse_output_over_inputs(const std::string& output, const std::vector<named_input>& inputs);

/// Throws kvcali::error (invalid_model, naming `path`) when a model has no layers at all.
void require_layers(const kvcali::layer_table& model, const std::string& path);

/// Reads config.json as calibration does (kvcali::read_quant_cali_config). When it fails and the
/// file looks like a quant.cfg (the text format), the error says so and points to `kvcali check`.
kvcali::resolved_config read_config_json(const std::string& path, const kvcali::reader_options& opts);

/// "hfmg 7, ifmr 1": how many layers of the document use each algorithm, in order of first use.
std::string algorithm_counts(const kvcali::resolved_config& doc);

/// The options `--model`, `--cfg`, `--quant-layers`, `--layer`, `--strict` shared by the commands
/// that resolve a config.
std::vector<option_spec> resolve_options();

/// The value of option `name`; throws usage_error(`missing`) when it is absent or empty.
std::string required(const parsed_args& args, std::string_view name, const char* missing);

/// What `generate`, `check` and `explain` read from resolve_options(): the options (--strict,
/// warnings to stderr), the model loaded, the quant_layers argument and the quant.cfg path.
struct resolve_request {
    kvcali::options opts;
    kvcali::layer_table model;
    std::optional<kvcali::quant_layers> layers;
    std::optional<std::filesystem::path> cfg;
};
/// Throws usage_error without --model; kvcali::error when the model or --quant-layers cannot be read.
resolve_request read_resolve_request(const parsed_args& args);

/// One line about a resolved document: layers, algorithms, globals.
std::string summary_of(const kvcali::resolved_config& doc);

/// Whether the output path `-o PATH` means standard output: `-`, or a path naming the file stdout
/// is already open on (`/dev/stdout`, `/proc/self/fd/1`, the file stdout was redirected to). Such
/// output goes to stdout as it is (after `>>`, appended), and no summary line is printed.
/// Example: `if (names_stdout(output)) write_to_stdout(bytes);`
bool names_stdout(const std::string& path);

/// Writes `bytes` to standard output (flushing what stdio holds first). Errors: throws
/// kvcali::error (io_error) naming `<stdout>` when a write fails.
void write_to_stdout(std::string_view bytes);

/// True when stdout is a terminal and colour is allowed.
bool colour_stdout();
bool colour_stderr();

/// Runs `body`, turning kvcali::error into printed diagnostics and exit status 1.
int guarded(const std::function<int()>& body);

}  // namespace kvcali_cli
