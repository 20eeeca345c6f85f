// kvcali: algorithm policies. Each policy describes its parameters once (names in the simple config
// file and in the JSON, types, defaults, per-field and cross-field checks); the config parser, the
// resolver, the JSON writer, the reader and `kvcali explain` all read that one description.
//
// Customising at compile time:
//   struct my_ifmr_defaults : kvcali::ifmr_defaults { static constexpr float search_step = 0.005f; };
//   using my_policies = kvcali::policy_list<kvcali::basic_ifmr_policy<my_ifmr_defaults>,
//                                           kvcali::hfmg_policy, my_algorithm_policy>;
//   kvcali::create_quant_cali_config<my_policies>("config.json", model, layers);
// The first policy of the list is the default algorithm.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "detail/concat.hpp"
#include "detail/config.hpp"
#include "error.hpp"
#include "json_format.hpp"

namespace kvcali {

/// The type of a parameter, as the schema declares it.
enum class param_type { boolean, uint32, float32, enumeration };

constexpr std::string_view to_string(param_type t) noexcept {
    switch (t) {
        case param_type::boolean: return "bool";
        case param_type::uint32: return "uint32";
        case param_type::float32: return "float";
        case param_type::enumeration: return "enum";
    }
    return "?";
}

/// A parameter's value; `type` says which member holds it.
struct param_value {
    param_type type = param_type::boolean;
    bool boolean = false;
    std::uint32_t uint = 0;
    float real = 0.0f;
    std::int32_t enumerator = 0;

    static constexpr param_value of_bool(bool v) noexcept { return {param_type::boolean, v, 0, 0.0f, 0}; }
    static constexpr param_value of_uint(std::uint32_t v) noexcept { return {param_type::uint32, false, v, 0.0f, 0}; }
    static constexpr param_value of_float(float v) noexcept { return {param_type::float32, false, 0, v, 0}; }
    static constexpr param_value of_enum(std::int32_t v) noexcept { return {param_type::enumeration, false, 0, 0.0f, v}; }

    friend constexpr bool operator==(const param_value& a, const param_value& b) noexcept {
        if (a.type != b.type) return false;
        switch (a.type) {
            case param_type::boolean: return a.boolean == b.boolean;
            case param_type::uint32: return a.uint == b.uint;
            case param_type::float32: return a.real == b.real && std::signbit(a.real) == std::signbit(b.real);
            case param_type::enumeration: return a.enumerator == b.enumerator;
        }
        return false;
    }
};

/// One named value of an enumeration parameter.
struct enumerator_desc {
    std::string_view name;
    std::int32_t number;
};

/// The outcome of one check: nothing, a warning or an error, with its message.
struct check_result {
    std::optional<severity> level;  ///< empty: the value passed
    std::string message;

    static check_result ok() { return {}; }
    static KVCALI_COLD check_result warn(std::string m) { return {severity::warning, std::move(m)}; }
    static KVCALI_COLD check_result fail(std::string m) { return {severity::error, std::move(m)}; }
};

/// A per-field check, given the field's value.
using field_check = check_result (*)(const param_value&);

/// A parameter of an algorithm.
struct param_desc {
    std::string_view cfg_name;   ///< field name in the simple config file (`search_range_start`)
    std::string_view json_name;  ///< key in config.json (`search_range`)
    int json_slot = -1;          ///< >= 0: element of the JSON array shared by the fields of that key
    param_type type = param_type::float32;
    std::optional<param_value> default_value;      ///< empty: written only when set (`asymmetric`)
    std::span<const enumerator_desc> enumerators;  ///< for enumeration parameters
    field_check check = nullptr;
    std::string_view doc;
};

/// The values of one algorithm block, by parameter position; unset optional ones are empty.
class param_view {
public:
    param_view(std::span<const param_desc> params, std::span<const std::optional<param_value>> values) : params_(params), values_(values) {}
    /// The value of a parameter by its cfg name (or empty when unset or unknown).
    std::optional<param_value> get(std::string_view cfg_name) const {
        for (std::size_t i = 0; i < params_.size(); ++i) {
            if (params_[i].cfg_name == cfg_name) return values_[i];
        }
        return std::nullopt;
    }
    float real(std::string_view cfg_name) const { return get(cfg_name).value_or(param_value{}).real; }
    std::uint32_t uint(std::string_view cfg_name) const { return get(cfg_name).value_or(param_value{}).uint; }

private:
    std::span<const param_desc> params_;
    std::span<const std::optional<param_value>> values_;
};

/// A cross-field check: appends its findings (each a check_result) to `out`.
using cross_check = void (*)(const param_view&, std::vector<check_result>& out);

/// What the non-template code knows of an algorithm policy.
struct algorithm_desc {
    std::string_view act_algo;   ///< `act_algo` in the JSON (`ifmr`)
    std::string_view cfg_block;  ///< block name in CalibrationConfig (`ifmr_quantize`)
    std::span<const param_desc> params;
    cross_check check = nullptr;

