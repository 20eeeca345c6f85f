// kvcali: calibration/scale.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <charconv>
#include <cmath>
#include <string>

#include "../calibration/scale.hpp"
#include "../error.hpp"
#include "../json_format.hpp"

namespace kvcali {

KVCALI_DECL double decimal_double(float value) {
    const std::string text = float32_repr(value);
    double out = 0.0;
    std::from_chars(text.data(), text.data() + text.size(), out);
    return out;
}

namespace detail {

[[noreturn]] KVCALI_DECL void throw_bad_scale(float scale) {
    throw error(diagnostic{.severity = severity::error,
                           .category = errc::invalid_data,
                           .message = "the calibrated scale " + float32_repr(scale) +
                                      " is not usable (expected a finite scale whose inverse is at least FLT_EPSILON)",
                           .where = {},
                           .layer = {},
                           .json_path = {}});
}

}  // namespace detail

KVCALI_DECL scale_offset finish_scale(scale_offset so, bool with_offset) {
    if (!std::isfinite(so.scale)) detail::throw_bad_scale(so.scale);
    if (so.scale < flt_epsilon) {
        so.scale = 1.0f;
        if (with_offset) so.offset = -128;
    }
    if (!(1.0f / so.scale >= flt_epsilon)) detail::throw_bad_scale(so.scale);
    return so;
}

KVCALI_DECL scale_offset scale_offset_from_range(float lo, float hi, bool with_offset) {
    scale_offset so;
    if (with_offset) {
        hi = std::max(hi, 0.0f);
        lo = std::min(lo, 0.0f);
        so.scale = (hi - lo) / 255.0f;
        if (!std::isfinite(so.scale)) detail::throw_bad_scale(so.scale);
        if (hi == lo) {
            so.offset = -128;
        } else {
            const float shifted = -128.0f - lo / so.scale;
            so.offset = static_cast<std::int32_t>(round_half_even(shifted));
        }
    } else {
        const float limit = std::fabs(hi) < std::fabs(lo) ? 128.0f : 127.0f;
        so.scale = std::max(std::fabs(hi), std::fabs(lo)) / limit;
        so.offset = 0;
    }
    return finish_scale(so, with_offset);
}

}  // namespace kvcali
