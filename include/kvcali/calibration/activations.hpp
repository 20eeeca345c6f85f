// kvcali calibration: checking an activations folder (the layout of layout.hpp) before reading it.
#pragma once

#include "../error.hpp"
#include "../resolved_config.hpp"
#include "layout.hpp"
#include "npy.hpp"

#include <filesystem>
#include <vector>

namespace kvcali {

/// Checks every batch file of every layer of `config` under `dir` before any activation data is
/// read: the file exists and its npy header is valid with a dtype kvcali reads. Returns one
/// diagnostic per problem (io_error for a missing or unreadable file, invalid_data for a bad header
/// or dtype), every one naming its file; empty when all are fine. Reads only the headers.
/// Example: `auto problems = kvcali::check_activation_files(config, "activations");`
inline std::vector<diagnostic> check_activation_files(const resolved_config& config, const std::filesystem::path& dir) {
    std::vector<diagnostic> problems;
    for (const auto& layer : config.layers) {
        for (std::uint32_t k = 0; k < config.batch_num; ++k) {
            try {
                (void)read_npy_header(activation_file(dir, layer.name, k));
            } catch (const error& e) {
                problems.insert(problems.end(), e.diagnostics().begin(), e.diagnostics().end());
            }
        }
    }
    return problems;
}

}  // namespace kvcali
