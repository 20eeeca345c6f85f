// kvcali: the resolved document as the reference's exact JSON bytes.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "detail/config.hpp"
#include "resolved_config.hpp"

namespace kvcali {

/// Appends the `kv_data_quant_config` object body of one layer: `{"act_algo":...,...}`, indented
/// for nesting `level` (the level of the object's own braces).
KVCALI_DECL void append_algorithm_object(std::string& out, const algorithm_desc& algo,
                                         const std::vector<std::optional<param_value>>& values, int level);

/// The bytes of config.json for `config`, identical to the reference's
/// `json.dumps(doc, indent=4, separators=(',', ':'))` (no trailing newline).
KVCALI_DECL std::string write_config_json(const resolved_config& config);

/// Writes config.json for `config` to `path` atomically (see atomic_file_writer), the same bytes
/// as write_config_json, in pieces (the document is never held whole).
KVCALI_DECL void write_config_json_file(const std::filesystem::path& path, const resolved_config& config);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/config_writer.ipp"  // IWYU pragma: export
#endif
