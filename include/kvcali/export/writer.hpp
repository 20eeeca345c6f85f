// kvcali export: an export plan written into a folder, every file atomically, all or none.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "../detail/config.hpp"
#include "plan.hpp"

namespace kvcali {

/// One file of an export, with its new bytes.
struct export_file {
    std::filesystem::path path;
    std::string bytes;
};

/// The files an export writes into `dir`, with their new bytes, computed before anything is
/// written. Without `into`: the plan's safetensors file and documents as they are. With `into`
/// (merging into an existing checkpoint or export in `dir`): an existing safetensors file of the
/// same name keeps its other tensors byte for byte (and its metadata, producer updated);
/// ascend-c8's `quant_model_description.json` keeps its other keys, the new entries taking its
/// `model_quant_type` value when it has one (else `C8`); compressed-tensors' scheme goes into
/// `dir/config.json` under `quantization_config.kv_cache_scheme` (other keys kept; a missing
/// `quantization_config` is created with `"quant_method": "compressed-tensors"`); an existing
/// `model.safetensors.index.json` gets the new tensors in its `weight_map`.
/// Errors: `kvcali::error` with every problem: io_error (a folder missing with `into`, a target
/// that is a folder or read-only, a file that cannot be read), invalid_data (an existing file
/// that cannot be merged), invalid_argument (compressed-tensors `into` a folder without config.json).
KVCALI_DECL std::vector<export_file> prepare_export(const export_plan& plan, const std::filesystem::path& dir, bool into);

/// Writes prepared files: every file's bytes go to a temporary beside it first (any failure there:
/// nothing changes, and a folder created for them is removed), then each is renamed over its
/// target. The folder of the files is created when missing.
/// Errors: `kvcali::error` (io_error) naming the file.
KVCALI_DECL void commit_export(const std::vector<export_file>& files);

/// `prepare_export` then `commit_export`: the paths written.
/// Example: `kvcali::write_export(kvcali::plan_export(records, config, opts), "out", false);`
KVCALI_DECL std::vector<std::filesystem::path> write_export(const export_plan& plan, const std::filesystem::path& dir, bool into);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/export_writer.ipp"  // IWYU pragma: export
#endif
