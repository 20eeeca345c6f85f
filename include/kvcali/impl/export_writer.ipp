// kvcali: export/writer.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <sys/stat.h>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../detail/json_input.hpp"
#include "../error.hpp"
#include "../export/json_text.hpp"
#include "../export/plan.hpp"
#include "../export/safetensors.hpp"
#include "../export/writer.hpp"
#include "../io.hpp"

namespace kvcali {

namespace detail {

/// Reads an existing JSON object file for merging; records invalid_data when it is not one.
inline std::optional<boost::json::object> read_json_object(const std::filesystem::path& path, diagnostics& diags) {
    std::string text;
    try {
        text = read_file(path);
    } catch (const error& e) {
        for (const auto& d : e.diagnostics()) diags.add(d);
        return std::nullopt;
    }
    boost::json::value doc;
    if (!parse_json(text, path.string(), errc::invalid_data, path.filename().string(), doc, diags)) return std::nullopt;
    if (!doc.is_object()) {
        diags.error(errc::invalid_data, path.string() + " must hold a JSON object to merge into", {path.string(), 0, 0});
        return std::nullopt;
    }
    return std::move(doc.get_object());
}

/// Records io_error when `path` exists and cannot be replaced: a folder, or a file without write
/// permission for anyone (kvcali leaves read-only files alone, even where it could rename over them).
inline void check_replaceable(const std::filesystem::path& path, diagnostics& diags) {
    struct ::stat st {};
    if (::stat(path.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        diags.error(errc::io_error, "cannot write " + path.string() + ": it is a directory", {path.string(), 0, 0});
    } else if (S_ISREG(st.st_mode) && (st.st_mode & (S_IWUSR | S_IWGRP | S_IWOTH)) == 0) {
        diags.error(errc::io_error, "cannot write " + path.string() + ": the file is read-only", {path.string(), 0, 0});
    }
}

}  // namespace detail

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL std::vector<export_file> prepare_export(const export_plan& plan, const std::filesystem::path& dir, bool into) {
    namespace fs = std::filesystem;
    diagnostics diags;
    std::vector<export_file> files;
    std::error_code ec;
    const auto dir_status = fs::status(dir, ec);
    if (fs::exists(dir_status) && !fs::is_directory(dir_status)) {
        detail::throw_io_error(dir.string(), "cannot write into " + dir.string() + ": not a folder");
    }
    if (into && !fs::exists(dir_status)) {
        detail::throw_io_error(dir.string(), "cannot merge into " + dir.string() + ": no such folder");
    }
    std::set<std::string> ours;
    for (const auto& t : plan.tensors) ours.insert(t.name);

    if (!plan.tensor_file.empty()) {
        const fs::path path = dir / plan.tensor_file;
        detail::check_replaceable(path, diags);
        std::vector<raw_tensor> tensors;
        auto metadata = default_safetensors_metadata();
        if (into && fs::is_regular_file(path, ec)) {
            try {
                safetensors_file existing(path);
                std::vector<std::pair<std::string, std::string>> kept;
                for (const auto& m : existing.header().metadata) {
                    if (m.first != "format" && m.first != "producer") kept.push_back(m);
                }
                metadata.insert(metadata.end(), kept.begin(), kept.end());
                for (const auto& e : existing.header().tensors) {
                    if (!ours.contains(e.name)) tensors.push_back(existing.read_raw(e));
                }
            } catch (const error& e) {
                for (const auto& d : e.diagnostics()) diags.add(d);
            }
        }
        for (const auto& t : plan.tensors) tensors.push_back(to_raw_tensor(t));
        if (!diags.has_errors()) files.push_back({path, safetensors_bytes(std::span<const raw_tensor>(tensors), metadata)});
    }

    for (const auto& doc : plan.documents) {
        fs::path path = dir / doc.file_name;
        boost::json::object content = doc.content;
        if (into && plan.format == export_format::ascend_c8 && fs::exists(path, ec)) {
            auto existing = detail::read_json_object(path, diags);
            if (!existing) continue;
            std::string value = "C8";
            if (const auto* mqt = existing->if_contains("model_quant_type"); mqt && mqt->is_string())
                value = std::string(mqt->get_string());
            (*existing)["kv_cache_type"] = "C8";
            (*existing)["kv_quant_type"] = "C8";
            for (const auto& t : plan.tensors) (*existing)[t.name] = value;
            content = std::move(*existing);
        } else if (into && plan.format == export_format::compressed_tensors) {
            path = dir / "config.json";
            if (!fs::exists(path, ec)) {
                diags.error(errc::invalid_argument,
                            "cannot merge the kv_cache_scheme into " + path.string() +
                                ": no such file (--into names a model folder; use -o to write kv_cache_scheme.json alone)",
                            {path.string(), 0, 0});
                continue;
            }
            auto existing = detail::read_json_object(path, diags);
            if (!existing) continue;
            auto* qc = existing->if_contains("quantization_config");
            if (qc == nullptr) {
                (*existing)["quantization_config"] = boost::json::object{{"quant_method", "compressed-tensors"}};
                qc = existing->if_contains("quantization_config");
            } else if (!qc->is_object()) {
                diags.error(errc::invalid_data, path.string() + ": \"quantization_config\" must be an object", {path.string(), 0, 0});
                continue;
            }
            qc->get_object()["kv_cache_scheme"] = doc.content;
            content = std::move(*existing);
        }
        detail::check_replaceable(path, diags);
        files.push_back({path, json_text(content)});
    }

    const fs::path index_path = dir / "model.safetensors.index.json";
    if (into && !plan.tensor_file.empty() && fs::exists(index_path, ec)) {
        if (auto index = detail::read_json_object(index_path, diags)) {
            auto* map = index->if_contains("weight_map");
            if (map == nullptr) {
                (*index)["weight_map"] = boost::json::object{};
                map = index->if_contains("weight_map");
            }
            if (!map->is_object()) {
                diags.error(errc::invalid_data, index_path.string() + ": \"weight_map\" must be an object", {index_path.string(), 0, 0});
            } else {
                for (const auto& t : plan.tensors) map->get_object()[t.name] = plan.tensor_file;
                detail::check_replaceable(index_path, diags);
                files.push_back({index_path, json_text(*index)});
            }
        }
    }
    diags.throw_if_errors();
    return files;
}

KVCALI_DECL void commit_export(const std::vector<export_file>& files) {
    namespace fs = std::filesystem;
    std::vector<fs::path> created;
    std::vector<std::unique_ptr<atomic_file_writer>> writers;
    try {
        for (const auto& f : files) {
            const fs::path parent = f.path.has_parent_path() ? f.path.parent_path() : fs::path(".");
            std::error_code ec;
            if (!fs::exists(parent, ec)) {
                // The missing folders, outermost first, to remove on failure.
                std::vector<fs::path> missing;
                for (fs::path p = parent; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
                    missing.insert(missing.begin(), p);
                    if (p == p.parent_path()) break;
                }
                for (const auto& p : missing) {
                    if (!fs::create_directory(p, ec) && ec) {
                        detail::throw_io_error(p.string(), "cannot create the folder " + p.string() + ": " + ec.message());
                    }
                    created.push_back(p);
                }
            }
            writers.push_back(std::make_unique<atomic_file_writer>(f.path));
            writers.back()->write(f.bytes);
        }
    } catch (...) {
        writers.clear();  // removes the temporaries
        std::error_code ec;
        for (auto it = created.rbegin(); it != created.rend(); ++it) fs::remove(*it, ec);
        throw;
    }
    for (auto& w : writers) w->commit();
}

KVCALI_DECL std::vector<std::filesystem::path> write_export(const export_plan& plan, const std::filesystem::path& dir, bool into) {
    const auto files = prepare_export(plan, dir, into);
    commit_export(files);
    std::vector<std::filesystem::path> out;
    for (const auto& f : files) out.push_back(f.path);
    return out;
}

}  // namespace kvcali
