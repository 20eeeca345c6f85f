// libFuzzer target: the config.json reader. A document that reads without errors must write back
// to bytes that read again without errors and write to the same bytes (a fixed point).
// Build and run: scripts/fuzz.sh config_json
#include <kvcali/config_reader.hpp>
#include <kvcali/config_writer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    kvcali::diagnostics diags;
    const kvcali::resolved_config doc = kvcali::read_config_json(text, "fuzz.json", kvcali::default_policies::algorithms, diags);
    if (diags.has_errors()) return 0;
    const std::string once = kvcali::write_config_json(doc);
    kvcali::diagnostics again;
    const kvcali::resolved_config reread = kvcali::read_config_json(once, "again.json", kvcali::default_policies::algorithms, again);
    if (again.has_errors()) std::abort();
    if (kvcali::write_config_json(reread) != once) std::abort();
    return 0;
}
