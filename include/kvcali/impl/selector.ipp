// kvcali: compiling selectors (declared in selector.hpp): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "../detail/concat.hpp"
#include "../detail/regex.hpp"
#include "../selector.hpp"

namespace kvcali {

namespace detail {
struct compiled_regex {
    regex::program program;
};
}  // namespace detail

KVCALI_DECL std::optional<selector> selector::compile(std::string_view written, std::string& error) {
    selector s;
    s.kind_ = kind_of_selector(written);
    switch (s.kind_) {
        case selector_kind::exact: s.pattern_ = std::string(written); break;
        case selector_kind::glob: s.pattern_ = std::string(written.substr(5)); break;
        case selector_kind::regex:
            s.pattern_ = std::string(written.substr(3));
            {
                std::string why;
                auto program = detail::regex::program::compile(s.pattern_, why);
                if (!program) {
                    error = detail::concat({"invalid regular expression: ", why});
                    return std::nullopt;
                }
                s.regex_ = std::make_shared<const detail::compiled_regex>(detail::compiled_regex{std::move(*program)});
            }
            break;
        case selector_kind::auto_kv:
            s.pattern_ = std::string(written.substr(5));
            if (s.pattern_ != "kv") {
                error = detail::concat({"unknown automatic selector \"", written, "\" (the one known is auto:kv)"});
                return std::nullopt;
            }
            break;
    }
    return s;
}

KVCALI_DECL std::optional<bool> selector::matches_regex(std::string_view name, std::uint64_t* budget) const {
    if (budget == nullptr) return regex_->program.full_match(name);
    return regex_->program.full_match(name, *budget);
}

}  // namespace kvcali
