// kvcali report: per-layer quality figures of calibrated scales, as an HTML
// page and as JSON.
#include <kvcali/calibration/record.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/io.hpp>
#include <kvcali/report.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli.hpp"

namespace kvcali_cli {
namespace {

int run_report(const parsed_args& args) {
    const auto config_path = args.get("config");
    const auto activations = args.get("activations");
    const auto record_path = args.get("record");
    const auto output = args.get("output");
    const auto json_path = args.get("json");
    if (!config_path)
        throw usage_error(
            "missing --config PATH (the config.json the record was "
            "calibrated with)");
    if (!activations)
        throw usage_error(
            "missing --activations DIR (DIR/<layer, escaped>/<k>.npy "
            "holds batch k of a layer)");
    if (!output) throw usage_error("missing -o PATH (the HTML page to write)");
    const auto start = std::chrono::steady_clock::now();
    const bool quiet = args.has("quiet");
    std::vector<named_input> inputs{{"--config", *config_path}};
    if (record_path) inputs.push_back({"--record", *record_path});
    refuse_output_over_inputs(*output, inputs);
    if (json_path) {
        inputs.push_back({"-o", *output});
        refuse_output_over_inputs(*json_path, inputs);
    }

    kvcali::reader_options opts;
    opts.on_warning = stderr_warnings();
    const kvcali::resolved_config config = read_config_json(*config_path, opts);
    kvcali::report_request request;
    request.config_file = *config_path;
    if (record_path) {
        request.record_file = *record_path;
        request.record = kvcali::parse_record(kvcali::read_file(*record_path), *record_path);
    } else if (!quiet) {
        std::fprintf(stderr,
                     "kvcali report: no --record given: calibrating %zu layer%s "
                     "from %s first (as kvcali calibrate would)\n",
                     config.layers.size(), config.layers.size() == 1 ? "" : "s", activations->c_str());
    }

    // Both outputs' writers are opened before any data is read (their problems
    // reported with the inputs'); both are committed only when everything has
    // been computed and written.
    std::vector<kvcali::diagnostic> problems;
    std::optional<kvcali::atomic_file_writer> page_file, json_file;
    try {
        page_file.emplace(*output);
    } catch (const kvcali::error& e) {
        problems = e.diagnostics();
    }
    if (json_path) {
        try {
            json_file.emplace(*json_path);
        } catch (const kvcali::error& e) {
            problems.insert(problems.end(), e.diagnostics().begin(), e.diagnostics().end());
        }
    }
    const std::filesystem::path dir = *activations;
    if (!std::filesystem::is_directory(dir)) {
        problems.push_back({.severity = kvcali::severity::error,
                            .category = kvcali::errc::io_error,
                            .message = "cannot read activations: " + dir.string() + " is not a folder",
                            .where = {dir.string(), 0, 0},
                            .layer = {},
                            .json_path = {}});
    } else {
        auto found = kvcali::check_report_inputs(config, dir, request);
        problems.insert(problems.end(), found.begin(), found.end());
    }
    if (!problems.empty()) {
        const kvcali::errc first = problems.front().category;
        throw kvcali::error(first, std::move(problems));
    }

    progress_bar bar("report", ::isatty(2) == 1 && !quiet, config.layers.size());
    bar.update(0, 0, 0, true);
    request.on_progress = [&](const kvcali::report_progress& p) {
        bar.update(p.layers_done, p.values_read, 0, p.layers_done == p.layers_total);
    };
    const kvcali::quality_report report = kvcali::build_quality_report(config, dir, request);
    bar.close();

    page_file->write(kvcali::quality_report_html(report));
    if (json_file) json_file->write(kvcali::quality_report_json(report));
    page_file->commit();
    if (json_file) json_file->commit();
    if (!quiet) {
        std::size_t flagged = 0;
        for (const auto& l : report.layers) flagged += l.flags.empty() ? 0 : 1;
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("wrote %s%s%s: %zu layer%s, %zu flagged%s, in %.2f s\n", output->c_str(), json_path ? " and " : "",
                    json_path ? json_path->c_str() : "", report.layers.size(), report.layers.size() == 1 ? "" : "s", flagged,
                    report.calibrated_here ? " (scales calibrated here: no --record)" : "", seconds);
    }
    return 0;
}

command make_report() {
    command c;
    c.name = "report";
    c.summary = "per-layer quality of calibrated scales, as an HTML page (and JSON)";
    c.usage =
        "kvcali report --config PATH --activations DIR [--record PATH] -o "
        "PATH [--json PATH] [--quiet]";
    c.description =
        "For every layer of the config, on its activations (the "
        "layout `kvcali calibrate` reads): the data (count,\n"
        "min, max, absmax, mean, std), and for the record's scales "
        "and offsets, plain min/max, the other algorithm\n"
        "with its defaults (IFMR for an HFMG layer and the reverse) "
        "and FP8 E4M3 (scale amax/448): the clip range,\n"
        "the fraction clipped, and the round trip's MSE, SQNR (dB), "
        "largest absolute error and cosine similarity;\n"
        "per channel too for per-channel layers. Flags: SQNR below "
        "20 dB, more than 1% clipped, a channel whose\n"
        "range is 100x the median channel's. -o writes one "
        "self-contained HTML page (summary, a sortable table,\n"
        "a histogram per layer); --json the same figures as data "
        "(schema/report.schema.json). Without --record the\n"
        "layers are calibrated first, as `kvcali calibrate` would, "
        "and the page says so. Everything is checked\n"
        "before any data is read (the files, the record against the "
        "config); on any error nothing is written.";
    c.options.push_back({"config", 0, true, false, "the config.json (as `kvcali generate` or AMCT wrote it)", "PATH"});
    c.options.push_back({"activations", 'a', true, false, "the folder of activations", "DIR"});
    c.options.push_back({"record", 0, true, false, "the record file (`kvcali calibrate -o`); without it: calibrate first", "PATH"});
    c.options.push_back({"output", 'o', true, false, "the HTML page to write", "PATH"});
    c.options.push_back({"json", 0, true, false, "also write the figures as JSON", "PATH"});
    c.options.push_back({"quiet", 'q', false, false, "no progress bar, no notes and no summary line", ""});
    c.run = run_report;
    return c;
}

const registrar reg{make_report()};

}  // namespace
}  // namespace kvcali_cli
