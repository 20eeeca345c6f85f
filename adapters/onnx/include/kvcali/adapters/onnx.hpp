// kvcali: the plain ONNX-like graph (no protobuf needed). Reading .onnx files into it is
// kvcali/adapters/onnx_file.hpp.
//
// Rules every ONNX-like graph follows here (the CLI and README describe the same):
//   - Layers are the graph's nodes, in graph order; a node's type is its op_type. Eligible types are
//     `MatMul` and `Gemm` unless the caller sets `graph::eligible_op_types`.
//   - Node names: a node without a name is called `<op_type>_<index>`, index being its 0-based
//     position in the graph. When that name is taken (by any named node, or by an earlier unnamed
//     one) `_1`, `_2`, ... is appended until it is free. Two named nodes with one name are an
//     `invalid_model` error.
//   - Module paths: a PyTorch export names nodes `/<module path, '/'-separated>/<op_type>[_<n>]`,
//     e.g. `/layers.0/self_attn/k_proj/MatMul`. Such an eligible node may also be written as its
//     module path with dots, `layers.0.self_attn.k_proj`, when exactly one eligible node carries that
//     path; config.json holds the node name. A path several eligible nodes carry is ambiguous: naming
//     it is an `unknown_layer` error that lists them. A real node name always wins over a path.
#pragma once

#include <kvcali/error.hpp>
#include <kvcali/layer_table.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace kvcali::onnx {

/// One node of an ONNX-like graph, as ONNX's NodeProto has it.
struct node {
    std::string name;  ///< may be empty: see node_names()
    std::string op_type;
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
};

/// The op types whose output may be KV-cache quantized when the caller says nothing else.
inline std::vector<std::string> default_eligible_op_types() { return {"MatMul", "Gemm"}; }

/// An ONNX-like graph: nodes in graph order and the op types that may be KV-cache quantized.
/// It is a `kvcali::model_graph`; `to_layer_table(g)` adds the module-path names described at the
/// top of this header.
/// Example: `kvcali::onnx::graph g{{{"/k_proj/MatMul", "MatMul", {"x", "w"}, {"k"}}}};`
struct graph {
    std::vector<node> nodes;
    std::vector<std::string> eligible_op_types = default_eligible_op_types();

    bool supports_kv_quant(std::string_view op_type) const {
        for (const auto& t : eligible_op_types) {
            if (t == op_type) return true;
        }
        return false;
    }
};

/// The name of every node (same order): its own, or for an unnamed node `<op_type>_<index>` made
/// unique with `_1`, `_2`, ... (an unnamed node without op_type counts as op_type `node`).
inline std::vector<std::string> node_names(const std::vector<node>& nodes) {
    std::vector<std::string> names;
    names.reserve(nodes.size());
    std::unordered_set<std::string_view> taken;
    taken.reserve(nodes.size());
    for (const auto& n : nodes) {
        if (!n.name.empty()) taken.insert(n.name);
    }
    std::unordered_set<std::string> generated;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const node& n = nodes[i];
        if (!n.name.empty()) {
            names.push_back(n.name);
            continue;
        }
        const std::string base = (n.op_type.empty() ? std::string("node") : n.op_type) + '_' + std::to_string(i);
        std::string candidate = base;
        for (std::size_t k = 1; taken.contains(candidate) || generated.contains(candidate); ++k) {
            candidate = base + '_' + std::to_string(k);
        }
        generated.insert(candidate);
        names.push_back(std::move(candidate));
    }
    return names;
}
inline std::vector<std::string> node_names(const graph& g) { return node_names(g.nodes); }

