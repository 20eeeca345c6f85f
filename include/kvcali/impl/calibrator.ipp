// kvcali: the calibrator (declared in calibration/calibrator.hpp): included at the end of that
// header (header-only use) or by <kvcali/src.hpp> (separate compilation). The IFMR and HFMG
// accumulators and the float16 widening are included here, not by the calibrator's header.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "../calibration/calibrator.hpp"
#include "../calibration/hfmg.hpp"
#include "../calibration/ifmr.hpp"
#include "../detail/widen.hpp"

namespace kvcali {

KVCALI_DECL std::unique_ptr<accumulator> make_ifmr_accumulator(const accumulator_settings& s) {
    auto decimal = [&](std::string_view name) {
        const calibration_param* p = s.calibration->find(name);
        return p != nullptr ? p->decimal : 0.0;
    };
    ifmr_options o;
    o.max_percentile = decimal("max_percentile");
    o.min_percentile = decimal("min_percentile");
    o.search_range_start = decimal("search_range_start");
    o.search_range_end = decimal("search_range_end");
    o.search_step = decimal("search_step");
    o.with_offset = s.with_offset;
    return std::make_unique<ifmr_accumulator>(o, s.per_channel, s.batch_num);
}
KVCALI_DECL std::unique_ptr<accumulator> make_hfmg_accumulator(const accumulator_settings& s) {
    const calibration_param* bins = s.calibration->find("num_of_bins");
    return std::make_unique<hfmg_accumulator>(hfmg_options{bins != nullptr ? bins->value.uint : 0u, s.with_offset}, s.per_channel);
}

KVCALI_DECL calibrator::calibrator(const resolved_config& config, std::vector<accumulator_entry> accumulators)
    : batch_num_(config.batch_num), buffers_(std::make_unique<detail::buffer_pool>()), finished_lock_(std::make_unique<std::mutex>()) {
    if (batch_num_ == 0) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_value,
                               .message = "batch_num must be at least 1",
                               .where = {},
                               .layer = {},
                               .json_path = {}});
    }
    diagnostics diags;
    layers_.reserve(config.layers.size());
    for (const auto& layer : config.layers) {
        const algorithm_desc& algo = config.algorithm_of(layer);
        const accumulator_factory factory = factory_for(accumulators, algo.act_algo);
        if (factory == nullptr) {
            diags.error(errc::invalid_argument,
                        "the algorithm \"" + std::string(algo.act_algo) + "\" of layer \"" + layer.name +
                            "\" cannot calibrate (the calibrator has no accumulator for it: pass one to its constructor)",
                        {}, layer.name);
            continue;
        }
        if (index_.contains(layer.name)) {
            diags.error(errc::duplicate_layer, "layer \"" + layer.name + "\" is listed twice", {}, layer.name);
            continue;
        }
        index_.emplace(layer.name, layers_.size());
        state& s = layers_.emplace_back();
        s.name = layer.name;
        s.values = layer.values;
        s.params = algo.params;
        s.plan = calibration_of(config, layer);  // the one derivation of offset and granularity
        s.with_offset = s.plan.with_offset;
        s.per_channel = s.plan.granularity == granularity::per_channel;
        s.factory = factory;
        try {
            s.acc = s.factory(settings_of(s));
        } catch (const error& e) {
            for (auto d : e.diagnostics()) {
                if (d.layer.empty()) {
                    d.layer = s.name;
                    d.message = "layer \"" + s.name + "\": " + d.message;
                }
                diags.add(std::move(d));
            }
        }
    }
    diags.throw_if_errors();
}

KVCALI_DECL batch_outcome calibrator::observe(std::string_view layer, std::span<const float> values, std::span<const std::int64_t> shape) {
    std::size_t count = 1;
    for (std::int64_t d : shape) count *= d > 0 ? static_cast<std::size_t>(d) : 0;
    if (count != values.size()) {
        fail(find(layer), "the batch has " + std::to_string(values.size()) + " values but its shape " + shape_text(shape) + " needs " +
                              std::to_string(count));
    }
    return observe(layer, values.data(), dtype::float32, shape, {});
}

