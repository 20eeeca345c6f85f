// kvcali calibration: checking an activations folder (the layout of layout.hpp) before reading it.
#pragma once

#include "../detail/config.hpp"
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
KVCALI_DECL std::vector<diagnostic> check_activation_files(const resolved_config& config, const std::filesystem::path& dir);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/activations.ipp"  // IWYU pragma: export
#endif
