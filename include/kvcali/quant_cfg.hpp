// kvcali: reading the simple config file (quant.cfg, protobuf text format) into a simple_config.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "error.hpp"
#include "io.hpp"
#include "policy.hpp"
#include "simple_config.hpp"

namespace kvcali {

/// Parses quant.cfg text and binds it to the schema described by `algorithms`. Problems are
/// recorded in `diags` with `file:line:column`; the result is meaningful only without errors.
inline simple_config parse_simple_config(std::string_view /*text*/, const std::string& file,
                                         algorithm_registry /*algorithms*/, diagnostics& diags) {
    simple_config cfg;
    cfg.file = file;
    diags.add({severity::error, errc::invalid_argument,
               "reading a simple config file is not supported yet (" + file + ")", {file, 0, 0}, {}, {}});
    return cfg;
}

/// Reads and parses a simple config file (io_error when it cannot be read).
inline simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms,
                                        diagnostics& diags) {
    const std::string text = read_file(path);
    return parse_simple_config(text, path.string(), algorithms, diags);
}

}  // namespace kvcali
