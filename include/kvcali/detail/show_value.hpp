// kvcali: how a parameter value and a name are shown in messages (the resolver and the config.json
// reader say the same thing the same way).
#pragma once

#include <string>
#include <string_view>

#include "../json_format.hpp"
#include "../policy.hpp"

namespace kvcali::detail {

inline std::string quote_name(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

inline std::string show_value(const param_desc& p, const param_value& v) {
    switch (v.type) {
        case param_type::boolean: return v.boolean ? "true" : "false";
        case param_type::uint32: return std::to_string(v.uint);
        case param_type::float32: return float32_repr(v.real);
        case param_type::enumeration:
            for (const auto& e : p.enumerators) {
                if (e.number == v.enumerator) return std::string(e.name);
            }
            return std::to_string(v.enumerator);
    }
    return {};
}

}  // namespace kvcali::detail
