// kvcali: export/plan.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../calibration/record.hpp"
#include "../config_reader.hpp"
#include "../error.hpp"
#include "../export/json_text.hpp"
#include "../export/plan.hpp"
#include "../io.hpp"
#include "../layer_list.hpp"
#include "../resolved_config.hpp"
#include "../selector.hpp"

namespace kvcali {

namespace detail {

struct export_layer {
    const resolved_layer* config = nullptr;
    const layer_record* record = nullptr;
    granularity gran = granularity::per_tensor;
    kv_role role = kv_role::none;
    std::string module;
    bool usable = false;  ///< counts, scales and offsets are valid
    std::vector<float> amax;
};

struct export_module {
    std::string name;
    std::ptrdiff_t key = -1;  ///< index into the layers
    std::ptrdiff_t value = -1;
};

inline std::string roles_hint() {
    return "its last name segment is none of k_proj/v_proj, key/value, wk/wv, key_proj/value_proj, to_k/to_v, k_lin/v_lin, "
           "or k/v inside an attention block";
}

inline std::string channel_text(std::size_t n) { return std::to_string(n) + (n == 1 ? " channel" : " channels"); }

}  // namespace detail

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL std::optional<export_format> parse_export_format(std::string_view name) noexcept {
    for (auto f : {export_format::ascend_c8, export_format::compressed_tensors, export_format::vllm_scales_json}) {
        if (to_string(f) == name) return f;
    }
    return std::nullopt;
}

KVCALI_DECL std::optional<std::uint64_t> decoder_layer_index(std::string_view name) noexcept {
    std::size_t start = 0;
    while (true) {
        const auto dot = name.find('.', start);
        if (dot == std::string_view::npos) return std::nullopt;
        const auto next = name.find('.', dot + 1);
        if (next == std::string_view::npos) return std::nullopt;
        const std::string_view seg = name.substr(dot + 1, next - dot - 1);
        if (!seg.empty() && seg.size() <= 9 && std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
            std::uint64_t v = 0;
            for (char c : seg) v = v * 10 + static_cast<std::uint64_t>(c - '0');
            return v;
        }
        start = dot + 1;
    }
}

KVCALI_DECL export_plan plan_export(std::span<const layer_record> records, const resolved_config& config, const export_options& opts) {
    export_plan plan;
    plan.format = opts.format;
    diagnostics diags(opts.strict, [&](const diagnostic& d) {
        plan.warnings.push_back(d);
        if (opts.on_warning) opts.on_warning(d);
    });
    const std::string& rec = opts.record_name;
    const source_location at{rec, 0, 0};
    const bool needs_roles = opts.format != export_format::ascend_c8;
    const std::string fmt(to_string(opts.format));

    std::map<std::string_view, const layer_record*, std::less<>> by_key;
    for (const auto& r : records) {
        if (!by_key.emplace(r.key, &r).second) {
            diags.error(errc::invalid_data, "layer \"" + r.key + "\" has two record blocks", at, r.key);
        }
    }
    std::map<std::string_view, bool, std::less<>> in_config;
    std::vector<detail::export_layer> layers;
    for (const auto& layer : config.layers) {
        in_config.emplace(layer.name, true);
        const auto it = by_key.find(layer.name);
        if (it == by_key.end()) {
            diags.error(errc::incomplete_calibration, "the record has no layer \"" + layer.name + "\" of config.json", at, layer.name);
            continue;
        }
        detail::export_layer e;
        e.config = &layer;
        e.record = it->second;
        e.gran = calibration_of(config, layer).granularity;
        e.role = kv_role_of(layer.name);
        e.module = std::string(attention_module_of(layer.name));
        layers.push_back(std::move(e));
    }
    for (const auto& r : records) {
        if (!in_config.contains(r.key)) {
            diags.error(errc::unknown_layer, "layer \"" + r.key + "\" is not in config.json", at, r.key);
        }
    }

    // Each layer's values.
    for (auto& e : layers) {
        const std::string& name = e.config->name;
        const auto& f = e.record->factors;
        const std::string what = "layer \"" + name + "\"";
        const std::size_t c = f.scale.size();
        bool ok = true;
        if (c == 0) {
            diags.error(errc::invalid_data, what + " has no scale", at, name);
            continue;
        }
        if (f.offset.size() != c) {
            diags.error(
                errc::invalid_data,
                what + " has " + std::to_string(c) + " scales but " + std::to_string(f.offset.size()) + " offsets (one per scale expected)",
                at, name);
            ok = false;
        }
        if (e.gran == granularity::per_tensor && c != 1) {
            diags.error(errc::invalid_data,
                        what + " is per tensor (quant_granularity 0 in config.json) but the record has " + std::to_string(c) + " scales",
                        at, name);
            ok = false;
        }
        std::size_t bad_scales = 0, first_bad = 0;
        for (std::size_t i = 0; i < c; ++i) {
            if (!(std::isfinite(f.scale[i]) && f.scale[i] > 0.0f)) {
                if (bad_scales++ == 0) first_bad = i;
            }
        }
        if (bad_scales) {
            diags.error(errc::invalid_data,
                        what + ": scale " + float32_repr(f.scale[first_bad]) + (c > 1 ? " of channel " + std::to_string(first_bad) : "") +
                            (bad_scales > 1 ? " (and " + std::to_string(bad_scales - 1) + " more)" : "") +
                            " is not a finite number > 0 (every scale must be)",
                        at, name);
            ok = false;
        }
        std::size_t bad_offsets = 0;
        for (std::size_t i = 0; i < f.offset.size(); ++i) {
            if (f.offset[i] < -128 || f.offset[i] > 127) {
                if (bad_offsets++ == 0) first_bad = i;
            }
        }
        if (bad_offsets) {
            diags.error(errc::invalid_data,
                        what + ": offset " + std::to_string(f.offset[first_bad]) +
                            (c > 1 ? " of channel " + std::to_string(first_bad) : "") +
                            (bad_offsets > 1 ? " (and " + std::to_string(bad_offsets - 1) + " more)" : "") + " is outside [-128, 127]",
                        at, name);
            ok = false;
        }
        if (opts.model != nullptr) {
            const auto m = opts.model->find(name);
            if (m == opts.model->end()) {
                diags.error(errc::unknown_layer, what + " is not in the model", at, name);
            } else if (e.gran == granularity::per_channel && m->second && *m->second != c) {
                diags.error(errc::invalid_data,
                            what + " has " + detail::channel_text(c) + " but the model's layer has " + std::to_string(*m->second) +
                                " output features",
                            at, name);
            }
        }
        if (needs_roles && e.role == kv_role::none) {
            diags.error(errc::invalid_argument,
                        "cannot tell whether layer \"" + name + "\" is K or V (" + detail::roles_hint() + "): format " + fmt +
                            " needs the role of every layer (ascend-c8 does not)",
                        at, name);
            ok = false;
        } else if (needs_roles && e.role == kv_role::fused_qkv) {
            diags.error(errc::invalid_argument,
                        "layer \"" + name + "\" is a fused QKV projection: format " + fmt +
                            " needs K and V as separate layers (ascend-c8 takes any layer)",
                        at, name);
            ok = false;
        }
        e.usable = ok;
        if (ok) {
            e.amax.resize(c);
            for (std::size_t i = 0; i < c; ++i) e.amax[i] = clip_amax(f.scale[i], f.offset[i]);
        }
    }

    // Attention modules: K and V paired, in the order of config.json.
    std::vector<detail::export_module> modules;
    {
        std::map<std::string, std::size_t, std::less<>> index;
        for (std::size_t i = 0; i < layers.size(); ++i) {
            const auto& e = layers[i];
            if (e.role != kv_role::key && e.role != kv_role::value) continue;
            auto [it, fresh] = index.emplace(e.module, modules.size());
            if (fresh) modules.push_back({e.module, -1, -1});
            auto& m = modules[it->second];
            auto& slot = e.role == kv_role::key ? m.key : m.value;
            if (slot >= 0) {
                diags.error(needs_roles ? errc::invalid_argument : errc::duplicate_layer,
                            "attention module \"" + e.module + "\" has two " + (e.role == kv_role::key ? "K" : "V") + " layers: \"" +
                                layers[static_cast<std::size_t>(slot)].config->name + "\" and \"" + e.config->name + "\"",
                            at, e.config->name);
                continue;
            }
            slot = static_cast<std::ptrdiff_t>(i);
        }
        for (const auto& m : modules) {
            if (m.key < 0 || m.value < 0) {
                const bool has_k = m.key >= 0;
                const auto& present = layers[static_cast<std::size_t>(has_k ? m.key : m.value)];
                diags.warning(errc::incomplete_calibration,
                              "attention module \"" + m.name + "\" has " + (has_k ? "K" : "V") + " (\"" + present.config->name +
                                  "\") but no " + (has_k ? "V" : "K") + " in the record: engines use their default " + (has_k ? "V" : "K") +
                                  " scale for it",
                              at, present.config->name);
                continue;
            }
            const auto& k = layers[static_cast<std::size_t>(m.key)];
            const auto& v = layers[static_cast<std::size_t>(m.value)];
            const std::size_t ck = k.record->factors.scale.size(), cv = v.record->factors.scale.size();
            if (k.gran == granularity::per_channel && v.gran == granularity::per_channel && ck != cv) {
                diags.error(errc::invalid_data,
                            "K \"" + k.config->name + "\" has " + detail::channel_text(ck) + " but V \"" + v.config->name + "\" has " +
                                detail::channel_text(cv) + " (one attention module: the same count expected)",
                            at, v.config->name);
            }
        }
    }

    // The format's own checks and contents.
    switch (opts.format) {
        case export_format::ascend_c8: {
            plan.tensor_file = "kv_cache_c8.safetensors";
            boost::json::object description;
            description["kv_cache_type"] = "C8";
            description["kv_quant_type"] = "C8";
            for (const auto& e : layers) {
                if (!e.usable) continue;
                const std::string& name = e.config->name;
                const auto& f = e.record->factors;
                std::size_t bad = 0, first = 0;
                std::string why;
                for (std::size_t i = 0; i < f.scale.size(); ++i) {
                    if (auto p = dtype_conversion_problem(f.scale[i], opts.dtype)) {
                        if (bad++ == 0) first = i, why = *p;
                    }
                }
                if (bad) {
                    diags.error(errc::invalid_data,
                                "layer \"" + name + "\": scale " + float32_repr(f.scale[first]) +
                                    (f.scale.size() > 1 ? " of channel " + std::to_string(first) : "") + " " + why +
                                    (bad > 1 ? " (and " + std::to_string(bad - 1) + " more)" : "") + "; choose another --dtype",
                                at, name);
                    continue;
                }
                const std::vector<std::uint64_t> shape{f.scale.size()};
                std::vector<float> offsets(f.offset.begin(), f.offset.end());
                plan.tensors.push_back({name + ".kv_cache_scale", opts.dtype, shape, f.scale});
                plan.tensors.push_back({name + ".kv_cache_offset", opts.dtype, shape, std::move(offsets)});
                description[name + ".kv_cache_scale"] = "C8";
                description[name + ".kv_cache_offset"] = "C8";
                ++plan.layers;
            }
            plan.documents.push_back({"quant_model_description.json", std::move(description)});
            break;
        }
        case export_format::compressed_tensors: {
            plan.tensor_file = "kv_cache_scales.safetensors";
            const float max = kv_cache_max(opts.kv_dtype);
            const bool per_head = opts.strategy == kv_scale_strategy::attn_head;
            if (per_head && opts.kv_heads == 0) {
                diags.error(errc::invalid_argument, "strategy attn_head needs the number of KV heads (--kv-heads H, H > 0)", {}, {});
            }
            std::size_t asymmetric = 0;
            for (const auto& e : layers) {
                if (!e.usable) continue;
                const std::string& name = e.config->name;
                const auto& f = e.record->factors;
                if (opts.kv_dtype == kv_cache_dtype::int8) {
                    const auto nz = std::find_if(f.offset.begin(), f.offset.end(), [](std::int32_t o) { return o != 0; });
                    if (nz != f.offset.end()) {
                        const auto i = static_cast<std::size_t>(nz - f.offset.begin());
                        diags.error(
                            errc::invalid_data,
                            "layer \"" + name + "\" is asymmetric (offset " + std::to_string(*nz) +
                                (f.offset.size() > 1 ? " of channel " + std::to_string(i) : "") + ")" +
                                (asymmetric++ == 0
                                     ? std::string(
                                           ", but int8 KV cache in compressed-tensors is symmetric (vLLM reads no zero points): calibrate "
                                           "symmetrically (\"activation_offset\": false in config.json, or \"asymmetric\": false for the "
                                           "layer; "
                                           "activation_offset: false in quant.cfg) and export again, or export with --kv-dtype fp8")
                                     : std::string()),
                            at, name);
                    }
                }
                const std::size_t c = f.scale.size();
                if (per_head && opts.kv_heads > 0 && c > 1 && c % opts.kv_heads != 0) {
                    diags.error(errc::invalid_argument,
                                "layer \"" + name + "\" has " + detail::channel_text(c) + ", not divisible by --kv-heads " +
                                    std::to_string(opts.kv_heads) + " (attn_head needs C/H channels per head)",
                                at, name);
                }
            }
            if (diags.has_errors()) break;
            auto scale_of = [&](const detail::export_layer& e) {
                std::vector<float> out;
                const std::size_t c = e.amax.size();
                if (!per_head) {
                    out.push_back(*std::max_element(e.amax.begin(), e.amax.end()) / max);
                } else {
                    const std::size_t h = opts.kv_heads, per = c == 1 ? 0 : c / h;
                    for (std::size_t i = 0; i < h; ++i) {
                        // A per-tensor record (one value) gives every head the same scale.
                        const float a = per == 0 ? e.amax[0]
                                                 : *std::max_element(e.amax.begin() + static_cast<std::ptrdiff_t>(i * per),
                                                                     e.amax.begin() + static_cast<std::ptrdiff_t>((i + 1) * per));
                        out.push_back(a / max);
                    }
                }
                return out;
            };
            const std::vector<std::uint64_t> shape =
                per_head ? std::vector<std::uint64_t>{opts.kv_heads, 1, 1} : std::vector<std::uint64_t>{1};
            for (const auto& m : modules) {
                bool any = false;
                for (const auto& [slot, suffix] : {std::pair{m.key, ".k_scale"}, std::pair{m.value, ".v_scale"}}) {
                    if (slot < 0) continue;
                    const auto& e = layers[static_cast<std::size_t>(slot)];
                    if (!e.usable) continue;
                    std::vector<float> values = scale_of(e);
                    if (std::any_of(values.begin(), values.end(), [](float s) { return !(std::isfinite(s) && s > 0.0f); })) {
                        diags.error(errc::invalid_data,
                                    "layer \"" + e.config->name + "\": its scale / " + float32_repr(max) + " underflows float32", at,
                                    e.config->name);
                        continue;
                    }
                    plan.tensors.push_back({m.name + suffix, tensor_dtype::float32, shape, std::move(values)});
                    ++plan.layers;
                    any = true;
                }
                if (any) ++plan.modules;
            }
            boost::json::object scheme;
            scheme["num_bits"] = 8;
            scheme["type"] = opts.kv_dtype == kv_cache_dtype::fp8 ? "float" : "int";
            scheme["symmetric"] = true;
            scheme["strategy"] = per_head ? "attn_head" : "tensor";
            scheme["dynamic"] = false;
            plan.documents.push_back({"kv_cache_scheme.json", std::move(scheme)});
            break;
        }
        case export_format::vllm_scales_json: {
            std::map<std::uint64_t, float> factors;
            std::map<std::uint64_t, std::string> first_layer;
            for (const auto& m : modules) {
                for (const auto slot : {m.key, m.value}) {
                    if (slot < 0) continue;
                    const auto& e = layers[static_cast<std::size_t>(slot)];
                    if (!e.usable) continue;
                    const auto index = decoder_layer_index(e.config->name);
                    if (!index) {
                        diags.error(errc::invalid_argument,
                                    "layer \"" + e.config->name +
                                        "\" has no decoder layer index (a `.<digits>.` segment such as "
                                        "model.layers.12.self_attn.k_proj) for format vllm-scales-json",
                                    at, e.config->name);
                        continue;
                    }
                    const float a = *std::max_element(e.amax.begin(), e.amax.end());
                    auto [it, fresh] = factors.emplace(*index, a);
                    if (!fresh) it->second = std::max(it->second, a);
                    first_layer.emplace(*index, e.config->name);
                    ++plan.layers;
                }
            }
            if (!factors.empty()) {
                std::string missing;
                std::size_t count = 0;
                const std::uint64_t last = factors.rbegin()->first;
                for (std::uint64_t i = 0; i <= last; ++i) {
                    if (factors.contains(i)) continue;
                    if (count++ < 8) missing += (missing.empty() ? "" : ", ") + std::to_string(i);
                }
                if (count) {
                    diags.error(errc::incomplete_calibration,
                                std::string("decoder layer") + (count > 1 ? "s " : " ") + missing + (count > 8 ? ", ..." : "") +
                                    " have no K or V scale (vllm-scales-json needs every layer from 0 to " + std::to_string(last) + ")",
                                at, first_layer.rbegin()->second);
                }
            }
            boost::json::object per_layer;
            for (const auto& [index, a] : factors) {
                const float s = a / 448.0f;
                // The double of the float32's shortest decimal: the JSON shows that decimal.
                per_layer[std::to_string(index)] = std::strtod(float32_repr(s).c_str(), nullptr);
            }
            plan.modules = factors.size();
            boost::json::object doc;
            if (opts.model_type) {
                doc["model_type"] = *opts.model_type;
            } else {
                doc["model_type"] = nullptr;
            }
            doc["kv_cache"] =
                boost::json::object{{"dtype", "float8_e4m3fn"}, {"scaling_factor", boost::json::object{{"0", std::move(per_layer)}}}};
            plan.documents.push_back({"kv_cache_scales.json", std::move(doc)});
            break;
        }
    }
    diags.throw_if_errors();
    return plan;
}

KVCALI_DECL outcome<export_plan> try_plan_export(std::span<const layer_record> records, const resolved_config& config,
                                                 const export_options& opts) {
    try {
        export_plan plan = plan_export(records, config, opts);
        std::vector<diagnostic> warnings = plan.warnings;
        return outcome<export_plan>(std::move(plan), std::move(warnings));
    } catch (const error& e) {
        return outcome<export_plan>(e);
    }
}

KVCALI_DECL layer_output_features read_layer_output_features(const std::filesystem::path& path) {
    layer_output_features out;
    (void)detail::load_layer_list(path, is_torch_linear, [&](const detail::layer_list_entry& e) { out[std::string(e.name)] = e.out; });
    return out;
}

}  // namespace kvcali