KVCALI_DECL batch_outcome calibrator::observe(std::string_view layer, const void* data, dtype type, std::span<const std::int64_t> shape,
                                              std::span<const std::int64_t> strides) {
    state& s = find(layer);
    if (size_of(type) == 0) {
        fail(s, "unknown element type (" + std::to_string(static_cast<int>(type)) + "); expected float32, float16 or bfloat16");
    }
    if (!strides.empty() && strides.size() != shape.size()) {
        fail(s, "strides have rank " + std::to_string(strides.size()) + " but the shape has rank " + std::to_string(shape.size()));
    }
    std::size_t count = 1;
    for (std::int64_t d : shape) {
        if (d < 0) fail(s, "negative dimension in shape " + shape_text(shape));
        count *= static_cast<std::size_t>(d);
    }
    if (s.seen >= batch_num_) {
        ++s.ignored;
        return batch_outcome::ignored;
    }
    if (count == 0) fail(s, "empty batch (shape " + shape_text(shape) + "); expected at least one value");
    const std::size_t channels = shape.empty() ? 1 : static_cast<std::size_t>(shape.back());
    if (s.per_channel) {
        if (shape.empty()) fail(s, "a per-channel layer needs a batch of rank >= 1 (the last dimension is the channel)");
        if (s.channels != 0 && s.channels != channels) {
            fail(s, "batch " + std::to_string(s.seen) + " has " + std::to_string(channels) + " channels, earlier batches " +
                        std::to_string(s.channels) + "; expected the same last dimension in every batch");
        }
    }
    const detail::buffer_pool::scope pooled(*buffers_);  // this layer's large buffers: from and back to the pool
    const std::span<const float> values = widen(s, data, type, shape, strides, count);
    try {
        s.acc->add_batch(values, channels);
    } catch (const error& e) {
        rethrow_for(s, e);
    }
    s.channels = channels;
    ++s.seen;
    s.values_seen += count;
    if (s.seen < batch_num_) return batch_outcome::accepted;
    try {
        s.result = s.acc->finish();
    } catch (const error& e) {
        s.acc.reset();
        rethrow_for(s, e);
    }
    s.acc.reset();
    s.buffer.reset();  // to the pool, for the next layer
    {
        const std::lock_guard<std::mutex> lock(*finished_lock_);
        s.finished = true;
        finished_.push_back(index_.at(s.name));
    }
    return batch_outcome::finished;
}

KVCALI_DECL void calibrator::require_complete() const {
    if (finished_.size() == layers_.size()) return;
    std::vector<diagnostic> ds;
    for (const auto& s : layers_) {
        if (s.finished) continue;
        ds.push_back({.severity = severity::error,
                      .category = errc::incomplete_calibration,
                      .message = "layer \"" + s.name + "\" has " + std::to_string(s.seen) + " of " + std::to_string(batch_num_) +
                                 " batches; expected batch_num batches for every layer before the record is written",
                      .where = {},
                      .layer = s.name,
                      .json_path = {}});
    }
    throw error(errc::incomplete_calibration, std::move(ds));
}

KVCALI_DECL accumulator_factory calibrator::factory_for(const std::vector<accumulator_entry>& given, std::string_view act_algo) noexcept {
    for (const auto& e : given) {
        if (e.act_algo == act_algo && e.make != nullptr) return e.make;
    }
    for (const auto& e : builtin_accumulators) {
        if (e.act_algo == act_algo) return e.make;
    }
    return nullptr;
}

KVCALI_DECL std::size_t calibrator::index_of(std::string_view layer) const {
    const auto it = index_.find(layer);
    if (it == index_.end()) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::unknown_layer,
                               .message = "layer \"" + std::string(layer) + "\" is not in the calibration config",
                               .where = {},
                               .layer = std::string(layer),
                               .json_path = {}});
    }
    return it->second;
}

KVCALI_DECL void calibrator::fail(const state& s, const std::string& what) {
    throw error(diagnostic{.severity = severity::error,
                           .category = errc::invalid_data,
                           .message = "layer \"" + s.name + "\": " + what,
                           .where = {},
                           .layer = s.name,
                           .json_path = {}});
}

