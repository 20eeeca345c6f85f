// kvcali: eight bytes at a time ("SIMD within a register"), for the readers' scans.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

namespace kvcali::detail::swar {

inline constexpr std::uint64_t ones = 0x0101010101010101ull;   ///< 0x01 in every byte
inline constexpr std::uint64_t highs = 0x8080808080808080ull;  ///< the high bit of every byte

/// The eight bytes at `p` as a word whose lowest byte is p[0] on every host.
inline std::uint64_t load(const char* p) noexcept {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    if constexpr (std::endian::native == std::endian::big) {
        std::uint64_t r = 0;
        for (int i = 0; i < 8; ++i) r = (r << 8) | ((w >> (8 * i)) & 0xFF);
        w = r;
    }
    return w;
}

/// The high bit of each byte of `w` that is zero: exact up to the lowest such byte (a borrow may
/// mark some above it). Zero when there is none.
inline constexpr std::uint64_t zero_bytes(std::uint64_t w) noexcept { return (w - ones) & ~w & highs; }

/// The high bit of each byte of `w` that is below `n` (n <= 0x80), exact up to the lowest such byte.
inline constexpr std::uint64_t bytes_below(std::uint64_t w, unsigned char n) noexcept { return (w - ones * n) & ~w & highs; }

/// The high bit of each byte of `w` that is not ASCII (0x80 and above).
inline constexpr std::uint64_t non_ascii_bytes(std::uint64_t w) noexcept { return w & highs; }

}  // namespace kvcali::detail::swar
