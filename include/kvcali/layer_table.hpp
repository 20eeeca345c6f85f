// kvcali: the layer table, the plain data every stage after the graph works on (name, type,
// eligible, in model order, with a name index), and extract_layers, the one arrow from any model
// graph to it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/layer_index.hpp"
#include "detail/string_map.hpp"
#include "model_graph.hpp"

namespace kvcali {

/// One layer as every stage after extraction sees it.
struct layer_info {
    std::string name;
    std::string type;
    bool eligible = false;  ///< its type supports KV-cache quantization
};

/// The message of the one error a model without any layer gets (`invalid_model`): from the
/// resolver, and from the CLI naming the model file.
inline constexpr std::string_view model_has_no_layers = "the model has no layers";

/// The layers of a model in model order, with a name index. Built once from any graph; everything
/// downstream (selection, resolution, JSON) is plain code over this table.
class layer_table {
public:
    layer_table() = default;
    layer_table(const layer_table&) = default;
    layer_table& operator=(const layer_table&) = default;
    layer_table(layer_table&&) noexcept = default;
    layer_table& operator=(layer_table&&) noexcept = default;

    void reserve(std::size_t n) {
        if (n > layers_.capacity()) {
            layers_.reserve(n);
            detail::advise_huge_pages(layers_.data() + layers_.size(), (layers_.capacity() - layers_.size()) * sizeof(layer_info));
        }
        index_.reserve(n);
    }

    /// Appends a layer; returns false (and changes nothing) when the name is already present.
    bool add(std::string name, std::string type, bool eligible) {
        const std::uint32_t h = hash_of(name);
        if (find_hashed(name, h) != npos) return false;
        append_hashed(std::move(name), std::move(type), eligible, h);
        return true;
    }

    std::size_t size() const noexcept { return layers_.size(); }
    bool empty() const noexcept { return layers_.empty(); }
    /// The row at position `i` (read only: a renamed row would leave the name index behind).
    const layer_info& operator[](std::size_t i) const noexcept { return layers_[i]; }
    auto begin() const noexcept { return layers_.begin(); }
    auto end() const noexcept { return layers_.end(); }

    /// The position of the layer with that name, or nullptr-like `npos`.
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t find(std::string_view name) const noexcept { return find_hashed(name, hash_of(name)); }
    const layer_info* get(std::string_view name) const noexcept {
        auto i = find(name);
        return i == npos ? nullptr : &layers_[i];
    }

    /// Registers another name users may write for layer `index` (ONNX: the module path
    /// `layers.0.self_attn.k_proj` of node `/layers.0/self_attn/k_proj/MatMul`). An alias equal to a
    /// layer name is ignored; an alias given for several layers becomes ambiguous (all kept).
    void add_alias(std::string alias, std::size_t index) {
        if (find(alias) != npos) return;
        if (alias_targets_.size() == alias_targets_.capacity()) alias_targets_.reserve(std::max<std::size_t>(8, alias_targets_.size() * 2));
        const auto [it, added] = alias_index_.emplace(std::move(alias), alias_targets_.size());
        if (added) alias_targets_.emplace_back();  // (into the room reserved above: it cannot throw)
        auto& targets = alias_targets_[it->second];
        if (std::find(targets.begin(), targets.end(), index) == targets.end()) targets.push_back(index);
    }
    /// The layers an alias names (one when unambiguous), or null when it is no alias.
    const std::vector<std::size_t>* find_alias(std::string_view alias) const {
        if (alias_index_.empty()) return nullptr;
        auto it = alias_index_.find(alias);
        return it == alias_index_.end() ? nullptr : &alias_targets_[it->second];
    }
    bool has_aliases() const noexcept { return !alias_index_.empty(); }

    /// Members that make the table itself a model graph.
    const std::vector<layer_info>& layers() const noexcept { return layers_; }

    // -- for loaders that build a table in bulk (kvcali internals) ---------------------------

