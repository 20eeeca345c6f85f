// kvcali: the layer-list model format, a JSON array any framework can dump:
//   [{"name": "model.layers.0.self_attn.k_proj", "type": "Linear", "in": 8, "out": 8}, ...]
// The dotted prefixes of the names exist as containers of type `Module` (as PyTorch's
// named_modules() lists them): a container comes just before its first descendant; an explicit
// entry for a prefix name sets its type and keeps that first position. The root (empty name) is
// not a layer. A name listed twice is an `invalid_model` error. Eligible type: `Linear`.
#pragma once

#include <boost/json/value.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/json_input.hpp"
#include "error.hpp"
#include "io.hpp"
#include "model_graph.hpp"

namespace kvcali {

/// Which type names support KV-cache quantization in a layer list (PyTorch's: exactly `Linear`).
using type_predicate = std::function<bool(std::string_view type_name)>;

inline bool is_torch_linear(std::string_view type_name) { return type_name == "Linear"; }

namespace detail {

/// Asks a type predicate once per distinct type name.
class eligibility_cache {
public:
    explicit eligibility_cache(const type_predicate& predicate) : predicate_(predicate) { few_.reserve(few_limit); }

    bool operator()(std::string_view type) {
        if (last_ != nullptr && last_->first == type) return last_->second;
        last_ = lookup(type);
        if (last_ == nullptr) last_ = remember(type, static_cast<bool>(predicate_(type)));
        return last_->second;
    }

private:
    using entry = std::pair<const std::string, bool>;
    static constexpr std::size_t few_limit = 32;

    const entry* lookup(std::string_view type) const {
        if (many_.empty()) {
            for (const auto& e : few_) {
                if (e.first == type) return &e;
            }
            return nullptr;
        }
        auto it = many_.find(type);
        return it == many_.end() ? nullptr : &*it;
    }
    /// Stores a new type's answer; the entries never move (`few_` never grows past its reserve).
    const entry* remember(std::string_view type, bool eligible) {
        if (many_.empty() && few_.size() < few_limit) return &few_.emplace_back(std::string(type), eligible);
        if (many_.empty()) {
            for (const auto& e : few_) many_.emplace(e.first, e.second);
        }
        return &*many_.emplace(std::string(type), eligible).first;
    }
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    const type_predicate& predicate_;
    const entry* last_ = nullptr;  ///< the last answer given (an entry of `few_` or `many_`)
    std::vector<entry> few_;
    std::unordered_map<std::string, bool, hash, std::equal_to<>> many_;
};

/// Builds a layer table entry by entry, adding each name's dotted prefixes as `Module`
/// containers just before it when they are new.
class layer_table_builder {
public:
    layer_table_builder(layer_table& table, const type_predicate& eligible) : table_(table), eligible_(eligible) {}

    void reserve(std::size_t entries) {
        table_.reserve(entries);
        is_explicit_.reserve(entries);
    }

