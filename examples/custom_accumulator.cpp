// A downstream algorithm that calibrates with its own accumulator: plain min/max clipping.
// The policy describes its parameters like the built-in ones; the accumulator's factory goes into
// the calibrator's table (`{"minmax", &make_minmax_accumulator}`), which then runs it like IFMR and
// HFMG, and the record file comes out the same way.
#include <kvcali/calibration/calibrator.hpp>
#include <kvcali/policy.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>

namespace {

/// Keeps only the running minimum and maximum (per tensor or per channel).
class minmax_accumulator final : public kvcali::accumulator {
public:
    minmax_accumulator(bool with_offset, bool per_channel) : with_offset_(with_offset), per_channel_(per_channel) {}

    void add_batch(std::span<const float> values, std::size_t channels) override {
        const std::size_t lanes = per_channel_ ? channels : 1;
        if (lo_.empty()) {
            lo_.assign(lanes, values[0]);
            hi_.assign(lanes, values[0]);
        }
        for (std::size_t i = 0; i < values.size(); ++i) {
            const std::size_t lane = per_channel_ ? i % channels : 0;
            lo_[lane] = std::min(lo_[lane], values[i]);
            hi_[lane] = std::max(hi_[lane], values[i]);
        }
    }

    kvcali::quant_factors finish() override {
        kvcali::quant_factors out;
        for (std::size_t i = 0; i < lo_.size(); ++i) {
            const auto so = kvcali::scale_offset_from_range(lo_[i], hi_[i], with_offset_);
            out.scale.push_back(so.scale);
            out.offset.push_back(so.offset);
        }
        return out;
    }

private:
    bool with_offset_, per_channel_;
    std::vector<float> lo_, hi_;
};

struct minmax_policy {
    static constexpr std::string_view act_algo = "minmax";
    static constexpr std::string_view cfg_block = "minmax_quantize";
    static constexpr std::array<kvcali::param_desc, 2> params = {{
        {"asymmetric", "asymmetric", -1, kvcali::param_type::boolean, std::nullopt, {}, nullptr, "per-layer override of activation_offset"},
        {"quant_granularity", "quant_granularity", -1, kvcali::param_type::enumeration, kvcali::param_value::of_enum(0),
         kvcali::quant_granularity_values, nullptr, "per_tensor (0) or per_channel (1)"},
    }};
    static void cross_check(const kvcali::param_view&, std::vector<kvcali::check_result>&) {}
};

/// The accumulator of one layer, with its settings (offset and granularity already derived).
std::unique_ptr<kvcali::accumulator> make_minmax_accumulator(const kvcali::accumulator_settings& s) {
    return std::make_unique<minmax_accumulator>(s.with_offset, s.per_channel);
}

using my_policies = kvcali::policy_list<kvcali::ifmr_policy, kvcali::hfmg_policy, minmax_policy>;

}  // namespace

int main() {
    // A resolved config as `resolve_quant_cali_config<my_policies>` or the reader would give it:
    // one layer on the custom algorithm, per channel.
    kvcali::resolved_config config;
    config.algorithms = my_policies::algorithms;
    config.batch_num = 2;
    kvcali::resolved_layer layer;
    layer.name = "model.layers.0.self_attn.k_proj";
    layer.algorithm = 2;
    layer.values = {std::nullopt, kvcali::param_value::of_enum(1)};
    config.layers.push_back(layer);

    kvcali::calibrator cal(config, {{minmax_policy::act_algo, &make_minmax_accumulator}});
    const std::int64_t shape[2] = {2, 3};  // [tokens, channels]
    cal.observe(layer.name, std::vector<float>{-1.0f, 0.0f, 2.0f, 1.0f, 4.0f, -2.0f}, shape);
    cal.observe(layer.name, std::vector<float>{-3.0f, 1.0f, 0.5f, 0.0f, 2.0f, 1.0f}, shape);
    const std::string record = cal.record_text();
    std::fputs(record.c_str(), stdout);
    // Channel 0 saw [-3, 1]: scale 4/255, offset round(-128 + 3 / (4/255)) = 63.
    const auto r = *cal.result(layer.name);
    return r.scale.size() == 3 && r.offset[0] == 63 && r.scale[0] == 4.0f / 255.0f ? 0 : 1;
}
