// kvcali internals: the large buffers of a layer being calibrated (IFMR's kept values, HFMG's
// per-channel histograms, a batch widened to float32), reused from one layer to the next on a thread.
//
// Each thread keeps up to two such blocks that layers gave back. A thread that calibrates layer after
// layer (the CLI's --jobs workers) so holds one layer's buffers, on pages already resident: freed to
// the C library instead, the last layer's pages stayed in glibc's heap, where a buffer of another
// shape could not use them, and the next layer faulted fresh pages in beside them (a 7B-sized dump
// peaked at 83 MiB with one layer in flight needing about 45 MiB).
// Buffers under 1 MiB bypass the cache. A thread's blocks are freed when it exits, or by
// `release_layer_buffers()` (public: `kvcali::release_calibration_buffers()`, calibrator.hpp).
#pragma once

#include <cstddef>
#include <utility>

#include "config.hpp"

namespace kvcali::detail {

class layer_buffer {
public:
    /// Buffers smaller than this are allocated and freed directly.
    static constexpr std::size_t min_cached = std::size_t{1} << 20;

    layer_buffer() noexcept = default;
    /// `bytes` of uninitialised storage, aligned to 64 bytes: a block the calling thread kept, when
    /// one is at least that large and at most four times larger, else a new one.
    KVCALI_DECL explicit layer_buffer(std::size_t bytes);
    layer_buffer(layer_buffer&& other) noexcept : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
    layer_buffer& operator=(layer_buffer&& other) noexcept {
        if (this != &other) {
            reset();
            data_ = std::exchange(other.data_, nullptr);
            bytes_ = std::exchange(other.bytes_, 0);
        }
        return *this;
    }
    layer_buffer(const layer_buffer&) = delete;
    layer_buffer& operator=(const layer_buffer&) = delete;
    ~layer_buffer() { reset(); }

    /// Gives the block back: to the calling thread's cache (the two largest blocks stay), or freed.
    KVCALI_DECL void reset() noexcept;

    template <class T>
    T* as() const noexcept {
        return static_cast<T*>(data_);
    }
    std::size_t size() const noexcept { return bytes_; }

private:
    void* data_ = nullptr;
    std::size_t bytes_ = 0;
};

/// Frees the blocks the calling thread keeps.
KVCALI_DECL void release_layer_buffers() noexcept;

}  // namespace kvcali::detail

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/layer_buffer.ipp"  // IWYU pragma: export
#endif
