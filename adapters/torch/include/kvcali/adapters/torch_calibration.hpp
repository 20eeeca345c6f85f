// kvcali: feeding libtorch tensors to the calibrator (float32, float16, bfloat16; any strides,
// any device: a tensor off the CPU is copied to it first).
#pragma once

#include <ATen/ATen.h>

#include <kvcali/calibration/calibrator.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace kvcali::libtorch {

/// The calibration dtype of a tensor's scalar type, or empty for any other type.
inline std::optional<kvcali::dtype> calibration_dtype(at::ScalarType t) {
    switch (t) {
        case at::kFloat: return kvcali::dtype::float32;
        case at::kHalf: return kvcali::dtype::float16;
        case at::kBFloat16: return kvcali::dtype::bfloat16;
        default: return std::nullopt;
    }
}

/// One batch of `layer`'s activations as a tensor (the last dimension is the channel).
/// Errors: `invalid_data` naming the layer for another scalar type (and everything the
/// calibrator itself checks: non-finite values, a changing channel count); `unknown_layer`.
/// Example: `kvcali::libtorch::observe(cal, "model.layers.0.self_attn.k_proj", k_proj_output);`
inline kvcali::batch_outcome observe(kvcali::calibrator& cal, std::string_view layer, const at::Tensor& tensor) {
    const auto type = calibration_dtype(tensor.scalar_type());
    if (!type) {
        throw kvcali::error(kvcali::diagnostic{.severity = kvcali::severity::error,
                                               .category = kvcali::errc::invalid_data,
                                               .message = "layer \"" + std::string(layer) + "\": tensor of type " +
                                                          std::string(c10::toString(tensor.scalar_type())) +
                                                          "; expected float32, float16 or bfloat16",
                                               .where = {},
                                               .layer = std::string(layer),
                                               .json_path = {}});
    }
    const at::Tensor cpu = tensor.device().is_cpu() ? tensor : tensor.to(at::kCPU);
    const auto sizes = cpu.sizes();
    const auto strides = cpu.strides();
    return cal.observe(layer, cpu.data_ptr(), *type, std::span<const std::int64_t>(sizes.data(), sizes.size()),
                       std::span<const std::int64_t>(strides.data(), strides.size()));
}

}  // namespace kvcali::libtorch
