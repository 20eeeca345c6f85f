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
//   Names and type names may also come back as std::string by value (or anything else convertible
//   to std::string_view): kvcali copies each one into its layer table while the value lives.
//   References and string_views are read in place and copied once, into the table.
//   3. Algorithm policies (see policy.hpp): kvcali::policy_list<...> as the `Policies` parameter.
#pragma once

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvcali {

namespace detail {
template <class G>
concept has_layers_member = requires(const G& g) {
    { g.layers() } -> std::ranges::input_range;
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
concept graph_with_members =
    has_layers_member<G> && has_name_member<std::ranges::range_value_t<decltype(std::declval<const G&>().layers())>> &&
    has_type_name_member<std::ranges::range_value_t<decltype(std::declval<const G&>().layers())>> &&
    has_supports_kv_quant_member<G>;
}  // namespace detail

/// How kvcali sees a model graph. The primary template reads the members listed at the top of this
/// header, each one where the graph (or its layer type) has it; specialise it for graph types you
/// cannot change. `name` and `type_name` return what the members return (a std::string by value
/// stays a value, a reference a reference).
template <class G>
struct model_graph_traits {
    static decltype(auto) layers(const G& g)
        requires detail::has_layers_member<G>
    {
        return g.layers();
    }
    template <detail::has_name_member Layer>
    static decltype(auto) name(const Layer& layer) {
        return layer.name();
    }
    template <detail::has_type_name_member Layer>
    static decltype(auto) type_name(const Layer& layer) {
        return layer.type_name();
    }
    static bool supports_kv_quant(const G& g, std::string_view type_name)
        requires detail::has_supports_kv_quant_member<G>
    {
        return static_cast<bool>(g.supports_kv_quant(type_name));
    }
};

namespace detail {
// The model_graph requirement, one piece per concept, so that a type lacking one piece is told
// which (see require_model_graph).
template <class G>
concept graph_has_layers = requires(const G& g) {
    { model_graph_traits<G>::layers(g) } -> std::ranges::input_range;
};
template <class G>
using graph_layer_t = std::ranges::range_value_t<decltype(model_graph_traits<G>::layers(std::declval<const G&>()))>;
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
concept model_graph = detail::graph_has_layers<G> && detail::graph_layers_have_names<G> &&
                      detail::graph_layers_have_type_names<G> && detail::graph_has_kv_quant_check<G>;

/// One layer as every stage after extraction sees it.
struct layer_info {
    std::string name;
    std::string type;
    bool eligible = false;  ///< its type supports KV-cache quantization
};

namespace detail {

/// Hints that a large block about to be filled should be backed by huge pages (Linux: the 2 MiB
/// aligned part of a block of at least 4 MiB). Faulting a large array in 4 KiB at a time costs
/// more than filling it; the hint changes nothing else, and is ignored where unsupported.
inline void advise_huge_pages(const void* data, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    constexpr std::uintptr_t huge = std::uintptr_t{1} << 21;
    if (bytes < 2 * huge) return;
    const auto begin = (reinterpret_cast<std::uintptr_t>(data) + huge - 1) & ~(huge - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(huge - 1);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
#endif
}

/// A fast 64-bit hash of a byte string (eight bytes per step, then a splitmix64 finish): the
/// layer table hashes every name once, so this is on the hot path of loading a model.
inline std::uint64_t hash_name(std::string_view s) noexcept {
    constexpr std::uint64_t k1 = 0x9E3779B97F4A7C15ull, k2 = 0xBF58476D1CE4E5B9ull, k3 = 0x94D049BB133111EBull;
    std::uint64_t h = static_cast<std::uint64_t>(s.size()) * k1;
    const char* p = s.data();
    std::size_t n = s.size();
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * k2;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        // The last 1 to 7 bytes, read without a variable-length copy: within the last eight
        // bytes of the string when it has eight, else as two overlapping halves or three bytes.
        std::uint64_t w;
        if (s.size() >= 8) {
            std::memcpy(&w, s.data() + s.size() - 8, 8);
            // Keep the last n bytes in memory (the others are hashed already).
            if constexpr (std::endian::native == std::endian::little) {
                w >>= (8 - n) * 8;
            } else {
                w &= (std::uint64_t{1} << (8 * n)) - 1;
            }
        } else if (n >= 4) {
            std::uint32_t lo, hi;
            std::memcpy(&lo, p, 4);
            std::memcpy(&hi, p + n - 4, 4);
            w = lo | (static_cast<std::uint64_t>(hi) << 32);
        } else {
            w = static_cast<std::uint64_t>(static_cast<unsigned char>(p[0])) |
                (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8) |
                (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n - 1])) << 16);
        }
        h = (h ^ w) * k2;
        h ^= h >> 31;
    }
    h = (h ^ (h >> 30)) * k2;
    h = (h ^ (h >> 27)) * k3;
    return h ^ (h >> 31);
}

}  // namespace detail

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
        reserve_index(n);
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
    const layer_info& operator[](std::size_t i) const noexcept { return layers_[i]; }
    layer_info& operator[](std::size_t i) noexcept { return layers_[i]; }
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
        auto& targets = aliases_[std::move(alias)];
        if (std::find(targets.begin(), targets.end(), index) == targets.end()) targets.push_back(index);
    }
    /// The layers an alias names (one when unambiguous), or null when it is no alias.
    const std::vector<std::size_t>* find_alias(std::string_view alias) const {
        if (aliases_.empty()) return nullptr;
        auto it = aliases_.find(alias);
        return it == aliases_.end() ? nullptr : &it->second;
    }
    bool has_aliases() const noexcept { return !aliases_.empty(); }

    /// Members that make the table itself a model graph.
    const std::vector<layer_info>& layers() const noexcept { return layers_; }

    // -- for loaders that build a table in bulk (kvcali internals) ---------------------------

    /// The index hash of a name (give it to the `*_hashed` members to hash each name once).
    static std::uint32_t hash_of(std::string_view name) noexcept { return static_cast<std::uint32_t>(detail::hash_name(name) >> 32); }
    /// find() with the name's hash_of() already computed.
    std::size_t find_hashed(std::string_view name, std::uint32_t h) const noexcept {
        if (slots_.empty()) return npos;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t at = h & mask;; at = (at + 1) & mask) {
            const std::uint64_t slot = slots_[at];
            if (slot == 0) return npos;
            if (static_cast<std::uint32_t>(slot >> 32) == h) {
                const std::size_t i = static_cast<std::uint32_t>(slot) - 1u;
                if (layers_[i].name == name) return i;
            }
        }
    }
    /// Hints that the name with hash `h` will be looked up or added soon (loads its index slot).
    void prefetch(std::uint32_t h) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
        if (!slots_.empty()) __builtin_prefetch(slots_.data() + (h & (slots_.size() - 1)));
