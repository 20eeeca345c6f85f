// kvcali: report/build.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "../calibration/activations.hpp"
#include "../calibration/calibrator.hpp"
#include "../calibration/layout.hpp"
#include "../calibration/npy.hpp"
#include "../calibration/record.hpp"
#include "../config_reader.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "../report/build.hpp"
#include "../report/figures.hpp"

namespace kvcali {

namespace detail {

/// Appends the elements of a batch file to `out` as float32, checking each is finite.
inline void append_batch(std::vector<float>& out, const npy_array& a, const std::string& file, const std::string& layer, std::uint32_t k) {
    const std::size_t n = a.size();
    const std::size_t at = out.size();
    out.resize(at + n);
    float* dst = out.data() + at;
    if (a.type == dtype::float32) {
        std::memcpy(dst, a.bytes.data(), n * 4);
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            std::uint16_t h;
            std::memcpy(&h, a.bytes.data() + i * 2, 2);
            dst[i] = a.type == dtype::float16 ? half_to_float(h) : bfloat16_to_float(h);
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (!std::isfinite(dst[i])) {
            throw error(diagnostic{.severity = severity::error,
                                   .category = errc::invalid_data,
                                   .message = "layer \"" + layer + "\": value " + std::to_string(i) + " of batch " + std::to_string(k) +
                                              " is " + (std::isnan(dst[i]) ? "nan" : (dst[i] > 0 ? "inf" : "-inf")) +
                                              "; expected finite values",
                                   .where = {file, 0, 0},
                                   .layer = layer,
                                   .json_path = {}});
        }
    }
}

}  // namespace detail

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL std::vector<diagnostic> check_report_inputs(const resolved_config& config, const std::filesystem::path& dir,
                                                        const report_request& request) {
    std::vector<diagnostic> problems;
    auto add = [&](errc category, const std::string& message, const std::string& file, const std::string& layer) {
        problems.push_back({.severity = severity::error,
                            .category = category,
                            .message = message,
                            .where = {file, 0, 0},
                            .layer = layer,
                            .json_path = {}});
    };
    std::map<std::string, const layer_record*, std::less<>> records;
    if (request.record) {
        for (const auto& r : *request.record) {
            if (!records.emplace(r.key, &r).second) {
                add(errc::invalid_data, "layer \"" + r.key + "\" is in the record twice", request.record_file, r.key);
            }
        }
        std::set<std::string, std::less<>> in_config;
        for (const auto& layer : config.layers) in_config.insert(layer.name);
        for (const auto& r : *request.record) {
            if (!in_config.contains(r.key)) {
                add(errc::unknown_layer,
                    "the record has layer \"" + r.key +
                        "\", which the config does not have (a record of another "
                        "config?)",
                    request.record_file, r.key);
            }
        }
    }
    for (const auto& layer : config.layers) {
        const layer_calibration plan = calibration_of(config, layer);
        std::optional<std::int64_t> channels;
        bool agree = true, headers_ok = true;
        for (std::uint32_t k = 0; k < config.batch_num; ++k) {
            try {
                const npy_header h = read_npy_header(activation_file(dir, layer.name, k));
                if (channels && *channels != h.shape.back()) agree = false;
                channels = h.shape.back();
                if (h.size() == 0) {
                    add(errc::invalid_data,
                        "layer \"" + layer.name + "\": batch " + std::to_string(k) + " is empty; expected at least one value",
                        activation_file(dir, layer.name, k).string(), layer.name);
                }
            } catch (const error& e) {
                headers_ok = false;
                for (auto d : e.diagnostics()) {
                    if (d.layer.empty()) d.layer = layer.name;
                    problems.push_back(std::move(d));
                }
            }
        }
        const bool per_channel = plan.granularity == granularity::per_channel;
        if (per_channel && !agree) {
            add(errc::invalid_data,
                "layer \"" + layer.name +
                    "\" is per channel but its batches differ in their last "
                    "dimension (the channels)",
                activation_file(dir, layer.name, 0).string(), layer.name);
        }
        if (!request.record) continue;
        const auto it = records.find(layer.name);
        if (it == records.end()) {
            add(errc::incomplete_calibration,
                "layer \"" + layer.name +
                    "\" of the config is not in the record (a record of another "
                    "config, or of an unfinished calibration?)",
                request.record_file, layer.name);
            continue;
        }
        const quant_factors& f = it->second->factors;
        if (f.scale.size() != f.offset.size()) {
            add(errc::invalid_data,
                "layer \"" + layer.name + "\" has " + std::to_string(f.scale.size()) + " scales but " + std::to_string(f.offset.size()) +
                    " offsets in the record",
                request.record_file, layer.name);
            continue;
        }
        if (headers_ok && agree && channels) {
            const std::size_t want = per_channel && *channels > 1 ? static_cast<std::size_t>(*channels) : 1;
            if (f.scale.size() != want) {
                add(errc::invalid_data,
                    "layer \"" + layer.name + "\" has " + std::to_string(f.scale.size()) +
                        " scales in the record; its config and data need " + std::to_string(want) +
                        (want == 1 ? " (per tensor)" : " (per channel)"),
                    request.record_file, layer.name);
            }
        }
    }
    return problems;
}

KVCALI_DECL quality_report build_quality_report(const resolved_config& config, const std::filesystem::path& dir,
                                                const report_request& request) {
    if (!std::filesystem::is_directory(dir)) {
        detail::throw_io_error(dir.string(), "cannot read activations: " + dir.string() + " is not a folder");
    }
    std::vector<diagnostic> problems = check_report_inputs(config, dir, request);
    if (!problems.empty()) {
        const errc first = problems.front().category;
        throw error(first, std::move(problems));
    }
    quality_report out;
    out.calibrated_here = !request.record;
    out.config_file = request.config_file;
    out.record_file = request.record_file;
    out.activations_dir = dir.string();
    out.batch_num = config.batch_num;
    out.thresholds = request.thresholds;

    std::map<std::string, const quant_factors*, std::less<>> records;
    if (request.record) {
        for (const auto& r : *request.record) records.emplace(r.key, &r.factors);
    }
    std::optional<calibrator> cal;
    if (!request.record) cal.emplace(config);

    report_progress progress{0, config.layers.size(), 0};
    std::vector<float> values;
    std::vector<std::size_t> batch_ends;
    for (const auto& layer : config.layers) {
        const layer_calibration plan = calibration_of(config, layer);
        values.clear();
        batch_ends.clear();
        std::size_t channels = 0;
        bool agree = true;
        for (std::uint32_t k = 0; k < config.batch_num; ++k) {
            const std::filesystem::path file = activation_file(dir, layer.name, k);
            const npy_array a = read_npy(file);
            const std::size_t before = values.size();
            detail::append_batch(values, a, file.string(), layer.name, k);
            batch_ends.push_back(values.size());
            const auto c = static_cast<std::size_t>(a.shape.back());
            if (k > 0 && c != channels) agree = false;
            channels = c;
            if (cal) {
                try {
                    const std::span<const float> batch(values.data() + before, values.size() - before);
                    cal->observe(layer.name, batch, a.shape);
                } catch (const error& e) {
                    std::vector<diagnostic> ds = e.diagnostics();
                    for (auto& d : ds) {
                        if (d.where.file.empty()) d.where.file = file.string();
                    }
                    throw error(e.code(), std::move(ds));
                }
            }
            progress.values_read += a.size();
        }
        if (!agree) channels = 0;
        const quant_factors record = cal ? *cal->result(layer.name) : *records.at(layer.name);
        out.layers.push_back(
            assess_layer(plan, layer_values{values, channels, batch_ends}, record, request.thresholds, request.histogram_bins));
        ++progress.layers_done;
        if (request.on_progress) request.on_progress(progress);
    }
    return out;
}

KVCALI_DECL outcome<quality_report> try_build_quality_report(const resolved_config& config, const std::filesystem::path& dir,
                                                             const report_request& request) {
    try {
        return outcome<quality_report>(build_quality_report(config, dir, request), {});
    } catch (const error& e) {
        return outcome<quality_report>(e);
    }
}

}  // namespace kvcali
