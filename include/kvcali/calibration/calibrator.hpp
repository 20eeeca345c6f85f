// kvcali calibration: the calibrator. Built from a resolved config; takes every layer's batches
// in any order and interleaving; computes each layer's scales and offsets once it has `batch_num`
// batches; writes the record file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../config_reader.hpp"
#include "../detail/config.hpp"
#include "../detail/layer_buffer.hpp"
#include "../detail/string_map.hpp"
#include "../error.hpp"
#include "../policy.hpp"
#include "../resolved_config.hpp"
#include "accumulator.hpp"
#include "record.hpp"
#include "scale.hpp"

namespace kvcali {

/// One entry of the calibrator's table of accumulators: the algorithm (its `act_algo`) and the
/// factory that makes a layer's accumulator for it.
struct accumulator_entry {
    std::string_view act_algo;
    accumulator_factory make = nullptr;
};

/// The built-in accumulators' factories: each reads the layer's settings from the one derivation
/// (`accumulator_settings::calibration`, see `calibration_of`).
KVCALI_DECL std::unique_ptr<accumulator> make_ifmr_accumulator(const accumulator_settings& s);
KVCALI_DECL std::unique_ptr<accumulator> make_hfmg_accumulator(const accumulator_settings& s);

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
/// Memory: a layer holds its buffers (IFMR's values, HFMG's per-channel histograms, the batch
/// widened to float32) until its last batch; then those of 1 MiB or more go to the calibrator's pool
/// (locked), and the next layers, on any thread, take them from there. The pool is freed with the
/// calibrator.
/// Example:
///   kvcali::calibrator cal(kvcali::read_quant_cali_config("config.json"));
///   cal.observe("model.layers.0.self_attn.k_proj", values, shape);   // one batch
///   cal.write_record("record.txt");
///   kvcali::calibrator mine(config, {{"minmax", &make_minmax_accumulator}});   // an algorithm of your own
class calibrator {
public:
    explicit calibrator(const resolved_config& config, std::vector<accumulator_entry> accumulators = {});

    /// One batch of float32 activations of `layer`, C order, `shape` (the last dimension is the
    /// channel; rank 0 is one value). Returns what was done with it.
    batch_outcome observe(std::string_view layer, std::span<const float> values, std::span<const std::int64_t> shape);

    /// One batch of any supported element type, with optional strides (in elements; empty: C order).
    /// `data` points at the element of index (0, ..., 0).
    batch_outcome observe(std::string_view layer, const void* data, dtype type, std::span<const std::int64_t> shape,
                          std::span<const std::int64_t> strides = {});

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
        detail::layer_buffer buffer;  // the batch widened to float32, when it is not already
        bool finished = false;        // under finished_lock_
    };

    /// Requires finished_lock_ held.
    void require_complete() const;

    accumulator_settings settings_of(state& s) {
        s.view.emplace(s.params, s.values);
        return accumulator_settings{s.name, s.with_offset, s.per_channel, batch_num_, &*s.view, &s.plan};
    }

    /// The table's factory for `act_algo`: the constructor's entries first, then the built-ins.
    static accumulator_factory factory_for(const std::vector<accumulator_entry>& given, std::string_view act_algo) noexcept;

    state& find(std::string_view layer) { return layers_[index_of(layer)]; }
    const state& find(std::string_view layer) const { return layers_[index_of(layer)]; }
    std::size_t index_of(std::string_view layer) const;

    [[noreturn]] KVCALI_COLD static void fail(const state& s, const std::string& what);
    [[noreturn]] KVCALI_COLD static void rethrow_for(const state& s, const error& e);

    static std::string shape_text(std::span<const std::int64_t> shape);

    /// The batch as contiguous finite float32 values (no copy for contiguous float32).
    static std::span<const float> widen(state& s, const void* data, dtype type, std::span<const std::int64_t> shape,
                                        std::span<const std::int64_t> strides, std::size_t count);

    std::uint32_t batch_num_;
    // A finished layer's large buffers, for the next layers (declared before the layers, which give
    // their buffers back to it, so that it is destroyed after them; a pointer: the calibrator stays movable).
    std::unique_ptr<detail::buffer_pool> buffers_;
    std::vector<state> layers_;
    detail::string_map<std::size_t> index_;
    std::unique_ptr<std::mutex> finished_lock_;  // a pointer: the calibrator stays movable
    std::vector<std::size_t> finished_;
};

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/calibrator.ipp"  // IWYU pragma: export
#endif
