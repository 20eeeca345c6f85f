// kvcali: export/json_text.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <boost/json/value.hpp>

#include <string>

#include "../export/json_text.hpp"
#include "../json_format.hpp"

namespace kvcali {

namespace detail {

KVCALI_DECL void append_json_text(std::string& out, const boost::json::value& v, int indent, int depth) {
    auto newline = [&](int level) {
        if (indent <= 0) return;
        out += '\n';
        out.append(static_cast<std::size_t>(indent * level), ' ');
    };
    switch (v.kind()) {
        case boost::json::kind::null: out += "null"; break;
        case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
        case boost::json::kind::int64: out += std::to_string(v.get_int64()); break;
        case boost::json::kind::uint64: out += std::to_string(v.get_uint64()); break;
        case boost::json::kind::double_: append_double_repr(out, v.get_double()); break;
        case boost::json::kind::string: append_json_string(out, v.get_string()); break;
        case boost::json::kind::array: {
            const auto& a = v.get_array();
            if (a.empty()) {
                out += "[]";
                break;
            }
            out += '[';
            bool first = true;
            for (const auto& e : a) {
                if (!first) out += ',';
                first = false;
                newline(depth + 1);
                append_json_text(out, e, indent, depth + 1);
            }
            newline(depth);
            out += ']';
            break;
        }
        case boost::json::kind::object: {
            const auto& o = v.get_object();
            if (o.empty()) {
                out += "{}";
                break;
            }
            out += '{';
            bool first = true;
            for (const auto& kv : o) {
                if (!first) out += ',';
                first = false;
                newline(depth + 1);
                append_json_string(out, kv.key());
                out += indent > 0 ? ": " : ":";
                append_json_text(out, kv.value(), indent, depth + 1);
            }
            newline(depth);
            out += '}';
            break;
        }
    }
}

}  // namespace detail

KVCALI_DECL std::string json_text(const boost::json::value& v, int indent) {
    std::string out;
    detail::append_json_text(out, v, indent, 0);
    if (indent > 0) out += '\n';
    return out;
}

}  // namespace kvcali
