// kvcali: messages built in one call. `concat({"layer ", name, " is listed ", n, " times"})` makes
// one string from text, characters and integers, where `a + b + c` makes a temporary string, and
// its clean-up on unwinding, per `+`. The library builds its diagnostics at many places: one
// out-of-line call each keeps that code small (2% of the compile time of a TU that generates).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "config.hpp"

namespace kvcali::detail {

/// One part of a concatenation: a view of text, a character or an integer (written in decimal,
/// as std::to_string writes it). A piece only refers to its text, so it lives as long as the
/// full expression that makes it, as a braced list's elements do.
class piece {
public:
    enum class kind : unsigned char { text, character, unsigned_number, negative_number };

    piece(std::string_view text) noexcept : data_(text.data()), value_(text.size()) {}
    piece(const std::string& text) noexcept : data_(text.data()), value_(text.size()) {}
    piece(const char* text) noexcept : piece(std::string_view(text)) {}
    piece(char c) noexcept : value_(static_cast<unsigned char>(c)), kind_(kind::character) {}
    template <std::unsigned_integral T>
    piece(T number) noexcept : value_(number), kind_(kind::unsigned_number) {}
    template <std::signed_integral T>
    piece(T number) noexcept
        : value_(number < 0 ? 0 - static_cast<std::uint64_t>(number) : static_cast<std::uint64_t>(number)),
          kind_(number < 0 ? kind::negative_number : kind::unsigned_number) {}
    piece(bool) = delete;  // "true"/"false" or "1"/"0": say which at the call site
    piece(const piece&) = delete;
    piece& operator=(const piece&) = delete;

    kind what() const noexcept { return kind_; }
    const char* data() const noexcept { return data_; }      ///< the text (kind::text)
    std::uint64_t value() const noexcept { return value_; }  ///< the text's size, the character or the magnitude

private:
    const char* data_ = nullptr;
    std::uint64_t value_;
    kind kind_ = kind::text;
};

#if defined(KVCALI_SEPARATE_COMPILATION)
/// Appends the pieces to `out` in order.
void append_concat(std::string& out, std::initializer_list<piece> pieces);

/// The pieces, one after the other, in a new string.
std::string concat(std::initializer_list<piece> pieces);
#endif

}  // namespace kvcali::detail

// Header-only, the definitions are the declarations: GCC takes `noinline` (which keeps each call
// site one call) on an inline function only where it is first declared.
#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/concat.ipp"  // IWYU pragma: export
#endif
