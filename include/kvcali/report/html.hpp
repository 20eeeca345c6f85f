// kvcali report: the report as one self-contained HTML page (inline CSS and
// SVG, a little inline script for sorting the table; nothing fetched from
// anywhere).
#pragma once

#include <string>

#include "../detail/config.hpp"
#include "build.hpp"

namespace kvcali {

/// The report as one self-contained HTML page: a summary (layers, the five
/// worst by the record's SQNR, how many are flagged, which method would have
/// been best), a table of all layers that sorts by any column (click a header;
/// `#sort=KEY` or `#sort=-KEY` in the URL sorts at load), and per layer its
/// figures, a histogram of its values (log-scale counts) with the clip range
/// drawn, and for per-channel layers each channel's [min, max] against its [lo,
/// hi]. Inline CSS and SVG and a short inline script; nothing is fetched.
/// Example: `std::string page = kvcali::quality_report_html(report);`
KVCALI_DECL std::string quality_report_html(const quality_report& r);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/report_html.ipp"  // IWYU pragma: export
#endif
