// kvcali: detail/layer_buffer.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <new>
#include <utility>

#include "../detail/huge_pages.hpp"
#include "../detail/layer_buffer.hpp"

namespace kvcali::detail {

/// The pool new layer buffers of this thread come from (set by buffer_pool::scope).
inline buffer_pool*& thread_buffer_pool() noexcept {
    thread_local buffer_pool* pool = nullptr;
    return pool;
}

/// A new block of `bytes` (see layer_buffer's constructor).
inline buffer_block new_buffer_block(std::size_t bytes) {
    buffer_block b;
    if (bytes < huge_page_bytes || bytes > std::numeric_limits<std::size_t>::max() - huge_page_bytes) {
        // Under 2 MiB; or so large that 2 MiB more would wrap around: operator new throws bad_alloc.
        b.base = b.data = ::operator new(bytes);
    } else {
        // operator new aligns to at least alignof(std::max_align_t): this much more is enough to
        // reach the next huge-page boundary.
        b.base = ::operator new(bytes + huge_page_bytes - alignof(std::max_align_t));
        const auto base = reinterpret_cast<std::uintptr_t>(b.base);
        b.data = static_cast<char*>(b.base) + (huge_page_ceil(base) - base);
        advise_whole_huge_pages(b.data, bytes);
    }
    b.bytes = bytes;
    return b;
}

KVCALI_DECL layer_buffer::layer_buffer(std::size_t bytes) {
    if (bytes == 0) return;
    if (bytes >= min_pooled) {
        pool_ = thread_buffer_pool();
        if (pool_ != nullptr) {
            block_ = pool_->take(bytes);
            if (block_.data != nullptr) return;
        }
    }
    block_ = new_buffer_block(bytes);
}

KVCALI_DECL void layer_buffer::reset() noexcept {
    if (block_.data == nullptr) return;
    const buffer_block b = std::exchange(block_, {});
    if (buffer_pool* pool = std::exchange(pool_, nullptr)) {
        pool->give(b);
    } else {
        ::operator delete(b.base);
    }
}

KVCALI_DECL buffer_pool::~buffer_pool() {
    for (const buffer_block& b : free_) ::operator delete(b.base);
}

KVCALI_DECL buffer_pool::scope::scope(buffer_pool& pool) noexcept : previous_(std::exchange(thread_buffer_pool(), &pool)) {}

KVCALI_DECL buffer_pool::scope::~scope() { thread_buffer_pool() = previous_; }

KVCALI_DECL buffer_block buffer_pool::take(std::size_t bytes) {
    const std::lock_guard<std::mutex> g(lock_);
    std::size_t best = free_.size();
    for (std::size_t i = 0; i < free_.size(); ++i) {
        const std::size_t n = free_[i].bytes;
        if (n >= bytes && n / 4 <= bytes && (best == free_.size() || n < free_[best].bytes)) best = i;
    }
    if (best != free_.size()) {
        const buffer_block b = free_[best];
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        return b;
    }
    std::erase_if(free_, [&](const buffer_block& b) {
        if (b.bytes >= bytes) return false;
        ::operator delete(b.base);
        return true;
    });
    return {};
}

KVCALI_DECL void buffer_pool::give(const buffer_block& block) noexcept {
    try {
        const std::lock_guard<std::mutex> g(lock_);
        free_.push_back(block);
        return;
    } catch (...) {  // no room to keep it (or the lock failed): freed
    }
    ::operator delete(block.base);
}

}  // namespace kvcali::detail
