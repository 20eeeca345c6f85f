// kvcali: layer selectors. Beside exact names (the reference's behaviour), `quant_layers` and
// `layer_name` accept
//   glob:PATTERN  `*` any run of characters within one dotted segment, `**` any run across
//                 segments, `?` one character other than '.', `[kv]` / `[!kv]` a character class
//   re:REGEX      an ECMAScript regular expression matched against the whole name
//   auto:kv       the K and V projections found by conventional names (see `kv_role`)
// A selector selects every KV-quantizable layer it matches, in model order. A name that exists in
// the model as written is always an exact name, even if it starts with one of the prefixes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "detail/config.hpp"
#include "layer_table.hpp"

namespace kvcali {

enum class selector_kind { exact, glob, regex, auto_kv };

/// The kind of a written layer name: by its prefix (`glob:`, `re:`, `auto:`).
inline selector_kind kind_of_selector(std::string_view written) {
    if (written.starts_with("glob:")) return selector_kind::glob;
    if (written.starts_with("re:")) return selector_kind::regex;
    if (written.starts_with("auto:")) return selector_kind::auto_kv;
    return selector_kind::exact;
}

/// Glob matching with dotted segments (see the top of this header). Iterative, no recursion:
/// backtracks over the last `*` and the last `**` only, so it is linear-ish and never explodes.
inline bool glob_match(std::string_view pattern, std::string_view name) {
    // Matches one character class at pattern[p] ('[' ... ']') against c; returns the position
    // after the class, or npos when the class is malformed (then '[' is a literal).
    auto match_class = [](std::string_view pat, std::size_t p, char c, bool& matched) -> std::size_t {
        std::size_t i = p + 1;
        bool negate = false;
        if (i < pat.size() && (pat[i] == '!' || pat[i] == '^')) {
            negate = true;
            ++i;
        }
        bool found = false;
        bool first = true;
        while (i < pat.size() && (pat[i] != ']' || first)) {
            first = false;
            if (i + 2 < pat.size() && pat[i + 1] == '-' && pat[i + 2] != ']') {
                if (pat[i] <= c && c <= pat[i + 2]) found = true;
                i += 3;
            } else {
                if (pat[i] == c) found = true;
                ++i;
            }
        }
        if (i >= pat.size()) return std::string_view::npos;
        matched = found != negate;
        return i + 1;
    };
    // Backtracking points: for `*` (may not cross '.') and `**` (may cross).
    std::size_t p = 0, n = 0;
    std::size_t star_p = std::string_view::npos, star_n = 0;
    std::size_t dstar_p = std::string_view::npos, dstar_n = 0;
    while (n < name.size()) {
        if (p < pattern.size()) {
            const char pc = pattern[p];
            if (pc == '*') {
                if (p + 1 < pattern.size() && pattern[p + 1] == '*') {
                    dstar_p = p + 2;
                    dstar_n = n;
                    star_p = std::string_view::npos;
                    p += 2;
                } else {
                    star_p = p + 1;
                    star_n = n;
                    p += 1;
                }
                continue;
            }
            if (pc == '?' && name[n] != '.') {
                ++p, ++n;
                continue;
            }
            if (pc == '[') {
                bool matched = false;
                const std::size_t after = match_class(pattern, p, name[n], matched);
                if (after != std::string_view::npos) {
                    if (matched) {
                        p = after, ++n;
                        continue;
                    }
                } else if (name[n] == '[') {
                    ++p, ++n;
                    continue;
                }
            } else if (pc != '?' && pc == name[n]) {
                ++p, ++n;
                continue;
            }
        }
        // Mismatch: extend the last `*` by one character (not across '.'), else the last `**`.
        if (star_p != std::string_view::npos && name[star_n] != '.') {
            p = star_p;
            n = ++star_n;
            continue;
        }
        if (dstar_p != std::string_view::npos) {
            star_p = std::string_view::npos;
            p = dstar_p;
            n = ++dstar_n;
            continue;
        }
        return false;
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

/// What `auto:kv` sees in a layer name.
enum class kv_role { none, key, value, fused_qkv };

/// The conventional names of K and V projections (LLaMA/Mistral/Qwen2 `k_proj`/`v_proj`, BERT-style
/// `key`/`value`, Meta's `wk`/`wv`, `k`/`v` inside an attention block) and of fused QKV
/// projections (`qkv_proj`, `query_key_value` in BLOOM/Falcon/GPT-NeoX, GPT-2/Qwen `c_attn`,
/// MPT `Wqkv`, `qkv`, `in_proj`). Only the last dotted segment is looked at, and its parent for
/// `k`/`v`.
inline kv_role kv_role_of(std::string_view name) {
    const auto dot = name.rfind('.');
    const std::string_view last = dot == std::string_view::npos ? name : name.substr(dot + 1);
    const std::string_view parent_path = dot == std::string_view::npos ? std::string_view() : name.substr(0, dot);
    const auto parent_dot = parent_path.rfind('.');
    const std::string_view parent = parent_dot == std::string_view::npos ? parent_path : parent_path.substr(parent_dot + 1);
    auto in_attention = [&] {
        return parent.find("attn") != std::string_view::npos || parent.find("attention") != std::string_view::npos ||
               parent.find("Attention") != std::string_view::npos;
    };
    auto one_of = [&](std::initializer_list<std::string_view> names) {  // (a loop: less code than a chain of ==)
        for (const std::string_view n : names) {
            if (last == n) return true;
        }
        return false;
    };
    if (one_of({"k_proj", "key", "wk", "key_proj", "to_k", "k_lin"})) return kv_role::key;
    if (one_of({"v_proj", "value", "wv", "value_proj", "to_v", "v_lin"})) return kv_role::value;
    if ((last == "k" || last == "v") && in_attention()) return last == "k" ? kv_role::key : kv_role::value;
    if (one_of({"qkv_proj", "query_key_value", "c_attn", "Wqkv", "qkv", "in_proj", "W_pack"})) return kv_role::fused_qkv;
    return kv_role::none;
}

namespace detail {
struct compiled_regex;  // detail/regex.hpp, in impl/selector.ipp: only where selectors are compiled
}

/// A compiled selector.
class selector {
public:
    /// Compiles `written`; `error` receives a message when the pattern is malformed.
    KVCALI_DECL static std::optional<selector> compile(std::string_view written, std::string& error);

    selector_kind kind() const noexcept { return kind_; }

    /// Does the selector choose this layer name? (For exact names: equality.)
    bool matches(std::string_view name) const {
        switch (kind_) {
            case selector_kind::exact: return name == pattern_;
            case selector_kind::glob: return glob_match(pattern_, name);
            case selector_kind::regex: return matches_regex(name);
            case selector_kind::auto_kv: return kv_role_of(name) != kv_role::none;
        }
        return false;
    }

    /// matches(), where a `re:` selector's matching costs one step from `budget` per state its
    /// matcher visits (other kinds cost nothing): nothing, and `budget` 0, when the name would
    /// need more steps than `budget` holds.
    std::optional<bool> matches(std::string_view name, std::uint64_t& budget) const {
        if (kind_ == selector_kind::regex) return matches_regex(name, &budget);
        return matches(name);
    }

    /// The steps the resolver lets one `re:` selector take over a model's layer names:
    /// `regex_base_steps` plus `regex_steps_per_byte` per byte of the names it tries (a name of n
    /// bytes counts n + 1), so that no pattern makes resolving cost more than a constant per byte of
    /// input (a pattern like `.*\.(k|v)_proj` takes about 7 steps per byte; 2^24 steps take about
    /// 0.07 s). Beyond it the selector is an invalid_argument error.
    static constexpr std::uint64_t regex_base_steps = std::uint64_t{1} << 24;
    static constexpr std::uint64_t regex_steps_per_byte = 256;

private:
    bool matches_regex(std::string_view name) const { return *matches_regex(name, nullptr); }
    KVCALI_DECL std::optional<bool> matches_regex(std::string_view name, std::uint64_t* budget) const;

    selector_kind kind_ = selector_kind::exact;
    std::string pattern_;
    std::shared_ptr<const detail::compiled_regex> regex_;  ///< immutable once compiled: copies share it
};

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/selector.ipp"  // IWYU pragma: export
#endif