    /// Adds one entry of the list; false when its name was already listed (nothing changes then).
    bool add(std::string_view name, std::string_view type) { return add(name, type, layer_table::hash_of(name)); }
    /// As above, with the name's layer_table::hash_of() already computed.
    bool add(std::string_view name, std::string_view type, std::uint32_t name_hash) {
        // The dotted prefixes of the previous name are in the table already: look up only the
        // prefixes beyond what this name shares with it (in model order, usually none).
        std::size_t same = 0;
        const std::size_t common = std::min(name.size(), previous_.size());
        while (same < common && name[same] == previous_[same]) ++same;
        for (std::size_t dot = name.find('.'); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
            if (dot == 0 || dot < same || (dot == same && dot == previous_.size())) continue;
            const std::string_view prefix = name.substr(0, dot);
            const std::uint32_t h = layer_table::hash_of(prefix);
            if (table_.find_hashed(prefix, h) != layer_table::npos) continue;
            table_.append_hashed(std::string(prefix), "Module", eligible_("Module"), h);
            is_explicit_.push_back(false);
        }
        previous_ = name;
        const std::size_t at = table_.find_hashed(name, name_hash);
        if (at == layer_table::npos) {
            table_.append_hashed(std::string(name), std::string(type), eligible_(type), name_hash);
            is_explicit_.push_back(true);
        } else if (!is_explicit_[at]) {
            table_[at].type = std::string(type);
            table_[at].eligible = eligible_(type);
            is_explicit_[at] = true;
        } else {
            return false;
        }
        return true;
    }

private:
    layer_table& table_;
    eligibility_cache eligible_;
    std::vector<bool> is_explicit_;  ///< per table row: listed itself, or only an implicit container so far
    std::string_view previous_;      ///< the last name added (it and its prefixes are in the table)
};

/// Reads a layer list without building a JSON DOM, for the common shape: an array of objects
/// whose members are ASCII strings without escapes, plain numbers, true, false or null, each
/// with a non-empty "name" string and a "type" string, no name listed twice, no key repeated.
/// Anything else (including every error) returns false with nothing reported; the caller then
/// reads the text with the DOM, which reports problems exactly. Views into `text` are kept only
/// during the call.
inline bool read_plain_layer_list(std::string_view text, layer_table& table, const type_predicate& eligible) {
    const char* p = text.data();
    const char* const end = p + text.size();
    auto skip_space = [&] {
        while (p != end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
    };
    auto at = [&](char c) { return p != end && *p == c; };
    // A string of printable ASCII without escapes; `out` views its body.
    auto read_string = [&](std::string_view& out) {
        if (!at('"')) return false;
        const char* q = ++p;
        for (;; ++q) {
            if (q == end) return false;
            const auto c = static_cast<unsigned char>(*q);
            if (c == '"') break;
            if (c < 0x20 || c >= 0x80 || c == '\\') return false;
        }
        out = std::string_view(p, static_cast<std::size_t>(q - p));
        p = q + 1;
        return true;
    };
    auto digits = [&] {
        const char* from = p;
        while (p != end && *p >= '0' && *p <= '9') ++p;
        return static_cast<std::size_t>(p - from);
    };
    // Another member's value: a string, a short plain number, true, false or null.
    auto skip_value = [&] {
        if (p == end) return false;
        if (*p == '"') {
            std::string_view ignored;
            return read_string(ignored);
        }
        for (const std::string_view word : {std::string_view("true"), std::string_view("false"), std::string_view("null")}) {
            if (static_cast<std::size_t>(end - p) >= word.size() && std::string_view(p, word.size()) == word) {
                p += word.size();
                return true;
            }
        }
        if (*p == '-') ++p;
        if (at('0')) {
            ++p;
        } else {
            const std::size_t n = digits();
            if (n == 0 || n > 15) return false;
        }
        if (at('.')) {
            ++p;
            const std::size_t n = digits();
            if (n == 0 || n > 15) return false;
        }
        if (at('e') || at('E')) {
            ++p;
            if (at('+') || at('-')) ++p;
            const std::size_t n = digits();
            if (n == 0 || n > 2) return false;
        }
        // A number must end here (the caller checks what follows).
        return p == end || !((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-');
    };

    skip_space();
    if (!at('[')) return false;
    ++p;
    skip_space();
    layer_table_builder builder(table, eligible);
    // Room for one row per object (a name's new prefixes may add more).
    builder.reserve(static_cast<std::size_t>(std::count(p, end, '{')));
    // Entries are added a few at a time, their index slots prefetched when read: the index is
    // larger than the caches, and a miss per name would cost more than reading the entry.
    struct pending_entry {
        std::string_view name, type;
        std::uint32_t hash;
    };
    constexpr std::size_t batch_size = 8;
    pending_entry batch[batch_size]{};
    std::size_t pending = 0;
    auto add_pending = [&] {
        for (std::size_t i = 0; i < pending; ++i) {
            if (!builder.add(batch[i].name, batch[i].type, batch[i].hash)) return false;
        }
        pending = 0;
        return true;
    };
    if (at(']')) {
        ++p;
    } else {
        for (;;) {
            if (!at('{')) return false;
            ++p;
            skip_space();
            std::string_view name, type;
            bool has_name = false, has_type = false;
            for (;;) {
                std::string_view key;
                if (!read_string(key)) return false;
                skip_space();
                if (!at(':')) return false;
                ++p;
                skip_space();
                if (key == "name") {
                    if (has_name || !read_string(name)) return false;
                    has_name = true;
                } else if (key == "type") {
                    if (has_type || !read_string(type)) return false;
                    has_type = true;
                } else if (!skip_value()) {
                    return false;
                }
                skip_space();
                if (at(',')) {
                    ++p;
                    skip_space();
                    continue;
                }
                if (!at('}')) return false;
                ++p;
                break;
            }
            if (!has_name || !has_type || name.empty()) return false;
            const std::uint32_t h = layer_table::hash_of(name);
            table.prefetch(h);
            batch[pending++] = {name, type, h};
            if (pending == batch_size && !add_pending()) return false;
            skip_space();
            if (at(',')) {
                ++p;
                skip_space();
                continue;
            }
            if (!at(']')) return false;
            ++p;
            break;
        }
        if (!add_pending()) return false;
    }
    skip_space();
    return p == end;
}

}  // namespace detail

/// Parses a layer list from JSON text; `file` names it in messages. Problems are recorded in
/// `diags` as `invalid_model` with the JSON path (`[3].name`).
inline layer_table parse_layer_list(std::string_view text, const std::string& file, diagnostics& diags,
                                    const type_predicate& eligible = is_torch_linear) {
    {
        layer_table table;
        if (detail::read_plain_layer_list(text, table, eligible)) return table;
    }
    // Any other text (errors included): through the JSON DOM, reporting every problem.
    layer_table table;
    boost::json::value doc;
    if (!detail::parse_json(text, file, errc::invalid_model, "the layer list", doc, diags)) return table;
    const auto* array = doc.if_array();
    if (array == nullptr) {
        diags.add({severity::error, errc::invalid_model, "a layer list must be a JSON array of layer objects", {file, 0, 0}, {}, "$"});
        return table;
    }
    detail::layer_table_builder builder(table, eligible);
    builder.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
        auto path = [i] { return "[" + std::to_string(i) + "]"; };
        const auto* object = (*array)[i].if_object();
        if (object == nullptr) {
            diags.add({severity::error, errc::invalid_model, path() + " must be an object {\"name\", \"type\"}", {file, 0, 0}, {}, path()});
            continue;
        }
        const auto* name_value = object->if_contains("name");
        const auto* type_value = object->if_contains("type");
        if (name_value == nullptr || !name_value->is_string()) {
            diags.add({severity::error, errc::invalid_model, path() + ".name must be a string", {file, 0, 0}, {}, path() + ".name"});
            continue;
        }
        if (type_value == nullptr || !type_value->is_string()) {
            diags.add({severity::error, errc::invalid_model, path() + ".type must be a string", {file, 0, 0}, {}, path() + ".type"});
            continue;
        }
        const std::string_view name(name_value->get_string());
        const std::string_view type(type_value->get_string());
        if (name.empty()) {
            diags.add({severity::error, errc::invalid_model, path() + ".name is empty (the root module is not a layer)",
                       {file, 0, 0}, {}, path() + ".name"});
            continue;
        }
        if (!builder.add(name, type)) {
            diags.add({severity::error, errc::invalid_model, path() + ".name: layer \"" + std::string(name) + "\" is listed twice",
                       {file, 0, 0}, std::string(name), path() + ".name"});
        }
    }
    return table;
}

/// Reads a layer-list file; throws `kvcali::error` (io_error or invalid_model).
inline layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible = is_torch_linear) {
    const std::string text = read_file(path);
    diagnostics diags;
    layer_table table = parse_layer_list(text, path.string(), diags, eligible);
    diags.throw_if_errors();
    return table;
}

}  // namespace kvcali
