// kvcali: reading quant.cfg (declared in quant_cfg.hpp): included at the end of that header (header-only use)
// or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "../detail/text_format.hpp"
#include "../detail/text_format_bind.hpp"
#include "../detail/text_format_json.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "../policy.hpp"
#include "../quant_cfg.hpp"
#include "../simple_config.hpp"

namespace kvcali {

KVCALI_DECL simple_config parse_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                              diagnostics& diags, const simple_config_limits& limits) {
    // One reader for every file (its fast paths are inside the tokenizer), then the binder, one
    // top-level field at a time as the reader finishes it (the whole document is never in memory).
    // The binder's reports are held until the text has been read: a syntax error anywhere means
    // the file is not bound at all (only the syntax error is reported), as when reading came first.
    simple_config cfg;
    cfg.file = file;
    diagnostics bound(diags.strict());
    detail::document_binder binder(file, false, algorithms, bound, limits);
    detail::text_format_reader reader(text, file, diags, limits);
    detail::cfg_document doc;
    if (!reader.read(doc, [&](detail::cfg_document& top) { binder.bind(top, cfg); })) {
        simple_config unbound;
        unbound.file = file;
        return unbound;
    }
    for (diagnostic& d : bound.take()) diags.add(std::move(d));
    return cfg;
}

KVCALI_DECL simple_config parse_simple_config(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                              diagnostics& diags) {
    return parse_simple_config(text, file, algorithms, diags, simple_config_limits{});
}

KVCALI_DECL simple_config parse_simple_config_json(std::string_view text, const std::string& file, algorithm_registry algorithms,
                                                   diagnostics& diags, const simple_config_limits& limits) {
    simple_config cfg;
    cfg.file = file;
    detail::cfg_document doc;
    if (detail::read_json_document(text, file, diags, doc, limits)) {
        detail::document_binder(file, true, algorithms, diags, limits).bind(doc, cfg);
    }
    return cfg;
}

KVCALI_DECL simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms, diagnostics& diags,
                                             const simple_config_limits& limits) {
    const std::string name = path.string();
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (!ec && size > limits.max_bytes) {
        simple_config cfg;
        cfg.file = name;
        diags.error(errc::parse_error, detail::too_large_config(size, limits), {name, 0, 0});
        return cfg;
    }
    const std::string text = read_file(path, limits.max_bytes);
    // The extension as path::extension() reads it: from the file name's last '.', unless that
    // starts the name (".json" is a name, not an extension).
    const std::string_view file_name = std::string_view(name).substr(name.rfind('/') + 1);
    const std::size_t dot = file_name.rfind('.');
    if (dot != std::string_view::npos && dot != 0 && file_name.substr(dot) == ".json") {
        return parse_simple_config_json(text, name, algorithms, diags, limits);
    }
    return parse_simple_config(text, name, algorithms, diags, limits);
}

KVCALI_DECL simple_config load_simple_config(const std::filesystem::path& path, algorithm_registry algorithms, diagnostics& diags) {
    return load_simple_config(path, algorithms, diags, simple_config_limits{});
}

}  // namespace kvcali
