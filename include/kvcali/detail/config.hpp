// kvcali: the switch between header-only use (the default) and separate compilation.
//
// Every public header declares its non-template functions with KVCALI_DECL and includes its
// implementation (impl/<name>.ipp) at its end, as Boost.JSON does. Header-only (the default), the
// definitions come with the header, inline. With KVCALI_SEPARATE_COMPILATION defined in every TU of
// the program, the headers only declare them and exactly one TU includes <kvcali/src.hpp>, which
// includes every impl/*.ipp (the static library libkvcali.a is that TU). A TU then compiles only
// the declarations it uses: no Boost.JSON parser, no property tree, no <regex>.
#pragma once

#if defined(KVCALI_SEPARATE_COMPILATION)
#define KVCALI_DECL
#else
#define KVCALI_DECL inline
#endif

// Forces a hot helper (a lambda in an inner loop) inline: GCC keeps a lambda called from several
// places out of line, and a call per quantization cell costs more than the cell's arithmetic.
#if defined(__GNUC__) || defined(__clang__)
#define KVCALI_ALWAYS_INLINE __attribute__((always_inline))
#else
#define KVCALI_ALWAYS_INLINE
#endif

// Marks a function whose speed does not matter, so that the compiler optimizes it for size (and
// predicts the branches that call it not taken): one that only reports an error or a warning (or
// throws one), the rare case split off a hot function (a string with escapes, a layer named by an
// alias), and set-up that runs once per call (opening the output file, compiling a regex, reading
// the whole quant.cfg file into memory). Never a function that runs per layer, per field or per
// byte in the usual case. (What it saves a header-only TU that generates: README, Performance.)
#if defined(__GNUC__) || defined(__clang__)
#define KVCALI_COLD __attribute__((cold))
#else
#define KVCALI_COLD
#endif

#if defined(__GNUC__) || defined(__clang__)
#define KVCALI_NOINLINE __attribute__((noinline))
#else
#define KVCALI_NOINLINE
#endif

namespace kvcali::detail {
/// Asks the processor to start loading the cache line at `p` (no effect where unsupported).
inline void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}
}  // namespace kvcali::detail