    /// The parameter position of a cfg field name, or -1.
    int find_param(std::string_view cfg_name) const noexcept {
        for (std::size_t i = 0; i < params.size(); ++i) {
            if (params[i].cfg_name == cfg_name) return static_cast<int>(i);
        }
        return -1;
    }
};

/// A policy type: static members `act_algo`, `cfg_block`, `params` (a std::array of param_desc)
/// and `cross_check(const param_view&, std::vector<check_result>&)`.
template <class P>
concept algorithm_policy = requires(const param_view& view, std::vector<check_result>& out) {
    { P::act_algo } -> std::convertible_to<std::string_view>;
    { P::cfg_block } -> std::convertible_to<std::string_view>;
    {std::span<const param_desc>(P::params)};
    P::cross_check(view, out);
};

template <algorithm_policy P>
constexpr algorithm_desc describe() noexcept {
    return algorithm_desc{P::act_algo, P::cfg_block, std::span<const param_desc>(P::params), &P::cross_check};
}

/// An ordered list of algorithm policies; the first is the default algorithm.
template <algorithm_policy... P>
struct policy_list {
    static_assert(sizeof...(P) > 0, "kvcali::policy_list needs at least one algorithm policy");
    static constexpr std::array<algorithm_desc, sizeof...(P)> algorithms = {describe<P>()...};
};

/// The algorithms of a policy list, as plain data.
using algorithm_registry = std::span<const algorithm_desc>;

namespace detail {
template <class T>
struct is_policy_list : std::false_type {};
template <class... P>
struct is_policy_list<policy_list<P...>> : std::true_type {};
}  // namespace detail

template <class L>
concept policy_list_type = detail::is_policy_list<L>::value;

// ---------------------------------------------------------------------------------------------
// Shared checks

namespace checks {

/// The shortest text that reads back as `v` (`1.5`, not `1.500000`).
inline std::string show(float v) { return float32_repr(v); }

inline check_result finite(const param_value& v) {
    if (std::isfinite(v.real)) return check_result::ok();
    return check_result::fail(
        detail::concat({"must be a finite number, not ", std::isnan(v.real) ? "nan" : (v.real > 0 ? "inf" : "-inf")}));
}

inline check_result max_percentile(const param_value& v) {
    if (!std::isfinite(v.real)) return finite(v);
    if (v.real > 0.5f && v.real <= 1.0f) return check_result::ok();
    return check_result::fail("must be greater than 0.5 and less than or equal to 1.0");
}

inline check_result min_percentile(const param_value& v) {
    if (!std::isfinite(v.real)) return finite(v);
    if (v.real > 0.5f && v.real <= 1.0f) return check_result::ok();
    return check_result::warn("is outside (0.5, 1.0]; the reference does not check it, so it is accepted");
}

inline check_result positive(const param_value& v) {
    if (!std::isfinite(v.real)) return finite(v);
    if (v.real > 0.0f) return check_result::ok();
    return check_result::fail("must be greater than zero");
}

KVCALI_DECL check_result histogram_bins(const param_value& v);

}  // namespace checks

inline constexpr std::array<enumerator_desc, 2> quant_granularity_values = {{{"per_tensor", 0}, {"per_channel", 1}}};

// ---------------------------------------------------------------------------------------------
// IFMR

namespace detail {
/// IFMR's cross-field checks (the search range and step), the same for any defaults.
KVCALI_COLD KVCALI_DECL void ifmr_cross_check(const param_view& v, std::vector<check_result>& out);
}  // namespace detail

/// IFMR defaults; derive and shadow members to change them at compile time.
struct ifmr_defaults {
    static constexpr float search_range_start = 0.7f;
    static constexpr float search_range_end = 1.3f;
    static constexpr float search_step = 0.01f;
    static constexpr float max_percentile = 0.999999f;
    static constexpr float min_percentile = 0.999999f;
    static constexpr std::int32_t quant_granularity = 0;
};

/// IFMR: clip bounds from percentiles, refined by a search over scale factors.
template <class Defaults = ifmr_defaults>
struct basic_ifmr_policy {
    static constexpr std::string_view act_algo = "ifmr";
    static constexpr std::string_view cfg_block = "ifmr_quantize";
    // In JSON order: the writer lays the keys out as listed here.
    static constexpr std::array<param_desc, 7> params = {{
        {"max_percentile",
         "max_percentile",
         -1,
         param_type::float32,
         param_value::of_float(Defaults::max_percentile),
         {},
         &checks::max_percentile,
         "percentile giving the initial upper bound"},
        {"min_percentile",
         "min_percentile",
         -1,
         param_type::float32,
         param_value::of_float(Defaults::min_percentile),
         {},
         &checks::min_percentile,
         "percentile giving the initial lower bound"},
        {"search_range_start",
         "search_range",
         0,
         param_type::float32,
         param_value::of_float(Defaults::search_range_start),
         {},
         &checks::finite,
         "clip-bound search range, lower factor"},
        {"search_range_end",
         "search_range",
         1,
         param_type::float32,
         param_value::of_float(Defaults::search_range_end),
         {},
         &checks::finite,
         "clip-bound search range, upper factor"},
        {"search_step",
         "search_step",
         -1,
         param_type::float32,
         param_value::of_float(Defaults::search_step),
         {},
         &checks::positive,
         "step of the search"},
        {"asymmetric", "asymmetric", -1, param_type::boolean, std::nullopt, {}, nullptr, "per-layer override of activation_offset"},
        {"quant_granularity", "quant_granularity", -1, param_type::enumeration, param_value::of_enum(Defaults::quant_granularity),
         quant_granularity_values, nullptr, "per_tensor (0) or per_channel (1)"},
    }};

