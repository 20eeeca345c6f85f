// kvcali: the message builder (declared in detail/concat.hpp): included at the end of that header
// (header-only) or compiled once by <kvcali/src.hpp>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "../detail/concat.hpp"

#if defined(KVCALI_SEPARATE_COMPILATION)
#define KVCALI_CONCAT_DEF
#else
#define KVCALI_CONCAT_DEF KVCALI_NOINLINE inline
#endif

namespace kvcali::detail {

/// Appends the pieces to `out` in order.
KVCALI_CONCAT_DEF void append_concat(std::string& out, std::initializer_list<piece> pieces) {
    std::size_t size = out.size();
    for (const piece& p : pieces) size += p.what() == piece::kind::text ? static_cast<std::size_t>(p.value()) : 21;
    out.reserve(size);
    for (const piece& p : pieces) {
        switch (p.what()) {
            case piece::kind::text: out.append(p.data(), static_cast<std::size_t>(p.value())); break;
            case piece::kind::character: out.push_back(static_cast<char>(p.value())); break;
            case piece::kind::negative_number: out.push_back('-'); [[fallthrough]];
            case piece::kind::unsigned_number: {
                char digits[20];
                char* const end = digits + sizeof digits;
                char* first = end;
                std::uint64_t v = p.value();
                do {
                    *--first = static_cast<char>('0' + v % 10);
                    v /= 10;
                } while (v != 0);
                out.append(first, end);
                break;
            }
        }
    }
}

/// The pieces, one after the other, in a new string.
KVCALI_CONCAT_DEF std::string concat(std::initializer_list<piece> pieces) {
    std::string out;
    append_concat(out, pieces);
    return out;
}

}  // namespace kvcali::detail

#undef KVCALI_CONCAT_DEF
