// kvcali: calibration/activations.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include "../calibration/activations.hpp"

namespace kvcali {

KVCALI_DECL std::vector<diagnostic> check_activation_files(const resolved_config& config, const std::filesystem::path& dir) {
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
