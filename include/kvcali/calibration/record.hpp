// kvcali calibration: the record file (protobuf text of the reference's ScaleOffsetRecord).
#pragma once

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../detail/config.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "../json_format.hpp"
#include "scale.hpp"

namespace kvcali {

/// One `record` block: a layer and its scales and offsets.
struct layer_record {
    std::string key;
    quant_factors factors;
    friend bool operator==(const layer_record&, const layer_record&) = default;
};

/// The record file's text: blocks in the given order; floats as config.json shows them (Python
/// repr of the float32), keys with `"` and `\` escaped; the text ends with `}` and a newline.
/// Example: `format_record({{"k_proj", {{0.5f}, {3}}}})`.
KVCALI_DECL std::string format_record(std::span<const layer_record> records);

/// Writes the record file atomically (see `write_file_atomic`). Throws `kvcali::error` (io_error).
KVCALI_DECL void write_record_file(const std::filesystem::path& path, std::span<const layer_record> records);

/// Parses record text in the layout `format_record` writes (any indentation, blank lines allowed).
/// Throws `kvcali::error` (parse_error) naming `file:line:column` and what was expected.
KVCALI_DECL std::vector<layer_record> parse_record(std::string_view text, const std::string& file = "<record>");

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/record.ipp"  // IWYU pragma: export
#endif
