// kvcali: the model-graph customisation point and the plain layer table every later stage works on.
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
//   3. Algorithm policies (see policy.hpp): kvcali::policy_list<...> as the `Policies` parameter.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <iterator>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvcali {

namespace detail {
template <class G>
concept graph_with_members = requires(const G& g) {
    { g.layers() } -> std::ranges::input_range;
    requires requires(const std::ranges::range_value_t<decltype(g.layers())>& layer, std::string_view type) {
        { layer.name() } -> std::convertible_to<std::string_view>;
        { layer.type_name() } -> std::convertible_to<std::string_view>;
        { g.supports_kv_quant(type) } -> std::convertible_to<bool>;
    };
};
}  // namespace detail

/// How kvcali sees a model graph. The primary template reads the members listed at the top of this
/// header; specialise it for graph types you cannot change. An unspecialised type without those
/// members has no traits (and fails the `model_graph` concept).
template <class G>
struct model_graph_traits {};

template <detail::graph_with_members G>
struct model_graph_traits<G> {
    static decltype(auto) layers(const G& g) { return g.layers(); }
    template <class Layer>
    static std::string_view name(const Layer& layer) {
        return layer.name();
    }
    template <class Layer>
    static std::string_view type_name(const Layer& layer) {
        return layer.type_name();
    }
    static bool supports_kv_quant(const G& g, std::string_view type_name) { return g.supports_kv_quant(type_name); }
};

/// A model graph: something whose traits yield layers in model order, each with a name and a type
/// name, and say which types support KV-cache quantization.
template <class G>
concept model_graph = requires(const G& g, std::string_view type) {
    { model_graph_traits<G>::layers(g) } -> std::ranges::input_range;
    requires requires(const std::ranges::range_value_t<decltype(model_graph_traits<G>::layers(g))>& layer) {
        { model_graph_traits<G>::name(layer) } -> std::convertible_to<std::string_view>;
        { model_graph_traits<G>::type_name(layer) } -> std::convertible_to<std::string_view>;
    };
    { model_graph_traits<G>::supports_kv_quant(g, type) } -> std::convertible_to<bool>;
};

/// One layer as every stage after extraction sees it.
struct layer_info {
    std::string name;
    std::string type;
    bool eligible = false;  ///< its type supports KV-cache quantization
};

/// The layers of a model in model order, with a name index. Built once from any graph; everything
/// downstream (selection, resolution, JSON) is plain code over this table.
class layer_table {
public:
    layer_table() = default;
    layer_table(const layer_table& other) : layers_(other.layers_), aliases_(other.aliases_) { reindex(); }
    layer_table& operator=(const layer_table& other) {
        if (this != &other) {
            layers_ = other.layers_;
            aliases_ = other.aliases_;
            reindex();
        }
        return *this;
    }
    layer_table(layer_table&&) noexcept = default;
    layer_table& operator=(layer_table&&) noexcept = default;

    void reserve(std::size_t n) {
        layers_.reserve(n);
        index_.reserve(n);
    }

    /// Appends a layer; returns false (and changes nothing) when the name is already present.
    bool add(std::string name, std::string type, bool eligible) {
        // The index keys view the strings inside `layers_`; a reallocation moves std::string
        // objects, and short strings live inside the object, so rebuild the index when it happens.
        if (index_.contains(name)) return false;
        const bool grows = layers_.size() == layers_.capacity();
        layers_.push_back({std::move(name), std::move(type), eligible});
        if (grows) {
            reindex();
        } else {
            index_.emplace(layers_.back().name, layers_.size() - 1);
        }
        return true;
    }

    std::size_t size() const noexcept { return layers_.size(); }
    bool empty() const noexcept { return layers_.empty(); }
    const layer_info& operator[](std::size_t i) const noexcept { return layers_[i]; }
    layer_info& operator[](std::size_t i) noexcept { return layers_[i]; }
    auto begin() const noexcept { return layers_.begin(); }
    auto end() const noexcept { return layers_.end(); }

