// kvcali: reading the simple config file (quant.cfg, protobuf text format, or the same schema
// as JSON) into a simple_config. Spec §2: the whole text format, merge semantics, located
// diagnostics. The stages: text -> located document (detail/text_format.hpp, or
// detail/text_format_json.hpp) -> bound to the schema the policies describe
// (detail/text_format_bind.hpp).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "detail/config.hpp"
#include "error.hpp"
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
KVCALI_COLD KVCALI_DECL simple_config parse_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                                          diagnostics& diags, const simple_config_limits& limits);

/// As above, with the default limits (simple_config_limits).
KVCALI_COLD KVCALI_DECL simple_config parse_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                                          diagnostics& diags);

/// The same schema written as JSON: `{"batch_num": 2, "kv_cache_quant_config": {"quant_layers":
/// ["a"], "calibration_config": {"ifmr_quantize": {"search_step": 0.02}}}, "override_layers_configs":
/// [{"layer_name": "b", "kv_data_quant_config": {"hfmg_quantize": {"num_of_bins": 2048}}}]}`.
/// Objects are messages (proto field names), arrays repeated fields; enums by name ("per_channel")
/// or number; floats as numbers (correctly rounded) or "NaN"/"Infinity"/"-Infinity". Diagnostics
/// name the JSON path (`$.kv_cache_quant_config.quant_layers[2]`, also in `diagnostic::json_path`);
/// JSON syntax errors give line:column. Duplicate keys follow the same merge rules.
KVCALI_COLD KVCALI_DECL simple_config parse_simple_config_json(std::string_view text, const std::string& file,
                                                               algorithm_registry algorithms, diagnostics& diags,
                                                               const simple_config_limits& limits = {});

/// Reads and parses a simple config file: JSON when the name ends in `.json`, text format
/// otherwise. Errors: io_error when it cannot be read (thrown); a file over `limits.max_bytes` is a
/// parse_error in `diags` and is not read.
KVCALI_COLD KVCALI_DECL simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms,
                                                         diagnostics& diags, const simple_config_limits& limits);

/// As above, with the default limits.
KVCALI_COLD KVCALI_DECL simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms,
                                                         diagnostics& diags);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/quant_cfg.ipp"  // IWYU pragma: export
#endif
