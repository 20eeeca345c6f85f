// kvcali: the tuning behind the layer table's name index (kvcali/layer_table.hpp): a hand-written
// hash, huge-page hints and prefetches. Internals: nothing here is a customisation point.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "huge_pages.hpp"

namespace kvcali::detail {
/// A fast 64-bit hash of a byte string (eight bytes per step, then a splitmix64 finish): the
/// layer table hashes every name once, so this is on the hot path of loading a model.
inline std::uint64_t hash_name(std::string_view s) noexcept {
    constexpr std::uint64_t k1 = 0x9E3779B97F4A7C15ull, k2 = 0xBF58476D1CE4E5B9ull, k3 = 0x94D049BB133111EBull;
    std::uint64_t h = static_cast<std::uint64_t>(s.size()) * k1;
    const char* p = s.data();
    std::size_t n = s.size();
    while (n >= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * k2;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        // The last 1 to 7 bytes, read without a variable-length copy: within the last eight
        // bytes of the string when it has eight, else as two overlapping halves or three bytes.
        std::uint64_t w;
        if (s.size() >= 8) {
            std::memcpy(&w, s.data() + s.size() - 8, 8);
            // Keep the last n bytes in memory (the others are hashed already).
            if constexpr (std::endian::native == std::endian::little) {
                w >>= (8 - n) * 8;
            } else {
                w &= (std::uint64_t{1} << (8 * n)) - 1;
            }
        } else if (n >= 4) {
            std::uint32_t lo, hi;
            std::memcpy(&lo, p, 4);
            std::memcpy(&hi, p + n - 4, 4);
            w = lo | (static_cast<std::uint64_t>(hi) << 32);
        } else {
            w = static_cast<std::uint64_t>(static_cast<unsigned char>(p[0])) |
                (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8) |
                (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n - 1])) << 16);
        }
        h = (h ^ w) * k2;
        h ^= h >> 31;
    }
    h = (h ^ (h >> 30)) * k2;
    h = (h ^ (h >> 27)) * k3;
    return h ^ (h >> 31);
}

/// The name index of a layer table: open addressing with linear probing, one 64-bit slot per
/// entry, (hash << 32) | (position + 1); 0 is empty. At most 3/4 full. The rows themselves live in
/// the table; `find` is given a way to read the name at a position.
class name_index {
public:
    static constexpr std::size_t max_entries = 0xFFFFFFFEu;

    /// The index hash of a name (the upper half of hash_name).
    static std::uint32_t hash_of(std::string_view name) noexcept { return static_cast<std::uint32_t>(hash_name(name) >> 32); }

    /// The position whose name (read through `name_at(position)`) equals `name`, or `npos`.
    template <class NameAt>
    std::size_t find(std::string_view name, std::uint32_t h, NameAt&& name_at) const noexcept {
        if (slots_.empty()) return npos;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t at = h & mask;; at = (at + 1) & mask) {
            const std::uint64_t slot = slots_[at];
            if (slot == 0) return npos;
            if (static_cast<std::uint32_t>(slot >> 32) == h) {
                const std::size_t i = static_cast<std::uint32_t>(slot) - 1u;
                if (name_at(i) == name) return i;
            }
        }
    }

    /// Loads the slot a name of hash `h` starts probing at.
    void prefetch(std::uint32_t h) const noexcept {
#if defined(__GNUC__) || defined(__clang__)
        if (!slots_.empty()) __builtin_prefetch(slots_.data() + (h & (slots_.size() - 1)));
#else
        (void)h;
#endif
    }

    /// Makes room for one more entry when `count` entries are held.
    void make_room(std::size_t count) {
        if ((count + 1) * 4 > slots_.size() * 3) reserve(std::max<std::size_t>(16, (count + 1) * 2));
    }

    /// Makes room for `n` entries (at most 3/4 full), rehashing what it holds.
    void reserve(std::size_t n) {
        std::size_t want = 16;
        while (want * 3 < n * 4) want *= 2;
        if (want <= slots_.size()) return;
        std::vector<std::uint64_t> old;
        old.reserve(want);
        advise_huge_pages(old.data(), want * sizeof(std::uint64_t));
        old.resize(want);  // (zeros: empty slots)
        old.swap(slots_);
        const std::size_t mask = slots_.size() - 1;
        for (const std::uint64_t slot : old) {
            if (slot == 0) continue;
            std::size_t at = static_cast<std::uint32_t>(slot >> 32) & mask;
            while (slots_[at] != 0) at = (at + 1) & mask;
            slots_[at] = slot;
        }
    }

    /// Records that the name of hash `h` is at `position` (room made beforehand).
    void insert(std::uint32_t h, std::size_t position) noexcept {
        const std::size_t mask = slots_.size() - 1;
        std::size_t at = h & mask;
        while (slots_[at] != 0) at = (at + 1) & mask;
        slots_[at] = (static_cast<std::uint64_t>(h) << 32) | static_cast<std::uint64_t>(position + 1);
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

private:
    std::vector<std::uint64_t> slots_;
};

}  // namespace kvcali::detail
