// kvcali: detail/layer_buffer.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cstddef>
#include <new>
#include <utility>

#include "../detail/layer_buffer.hpp"

namespace kvcali::detail {

/// The blocks a thread keeps. Trivially destructible, so that it stays usable after the guard below
/// has run at the thread's exit (a buffer given back later, by another thread-local's destructor,
/// is then freed).
struct layer_buffer_cache {
    void* data[2];
    std::size_t bytes[2];
    bool closed;
};

inline layer_buffer_cache& thread_layer_buffers() noexcept {
    thread_local layer_buffer_cache cache{{nullptr, nullptr}, {0, 0}, false};
    return cache;
}

/// Frees the thread's blocks when it exits.
struct layer_buffer_guard {
    layer_buffer_guard() = default;
    layer_buffer_guard(const layer_buffer_guard&) = delete;
    layer_buffer_guard& operator=(const layer_buffer_guard&) = delete;
    ~layer_buffer_guard() {
        release_layer_buffers();
        thread_layer_buffers().closed = true;
    }
};

constexpr std::align_val_t layer_buffer_alignment{64};

KVCALI_DECL layer_buffer::layer_buffer(std::size_t bytes) {
    if (bytes == 0) return;
    if (bytes >= min_cached) {
        layer_buffer_cache& c = thread_layer_buffers();
        int best = -1;
        for (int i = 0; i < 2; ++i) {
            if (c.data[i] != nullptr && c.bytes[i] >= bytes && c.bytes[i] / 4 <= bytes && (best < 0 || c.bytes[i] < c.bytes[best]))
                best = i;
        }
        if (best >= 0) {
            data_ = std::exchange(c.data[best], nullptr);
            bytes_ = std::exchange(c.bytes[best], 0);
            return;
        }
        // No kept block fits. Those too small for this buffer are freed now, so that a thread holds
        // at most its buffers in use plus two kept blocks of the sizes it still asks for.
        for (int i = 0; i < 2; ++i) {
            if (c.data[i] != nullptr && c.bytes[i] < bytes) {
                ::operator delete(std::exchange(c.data[i], nullptr), layer_buffer_alignment);
                c.bytes[i] = 0;
            }
        }
    }
    data_ = ::operator new(bytes, layer_buffer_alignment);
    bytes_ = bytes;
}

KVCALI_DECL void layer_buffer::reset() noexcept {
    if (data_ == nullptr) return;
    void* p = std::exchange(data_, nullptr);
    const std::size_t n = std::exchange(bytes_, 0);
    if (n >= min_cached) {
        layer_buffer_cache& c = thread_layer_buffers();
        bool guarded = false;
        if (!c.closed) {
            try {
                thread_local layer_buffer_guard guard;  // registered at the thread's first block
                guarded = true;
            } catch (...) {  // could not register the exit handler: the block is freed, not kept
            }
        }
        if (guarded) {
            // An empty slot, else the slot of the smaller block if this one is larger.
            int slot = c.data[0] == nullptr ? 0 : c.data[1] == nullptr ? 1 : c.bytes[0] <= c.bytes[1] ? 0 : 1;
            if (c.data[slot] == nullptr || c.bytes[slot] < n) {
                if (c.data[slot] != nullptr) ::operator delete(c.data[slot], layer_buffer_alignment);
                c.data[slot] = p;
                c.bytes[slot] = n;
                return;
            }
        }
    }
    ::operator delete(p, layer_buffer_alignment);
}

KVCALI_DECL void release_layer_buffers() noexcept {
    layer_buffer_cache& c = thread_layer_buffers();
    for (int i = 0; i < 2; ++i) {
        if (c.data[i] != nullptr) ::operator delete(std::exchange(c.data[i], nullptr), layer_buffer_alignment);
        c.bytes[i] = 0;
    }
}

}  // namespace kvcali::detail
