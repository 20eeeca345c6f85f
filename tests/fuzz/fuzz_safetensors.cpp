// libFuzzer target: the safetensors reader. A file that reads must describe exactly its data: the
// tensors in order with no gap or overlap, each as many bytes as its shape and dtype need; and
// written back with the writer it must read the same. Build and run: scripts/fuzz.sh safetensors
#include <kvcali/export/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        const kvcali::safetensors_header h = kvcali::parse_safetensors(bytes, "fuzz.safetensors");
        std::uint64_t at = 0;
        std::vector<kvcali::raw_tensor> raw;
        for (const auto& t : h.tensors) {
            std::uint64_t n = kvcali::safetensors_element_size(t.dtype);
            for (auto d : t.shape) n *= d;
            if (n == 0 && kvcali::safetensors_element_size(t.dtype) == 0) std::abort();
            if (t.begin != at || t.end - t.begin != n) std::abort();
            at = t.end;
            raw.push_back({t.name, t.dtype, t.shape, std::string(bytes.substr(h.data_start + t.begin, t.size()))});
        }
        if (h.data_start + at != size) std::abort();
        const std::string again = kvcali::safetensors_bytes(std::span<const kvcali::raw_tensor>(raw), h.metadata);
        const kvcali::safetensors_header h2 = kvcali::parse_safetensors(again, "again.safetensors");
        if (h2.tensors.size() != h.tensors.size() || h2.metadata != h.metadata) std::abort();
        for (std::size_t i = 0; i < h.tensors.size(); ++i) {
            if (h2.tensors[i].name != h.tensors[i].name || h2.tensors[i].shape != h.tensors[i].shape ||
                again.substr(h2.data_start + h2.tensors[i].begin, h2.tensors[i].size()) != raw[i].bytes) {
                std::abort();
            }
        }
    } catch (const kvcali::error&) {
    }
    return 0;
}
