// kvcali: the model-graph customisation point: what a graph type provides, checked by a concept.
// The table a graph is read into is in layer_table.hpp.
//
// Customisation points (everything a user may specialise or provide):
//   1. Members on a graph type the user owns:
//        g.layers()                     -> a range of layer objects, in model order
//        layer.name(), layer.type_name() -> convertible to std::string_view
//        g.supports_kv_quant(type_name) -> bool: can layers of that type be KV-cache quantized?
//   2. For a type the user cannot change, a specialisation of kvcali::model_graph_traits<G> with
//        static auto layers(const G&);                                  // range of layers
//        static std::string_view name(const Layer&);
//        static std::string_view type_name(const Layer&);
//        static bool supports_kv_quant(const G&, std::string_view type_name);
//   Names and type names may also come back as std::string by value (or anything else convertible
//   to std::string_view): kvcali copies each one into its layer table while the value lives.
//   References and string_views are read in place and copied once, into the table.
//   3. Algorithm policies (see policy.hpp): kvcali::policy_list<...> as the `Policies` parameter.
#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "detail/range_concepts.hpp"

namespace kvcali {

namespace detail {
template <class G>
concept has_layers_member = requires(const G& g) {
    { g.layers() } -> input_range;
};
template <class Layer>
concept has_name_member = requires(const Layer& layer) {
    { layer.name() } -> std::convertible_to<std::string_view>;
};
template <class Layer>
concept has_type_name_member = requires(const Layer& layer) {
    { layer.type_name() } -> std::convertible_to<std::string_view>;
};
template <class G>
concept has_supports_kv_quant_member = requires(const G& g, std::string_view type) {
    { g.supports_kv_quant(type) } -> std::convertible_to<bool>;
};
/// A graph type with all the members listed at the top of this header.
template <class G>
concept graph_with_members = has_layers_member<G> && has_name_member<range_value_t<decltype(std::declval<const G&>().layers())>> &&
    has_type_name_member<range_value_t<decltype(std::declval<const G&>().layers())>> && has_supports_kv_quant_member<G>;
}  // namespace detail

/// How kvcali sees a model graph. The primary template reads the members listed at the top of this
/// header, each one where the graph (or its layer type) has it; specialise it for graph types you
/// cannot change. `name` and `type_name` return what the members return (a std::string by value
/// stays a value, a reference a reference).
template <class G>
struct model_graph_traits {
    static decltype(auto) layers(const G& g) requires detail::has_layers_member<G> { return g.layers(); }
    template <detail::has_name_member Layer>
    static decltype(auto) name(const Layer& layer) {
        return layer.name();
    }
    template <detail::has_type_name_member Layer>
    static decltype(auto) type_name(const Layer& layer) {
        return layer.type_name();
    }
    static bool supports_kv_quant(const G& g, std::string_view type_name) requires detail::has_supports_kv_quant_member<G> {
        return static_cast<bool>(g.supports_kv_quant(type_name));
    }
};

namespace detail {
// The model_graph requirement, one piece per concept, so that a type lacking one piece is told
// which (see require_model_graph).
template <class G>
concept graph_has_layers = requires(const G& g) {
    { model_graph_traits<G>::layers(g) } -> input_range;
};
template <class G>
using graph_layer_t = range_value_t<decltype(model_graph_traits<G>::layers(std::declval<const G&>()))>;
template <class G>
concept graph_layers_have_names = graph_has_layers<G> && requires(const graph_layer_t<G>& layer) {
    { model_graph_traits<G>::name(layer) } -> std::convertible_to<std::string_view>;
};
template <class G>
concept graph_layers_have_type_names = graph_has_layers<G> && requires(const graph_layer_t<G>& layer) {
    { model_graph_traits<G>::type_name(layer) } -> std::convertible_to<std::string_view>;
};
template <class G>
concept graph_has_kv_quant_check = requires(const G& g, std::string_view type) {
    { model_graph_traits<G>::supports_kv_quant(g, type) } -> std::convertible_to<bool>;
};
}  // namespace detail

/// A model graph: something whose traits yield layers in model order, each with a name and a type
/// name (convertible to std::string_view: a reference, a string_view, or a std::string by value),
/// and say which types support KV-cache quantization.
template <class G>
concept model_graph = detail::graph_has_layers<G> && detail::graph_layers_have_names<G> && detail::graph_layers_have_type_names<G> &&
    detail::graph_has_kv_quant_check<G>;

namespace detail {

/// Stops the compilation of a generator handed a type that is not a model graph, with one message
/// per missing piece of the requirement, naming it.
template <class G>
void require_model_graph() {
    static_assert(graph_has_layers<G>,
                  "kvcali: this type is not a model graph: it has no layers(g) range. Provide a member g.layers() "
                  "(a range of layers in model order), or specialise kvcali::model_graph_traits<G> with a static "
                  "layers(const G&) (see kvcali/model_graph.hpp).");
    if constexpr (graph_has_layers<G>) {  // the layer type is known: check what it offers
        static_assert(graph_layers_have_names<G>,
                      "kvcali: this type is not a model graph: its layers have no name(layer) convertible to "
                      "std::string_view. Give the layer type a member name() (a std::string returned by value is "
                      "copied), or give kvcali::model_graph_traits<G> a static name(const Layer&) (see kvcali/model_graph.hpp).");
        static_assert(graph_layers_have_type_names<G>,
                      "kvcali: this type is not a model graph: its layers have no type_name(layer) convertible to "
                      "std::string_view. Give the layer type a member type_name() (a std::string returned by value is "
                      "copied), or give kvcali::model_graph_traits<G> a static type_name(const Layer&) (see "
                      "kvcali/model_graph.hpp).");
    }
    static_assert(graph_has_kv_quant_check<G>,
                  "kvcali: this type is not a model graph: it has no supports_kv_quant(g, type_name) returning bool. "
                  "Provide a member g.supports_kv_quant(std::string_view type_name), or give "
                  "kvcali::model_graph_traits<G> a static supports_kv_quant(const G&, std::string_view) (see "
                  "kvcali/model_graph.hpp).");
}

/// A name or type name as the table keeps it: a std::string returned by value is moved in, anything
/// else (a reference, a string_view, a C string) copied.
template <class S>
std::string owned_string(S&& text) {
    if constexpr (std::is_same_v<S, std::string>) {
        return std::move(text);
    } else {
        return std::string(std::string_view(text));
    }
}

}  // namespace detail

}  // namespace kvcali
