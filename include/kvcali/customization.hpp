// kvcali: every customisation point, in one place.
//
// 1. Model graphs (model_graph.hpp)
//    - A graph type you own: give it members
//        auto layers() const;                          // range of layers, in model order
//        bool supports_kv_quant(std::string_view type_name) const;
//      and give its layer type members name() and type_name() (convertible to std::string_view).
//    - A graph type you cannot change: specialise kvcali::model_graph_traits<G> with
//        static auto layers(const G&);
//        static std::string_view name(const Layer&);
//        static std::string_view type_name(const Layer&);
//        static bool supports_kv_quant(const G&, std::string_view type_name);
//    name()/type_name() may return std::string by value too (kvcali copies it while it lives).
//    Check with: static_assert(kvcali::model_graph<G>); the generator's compile error names the
//    missing piece (layers, name, type_name or supports_kv_quant).
//
// 2. Algorithm policies (policy.hpp)
//    - Change defaults: derive from kvcali::ifmr_defaults / kvcali::hfmg_defaults, shadow the
//      members, and use kvcali::basic_ifmr_policy<YourDefaults> / basic_hfmg_policy<YourDefaults>.
//    - Add an algorithm: a type with static members act_algo, cfg_block, params (std::array of
//      kvcali::param_desc) and cross_check(const param_view&, std::vector<check_result>&).
//    - Pass them as kvcali::policy_list<...> (the first is the default algorithm) to
//      create_quant_cali_config<Policies>(...).
#pragma once

#include "model_graph.hpp"  // IWYU pragma: export
#include "policy.hpp"       // IWYU pragma: export
