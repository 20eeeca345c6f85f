// kvcali internals: the large buffers of a layer being calibrated (IFMR's kept values, HFMG's
// per-channel histograms, a batch widened to float32), reused from one layer to the next.
//
// A calibrator owns a `buffer_pool`. While it feeds a layer it makes that pool the calling thread's
// (`buffer_pool::scope`); a layer's buffers of 1 MiB or more then come from the pool, and go back
// to it when the layer is done, for the next layer on any thread. So a calibration holds the
// buffers of the layers in flight, on pages already in place: freed to the C library instead, a
// finished layer's pages stayed in glibc's heap, where a buffer of another shape could not use
// them, and the next layer faulted fresh pages in beside them (a 7B-sized dump peaked at 82 MiB with
// one layer in flight needing about 45 MiB). The pool frees its blocks when the calibrator is
// destroyed. Outside a scope (an accumulator used on its own), buffers are allocated and freed.
#pragma once

#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

#include "config.hpp"

namespace kvcali::detail {

class buffer_pool;

/// A block of storage: `data` (`bytes` long) inside the allocation `base` (what is freed).
struct buffer_block {
    void* base = nullptr;
    void* data = nullptr;
    std::size_t bytes = 0;
};

class layer_buffer {
public:
    /// Buffers smaller than this are allocated and freed directly.
    static constexpr std::size_t min_pooled = std::size_t{1} << 20;

    layer_buffer() noexcept = default;
    /// `bytes` of uninitialised storage (aligned as `operator new` aligns): the smallest block of the
    /// calling thread's pool that is at least that large and at most four times larger, else a new
    /// one. A new block of 2 MiB or more starts at a huge-page boundary, inside an allocation up to
    /// 2 MiB larger (address space only: the extra is never touched), and is hinted to be backed by
    /// huge pages (Linux), so that filling it faults a few pages in instead of one per 4 KiB where
    /// transparent huge pages are enabled: a 4 MiB block filled in a fresh process took 2.1 ms,
    /// 0.5 ms so. (Plain `operator new`, not an over-aligned one: glibc serves an over-aligned
    /// request of this size from fresh mapped pages every time, where a plain one reuses its heap,
    /// for an accumulator used without a pool.)
    KVCALI_DECL explicit layer_buffer(std::size_t bytes);
    layer_buffer(layer_buffer&& other) noexcept : block_(std::exchange(other.block_, {})), pool_(std::exchange(other.pool_, nullptr)) {}
    layer_buffer& operator=(layer_buffer&& other) noexcept {
        if (this != &other) {
            reset();
            block_ = std::exchange(other.block_, {});
            pool_ = std::exchange(other.pool_, nullptr);
        }
        return *this;
    }
    layer_buffer(const layer_buffer&) = delete;
    layer_buffer& operator=(const layer_buffer&) = delete;
    ~layer_buffer() { reset(); }

    /// Gives the block back: to the pool it came from (or was made under), or freed.
    KVCALI_DECL void reset() noexcept;

    template <class T>
    T* as() const noexcept {
        return static_cast<T*>(block_.data);
    }
    std::size_t size() const noexcept { return block_.bytes; }

private:
    buffer_block block_;
    buffer_pool* pool_ = nullptr;
};

/// Blocks that finished layers gave back, for the next layers (thread-safe).
class buffer_pool {
public:
    buffer_pool() = default;
    buffer_pool(const buffer_pool&) = delete;
    buffer_pool& operator=(const buffer_pool&) = delete;
    KVCALI_DECL ~buffer_pool();

    /// For its lifetime, the calling thread's new layer buffers come from `pool`.
    class scope {
    public:
        KVCALI_DECL explicit scope(buffer_pool& pool) noexcept;
        KVCALI_DECL ~scope();
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

    private:
        buffer_pool* previous_;
    };

    /// The blocks kept (for the tests).
    std::size_t kept() {
        const std::lock_guard<std::mutex> g(lock_);
        return free_.size();
    }

private:
    friend class layer_buffer;
    /// The smallest kept block of `bytes` to 4 x `bytes`, or none (data nullptr); then the kept
    /// blocks smaller than `bytes` are freed (a pool holds at most the blocks its layers had in use
    /// at once, of the sizes they still ask for).
    KVCALI_DECL buffer_block take(std::size_t bytes);
    KVCALI_DECL void give(const buffer_block& block) noexcept;

    std::mutex lock_;
    std::vector<buffer_block> free_;
};

}  // namespace kvcali::detail

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/layer_buffer.ipp"  // IWYU pragma: export
#endif
