// kvcali report: the quality report of a calibration, from config.json's
// layers, their activations (the layout `kvcali calibrate` reads) and the
// record (or a calibration run here when there is none). One layer at a time:
// memory stays near one layer's values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "../calibration/record.hpp"
#include "../config_reader.hpp"
#include "../detail/config.hpp"
#include "../error.hpp"
#include "figures.hpp"

namespace kvcali {

/// A whole report: every layer of the config, in the config's order.
struct quality_report {
    std::vector<layer_quality> layers;
    bool calibrated_here = false;  ///< no record was given: the scales come from
                                   ///< calibrating the activations
    std::string config_file;       ///< for the page's header (may be empty)
    std::string record_file;
    std::string activations_dir;
    std::uint32_t batch_num = 1;
    flag_thresholds thresholds;
};

/// Progress of `build_quality_report`, after each layer.
struct report_progress {
    std::size_t layers_done = 0;
    std::size_t layers_total = 0;
    std::uint64_t values_read = 0;
};

/// What `build_quality_report` takes besides the config and the activations.
struct report_request {
    /// The record's layers (`parse_record`); empty: calibrate first, as `kvcali calibrate` would.
    std::optional<std::vector<layer_record>> record;
    std::string record_file;  ///< names the record in messages
    std::string config_file;  ///< names the config in the report
    flag_thresholds thresholds;
    std::size_t histogram_bins = 100;
    std::function<void(const report_progress&)> on_progress;  ///< called after each layer (the library never prints)
};

/// Everything that can be checked before any activation data is read, every problem at once: each
/// batch file exists with a valid npy header (io_error, invalid_data, naming the file); a
/// per-channel layer's batches share their last dimension (invalid_data); every config layer is in
/// the record (incomplete_calibration), every record layer in the config (unknown_layer: a record
/// of another config), no record layer twice (invalid_data), and each layer's scale and offset
/// counts fit its granularity (invalid_data). Returns the diagnostics (empty: all fine).
KVCALI_DECL std::vector<diagnostic> check_report_inputs(const resolved_config& config, const std::filesystem::path& dir,
                                                        const report_request& request);

/// Builds the report: checks everything first (`check_report_inputs`, all problems in one
/// `kvcali::error`), then reads each layer's batches (one layer in memory at a time), calibrates it
/// when no record is given (`kvcali::calibrator`, as `kvcali calibrate`), and assesses it
/// (`assess_layer`). Errors: throws `kvcali::error`: the checks' categories; invalid_data for a
/// non-finite value (naming the file and the layer) and for what the calibrator refuses. Example:
/// `auto r = kvcali::build_quality_report(kvcali::read_quant_cali_config("config.json"), "act",
/// {});`
KVCALI_DECL quality_report build_quality_report(const resolved_config& config, const std::filesystem::path& dir,
                                                const report_request& request);

/// `build_quality_report` without exceptions: the report, or the diagnostics that stopped it
/// (`code()` their category). Example: `if (auto r = kvcali::try_build_quality_report(doc, "act", {}); r) use(*r.value);`
KVCALI_DECL outcome<quality_report> try_build_quality_report(const resolved_config& config, const std::filesystem::path& dir,
                                                             const report_request& request);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/report_build.ipp"  // IWYU pragma: export
#endif
