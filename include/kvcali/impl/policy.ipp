// kvcali: the built-in policies' checks (declared in policy.hpp): included at the end of that
// header (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "../detail/concat.hpp"
#include "../json_format.hpp"
#include "../policy.hpp"

namespace kvcali {

KVCALI_DECL check_result checks::histogram_bins(const param_value& v) {
    switch (v.uint) {
        case 1024:
        case 2048:
        case 4096:
        case 8192: return check_result::ok();
        default: return check_result::fail("must be one of 1024, 2048, 4096, 8192");
    }
}

KVCALI_DECL void detail::ifmr_cross_check(const param_view& v, std::vector<check_result>& out) {
    const float start = v.real("search_range_start"), end = v.real("search_range_end"), step = v.real("search_step");
    if (!std::isfinite(start) || !std::isfinite(end) || !std::isfinite(step)) return;
    if (start > end) {
        out.push_back(check_result::fail(detail::concat(
            {"search_range_start (", checks::show(start), ") must not be greater than search_range_end (", checks::show(end), ")"})));
        return;
    }
    if (step <= 0.0f) return;
    const double range = static_cast<double>(end) - static_cast<double>(start);
    if (range == 0.0) {
        out.push_back(
            check_result::warn("search_range_start equals search_range_end: the search has no candidate "
                               "and calibration will fail"));
    } else if (static_cast<double>(step) > range) {
        // The range as its two ends: their float32 difference would show rounding noise (0.59999996).
        out.push_back(check_result::warn(detail::concat({"search_step (", checks::show(step), ") is larger than the search range [",
                                                         checks::show(start), ", ", checks::show(end), "]: only one candidate is tried"})));
    } else if (std::ceil(range / static_cast<double>(step)) > 100000.0) {
        out.push_back(check_result::warn("the search range holds more than 100000 steps: calibration will refuse it"));
    }
}

}  // namespace kvcali
