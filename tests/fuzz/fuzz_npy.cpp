// libFuzzer target: the .npy reader. A file that reads must hold exactly the bytes its shape and
// dtype need. Build and run: scripts/fuzz.sh npy
#include <kvcali/calibration/npy.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    try {
        const kvcali::npy_array a = kvcali::parse_npy(bytes, "fuzz.npy");
        std::size_t count = 1;
        for (auto d : a.shape) count *= static_cast<std::size_t>(d);
        if (a.shape.empty() || a.size() != count || a.bytes.size() != count * kvcali::size_of(a.type)) std::abort();
    } catch (const kvcali::error&) {
    }
    return 0;
}
