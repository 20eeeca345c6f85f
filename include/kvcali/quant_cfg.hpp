// kvcali: reading the simple config file (quant.cfg, protobuf text format, or the same schema
// as JSON) into a simple_config. Spec §2: the whole text format, merge semantics, located
// diagnostics. The stages: text -> located document (detail/text_format.hpp, or
// detail/text_format_json.hpp) -> bound to the schema the policies describe
// (detail/text_format_bind.hpp).
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "detail/text_format.hpp"
#include "detail/text_format_bind.hpp"
#include "detail/text_format_json.hpp"
#include "detail/text_format_plain.hpp"
#include "error.hpp"
#include "io.hpp"
#include "policy.hpp"
#include "simple_config.hpp"

namespace kvcali {

/// Parses quant.cfg text (protobuf text format for AMCTQuantCaliConfig) and binds it to the
/// schema that `algorithms` describe (each policy's `cfg_block` is a member of CalibrationConfig).
/// Problems go to `diags` as parse_error with `file:line:column` (1-based, byte columns): a syntax
/// error stops reading; every semantic error (unknown field, wrong type, out of range, unknown
/// enum value) is reported. Merge semantics: a repeated singular field keeps the last value, a
/// repeated message is merged, a later algorithm block replaces an earlier one (kept in
/// `discarded`); each of these is a warning (strict mode: an error).
/// The result is meaningful only when `diags` has no errors.
/// Example: `auto cfg = kvcali::parse_simple_config(text, "quant.cfg", kvcali::default_policies::algorithms, diags);`
inline simple_config parse_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                         diagnostics& diags, const simple_config_limits& limits) {
    {
        // Most files are plain (see text_format_plain.hpp): read straight into the result.
        simple_config cfg;
        cfg.file = file;
        if (detail::read_plain_simple_config(text, file, algorithms, limits, cfg)) return cfg;
    }
    simple_config cfg;
    cfg.file = file;
    detail::cfg_document doc;
    if (detail::read_text_format(text, file, diags, doc, limits)) {
        detail::document_binder(file, false, algorithms, diags, limits).bind(doc, cfg);
    }
    return cfg;
}

/// As above, with the default limits (simple_config_limits).
inline simple_config parse_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                         diagnostics& diags) {
    return parse_simple_config(text, file, algorithms, diags, simple_config_limits{});
}

/// The same schema written as JSON: `{"batch_num": 2, "kv_cache_quant_config": {"quant_layers":
/// ["a"], "calibration_config": {"ifmr_quantize": {"search_step": 0.02}}}, "override_layers_configs":
/// [{"layer_name": "b", "kv_data_quant_config": {"hfmg_quantize": {"num_of_bins": 2048}}}]}`.
/// Objects are messages (proto field names), arrays repeated fields; enums by name ("per_channel")
/// or number; floats as numbers (correctly rounded) or "NaN"/"Infinity"/"-Infinity". Diagnostics
/// name the JSON path (`$.kv_cache_quant_config.quant_layers[2]`, also in `diagnostic::json_path`);
/// JSON syntax errors give line:column. Duplicate keys follow the same merge rules.
inline simple_config parse_simple_config_json(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                              diagnostics& diags, const simple_config_limits& limits = {}) {
    simple_config cfg;
    cfg.file = file;
    detail::cfg_document doc;
    if (detail::read_json_document(text, file, diags, doc, limits)) {
        detail::document_binder(file, true, algorithms, diags, limits).bind(doc, cfg);
    }
    return cfg;
}

/// Reads and parses a simple config file: JSON when the name ends in `.json`, text format
/// otherwise. Errors: io_error when it cannot be read (thrown); a file over `limits.max_bytes` is a
/// parse_error in `diags` and is not read.
inline simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms, diagnostics& diags,
                                        const simple_config_limits& limits) {
    const std::string name = path.string();
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (!ec && size > limits.max_bytes) {
        simple_config cfg;
        cfg.file = name;
        diags.add({severity::error, errc::parse_error,
                   "the file is " + std::to_string(size) + " bytes, larger than the limit of " + std::to_string(limits.max_bytes) +
                       " bytes",
                   {name, 0, 0}, {}, {}});
        return cfg;
    }
    const std::string text = read_file(path, limits.max_bytes);
    if (path.extension() == ".json") return parse_simple_config_json(text, name, algorithms, diags, limits);
    return parse_simple_config(text, name, algorithms, diags, limits);
}

/// As above, with the default limits.
inline simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms, diagnostics& diags) {
    return load_simple_config(path, algorithms, diags, simple_config_limits{});
}

}  // namespace kvcali
