// kvcali calibrate: config.json + activations (npy files) -> the record file of scales and offsets.
#include <kvcali/calibration/calibrator.hpp>
#include <kvcali/calibration/activations.hpp>
#include <kvcali/calibration/layout.hpp>
#include <kvcali/calibration/npy.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/io.hpp>

#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

/// --jobs N: a positive number, at most 1024; by default the number of cores.
unsigned jobs_option(const parsed_args& args) {
    const auto text = args.get("jobs");
    if (!text) return std::max(1u, std::thread::hardware_concurrency());
    unsigned n = 0;
    const auto r = std::from_chars(text->data(), text->data() + text->size(), n);
    if (r.ec != std::errc{} || r.ptr != text->data() + text->size() || n == 0 || n > 1024) {
        throw usage_error("--jobs expects a number of threads from 1 to 1024, not \"" + *text + "\"");
    }
    return n;
}

/// Feeds every layer's batches to the calibrator, `jobs` layers at a time (each layer on one
/// thread, layers taken in the config's order). On errors, the one of the earliest layer in the
/// config's order is thrown (the error a single thread would meet first), so the outcome is the
/// same for any `jobs`. Calls `progress(done layers, values, bytes)` from this thread.
template <class Progress>
void calibrate_layers(kvcali::calibrator& cal, const kvcali::resolved_config& config, const std::filesystem::path& dir, unsigned jobs,
                      Progress progress) {
    const std::size_t layers = config.layers.size();
    std::atomic<std::size_t> next{0}, done{0};
    std::atomic<std::uint64_t> values{0}, bytes{0};
    std::atomic<std::size_t> failed_at{std::numeric_limits<std::size_t>::max()};
    std::exception_ptr failure;
    std::mutex lock;
    std::condition_variable wake;
    std::size_t running = 0;

    auto calibrate_layer = [&](std::size_t i) {
        const auto& layer = config.layers[i];
        for (std::uint32_t k = 0; k < config.batch_num; ++k) {
            if (failed_at.load() < i) return;  // an earlier layer failed: its error is the one reported
            const std::filesystem::path file = kvcali::activation_file(dir, layer.name, k);
            const kvcali::npy_view a = kvcali::map_npy(file);
            try {
                cal.observe(layer.name, a.data(), a.type, a.shape);
            } catch (const kvcali::error& e) {
                std::vector<kvcali::diagnostic> ds = e.diagnostics();
                for (auto& d : ds) {
                    if (d.where.file.empty()) d.where.file = file.string();
                }
                throw kvcali::error(e.code(), std::move(ds));
            }
            values += a.size();
            bytes += a.size_bytes();
            wake.notify_one();
        }
    };
    auto worker = [&] {
        while (true) {
            const std::size_t i = next++;
            if (i >= layers || i > failed_at.load()) break;
            try {
                calibrate_layer(i);
                ++done;
            } catch (...) {
                const std::lock_guard<std::mutex> g(lock);
                if (i < failed_at.load()) {
                    failed_at = i;
                    failure = std::current_exception();
                }
            }
        }
        const std::lock_guard<std::mutex> g(lock);
        --running;
        wake.notify_one();
    };
    std::vector<std::thread> threads;
    const std::size_t count = std::max<std::size_t>(1, std::min<std::size_t>(jobs, layers));
    running = count;
    for (std::size_t t = 0; t < count; ++t) threads.emplace_back(worker);
    {
        std::unique_lock<std::mutex> g(lock);
        while (running > 0) {
            wake.wait_for(g, std::chrono::milliseconds(100));
            if (running > 0) progress(done.load(), values.load(), bytes.load());
        }
    }
    for (auto& t : threads) t.join();
    progress(done.load(), values.load(), bytes.load());  // the final figures, once
    if (failure) std::rethrow_exception(failure);
}

/// Checks every batch file before any activation data is read (kvcali::check_activation_files), and
/// that the output is none of them (invalid_argument: writing it would destroy that file), adding one
/// diagnostic per problem to `problems`.
void check_batch_files(const kvcali::resolved_config& config, const std::filesystem::path& dir, const std::string& output,
                       std::vector<kvcali::diagnostic>& problems) {
    namespace fs = std::filesystem;
    auto found = kvcali::check_activation_files(config, dir);
    problems.insert(problems.end(), found.begin(), found.end());
    std::error_code ec;
    if (!fs::exists(output, ec)) return;
    for (const auto& layer : config.layers) {
        for (std::uint32_t k = 0; k < config.batch_num; ++k) {
            const fs::path file = kvcali::activation_file(dir, layer.name, k);
            if (fs::equivalent(file, output, ec) && !ec) {
                problems.push_back({.severity = kvcali::severity::error,
                                    .category = kvcali::errc::invalid_argument,
                                    .message = "the output (-o " + output + ") is batch " + std::to_string(k) + " of layer \"" +
                                               layer.name + "\": writing it would destroy that file; choose another output path",
                                    .where = {output, 0, 0},
                                    .layer = {},
                                    .json_path = {}});
            }
        }
    }
}