    static void cross_check(const param_view& v, std::vector<check_result>& out) { detail::ifmr_cross_check(v, out); }
};

using ifmr_policy = basic_ifmr_policy<>;

// ---------------------------------------------------------------------------------------------
// HFMG

/// HFMG defaults; derive and shadow members to change them at compile time.
struct hfmg_defaults {
    static constexpr std::uint32_t num_of_bins = 4096;
    static constexpr std::int32_t quant_granularity = 0;
};

/// HFMG: clip bounds from a histogram and a search over bin ranges.
template <class Defaults = hfmg_defaults>
struct basic_hfmg_policy {
    static constexpr std::string_view act_algo = "hfmg";
    static constexpr std::string_view cfg_block = "hfmg_quantize";
    static constexpr std::array<param_desc, 3> params = {{
        {"num_of_bins",
         "num_of_bins",
         -1,
         param_type::uint32,
         param_value::of_uint(Defaults::num_of_bins),
         {},
         &checks::histogram_bins,
         "histogram bins: 1024, 2048, 4096 or 8192"},
        {"asymmetric", "asymmetric", -1, param_type::boolean, std::nullopt, {}, nullptr, "per-layer override of activation_offset"},
        {"quant_granularity", "quant_granularity", -1, param_type::enumeration, param_value::of_enum(Defaults::quant_granularity),
         quant_granularity_values, nullptr, "per_tensor (0) or per_channel (1)"},
    }};

    static void cross_check(const param_view&, std::vector<check_result>&) {}
};

using hfmg_policy = basic_hfmg_policy<>;

/// IFMR first: the default algorithm.
using default_policies = policy_list<ifmr_policy, hfmg_policy>;

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/policy.ipp"  // IWYU pragma: export
#endif