#else
        (void)h;
#endif
    }
    /// add() of a name known to be absent, with its hash_of() already computed.
    void append_hashed(std::string name, std::string type, bool eligible, std::uint32_t h) {
        make_room();
        layers_.push_back({std::move(name), std::move(type), eligible});
        insert_slot(h, layers_.size() - 1);
    }
    /// As above, the strings copied straight into the new row.
    void append_hashed(std::string_view name, std::string_view type, bool eligible, std::uint32_t h) {
        make_room();
        layer_info& row = layers_.emplace_back();
        try {
            row.name.assign(name);
            row.type.assign(type);
        } catch (...) {
            layers_.pop_back();
            throw;
        }
        row.eligible = eligible;
        insert_slot(h, layers_.size() - 1);
    }

private:
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };
    static constexpr std::size_t max_layers = 0xFFFFFFFEu;

    void make_room() {
        if (layers_.size() >= max_layers) throw std::length_error("kvcali::layer_table: too many layers");
        if ((layers_.size() + 1) * 4 > slots_.size() * 3) reserve_index(std::max<std::size_t>(16, (layers_.size() + 1) * 2));
    }
    /// Makes room in the index for `n` names (at most 3/4 full), rehashing what it holds.
    void reserve_index(std::size_t n) {
        std::size_t want = 16;
        while (want * 3 < n * 4) want *= 2;
        if (want <= slots_.size()) return;
        std::vector<std::uint64_t> old;
        old.reserve(want);
        detail::advise_huge_pages(old.data(), want * sizeof(std::uint64_t));
        old.resize(want, 0);
        old.swap(slots_);
        const std::size_t mask = slots_.size() - 1;
        for (const std::uint64_t slot : old) {
            if (slot == 0) continue;
            std::size_t at = static_cast<std::uint32_t>(slot >> 32) & mask;
            while (slots_[at] != 0) at = (at + 1) & mask;
            slots_[at] = slot;
        }
    }
    void insert_slot(std::uint32_t h, std::size_t index) noexcept {
        const std::size_t mask = slots_.size() - 1;
        std::size_t at = h & mask;
        while (slots_[at] != 0) at = (at + 1) & mask;
        slots_[at] = (static_cast<std::uint64_t>(h) << 32) | static_cast<std::uint64_t>(index + 1);
    }

    std::vector<layer_info> layers_;
    /// Open addressing, linear probing: (hash << 32) | (position + 1) per slot; 0 is empty.
    std::vector<std::uint64_t> slots_;
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
        if constexpr (std::ranges::sized_range<decltype(range)>) table.reserve(std::ranges::size(range));
        // Eligibility is a property of the type: ask once per distinct type name.
        std::unordered_map<std::string, bool> eligible_by_type;
        for (const auto& layer : range) {
            // What the traits return lives until the row is added: a std::string by value is a
            // temporary, which a string_view alone would outlive.
            auto&& type_text = traits::type_name(layer);
            auto&& name_text = traits::name(layer);
            const std::string_view type = type_text;
            const std::string_view name = name_text;
            auto it = eligible_by_type.find(std::string(type));
            if (it == eligible_by_type.end()) {
                it = eligible_by_type.emplace(std::string(type), static_cast<bool>(traits::supports_kv_quant(graph, type))).first;
            }
            const std::uint32_t h = layer_table::hash_of(name);
            if (table.find_hashed(name, h) != layer_table::npos) {
                on_duplicate(name);
                continue;
            }
            table.append_hashed(detail::owned_string(std::forward<decltype(name_text)>(name_text)),
                                detail::owned_string(std::forward<decltype(type_text)>(type_text)), it->second, h);
        }
        return table;
    }
}

}  // namespace kvcali
