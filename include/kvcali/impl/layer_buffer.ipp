// kvcali: detail/layer_buffer.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <cstddef>
#include <mutex>
#include <new>
#include <utility>

#include "../detail/layer_buffer.hpp"

namespace kvcali::detail {

/// The pool new layer buffers of this thread come from (set by buffer_pool::scope).
inline buffer_pool*& thread_buffer_pool() noexcept {
    thread_local buffer_pool* pool = nullptr;
    return pool;
}

KVCALI_DECL layer_buffer::layer_buffer(std::size_t bytes) {
    if (bytes == 0) return;
    if (bytes >= min_pooled) {
        pool_ = thread_buffer_pool();
        if (pool_ != nullptr) {
            std::size_t got = 0;
            if (void* p = pool_->take(bytes, got)) {
                data_ = p;
                bytes_ = got;
                return;
            }
        }
    }
    data_ = ::operator new(bytes);
    bytes_ = bytes;
}

KVCALI_DECL void layer_buffer::reset() noexcept {
    if (data_ == nullptr) return;
    void* p = std::exchange(data_, nullptr);
    const std::size_t n = std::exchange(bytes_, 0);
    if (buffer_pool* pool = std::exchange(pool_, nullptr)) {
        pool->give(p, n);
    } else {
        ::operator delete(p);
    }
}

KVCALI_DECL buffer_pool::~buffer_pool() {
    for (const auto& [p, n] : free_) ::operator delete(p);
}

KVCALI_DECL buffer_pool::scope::scope(buffer_pool& pool) noexcept : previous_(std::exchange(thread_buffer_pool(), &pool)) {}

KVCALI_DECL buffer_pool::scope::~scope() { thread_buffer_pool() = previous_; }

KVCALI_DECL void* buffer_pool::take(std::size_t bytes, std::size_t& got) {
    const std::lock_guard<std::mutex> g(lock_);
    std::size_t best = free_.size();
    for (std::size_t i = 0; i < free_.size(); ++i) {
        const std::size_t n = free_[i].second;
        if (n >= bytes && n / 4 <= bytes && (best == free_.size() || n < free_[best].second)) best = i;
    }
    if (best != free_.size()) {
        void* p = free_[best].first;
        got = free_[best].second;
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        return p;
    }
    std::erase_if(free_, [&](const std::pair<void*, std::size_t>& block) {
        if (block.second >= bytes) return false;
        ::operator delete(block.first);
        return true;
    });
    return nullptr;
}

KVCALI_DECL void buffer_pool::give(void* data, std::size_t bytes) noexcept {
    try {
        const std::lock_guard<std::mutex> g(lock_);
        free_.emplace_back(data, bytes);
        return;
    } catch (...) {  // no room to keep it (or the lock failed): freed
    }
    ::operator delete(data);
}

}  // namespace kvcali::detail
