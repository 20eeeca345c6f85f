// kvcali internals: huge-page hints for large blocks (Linux transparent huge pages; ignored
// elsewhere). Faulting a large array in 4 KiB at a time costs more than filling it.
#pragma once

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstddef>
#include <cstdint>

namespace kvcali::detail {

/// The size of a huge page (x86-64 and most AArch64 kernels: 2 MiB).
inline constexpr std::size_t huge_page_bytes = std::size_t{1} << 21;

/// The last huge-page boundary at or before `address`.
inline std::uintptr_t huge_page_floor(std::uintptr_t address) noexcept { return address & ~std::uintptr_t{huge_page_bytes - 1}; }

/// The first huge-page boundary at or after `address`.
inline std::uintptr_t huge_page_ceil(std::uintptr_t address) noexcept { return huge_page_floor(address + huge_page_bytes - 1); }

/// Hints that the whole huge pages inside [data, data + bytes) should be backed by huge pages.
/// The hint changes nothing else, and is ignored where unsupported.
inline void advise_whole_huge_pages(const void* data, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const auto begin = huge_page_ceil(reinterpret_cast<std::uintptr_t>(data));
    const auto end = huge_page_floor(reinterpret_cast<std::uintptr_t>(data) + bytes);
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
    (void)data;
    (void)bytes;
#endif
}

/// The same for a block of any alignment that is about to be filled, when it is large enough to
/// hold at least one whole huge page wherever it lies (two pages' worth).
inline void advise_huge_pages(const void* data, std::size_t bytes) noexcept {
    if (bytes >= 2 * huge_page_bytes) advise_whole_huge_pages(data, bytes);
}

}  // namespace kvcali::detail
