// kvcali: reading .onnx files (through Debian's libonnx-dev: link onnx_proto and protobuf, compile
// with -DONNX_ML=1) into the plain ONNX-like graph of kvcali/adapters/onnx.hpp.
//
// What is read: the main graph's nodes in graph order, each with its name, op type, inputs and
// outputs. Nodes of another domain than ai.onnx get the op type `<domain>.<op_type>` (so a custom
// `MatMul` is not taken for ONNX's). Nodes inside subgraphs (the bodies of If, Loop, Scan) are not
// read; when a subgraph holds an eligible node, a warning names it.
#pragma once

#include <onnx/onnx_pb.h>

#include <kvcali/adapters/onnx.hpp>
#include <kvcali/error.hpp>
#include <kvcali/io.hpp>

#include <climits>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvcali::onnx {

namespace detail {

inline bool is_default_domain(std::string_view domain) { return domain.empty() || domain == "ai.onnx"; }

inline std::string op_type_of(const ::onnx::NodeProto& n) {
    if (is_default_domain(n.domain())) return n.op_type();
    return n.domain() + '.' + n.op_type();
}

/// Appends to `found` the eligible nodes of `g` and of the subgraphs below it, as
/// `attribute: "name"` (`attribute: MatMul #index` when unnamed).
inline void eligible_in_subgraph(const ::onnx::GraphProto& g, const std::string& attribute, const graph& types,
                                 std::vector<std::string>& found) {
    for (int i = 0; i < g.node_size(); ++i) {
        const ::onnx::NodeProto& n = g.node(i);
        const std::string type = op_type_of(n);
        if (types.supports_kv_quant(type)) {
            found.push_back(attribute + ": " + (n.name().empty() ? type + " #" + std::to_string(i) : "\"" + n.name() + "\""));
        }
        for (const auto& a : n.attribute()) {
            const std::string inner = attribute + "/" + (n.name().empty() ? type + " #" + std::to_string(i) : n.name()) + "." + a.name();
            if (a.has_g()) eligible_in_subgraph(a.g(), inner, types, found);
            for (const auto& sub : a.graphs()) eligible_in_subgraph(sub, inner, types, found);
        }
    }
}

}  // namespace detail

