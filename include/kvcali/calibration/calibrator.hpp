// kvcali calibration: the calibrator. Built from a resolved config; takes every layer's batches
// in any order and interleaving; computes each layer's scales and offsets once it has `batch_num`
// batches; writes the record file.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define KVCALI_DETAIL_F16C 1
#endif

#include "../config_reader.hpp"
#include "../error.hpp"
#include "../policy.hpp"
#include "../resolved_config.hpp"
#include "accumulator.hpp"
#include "hfmg.hpp"
#include "ifmr.hpp"
#include "record.hpp"
#include "scale.hpp"

namespace kvcali {

namespace detail {
/// IEEE binary16 to float32 without branches (half_to_float's result for every input): the
/// exponent is rebased by adding to the bit pattern; infinities and NaNs get the rest of the float
/// exponent range, and subnormals are normalised by one float subtraction.
inline float widen_half(std::uint16_t h) noexcept {
    const std::uint32_t magnitude = static_cast<std::uint32_t>(h & 0x7FFFu) << 13;
    const std::uint32_t exponent = magnitude & 0x0F800000u;
    std::uint32_t bits = magnitude + ((127u - 15u) << 23);
    bits += exponent == 0x0F800000u ? ((128u - 16u) << 23) : 0u;
    const float normal = std::bit_cast<float>(bits);
    const float subnormal = std::bit_cast<float>(bits + (1u << 23)) - std::bit_cast<float>(113u << 23);
    const float f = exponent == 0 ? subnormal : normal;
    return std::bit_cast<float>(std::bit_cast<std::uint32_t>(f) | (static_cast<std::uint32_t>(h & 0x8000u) << 16));
}

/// `count` little-endian binary16 values at `in` (any alignment) to float32, by `widen_half`.
inline void widen_halves_portable(const unsigned char* in, float* out, std::size_t count) noexcept {
    for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t h;
        std::memcpy(&h, in + i * 2, 2);
        out[i] = widen_half(h);
    }
}

#ifdef KVCALI_DETAIL_F16C
/// The same by the F16C instruction (eight at a time; exact for every input but signalling NaNs,
/// which come out quiet: a NaN either way). Call only where `cpu_has_f16c()`.
__attribute__((target("avx,f16c"))) inline void widen_halves_f16c(const unsigned char* in, float* out, std::size_t count) noexcept {
    std::size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i * 2));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    widen_halves_portable(in + i * 2, out + i, count - i);
}

/// Whether the CPU has F16C and the OS keeps the AVX registers (checked once).
inline bool cpu_has_f16c() noexcept {
    static const bool has = [] {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
        if (!((c & bit_OSXSAVE) && (c & bit_AVX) && (c & bit_F16C))) return false;
        unsigned lo = 0, hi = 0;
        __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        return (lo & 6u) == 6u;  // the SSE and AVX state
    }();
    return has;
}
#endif

/// `count` binary16 values to float32: F16C where the CPU has it, else `widen_halves_portable`.
inline void widen_halves(const unsigned char* in, float* out, std::size_t count) noexcept {
#ifdef KVCALI_DETAIL_F16C
    if (cpu_has_f16c()) {
        widen_halves_f16c(in, out, count);
        return;
    }
#endif
    widen_halves_portable(in, out, count);
}
}  // namespace detail

/// One entry of the calibrator's table of accumulators: the algorithm (its `act_algo`) and the
/// factory that makes a layer's accumulator for it.
struct accumulator_entry {
    std::string_view act_algo;
    accumulator_factory make = nullptr;
};