/// The module path of a node named like a PyTorch export names it: `/a/b.0/c/<op_type>[_<n>]`
/// gives `a.b.0.c`. Anything else (no leading `/`, an empty segment, a last segment that is not
/// the op type with an optional `_<digits>`, no module segment) gives no path.
/// Example: `module_path("/layers.0/self_attn/k_proj/MatMul", "MatMul") == "layers.0.self_attn.k_proj"`.
inline std::optional<std::string> module_path(std::string_view node_name, std::string_view op_type) {
    if (node_name.size() < 2 || node_name.front() != '/' || op_type.empty()) return std::nullopt;
    const std::size_t last = node_name.rfind('/');
    if (last == 0) return std::nullopt;  // `/MatMul`: no module
    const std::string_view op_part = node_name.substr(last + 1);
    if (op_part.substr(0, op_type.size()) != op_type) return std::nullopt;
    const std::string_view suffix = op_part.substr(op_type.size());
    if (!suffix.empty()) {
        if (suffix.size() < 2 || suffix.front() != '_') return std::nullopt;
        for (char c : suffix.substr(1)) {
            if (c < '0' || c > '9') return std::nullopt;
        }
    }
    std::string path(node_name.substr(1, last - 1));
    char previous = '/';
    for (char& c : path) {
        if (c == '/') {
            if (previous == '/') return std::nullopt;  // an empty segment
            c = '.';
            previous = '/';
        } else {
            previous = c;
        }
    }
    if (previous == '/') return std::nullopt;
    return path;
}

/// The layer table of a graph: every node under its name (see node_names()), eligible by op type,
/// and every eligible node also under its module path (see module_path()). Two nodes with one name
/// are `invalid_model` errors in `diags` (the later node is left out); `file` goes into them.
inline layer_table to_layer_table(const graph& g, diagnostics& diags, const std::string& file = {}) {
    const std::vector<std::string> names = node_names(g);
    layer_table table;
    table.reserve(g.nodes.size());
    std::unordered_map<std::string_view, bool> eligible_by_type;
    std::vector<std::pair<std::size_t, std::size_t>> eligible_nodes;  // (node, table row)
    std::unordered_map<std::string_view, std::size_t> first_with_name;
    for (std::size_t i = 0; i < g.nodes.size(); ++i) {
        const node& n = g.nodes[i];
        auto it = eligible_by_type.find(n.op_type);
        if (it == eligible_by_type.end()) it = eligible_by_type.emplace(n.op_type, g.supports_kv_quant(n.op_type)).first;
        if (!table.add(names[i], n.op_type, it->second)) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = "nodes #" + std::to_string(first_with_name.at(names[i])) + " and #" + std::to_string(i) +
                                  " are both named \"" + names[i] + "\": node names must be unique",
                       .where = {file, 0, 0},
                       .layer = names[i],
                       .json_path = {}});
            continue;
        }
        first_with_name.emplace(names[i], i);
        if (it->second) eligible_nodes.emplace_back(i, table.size() - 1);
    }
    // After every name is in: a path equal to a node name never becomes an alias.
    for (const auto& [node_index, row] : eligible_nodes) {
        if (auto path = module_path(names[node_index], g.nodes[node_index].op_type)) table.add_alias(std::move(*path), row);
    }
    return table;
}

/// The throwing form of to_layer_table. Errors: `kvcali::error` (invalid_model) on duplicate names.
inline layer_table to_layer_table(const graph& g) {
    diagnostics diags;
    layer_table table = to_layer_table(g, diags);
    diags.throw_if_errors();
    return table;
}

}  // namespace kvcali::onnx

namespace kvcali {

/// The plain ONNX-like graph as a model graph: its nodes under the names node_names() gives.
/// (Module paths need the layer table: pass `kvcali::onnx::to_layer_table(g)` to use them.)
template <>
struct model_graph_traits<onnx::graph> {
    struct layer {
        std::string name;
        std::string_view op_type;
    };
    static std::vector<layer> layers(const onnx::graph& g) {
        std::vector<std::string> names = onnx::node_names(g);
        std::vector<layer> out;
        out.reserve(names.size());
        for (std::size_t i = 0; i < names.size(); ++i) out.push_back({std::move(names[i]), g.nodes[i].op_type});
        return out;
    }
    static std::string_view name(const layer& l) { return l.name; }
    static std::string_view type_name(const layer& l) { return l.op_type; }
    static bool supports_kv_quant(const onnx::graph& g, std::string_view op_type) { return g.supports_kv_quant(op_type); }
};

}  // namespace kvcali
