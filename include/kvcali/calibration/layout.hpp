// kvcali calibration: where a layer's activation files live under the activations folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "../detail/config.hpp"

namespace kvcali {

/// The longest folder name the layout makes (NAME_MAX on the usual file systems).
inline constexpr std::size_t max_activation_dir_name = 255;

/// The one folder name under the activations folder that holds a layer's files: batch k of layer
/// L is `DIR / activation_dir_name(L) / "<k>.npy"`. No layer name reaches outside DIR or deeper
/// into it. The rule, byte by byte over the name:
///   - `A-Z a-z 0-9 . _ -` are kept; every other byte (`/`, `\`, `%`, `~`, spaces, control bytes,
///     every byte >= 0x80 such as UTF-8) becomes `%XX`, two uppercase hex digits;
///   - the names a folder cannot have are escaped whole: "." is "%2E", ".." is "%2E%2E", and the
///     empty name is "%";
///   - when the escaped name is longer than 255 bytes, it is cut to its first 200 bytes and
///     followed by `~` and the 64-bit FNV-1a hash of the whole layer name as 16 lowercase hex
///     digits (217 bytes in all; `~` appears in no other folder name).
/// Names of safe bytes only are kept as they are: `model.layers.0.self_attn.k_proj` stays itself.
/// Requires: nothing; any bytes. Errors: none (std::bad_alloc only).
/// Example: `activation_dir_name("/layers.0/self_attn/k_proj/MatMul") == "%2Flayers.0%2Fself_attn%2Fk_proj%2FMatMul"`
KVCALI_DECL std::string activation_dir_name(std::string_view layer);

/// Where batch `k` of `layer` is under the activations folder `dir`:
/// `dir / activation_dir_name(layer) / "<k>.npy"`.
/// Example: `activation_file("act", "model.layers.0.self_attn.k_proj", 1) == "act/model.layers.0.self_attn.k_proj/1.npy"`
KVCALI_DECL std::filesystem::path activation_file(const std::filesystem::path& dir, std::string_view layer, std::uint32_t k);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "../impl/layout.ipp"  // IWYU pragma: export
#endif