KVCALI_DECL void calibrator::rethrow_for(const state& s, const error& e) {
    std::vector<diagnostic> ds = e.diagnostics();
    for (auto& d : ds) {
        if (d.layer.empty()) {
            d.layer = s.name;
            d.message = "layer \"" + s.name + "\": " + d.message;
        }
    }
    throw error(e.code(), std::move(ds));
}

KVCALI_DECL std::string calibrator::shape_text(std::span<const std::int64_t> shape) {
    std::string out = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) out += ", ";
        out += std::to_string(shape[i]);
    }
    return out + "]";
}

KVCALI_DECL std::span<const float> calibrator::widen(state& s, const void* data, dtype type, std::span<const std::int64_t> shape,
                                                     std::span<const std::int64_t> strides, std::size_t count) {
    bool contiguous = true;
    if (!strides.empty()) {
        std::int64_t expect = 1;
        for (std::size_t i = shape.size(); i-- > 0;) {
            if (shape[i] != 1 && strides[i] != expect) contiguous = false;
            expect *= shape[i];
        }
    }
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::span<const float> out;
    // Contiguous float32 is used in place when aligned (a memory-mapped file may not be).
    if (type == dtype::float32 && contiguous && reinterpret_cast<std::uintptr_t>(data) % alignof(float) == 0) {
        out = {static_cast<const float*>(data), count};
    } else {
        if (s.buffer.size() < count * sizeof(float)) s.buffer = detail::layer_buffer(count * sizeof(float));
        float* const buffer = s.buffer.as<float>();
        auto load = [&](std::size_t element) -> float {
            switch (type) {
                case dtype::float32: {
                    float f;
                    std::memcpy(&f, bytes + element * 4, 4);
                    return f;
                }
                case dtype::float16:
                case dtype::bfloat16: {
                    std::uint16_t h;
                    std::memcpy(&h, bytes + element * 2, 2);
                    return type == dtype::float16 ? half_to_float(h) : bfloat16_to_float(h);
                }
            }
            return 0.0f;
        };
        if (contiguous && type == dtype::float16) {
            detail::widen_halves(bytes, buffer, count);  // the bulk of a float16 dump's cost
        } else if (contiguous) {
            for (std::size_t i = 0; i < count; ++i) buffer[i] = load(i);
        } else {
            // Walk the index space in C order; offsets may be negative.
            const std::size_t rank = shape.size();
            std::vector<std::int64_t> index(rank, 0);
            std::int64_t offset = 0;
            for (std::size_t i = 0; i < count; ++i) {
                float f;
                const auto at = static_cast<std::ptrdiff_t>(offset) * static_cast<std::ptrdiff_t>(size_of(type));
                if (type == dtype::float32) {
                    std::memcpy(&f, bytes + at, 4);
                } else {
                    std::uint16_t h;
                    std::memcpy(&h, bytes + at, 2);
                    f = type == dtype::float16 ? half_to_float(h) : bfloat16_to_float(h);
                }
                buffer[i] = f;
                for (std::size_t d = rank; d-- > 0;) {
                    offset += strides[d];
                    if (++index[d] < shape[d]) break;
                    offset -= strides[d] * shape[d];
                    index[d] = 0;
                }
            }
        }
        out = {buffer, count};
    }
    // A pass that vectorises (all exponent bits set: inf or nan), then the first bad value's place.
    std::uint32_t non_finite = 0;
    for (float v : out) non_finite |= static_cast<std::uint32_t>((std::bit_cast<std::uint32_t>(v) & 0x7F800000u) == 0x7F800000u);
    if (non_finite == 0) return out;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (!std::isfinite(out[i])) {
            fail(s, "value " + std::to_string(i) + " of batch " + std::to_string(s.seen) + " is " +
                        (std::isnan(out[i]) ? "nan" : (out[i] > 0 ? "inf" : "-inf")) + "; expected finite values");
        }
    }
    return out;
}

}  // namespace kvcali
