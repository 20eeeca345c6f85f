// kvcali: the config.json writer (declared in config_writer.hpp): included at the end of that
// header (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <array>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../config_writer.hpp"
#include "../detail/concat.hpp"
#include "../io.hpp"
#include "../json_format.hpp"
#include "../resolved_config.hpp"

namespace kvcali {

namespace detail {

KVCALI_NOINLINE inline void append_param_value(std::string& out, const param_value& v) {
    switch (v.type) {
        case param_type::boolean: out += v.boolean ? "true" : "false"; break;
        case param_type::uint32: append_concat(out, {v.uint}); break;
        case param_type::float32: append_float32_repr(out, v.real); break;
        case param_type::enumeration: append_concat(out, {v.enumerator}); break;
    }
}

inline void newline_indent(std::string& out, int level) {
    out += '\n';
    out.append(static_cast<std::size_t>(level) * 4, ' ');
}

}  // namespace detail

/// Appends the `kv_data_quant_config` object body of one layer: `{"act_algo":...,...}`, indented
/// for nesting `level` (the level of the object's own braces).
KVCALI_DECL void append_algorithm_object(std::string& out, const algorithm_desc& algo,
                                         const std::vector<std::optional<param_value>>& values, int level) {
    out += '{';
    detail::newline_indent(out, level + 1);
    out += "\"act_algo\":";
    append_json_string(out, algo.act_algo);
    const auto& params = algo.params;
    for (std::size_t i = 0; i < params.size(); ++i) {
        const param_desc& p = params[i];
        if (p.json_slot >= 0) {
            // One JSON array for the consecutive fields sharing this key, in slot order.
            std::size_t last = i;
            while (last + 1 < params.size() && params[last + 1].json_name == p.json_name) ++last;
            out += ',';
            detail::newline_indent(out, level + 1);
            append_json_string(out, p.json_name);
            out += ":[";
            bool first = true;
            for (int slot = 0; slot <= static_cast<int>(last - i); ++slot) {
                for (std::size_t k = i; k <= last; ++k) {
                    if (params[k].json_slot != slot || !values[k]) continue;
                    if (!first) out += ',';
                    first = false;
                    detail::newline_indent(out, level + 2);
                    detail::append_param_value(out, *values[k]);
                }
            }
            detail::newline_indent(out, level + 1);
            out += ']';
            i = last;
            continue;
        }
        if (!values[i]) continue;
        out += ',';
        detail::newline_indent(out, level + 1);
        append_json_string(out, p.json_name);
        out += ':';
        detail::append_param_value(out, *values[i]);
    }
    detail::newline_indent(out, level);
    out += '}';
}

namespace detail {

/// Appends config.json for `config` to `out`, handing `out` to `flush(out)` (which takes bytes
/// from it) after each layer once it holds at least `chunk` bytes, so a large document need not
/// be held whole.
template <class Flush>
void append_config_json(std::string& out, const resolved_config& config, std::size_t chunk, Flush&& flush) {
    // Layers with the same algorithm and values (every layer of one algorithm block) have the
    // same object text: the last few distinct ones are rendered once and copied.
    struct rendered_object {
        std::size_t algorithm = 0;
        std::vector<std::optional<param_value>> values;
        std::string text;
        bool used = false;
    };
    std::array<rendered_object, 4> rendered;
    std::size_t next_slot = 0;
    auto object_text = [&](const resolved_layer& layer) -> const std::string& {
        for (const auto& r : rendered) {
            if (r.used && r.algorithm == layer.algorithm && r.values == layer.values) return r.text;
        }
        rendered_object& r = rendered[next_slot];
        next_slot = (next_slot + 1) % rendered.size();
        r.used = true;
        r.algorithm = layer.algorithm;
        r.values = layer.values;
        r.text.clear();
        append_algorithm_object(r.text, config.algorithm_of(layer), layer.values, 2);
        return r.text;
    };
    out += '{';
    detail::newline_indent(out, 1);
    out += "\"batch_num\":";
    detail::append_concat(out, {config.batch_num});
    out += ',';
    detail::newline_indent(out, 1);
    out += "\"activation_offset\":";
    out += config.activation_offset ? "true" : "false";
    for (const auto& layer : config.layers) {
        out += ',';
        detail::newline_indent(out, 1);
        append_json_string(out, layer.name);
        out += ":{";
        detail::newline_indent(out, 2);
        out += "\"kv_data_quant_config\":";
        out += object_text(layer);
        detail::newline_indent(out, 1);
        out += '}';
        if (out.size() >= chunk) flush(out);
    }
    out += '\n';
    out += '}';
}

}  // namespace detail

/// The bytes of config.json for `config`, identical to the reference's
/// `json.dumps(doc, indent=4, separators=(',', ':'))` (no trailing newline).
KVCALI_DECL std::string write_config_json(const resolved_config& config) {
    std::string out;
    out.reserve(64 + config.layers.size() * 360);
    detail::append_config_json(out, config, std::string::npos, [](std::string&) {});
    return out;
}

/// Writes config.json for `config` to `path` atomically (see atomic_file_writer), the same bytes
/// as write_config_json, in pieces (the document is never held whole).
KVCALI_DECL void write_config_json_file(const std::filesystem::path& path, const resolved_config& config) {
    constexpr std::size_t chunk = std::size_t{1} << 16;
    atomic_file_writer file(path);
    std::string buffer;
    buffer.reserve(chunk + 4096);
    detail::append_config_json(buffer, config, chunk, [&](std::string& pending) {
        file.write(pending);
        pending.clear();
    });
    file.write(buffer);
    file.commit();
}

}  // namespace kvcali