    /// The position of the layer with that name, or nullptr-like `npos`.
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t find(std::string_view name) const {
        auto it = index_.find(name);
        return it == index_.end() ? npos : it->second;
    }
    const layer_info* get(std::string_view name) const {
        auto i = find(name);
        return i == npos ? nullptr : &layers_[i];
    }

    /// Registers another name users may write for layer `index` (ONNX: the module path
    /// `layers.0.self_attn.k_proj` of node `/layers.0/self_attn/k_proj/MatMul`). An alias equal to a
    /// layer name is ignored; an alias given for several layers becomes ambiguous (all kept).
    void add_alias(std::string alias, std::size_t index) {
        if (index_.contains(alias)) return;
        auto& targets = aliases_[std::move(alias)];
        if (std::find(targets.begin(), targets.end(), index) == targets.end()) targets.push_back(index);
    }
    /// The layers an alias names (one when unambiguous), or null when it is no alias.
    const std::vector<std::size_t>* find_alias(std::string_view alias) const {
        auto it = aliases_.find(alias);
        return it == aliases_.end() ? nullptr : &it->second;
    }
    bool has_aliases() const noexcept { return !aliases_.empty(); }

    /// Members that make the table itself a model graph.
    const std::vector<layer_info>& layers() const noexcept { return layers_; }

private:
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    void reindex() {
        index_.clear();
        index_.reserve(layers_.size());
        for (std::size_t i = 0; i < layers_.size(); ++i) index_.emplace(layers_[i].name, i);
    }

    std::vector<layer_info> layers_;
    std::unordered_map<std::string_view, std::size_t, hash, std::equal_to<>> index_;
    std::unordered_map<std::string, std::vector<std::size_t>, hash, std::equal_to<>> aliases_;
};

/// The layer table is itself a model graph (its eligibility is already decided per layer).
template <>
struct model_graph_traits<layer_table> {
    static const std::vector<layer_info>& layers(const layer_table& t) { return t.layers(); }
    static std::string_view name(const layer_info& l) { return l.name; }
    static std::string_view type_name(const layer_info& l) { return l.type; }
    static bool supports_kv_quant(const layer_table&, std::string_view) { return false; }  // unused, see below
};

namespace detail {
template <class G>
inline constexpr bool is_layer_table = std::is_same_v<std::remove_cvref_t<G>, layer_table>;
}

/// The message a non-graph type gets at compile time.
#define KVCALI_MODEL_GRAPH_REQUIREMENT                                                                     \
    "kvcali: this type is not a model graph. Provide members g.layers() (a range of layers in model "      \
    "order), layer.name() and layer.type_name() (convertible to std::string_view) and "                   \
    "g.supports_kv_quant(std::string_view type_name) -> bool; or specialise kvcali::model_graph_traits<G> " \
    "with static layers(g), name(layer), type_name(layer) and supports_kv_quant(g, type_name) "            \
    "(see kvcali/model_graph.hpp)."

/// Reads any model graph once into a `layer_table`. Layers whose name repeats an earlier one are
/// reported through `on_duplicate(name)` and skipped.
template <class G, class OnDuplicate>
layer_table extract_layers(const G& graph, OnDuplicate&& on_duplicate) {
    static_assert(model_graph<G>, KVCALI_MODEL_GRAPH_REQUIREMENT);
    if constexpr (detail::is_layer_table<G>) {
        return graph;
    } else {
        using traits = model_graph_traits<G>;
        layer_table table;
        decltype(auto) range = traits::layers(graph);
        if constexpr (std::ranges::sized_range<decltype(range)>) table.reserve(std::ranges::size(range));
        // Eligibility is a property of the type: ask once per distinct type name.
        std::unordered_map<std::string, bool> eligible_by_type;
        for (const auto& layer : range) {
            std::string_view type = traits::type_name(layer);
            auto it = eligible_by_type.find(std::string(type));
            if (it == eligible_by_type.end()) {
                it = eligible_by_type.emplace(std::string(type), static_cast<bool>(traits::supports_kv_quant(graph, type))).first;
            }
            std::string_view name = traits::name(layer);
            if (!table.add(std::string(name), std::string(type), it->second)) on_duplicate(name);
        }
        return table;
    }
}

}  // namespace kvcali
