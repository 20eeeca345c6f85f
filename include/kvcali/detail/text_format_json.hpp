// kvcali internals: the JSON form of the simple config file, read with Boost.JSON's SAX parser
// (depth-limited) into the same cfg_document as the text format. Numbers keep their written text,
// so binding rounds them correctly (std::from_chars) instead of taking Boost.JSON's double.
#pragma once

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse_options.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "text_format.hpp"

namespace kvcali::detail {

/// Builds a cfg_document from Boost.JSON parser events. Objects are messages, arrays lists.
class json_document_builder {
public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    explicit json_document_builder(std::size_t max_nodes) : max_nodes_(max_nodes) {}

    cfg_document root;
    bool too_many_nodes = false;
    bool root_not_object = false;

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }

    bool on_object_begin(boost::system::error_code& ec) {
        if (stack_.empty()) {
            stack_.push_back(&root);
            return true;
        }
        cfg_document* node = value(ec);
        if (node == nullptr) return false;
        node->data().kind = cfg_kind::message;
        stack_.push_back(node);
        return true;
    }
    bool on_object_end(std::size_t, boost::system::error_code&) {
        stack_.pop_back();
        return true;
    }
    bool on_array_begin(boost::system::error_code& ec) {
        cfg_document* node = value(ec);
        if (node == nullptr) return false;
        node->data().kind = cfg_kind::list;
        stack_.push_back(node);
        return true;
    }
    bool on_array_end(std::size_t, boost::system::error_code&) {
        stack_.pop_back();
        return true;
    }
    bool on_key_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(boost::json::string_view s, std::size_t, boost::system::error_code&) {
        key_.append(s.data(), s.size());
        have_key_ = true;
        return true;
    }
    bool on_string_part(boost::json::string_view s, std::size_t, boost::system::error_code&) {
        scalar_.append(s.data(), s.size());
        return true;
    }
    bool on_string(boost::json::string_view s, std::size_t, boost::system::error_code& ec) {
        scalar_.append(s.data(), s.size());
        return scalar(cfg_kind::json_string, ec);
    }
    bool on_number_part(boost::json::string_view s, boost::system::error_code&) {
        scalar_.append(s.data(), s.size());
        return true;
    }
    bool on_int64(std::int64_t, boost::json::string_view s, boost::system::error_code& ec) { return number(s, ec); }
    bool on_uint64(std::uint64_t, boost::json::string_view s, boost::system::error_code& ec) { return number(s, ec); }
    bool on_double(double, boost::json::string_view s, boost::system::error_code& ec) { return number(s, ec); }
    bool on_bool(bool b, boost::system::error_code& ec) {
        scalar_ = b ? "true" : "false";
        return scalar(cfg_kind::json_bool, ec);
    }
    bool on_null(boost::system::error_code& ec) {
        scalar_ = "null";
        return scalar(cfg_kind::json_null, ec);
    }
    bool on_comment_part(boost::json::string_view, boost::system::error_code&) { return true; }
    bool on_comment(boost::json::string_view, boost::system::error_code&) { return true; }

private:
    /// A new node for the next value: a member of the current object or an element of the array.
    cfg_document* value(boost::system::error_code& ec) {
        if (stack_.empty()) {
            root_not_object = true;
            ec = boost::json::error::syntax;
            return nullptr;
        }
        if (++nodes_ > max_nodes_) {
            too_many_nodes = true;
            ec = boost::json::error::syntax;
            return nullptr;
        }
        cfg_document& parent = *stack_.back();
        cfg_document* node = nullptr;
        if (have_key_) {
            node = &add_child(parent, key_);
            key_.clear();
            have_key_ = false;
        } else {
            node = &add_child(parent, "");
        }
        node->data().colon = true;
        return node;
    }
    bool number(boost::json::string_view s, boost::system::error_code& ec) {
        scalar_.append(s.data(), s.size());
        return scalar(cfg_kind::json_number, ec);
    }
    bool scalar(cfg_kind kind, boost::system::error_code& ec) {
        cfg_document* node = value(ec);
        if (node == nullptr) return false;
        node->data().kind = kind;
        node->data().text = std::move(scalar_);
        scalar_.clear();
        return true;
    }

    std::vector<cfg_document*> stack_;
    std::string key_;
    bool have_key_ = false;
    std::string scalar_;
    std::size_t nodes_ = 0;
    std::size_t max_nodes_;
};

/// 1-based line and byte column of `offset` in `text`.
inline std::pair<std::uint32_t, std::uint32_t> line_column_of(std::string_view text, std::size_t offset) {
    std::uint32_t line = 1;
    std::size_t line_start = 0;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            line_start = i + 1;
        }
    }
    return {line, static_cast<std::uint32_t>(offset - line_start + 1)};
}

/// Reads the JSON form into `root`; false when it is not valid JSON, nests deeper than the
/// limit or is not an object (reported to `diags` with line:column).
inline bool read_json_document(std::string_view text, const std::string& file, diagnostics& diags, cfg_document& root,
                               const simple_config_limits& limits = {}) {
    auto report = [&](std::size_t offset, std::string message) {
        const auto [line, column] = line_column_of(text, offset);
        diags.add({.severity = severity::error,
                   .category = errc::parse_error,
                   .message = std::move(message),
                   .where = {file, line, column},
                   .layer = {},
                   .json_path = "$"});
    };
    if (text.size() > limits.max_bytes) {
        diags.add({.severity = severity::error,
                   .category = errc::parse_error,
                   .message = "the file is " + std::to_string(text.size()) + " bytes, larger than the limit of " +
                              std::to_string(limits.max_bytes) + " bytes",
                   .where = {file, 0, 0},
                   .layer = {},
                   .json_path = {}});
        return false;
    }
    boost::json::parse_options options;
    // The document's root is depth 1 for Boost.JSON; the text format counts nesting below the root.
    options.max_depth = limits.max_depth + 1;
    boost::json::basic_parser<json_document_builder> parser(options, limits.max_nodes);
    boost::system::error_code ec;
    const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
    json_document_builder& builder = parser.handler();
    if (!ec && used < text.size()) ec = boost::json::error::extra_data;
    if (ec) {
        if (builder.root_not_object) {
            report(0, "the JSON config must be an object (the AMCTQuantCaliConfig message), as in {\"batch_num\": 1, ...}");
        } else if (builder.too_many_nodes) {
            report(used, "the file has more than " + std::to_string(limits.max_nodes) + " fields and values (the limit)");
        } else if (ec == boost::json::error::too_deep) {
            report(used, "nesting deeper than " + std::to_string(limits.max_depth) + " levels (the limit)");
        } else if (text.starts_with("\xEF\xBB\xBF")) {
            report(0, "the file starts with a UTF-8 byte order mark, which JSON does not allow; remove it");
        } else {
            report(used, "not valid JSON: " + ec.message());
        }
        return false;
    }
    root.swap(builder.root);
    return true;
}

}  // namespace kvcali::detail
