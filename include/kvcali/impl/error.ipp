// kvcali: diagnostics' text (declared in error.hpp): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "../detail/concat.hpp"
#include "../error.hpp"

namespace kvcali {

KVCALI_DECL std::string diagnostic::to_string() const {
    std::string out;
    if (!where.file.empty()) {
        out += where.file;
        if (where.has_position()) {
            detail::append_concat(out, {':', where.line, ':', where.column});
        }
        out += ": ";
    }
    out += is_error() ? "error: " : "warning: ";
    out += message;
    out += " [";
    out += kvcali::to_string(category);
    out += ']';
    return out;
}

KVCALI_DECL void diagnostics::add(diagnostic d) {
    if (d.severity == severity::warning && strict_) d.severity = severity::error;
    if (d.is_error()) {
        ++errors_;
    } else if (sink_) {
        sink_(d);
    }
    items_.push_back(std::move(d));
}

KVCALI_DECL void diagnostics::throw_errors() {
    errc first = errc::invalid_argument;
    for (const auto& d : items_) {
        if (d.is_error()) {
            first = d.category;
            break;
        }
    }
    throw kvcali::error(first, take());
}

KVCALI_DECL void diagnostics::report(kvcali::severity level, errc category, std::string message, const source_location& where,
                                     std::string_view layer) {
    add({.severity = level,
         .category = category,
         .message = std::move(message),
         .where = where,
         .layer = std::string(layer),
         .json_path = {}});
}

KVCALI_DECL void diagnostics::error(errc category, std::string message, const source_location& where, std::string_view layer) {
    report(severity::error, category, std::move(message), where, layer);
}

KVCALI_DECL void diagnostics::warning(errc category, std::string message, const source_location& where, std::string_view layer) {
    report(severity::warning, category, std::move(message), where, layer);
}

KVCALI_DECL std::string error::summary(errc code, const std::vector<diagnostic>& diagnostics) {
    for (const auto& d : diagnostics) {
        if (d.is_error()) return d.to_string();
    }
    return std::string(to_string(code));
}

}  // namespace kvcali