/// Reads the bytes of an .onnx file. Problems go to `diags`: `invalid_model` when the bytes are no
/// ONNX model (truncated, another format, no graph, a node without op type); a warning
/// (`invalid_model`, an error in strict mode) for each node whose subgraphs hold eligible nodes.
/// `file` names the source in diagnostics. The graph is meaningful only without errors.
/// Example: `auto g = kvcali::onnx::parse_onnx(bytes, "model.onnx", diags);`
inline graph parse_onnx(std::string_view bytes, const std::string& file, diagnostics& diags,
                        std::vector<std::string> eligible_op_types = default_eligible_op_types()) {
    graph out;
    out.eligible_op_types = std::move(eligible_op_types);
    const source_location where{file, 0, 0};
    if (bytes.empty()) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_model,
                   .message = file + " is empty, not an ONNX model",
                   .where = where,
                   .layer = {},
                   .json_path = {}});
        return out;
    }
    if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_model,
                   .message = file + " is larger than 2 GiB: an ONNX model keeps bigger weights in external data files",
                   .where = where,
                   .layer = {},
                   .json_path = {}});
        return out;
    }
    ::onnx::ModelProto model;
    if (!model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_model,
                   .message = file + " is not an ONNX model: its bytes do not decode as onnx.ModelProto (truncated, or another format)",
                   .where = where,
                   .layer = {},
                   .json_path = {}});
        return out;
    }
    // Protobuf decodes many non-ONNX byte strings without complaint; every real model has these.
    std::string missing;
    if (!model.has_ir_version() || model.ir_version() <= 0) missing += "ir_version";
    if (model.opset_import_size() == 0) missing += missing.empty() ? "opset_import" : ", opset_import";
    if (!model.has_graph()) missing += missing.empty() ? "graph" : ", graph";
    if (!missing.empty()) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_model,
                   .message = file + " is not an ONNX model: it has no " + missing,
                   .where = where,
                   .layer = {},
                   .json_path = {}});
        return out;
    }
    const ::onnx::GraphProto& g = model.graph();
    out.nodes.reserve(static_cast<std::size_t>(g.node_size()));
    for (int i = 0; i < g.node_size(); ++i) {
        const ::onnx::NodeProto& n = g.node(i);
        if (n.op_type().empty()) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = "node #" + std::to_string(i) + (n.name().empty() ? std::string() : " (\"" + n.name() + "\")") +
                                  " has no op_type",
                       .where = where,
                       .layer = n.name(),
                       .json_path = {}});
        }
        node copy{n.name(), detail::op_type_of(n), {n.input().begin(), n.input().end()}, {n.output().begin(), n.output().end()}};
        out.nodes.push_back(std::move(copy));
    }
    const std::vector<std::string> names = node_names(out);
    for (int i = 0; i < g.node_size(); ++i) {
        const ::onnx::NodeProto& n = g.node(i);
        std::vector<std::string> found;
        for (const auto& a : n.attribute()) {
            if (a.has_g()) detail::eligible_in_subgraph(a.g(), a.name(), out, found);
            for (const auto& sub : a.graphs()) detail::eligible_in_subgraph(sub, a.name(), out, found);
        }
        if (found.empty()) continue;
        const std::string& name = names[static_cast<std::size_t>(i)];
        std::string message = "node \"" + name + "\" (" + out.nodes[static_cast<std::size_t>(i)].op_type + ") has " +
                              std::to_string(found.size()) + " eligible node" + (found.size() == 1 ? "" : "s") + " in its subgraphs (";
        for (std::size_t k = 0; k < found.size(); ++k) message += (k ? ", " : "") + found[k];
        message += "); kvcali reads only the main graph, so they cannot be quantized";
        diags.add({.severity = severity::warning,
                   .category = errc::invalid_model,
                   .message = std::move(message),
                   .where = where,
                   .layer = name,
                   .json_path = {}});
    }
    return out;
}

/// Reads an .onnx file. Problems go to `diags`: `io_error` when it cannot be read, and those of
/// parse_onnx(). The graph is meaningful only without errors.
inline graph read_onnx_file(const std::filesystem::path& path, diagnostics& diags,
                            std::vector<std::string> eligible_op_types = default_eligible_op_types()) {
    std::string bytes;
    try {
        bytes = read_file(path);
    } catch (error& e) {
        for (const auto& d : e.diagnostics()) diags.add(d);
        graph out;
        out.eligible_op_types = std::move(eligible_op_types);
        return out;
    }
    return parse_onnx(bytes, path.string(), diags, std::move(eligible_op_types));
}

/// The throwing form of read_onnx_file: the graph, or `kvcali::error` (io_error, invalid_model).
/// Warnings go to `on_warning`. Example: `auto g = kvcali::onnx::load_onnx_file("model.onnx");`
inline graph load_onnx_file(const std::filesystem::path& path, warning_sink on_warning = {}, bool strict = false) {
    diagnostics diags(strict, std::move(on_warning));
    graph g = read_onnx_file(path, diags);
    diags.throw_if_errors();
    return g;
}

/// An .onnx file as a layer table, with module paths (see onnx.hpp): what `kvcali --model x.onnx`
/// uses. Errors: `kvcali::error` (io_error, invalid_model, also for duplicate node names).
/// Example: `kvcali::create_quant_cali_config("config.json", kvcali::onnx::load_onnx_layers("m.onnx"), layers);`
inline layer_table load_onnx_layers(const std::filesystem::path& path, warning_sink on_warning = {}, bool strict = false) {
    diagnostics diags(strict, std::move(on_warning));
    const graph g = read_onnx_file(path, diags);
    if (!diags.has_errors()) {
        layer_table table = to_layer_table(g, diags, path.string());
        diags.throw_if_errors();
        return table;
    }
    diags.throw_if_errors();
    return {};
}

}  // namespace kvcali::onnx
