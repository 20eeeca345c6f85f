// kvcali internals: the JSON form of the simple config file, read by the library's one JSON reader
// (detail/json_reader.hpp) into the same cfg_document as the text format. Objects are messages,
// arrays lists; a key written twice is two children, as a field written twice in the text format.
// Numbers keep their written text, so binding rounds them correctly (std::from_chars).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../error.hpp"
#include "../simple_config.hpp"
#include "concat.hpp"
#include "json_reader.hpp"
#include "text_format.hpp"

namespace kvcali::detail {

/// Builds a cfg_document from the JSON reader's steps, within the limits on depth and nodes.
class json_document_builder {
public:
    json_document_builder(std::string_view text, const simple_config_limits& limits)
        : lines_(text), limits_(limits), parser_(text, limits.max_depth + 2, false) {}

    /// Reads the whole text into `root`; false on the first error (see error(), error_offset()).
    bool read(cfg_document& root) {
        if (!parser_.document_start()) return fail_from_parser();
        const char first = parser_.peek();
        if (first != '{' && std::string_view("[\"-0123456789tfn").find(first) != std::string_view::npos)
            return fail(0, "the JSON config must be an object (the AMCTQuantCaliConfig message), as in {\"batch_num\": 1, ...}");
        if (first != '{') {
            json_scalar ignored;  // not a value: the reader says why
            parser_.skip_value(ignored, scratch_, 1);
            return fail_from_parser();
        }
        if (!members(root, 0)) return false;
        if (!parser_.document_end()) return fail_from_parser();
        return true;
    }

    const std::string& error() const noexcept { return error_; }
    std::size_t error_offset() const noexcept { return error_offset_; }

private:
    /// The members of the object at the current position, as children of `node` (at `depth`).
    bool members(cfg_document& node, std::size_t depth) {
        node.data().kind = cfg_kind::message;
        const bool ok = parser_.read_object(depth + 1, json_parser::member_fn([&](std::string_view key, std::size_t key_offset) {
                                                cfg_document& child = children_.add(node, key);
                                                set_position(child.data(), key_offset);
                                                return value(child, depth);
                                            }));
        return ok || fail_from_parser();
    }

    /// The value at the current position into `node` (a member or an element of a value at `depth`).
    bool value(cfg_document& node, std::size_t depth) {
        const std::size_t offset = parser_.position();
        if (++nodes_ > limits_.max_nodes)
            return fail(offset, concat({"the file has more than ", limits_.max_nodes, " fields and values (the limit)"}));
        cfg_node& data = node.data();
        data.colon = true;
        const auto [line, column] = lines_.line_column(offset);
        data.value_line = line;
        data.value_column = column;
        if (data.line == 0) {  // a list element: named by its value's place
            data.line = line;
            data.column = column;
        }
        const char c = parser_.peek();
        if (c == '{' || c == '[') {
            if (depth + 1 > limits_.max_depth)
                return fail(offset, concat({"nesting deeper than ", limits_.max_depth, " levels (the limit)"}));
            if (c == '{') return members(node, depth + 1);
            data.kind = cfg_kind::list;
            const bool ok = parser_.read_array(
                depth + 2, json_parser::element_fn([&](std::size_t) { return value(children_.add(node, ""), depth + 1); }));
            return ok || fail_from_parser();
        }
        if (c == '"') {
            std::string_view s;
            if (!parser_.read_string(s, scratch_)) return fail_from_parser();
            data.kind = cfg_kind::json_string;
            data.text.assign(s);
            return true;
        }
        json_scalar scalar;
        if (!parser_.skip_value(scalar, scratch_, depth + 1)) return fail_from_parser();
        switch (scalar.type) {
            case json_scalar::kind::number:
                data.kind = cfg_kind::json_number;
                data.text.assign(scalar.number);
                break;
            case json_scalar::kind::boolean:
                data.kind = cfg_kind::json_bool;
                data.text = scalar.boolean ? "true" : "false";
                break;
            default:
                data.kind = cfg_kind::json_null;
                data.text = "null";
                break;
        }
        return true;
    }

    void set_position(cfg_node& data, std::size_t offset) const {
        const auto [line, column] = lines_.line_column(offset);
        data.line = line;
        data.column = column;
    }

    KVCALI_COLD bool fail(std::size_t offset, std::string message) {
        if (error_.empty()) {
            error_offset_ = offset;
            error_ = std::move(message);
        }
        return false;
    }
    bool fail_from_parser() {
        return parser_.failed() ? fail(parser_.error_offset(), concat({"not valid JSON: ", parser_.error()})) : false;
    }

    line_index lines_;
    const simple_config_limits& limits_;
    json_parser parser_;
    std::string scratch_;
    cfg_child_maker children_;
    std::size_t nodes_ = 0;
    std::size_t error_offset_ = 0;
    std::string error_;
};

/// Reads the JSON form into `root`; false when it is not valid JSON, nests deeper than the
/// limit or is not an object (reported to `diags` with line:column).
inline bool read_json_document(std::string_view text, const std::string& file, diagnostics& diags, cfg_document& root,
                               const simple_config_limits& limits = {}) {
    auto report = [&](const source_location& where, std::string message) {
        diags.add({.severity = severity::error,
                   .category = errc::parse_error,
                   .message = std::move(message),
                   .where = where,
                   .layer = {},
                   .json_path = where.line == 0 ? std::string() : std::string("$")});
    };
    if (text.size() > limits.max_bytes) {
        report({file, 0, 0}, too_large_config(text.size(), limits));
        return false;
    }
    if (text.starts_with("\xEF\xBB\xBF")) {
        report({file, 1, 1}, "the file starts with a UTF-8 byte order mark, which JSON does not allow; remove it");
        return false;
    }
    json_document_builder builder(text, limits);
    cfg_document doc;
    if (!builder.read(doc)) {
        report(line_index(text).at(builder.error_offset(), file), builder.error());
        return false;
    }
    root.swap(doc);
    return true;
}

}  // namespace kvcali::detail