    /// The index hash of a name (give it to the `*_hashed` members to hash each name once).
    static std::uint32_t hash_of(std::string_view name) noexcept { return detail::name_index::hash_of(name); }
    /// find() with the name's hash_of() already computed.
    std::size_t find_hashed(std::string_view name, std::uint32_t h) const noexcept {
        return index_.find(name, h, [this](std::size_t i) -> std::string_view { return layers_[i].name; });
    }
    /// Hints that the name with hash `h` will be looked up or added soon (loads its index slot).
    void prefetch(std::uint32_t h) const noexcept { index_.prefetch(h); }
    /// add() of a name known to be absent, with its hash_of() already computed.
    void append_hashed(std::string name, std::string type, bool eligible, std::uint32_t h) {
        make_room();
        layer_info& row = layers_.emplace_back();  // (one way of growing the rows, shared with the overload below)
        row.name = std::move(name);
        row.type = std::move(type);
        row.eligible = eligible;
        index_.insert(h, layers_.size() - 1);
    }
    /// Gives row `i` another type and eligibility (its name, the index key, stays): a loader that
    /// met a container before the entry that names its type.
    void retype(std::size_t i, std::string_view type, bool eligible) {
        layers_[i].type.assign(type);
        layers_[i].eligible = eligible;
    }
    /// As above, the strings copied straight into the new row.
    void append_hashed(std::string_view name, std::string_view type, bool eligible, std::uint32_t h) {
        make_room();
        layer_info& row = layers_.emplace_back();
        try {
            // (Built and moved in: a string made from a view allocates once and copies; assign()
            // into the empty row goes through the general replace path.)
            row.name = std::string(name);
            row.type = std::string(type);
        } catch (...) {
            layers_.pop_back();
            throw;
        }
        row.eligible = eligible;
        index_.insert(h, layers_.size() - 1);
    }

private:
    void make_room() {
        if (layers_.size() >= detail::name_index::max_entries) throw std::length_error("kvcali::layer_table: too many layers");
        index_.make_room(layers_.size());
    }

    std::vector<layer_info> layers_;
    detail::name_index index_;  ///< name -> position (detail/layer_index.hpp)
    // Aliases: each one's place in alias_targets_ (the map type the library already uses; a map to
    // vectors would be a type of its own, compiled in every TU).
    detail::string_map<std::size_t> alias_index_;
    std::vector<std::vector<std::size_t>> alias_targets_;
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

/// Reads any model graph once into a `layer_table`. Layers whose name repeats an earlier one are
/// reported through `on_duplicate(name)` and skipped.
/// Requires: `G` models `kvcali::model_graph` (otherwise the compiler says which piece is missing).
/// Errors: none of its own; what the graph's members throw, and std::bad_alloc.
/// Example: `auto table = kvcali::extract_layers(model, [](std::string_view name) { ... });`
template <class G, class OnDuplicate>
layer_table extract_layers(const G& graph, OnDuplicate&& on_duplicate) {
    detail::require_model_graph<G>();
    if constexpr (detail::is_layer_table<G>) {
        return graph;
    } else if constexpr (!model_graph<G>) {
        return {};  // not reached: require_model_graph has stopped the compilation with its message
    } else {
        using traits = model_graph_traits<G>;
        layer_table table;
        decltype(auto) range = traits::layers(graph);
        if constexpr (detail::sized_range<decltype(range)>) table.reserve(std::ranges::size(range));
        // Eligibility is a property of the type: ask once per distinct type name (1: eligible; the
        // map type the library already uses).
        detail::string_map<std::size_t> eligible_by_type;
        for (const auto& layer : range) {
            // What the traits return lives until the row is added: a std::string by value is a
            // temporary, which a string_view alone would outlive.
            auto&& type_text = traits::type_name(layer);
            auto&& name_text = traits::name(layer);
            const std::string_view type = type_text;
            const std::string_view name = name_text;
            auto it = eligible_by_type.find(type);
            if (it == eligible_by_type.end()) {
                it = eligible_by_type.emplace(std::string(type), traits::supports_kv_quant(graph, type) ? std::size_t{1} : std::size_t{0})
                         .first;
            }
            const std::uint32_t h = layer_table::hash_of(name);
            if (table.find_hashed(name, h) != layer_table::npos) {
                on_duplicate(name);
                continue;
            }
            table.append_hashed(detail::owned_string(std::forward<decltype(name_text)>(name_text)),
                                detail::owned_string(std::forward<decltype(type_text)>(type_text)), it->second != 0, h);
        }
        return table;
    }
}

}  // namespace kvcali
