// kvcali: calibration/record.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include "../calibration/record.hpp"

namespace kvcali {

KVCALI_DECL std::string format_record(std::span<const layer_record> records) {
    std::string out;
    for (const auto& r : records) {
        out += "record {\n  key: \"";
        for (char c : r.key) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += "\"\n  kv_cache_value {\n";
        for (float s : r.factors.scale) {
            out += "    scale: ";
            append_float32_repr(out, s);
            out += '\n';
        }
        for (std::int32_t o : r.factors.offset) {
            out += "    offset: ";
            out += std::to_string(o);
            out += '\n';
        }
        out += "  }\n}\n";
    }
    return out;
}

KVCALI_DECL void write_record_file(const std::filesystem::path& path, std::span<const layer_record> records) {
    write_file_atomic(path, format_record(records));
}

KVCALI_DECL std::vector<layer_record> parse_record(std::string_view text, const std::string& file) {
    std::vector<layer_record> out;
    std::uint32_t line_no = 0;
    enum class state { top, record, value } st = state::top;
    auto fail = [&](std::uint32_t column, const std::string& what) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::parse_error,
                               .message = what,
                               .where = {file, line_no, column},
                               .layer = {},
                               .json_path = {}});
    };
    std::size_t pos = 0;
    while (pos < text.size()) {
        const std::size_t eol = text.find('\n', pos);
        std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        pos = eol == std::string_view::npos ? text.size() : eol + 1;
        ++line_no;
        std::size_t indent = 0;
        while (indent < line.size() && (line[indent] == ' ' || line[indent] == '\t')) ++indent;
        line.remove_prefix(indent);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
        const auto column = static_cast<std::uint32_t>(indent + 1);
        if (line.empty()) continue;
        switch (st) {
            case state::top:
                if (line != "record {") fail(column, "expected `record {`");
                out.emplace_back();
                st = state::record;
                break;
            case state::record:
                if (line.starts_with("key: \"")) {
                    std::string_view rest = line.substr(6);
                    std::string key;
                    std::size_t i = 0;
                    for (; i < rest.size() && rest[i] != '"'; ++i) {
                        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
                        key += rest[i];
                    }
                    if (i + 1 != rest.size()) fail(column, "expected a quoted key ending the line");
                    out.back().key = std::move(key);
                } else if (line == "kv_cache_value {") {
                    st = state::value;
                } else if (line == "}") {
                    st = state::top;
                } else {
                    fail(column, "expected `key: \"...\"`, `kv_cache_value {` or `}`");
                }
                break;
            case state::value:
                if (line == "}") {
                    st = state::record;
                } else if (line.starts_with("scale: ")) {
                    const std::string_view v = line.substr(7);
                    float f = 0.0f;
                    const auto r = std::from_chars(v.data(), v.data() + v.size(), f);
                    if (r.ec != std::errc{} || r.ptr != v.data() + v.size()) fail(column + 7, "expected a float after `scale: `");
                    out.back().factors.scale.push_back(f);
                } else if (line.starts_with("offset: ")) {
                    const std::string_view v = line.substr(8);
                    std::int32_t o = 0;
                    const auto r = std::from_chars(v.data(), v.data() + v.size(), o);
                    if (r.ec != std::errc{} || r.ptr != v.data() + v.size()) fail(column + 8, "expected an integer after `offset: `");
                    out.back().factors.offset.push_back(o);
                } else {
                    fail(column, "expected `scale: FLOAT`, `offset: INT` or `}`");
                }
                break;
        }
    }
    if (st != state::top) {
        ++line_no;
        fail(1, "unexpected end of the record text (expected `}`)");
    }
    return out;
}

}  // namespace kvcali
