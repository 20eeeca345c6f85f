// A downstream framework customises kvcali at compile time: IFMR with other defaults, and an
// algorithm of its own (`minmax_quantize { clip_ratio: ... }` in quant.cfg, `"act_algo":"minmax"`
// in config.json). Writes the config of a tiny model and prints it.
#include <kvcali/kvcali.hpp>

#include <cstdio>

namespace myframework {

// Our deployments search finer and per channel by default.
struct ifmr_defaults : kvcali::ifmr_defaults {
    static constexpr float search_step = 0.005f;
    static constexpr std::int32_t quant_granularity = 1;  // per_channel
};

// Our own algorithm: clip the observed range by a ratio.
struct minmax_policy {
    static constexpr std::string_view act_algo = "minmax";
    static constexpr std::string_view cfg_block = "minmax_quantize";
    static constexpr std::array<kvcali::param_desc, 2> params = {{
        {"clip_ratio",
         "clip_ratio",
         -1,
         kvcali::param_type::float32,
         kvcali::param_value::of_float(1.0f),
         {},
         &kvcali::checks::positive,
         "fraction of the observed range kept"},
        {"asymmetric", "asymmetric", -1, kvcali::param_type::boolean, std::nullopt, {}, nullptr, "per-layer override"},
    }};
    static void cross_check(const kvcali::param_view& v, std::vector<kvcali::check_result>& out) {
        if (v.real("clip_ratio") > 1.0f) out.push_back(kvcali::check_result::warn("clip_ratio above 1 widens the range"));
    }
};

using policies = kvcali::policy_list<kvcali::basic_ifmr_policy<ifmr_defaults>, kvcali::hfmg_policy, minmax_policy>;

// Our model graph type: it only needs these members to plug into kvcali.
struct layer {
    std::string path, kind;
    std::string_view name() const { return path; }
    std::string_view type_name() const { return kind; }
};
struct graph {
    std::vector<layer> all;
    const std::vector<layer>& layers() const { return all; }
    bool supports_kv_quant(std::string_view type) const { return type == "Linear"; }
};

}  // namespace myframework

int main(int argc, char** argv) {
    const myframework::graph model{{{"attn.k_proj", "Linear"}, {"attn.v_proj", "Linear"}, {"norm", "RMSNorm"}}};
    const std::string dir = argc > 1 ? argv[1] : ".";
    {
        std::FILE* f = std::fopen((dir + "/custom_policies.cfg").c_str(), "wb");
        if (!f) return 1;
        std::fputs(
            "kv_cache_quant_config { quant_layers: 'attn.k_proj' }\n"
            "override_layers_configs { layer_name: 'attn.v_proj' kv_data_quant_config { minmax_quantize { clip_ratio: 0.95 } } }\n",
            f);
        std::fclose(f);
    }
    try {
        kvcali::create_quant_cali_config<myframework::policies>(dir + "/custom_policies.json", model, std::nullopt,
                                                                dir + "/custom_policies.cfg");
    } catch (const kvcali::error& e) {
        for (const auto& d : e.diagnostics()) std::fprintf(stderr, "%s\n", d.to_string().c_str());
        return 1;
    }
    const std::string json = kvcali::read_file(dir + "/custom_policies.json");
    std::printf("%s\n", json.c_str());
    // The changed defaults and the own algorithm reach the JSON.
    const bool ok = json.find("\"search_step\":0.005") != std::string::npos && json.find("\"quant_granularity\":1") != std::string::npos &&
                    json.find("\"act_algo\":\"minmax\",\n            \"clip_ratio\":0.95") != std::string::npos;
    return ok ? 0 : 1;
}
