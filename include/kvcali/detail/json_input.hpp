// kvcali internals: parsing JSON input with positions for error messages.
#pragma once

#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../error.hpp"

namespace kvcali::detail {

/// 1-based line and byte column of `offset` in `text`.
inline source_location location_of(std::string_view text, std::size_t offset, const std::string& file) {
    source_location loc{file, 1, 1};
    if (offset > text.size()) offset = text.size();
    for (std::size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n') {
            ++loc.line;
            loc.column = 1;
        } else {
            ++loc.column;
        }
    }
    return loc;
}

/// Parses `text` as one JSON value. On failure records a diagnostic of `category` at the
/// position of the error and returns false.
inline bool parse_json(std::string_view text, const std::string& file, errc category, std::string_view what, boost::json::value& out,
                       diagnostics& diags, std::size_t max_depth = 64) {
    boost::json::parse_options opts;
    opts.max_depth = max_depth;
    boost::json::parser p(boost::json::storage_ptr(), opts);
    boost::system::error_code ec;
    const std::size_t consumed = p.write(text.data(), text.size(), ec);
    if (ec) {
        const bool bom = text.starts_with("\xEF\xBB\xBF");
        diags.add(
            {.severity = severity::error,
             .category = category,
             .message = std::string(what) + " is not valid JSON: " +
                        (bom ? std::string("it starts with a UTF-8 byte order mark, which JSON does not allow; remove it") : ec.message()),
             .where = location_of(text, bom ? 0 : consumed, file),
             .layer = {},
             .json_path = {}});
        return false;
    }
    out = p.release();
    return true;
}

}  // namespace kvcali::detail
