// kvcali internals: binary16 to float32, the bulk of a float16 dump's calibration cost: a
// branch-free portable widening and, on x86 CPUs that have it, the F16C instruction (checked once
// at run time). Used by the calibrator (impl/calibrator.ipp).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

// (The F16C instruction through its compiler builtin, which g++ and clang name alike: <immintrin.h>
// would cost every TU that includes the calibrator 0.4 s of parsing.)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define KVCALI_DETAIL_F16C 1
#endif

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
    using eight_halves = short __attribute__((vector_size(16)));
    using eight_floats = float __attribute__((vector_size(32)));
    std::size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        eight_halves h;
        std::memcpy(&h, in + i * 2, sizeof h);
        const eight_floats f = __builtin_ia32_vcvtph2ps256(h);
        std::memcpy(out + i, &f, sizeof f);
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

}  // namespace kvcali