/// The built-in accumulators' factories: each reads the layer's settings from the one derivation
/// (`accumulator_settings::calibration`, see `calibration_of`).
inline std::unique_ptr<accumulator> make_ifmr_accumulator(const accumulator_settings& s) {
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
inline std::unique_ptr<accumulator> make_hfmg_accumulator(const accumulator_settings& s) {
    const calibration_param* bins = s.calibration->find("num_of_bins");
    return std::make_unique<hfmg_accumulator>(hfmg_options{bins != nullptr ? bins->value.uint : 0u, s.with_offset}, s.per_channel);
}

/// The accumulators every calibrator knows: IFMR and HFMG.
inline constexpr accumulator_entry builtin_accumulators[] = {{"ifmr", &make_ifmr_accumulator}, {"hfmg", &make_hfmg_accumulator}};

/// What `calibrator::observe` did with a batch.
enum class batch_outcome {
    accepted,  ///< taken; the layer needs more batches
    finished,  ///< taken; it was the layer's last batch and its result is ready
    ignored,   ///< passed over: the layer already had `batch_num` batches
};

/// Calibrates the layers of a resolved config (generated, or read back from config.json).
///
/// Its table of accumulators by `act_algo`: those passed to the constructor (an algorithm of your
/// own, or another accumulator for a built-in one), then `builtin_accumulators` (IFMR, HFMG).
/// Each layer's settings (offset, granularity, parameters) come from `calibration_of`, the one
/// derivation (config_reader.hpp).
/// Requires: every layer's algorithm has an accumulator in the table.
/// Errors (kvcali::error): `invalid_argument` for an algorithm without an accumulator,
/// `unknown_layer`, `invalid_data` (dtype, non-finite values, shapes, changing channel counts),
/// `invalid_value` (an IFMR search without candidates), `incomplete_calibration` when a record is
/// requested with layers unfinished.
/// Threads: `observe` may be called from several threads at once for different layers (each
/// layer's state is its own; the list of finished layers is locked). Calls for the same layer
/// must not overlap (the caller orders them: batches are counted in the order they arrive).
/// `complete`, `finished_layers`, `pending_layers`, `done`, `records`, `record_text` and
/// `write_record` may run while other threads feed layers: they see each layer either finished
/// with its result or not. `result`, `batches` and `ignored_batches` of a layer must not overlap
/// an `observe` of that same layer.
/// Example:
///   kvcali::calibrator cal(kvcali::read_quant_cali_config("config.json"));
///   cal.observe("model.layers.0.self_attn.k_proj", values, shape);   // one batch
///   cal.write_record("record.txt");
///   kvcali::calibrator mine(config, {{"minmax", &make_minmax_accumulator}});   // an algorithm of your own
class calibrator {
public:
    explicit calibrator(const resolved_config& config, std::vector<accumulator_entry> accumulators = {})
        : batch_num_(config.batch_num), finished_lock_(std::make_unique<std::mutex>()) {
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
                diags.add({.severity = severity::error,
                           .category = errc::invalid_argument,
                           .message = "the algorithm \"" + std::string(algo.act_algo) + "\" of layer \"" + layer.name +
                                      "\" cannot calibrate (the calibrator has no accumulator for it: pass one to its constructor)",
                           .where = {},
                           .layer = layer.name,
                           .json_path = {}});
                continue;
            }
            if (index_.contains(layer.name)) {
                diags.add({.severity = severity::error,
                           .category = errc::duplicate_layer,
                           .message = "layer \"" + layer.name + "\" is listed twice",
                           .where = {},
                           .layer = layer.name,
                           .json_path = {}});
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

    /// One batch of float32 activations of `layer`, C order, `shape` (the last dimension is the
    /// channel; rank 0 is one value). Returns what was done with it.
    batch_outcome observe(std::string_view layer, std::span<const float> values, std::span<const std::int64_t> shape) {
        std::size_t count = 1;
        for (std::int64_t d : shape) count *= d > 0 ? static_cast<std::size_t>(d) : 0;
        if (count != values.size()) {
            fail(find(layer), "the batch has " + std::to_string(values.size()) + " values but its shape " + shape_text(shape) + " needs " +
                                  std::to_string(count));
        }
        return observe(layer, values.data(), dtype::float32, shape, {});
    }

    /// One batch of any supported element type, with optional strides (in elements; empty: C order).
    /// `data` points at the element of index (0, ..., 0).
    batch_outcome observe(std::string_view layer, const void* data, dtype type, std::span<const std::int64_t> shape,
                          std::span<const std::int64_t> strides = {}) {
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
        std::vector<float>().swap(s.buffer);  // release the memory (`= {}` keeps the capacity)
        {
            const std::lock_guard<std::mutex> lock(*finished_lock_);
            s.finished = true;
            finished_.push_back(index_.at(s.name));
        }
        return batch_outcome::finished;
    }

    /// Whether `layer` has its result (throws unknown_layer for a name the config does not have).
    bool done(std::string_view layer) const {
        const state& s = find(layer);
        const std::lock_guard<std::mutex> lock(*finished_lock_);
        return s.finished;
    }
    /// Whether every layer has its result.
    bool complete() const {
        const std::lock_guard<std::mutex> lock(*finished_lock_);
        return finished_.size() == layers_.size();
    }
    /// Batches `layer` has taken (at most batch_num), and batches passed over.
    std::uint32_t batches(std::string_view layer) const { return find(layer).seen; }
    std::uint64_t ignored_batches(std::string_view layer) const { return find(layer).ignored; }
    std::uint32_t batch_num() const noexcept { return batch_num_; }
    std::size_t layer_count() const noexcept { return layers_.size(); }

    /// The layers with results, in the order they finished.
    std::vector<std::string> finished_layers() const {
        const std::lock_guard<std::mutex> lock(*finished_lock_);
        std::vector<std::string> out;
        for (std::size_t i : finished_) out.push_back(layers_[i].name);
        return out;
    }
    /// The layers still lacking batches, in the config's order.
    std::vector<std::string> pending_layers() const {
        const std::lock_guard<std::mutex> lock(*finished_lock_);
        std::vector<std::string> out;
        for (const auto& s : layers_) {
            if (!s.finished) out.push_back(s.name);
        }
        return out;
    }

    /// The result of a finished layer (empty while it lacks batches).
    std::optional<quant_factors> result(std::string_view layer) const { return find(layer).result; }

    /// The records of every layer in the order they finished. Throws `incomplete_calibration`
    /// listing the unfinished layers (one diagnostic each) when any is unfinished.
    std::vector<layer_record> records() const {
        const std::lock_guard<std::mutex> lock(*finished_lock_);
        require_complete();
        std::vector<layer_record> out;
        for (std::size_t i : finished_) out.push_back({layers_[i].name, *layers_[i].result});
        return out;
    }

    /// The record file's text (see `format_record`). Throws like `records()`.
    std::string record_text() const { return format_record(records()); }

    /// Writes the record file atomically. Throws like `records()`, or io_error.
    void write_record(const std::filesystem::path& path) const { write_record_file(path, records()); }

private:
    struct state {
        std::string name;
        std::vector<std::optional<param_value>> values;
        std::span<const param_desc> params;
        bool with_offset = true;
        bool per_channel = false;
        accumulator_factory factory = nullptr;
        std::unique_ptr<accumulator> acc;
        std::uint32_t seen = 0;
        std::uint64_t ignored = 0;
        std::uint64_t values_seen = 0;
        std::size_t channels = 0;
        std::optional<quant_factors> result;
        std::optional<param_view> view;
        layer_calibration plan;
        std::vector<float> buffer;  // the batch widened to float32, when it is not already
        bool finished = false;      // under finished_lock_
    };

    /// Requires finished_lock_ held.
    void require_complete() const {
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

    accumulator_settings settings_of(state& s) {
        s.view.emplace(s.params, s.values);
        return accumulator_settings{s.name, s.with_offset, s.per_channel, batch_num_, &*s.view, &s.plan};
    }

    /// The table's factory for `act_algo`: the constructor's entries first, then the built-ins.
    static accumulator_factory factory_for(const std::vector<accumulator_entry>& given, std::string_view act_algo) noexcept {
        for (const auto& e : given) {
            if (e.act_algo == act_algo && e.make != nullptr) return e.make;
        }
        for (const auto& e : builtin_accumulators) {
            if (e.act_algo == act_algo) return e.make;
        }
        return nullptr;
    }

    state& find(std::string_view layer) { return layers_[index_of(layer)]; }
    const state& find(std::string_view layer) const { return layers_[index_of(layer)]; }
    std::size_t index_of(std::string_view layer) const {
        const auto it = index_.find(std::string(layer));
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

    [[noreturn]] static void fail(const state& s, const std::string& what) {
        throw error(diagnostic{.severity = severity::error,
                               .category = errc::invalid_data,
                               .message = "layer \"" + s.name + "\": " + what,
                               .where = {},
                               .layer = s.name,
                               .json_path = {}});
    }
    [[noreturn]] static void rethrow_for(const state& s, const error& e) {
        std::vector<diagnostic> ds = e.diagnostics();
        for (auto& d : ds) {
            if (d.layer.empty()) {
                d.layer = s.name;
                d.message = "layer \"" + s.name + "\": " + d.message;
            }
        }
        throw error(e.code(), std::move(ds));
    }

    static std::string shape_text(std::span<const std::int64_t> shape) {
        std::string out = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) {
            if (i) out += ", ";
            out += std::to_string(shape[i]);
        }
        return out + "]";
    }

    /// The batch as contiguous finite float32 values (no copy for contiguous float32).
    static std::span<const float> widen(state& s, const void* data, dtype type, std::span<const std::int64_t> shape,
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
            s.buffer.resize(count);
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
                detail::widen_halves(bytes, s.buffer.data(), count);  // the bulk of a float16 dump's cost
            } else if (contiguous) {
                for (std::size_t i = 0; i < count; ++i) s.buffer[i] = load(i);
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
                    s.buffer[i] = f;
                    for (std::size_t d = rank; d-- > 0;) {
                        offset += strides[d];
                        if (++index[d] < shape[d]) break;
                        offset -= strides[d] * shape[d];
                        index[d] = 0;
                    }
                }
            }
            out = s.buffer;
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

    std::uint32_t batch_num_;
    std::vector<state> layers_;
    std::map<std::string, std::size_t, std::less<>> index_;
    std::unique_ptr<std::mutex> finished_lock_;  // a pointer: the calibrator stays movable
    std::vector<std::size_t> finished_;
};

}  // namespace kvcali
