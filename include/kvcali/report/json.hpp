// kvcali report: the report as JSON (schema/report.schema.json).
#pragma once

#include <string>

#include "../detail/config.hpp"
#include "build.hpp"

namespace kvcali {

namespace detail {

/// A double as the shortest text that reads back as it (std::to_chars); null when not finite.
KVCALI_DECL void append_json_double(std::string& out, double v);

/// A float32 as the shortest text that reads back as it (std::to_chars on the float); null when not
/// finite.
KVCALI_DECL void append_json_float(std::string& out, float v);

}  // namespace detail

/// The report as JSON text (one layer per line). Keys: `calibrated_here`,
/// `batch_num`, `thresholds`, `layers`: each `{name, act_algo, other_algo,
/// granularity ("per_tensor" | "per_channel"), with_offset, count, min, max,
/// absmax, mean, std, record, minmax, other_algorithm, fp8, best, flags,
/// wide_channels, median_channel_range[, channels]}`, each method `{scale:
/// [...], offset: [...], lo, hi, clip_fraction, mse, sqnr_db, max_abs_error,
/// cosine}` (`other_algorithm` null when there is none). Per-channel layers add
/// `channels`:
/// `{index, count, min, max, absmax, mean, std, record, minmax,
/// other_algorithm, fp8}` with scalar `scale` and `offset`. Numbers: shortest
/// round-trip text (float32 values as float32); non-finite figures (an SQNR
/// without error) are null. Example: `std::string text =
/// kvcali::quality_report_json(report);`
KVCALI_DECL std::string quality_report_json(const quality_report& r);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/report_json.ipp"  // IWYU pragma: export
#endif
