// kvcali: calibration/layout.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include "../calibration/layout.hpp"

namespace kvcali {

KVCALI_DECL std::string activation_dir_name(std::string_view layer) {
    static constexpr char hex_upper[] = "0123456789ABCDEF";
    static constexpr char hex_lower[] = "0123456789abcdef";
    if (layer.empty()) return "%";
    if (layer == ".") return "%2E";
    if (layer == "..") return "%2E%2E";
    std::string out;
    out.reserve(layer.size());
    for (const char c : layer) {
        const auto b = static_cast<unsigned char>(c);
        const bool safe = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '.' || b == '_' || b == '-';
        if (safe) {
            out += c;
        } else {
            out += '%';
            out += hex_upper[b >> 4];
            out += hex_upper[b & 0xF];
        }
    }
    if (out.size() <= max_activation_dir_name) return out;
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, 64-bit
    for (const char c : layer) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
    out.resize(200);
    out += '~';
    for (int shift = 60; shift >= 0; shift -= 4) out += hex_lower[(h >> shift) & 0xF];
    return out;
}

KVCALI_DECL std::filesystem::path activation_file(const std::filesystem::path& dir, std::string_view layer, std::uint32_t k) {
    return dir / activation_dir_name(layer) / (std::to_string(k) + ".npy");
}

}  // namespace kvcali