int run_calibrate(const parsed_args& args) {
    const auto config_path = args.get("config");
    const auto activations = args.get("activations");
    const auto output = args.get("output");
    if (!config_path) throw usage_error("missing --config PATH (the config.json to calibrate)");
    if (!activations) throw usage_error("missing --activations DIR (DIR/<layer, escaped>/<k>.npy holds batch k of a layer)");
    if (!output) throw usage_error("missing -o PATH (the record file to write)");
    const auto start = std::chrono::steady_clock::now();
    const bool to_stdout = names_stdout(*output);
    refuse_output_over_inputs(*output, {{"--config", *config_path}});

    kvcali::reader_options opts;
    opts.on_warning = stderr_warnings();
    const kvcali::resolved_config config = read_config_json(*config_path, opts);
    kvcali::calibrator cal(config);
    const std::filesystem::path dir = *activations;
    if (!std::filesystem::is_directory(dir)) {
        throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                               .category = kvcali::errc::io_error,
                                               .message = "cannot read activations: " + dir.string() + " is not a folder",
                                               .where = {dir.string(), 0, 0},
                                               .layer = {},
                                               .json_path = {}});
    }
    // Everything is checked before any data is read, and every problem reported at once: the record
    // file (its writer is opened now: a missing folder does not cost a whole calibration first) and
    // every batch file.
    std::vector<kvcali::diagnostic> problems;
    std::optional<kvcali::atomic_file_writer> record_file;
    if (!to_stdout) {
        try {
            record_file.emplace(*output);
        } catch (const kvcali::error& e) {
            problems = e.diagnostics();
        }
    }
    check_batch_files(config, dir, *output, problems);
    if (!problems.empty()) {
        const kvcali::errc first = problems.front().category;
        throw kvcali::error(first, std::move(problems));
    }
    const unsigned jobs = jobs_option(args);
    std::uint64_t total_bytes = 0;
    for (const auto& layer : config.layers) {
        for (std::uint32_t k = 0; k < config.batch_num; ++k) {
            std::error_code ec;
            const auto size = std::filesystem::file_size(kvcali::activation_file(dir, layer.name, k), ec);
            if (!ec) total_bytes += size;
        }
    }
    progress_bar bar("calibrate", ::isatty(2) == 1 && !args.has("quiet"), config.layers.size(), total_bytes);
    std::uint64_t values = 0;
    bar.update(0, 0, 0, true);
    calibrate_layers(cal, config, dir, jobs, [&](std::size_t done, std::uint64_t v, std::uint64_t bytes) {
        values = v;
        bar.update(done, v, bytes, done == config.layers.size());
    });
    bar.close();
    // The records in the config's order, whatever order the layers finished in.
    std::vector<kvcali::layer_record> records;
    records.reserve(config.layers.size());
    for (const auto& layer : config.layers) records.push_back({layer.name, *cal.result(layer.name)});
    const std::string text = kvcali::format_record(records);
    if (to_stdout) {
        // The record is the output: no summary line after it.
        write_to_stdout(text);
        return 0;
    }
    record_file->write(text);
    record_file->commit();
    if (!args.has("quiet")) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("wrote %s: %zu layer%s (%s), %llu values read in %.2f s\n", output->c_str(), config.layers.size(),
                    config.layers.size() == 1 ? "" : "s", algorithm_counts(config).c_str(), static_cast<unsigned long long>(values),
                    seconds);
    }
    return 0;
}

command make_calibrate() {
    command c;
    c.name = "calibrate";
    c.summary = "compute scales and offsets from activations: config.json -> record file";
    c.usage = "kvcali calibrate --config PATH --activations DIR -o PATH [--jobs N] [--quiet]";
    c.description =
        "DIR/<layer name>/<k>.npy holds batch k (k = 0 .. batch_num-1) of a layer's output: little-endian float32\n"
        "or float16, C order, rank >= 1, the last dimension the channels. The layer name is one folder name: bytes\n"
        "other than A-Z a-z 0-9 . _ - become %XX (\"/layers.0/k_proj/MatMul\" is \"%2Flayers.0%2Fk_proj%2FMatMul\"),\n"
        "\".\" and \"..\" are \"%2E\" and \"%2E%2E\", and a name over 255 bytes escaped is cut to 200 bytes + \"~\" +\n"
        "its 64-bit FNV-1a hash in hex (see README.md). Layers are calibrated --jobs at a time (default: the number\n"
        "of cores), each on one thread, and written in the config's order: the output is the same for any N. Files\n"
        "are memory-mapped, not copied. A progress bar (layers done, values/s, time left) is shown on a terminal,\n"
        "and one summary line at the end. Every file is checked (it exists, its npy\n"
        "header and dtype) before any data is read, and every problem is reported. On any error nothing is written.\n"
        "`-o -` writes the record to stdout, with no summary line. An output that is the --config file is refused.";
    c.options.push_back({"config", 0, true, false, "the config.json (as `kvcali generate` or AMCT wrote it)", "PATH"});
    c.options.push_back({"activations", 'a', true, false, "the folder of activations", "DIR"});
    c.options.push_back({"output", 'o', true, false, "the record file to write (- for stdout)", "PATH"});
    c.options.push_back({"jobs", 'j', true, false, "layers calibrated at once, each on one thread (default: the number of cores)", "N"});
    c.options.push_back({"quiet", 'q', false, false, "no progress bar and no summary line", ""});
    c.run = run_calibrate;
    return c;
}

const registrar reg{make_calibrate()};

}  // namespace
}  // namespace kvcali_cli
