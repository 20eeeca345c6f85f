// kvcali: how a parameter value and a name are shown in messages (the resolver and the config.json
// reader say the same thing the same way).
#pragma once

#include <string>
#include <string_view>

#include "../json_format.hpp"
#include "../policy.hpp"
#include "concat.hpp"

namespace kvcali::detail {

/// `text` shortened for a message: at most `limit` bytes, cut on a UTF-8 boundary, with "...".
inline std::string clip(std::string_view text, std::size_t limit = 40) {
    if (text.size() <= limit) return std::string(text);
    std::size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return concat({text.substr(0, cut), "..."});
}

inline std::string quote_name(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

inline std::string show_value(const param_desc& p, const param_value& v) {
    switch (v.type) {
        case param_type::boolean: return v.boolean ? "true" : "false";
        case param_type::uint32: return concat({v.uint});
        case param_type::float32: return float32_repr(v.real);
        case param_type::enumeration:
            for (const auto& e : p.enumerators) {
                if (e.number == v.enumerator) return std::string(e.name);
            }
            return concat({v.enumerator});
    }
    return {};
}

}  // namespace kvcali::detail
