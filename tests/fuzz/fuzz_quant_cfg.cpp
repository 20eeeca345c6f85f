// libFuzzer target: the quant.cfg parser, both forms (protobuf text format and JSON), bound to the
// default policies' schema. Any exception other than kvcali::error, any sanitizer report or any
// broken invariant is a finding. Build and run: scripts/fuzz.sh quant_cfg
#include <kvcali/quant_cfg.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (const bool json : {false, true}) {
        kvcali::diagnostics diags;
        try {
            if (json) {
                (void)kvcali::parse_simple_config_json(text, "fuzz.json", kvcali::default_policies::algorithms, diags);
            } else {
                (void)kvcali::parse_simple_config(text, "fuzz.cfg", kvcali::default_policies::algorithms, diags);
            }
        } catch (const kvcali::error&) {
            // A documented outcome (the parsers record rather than throw, but may throw it).
        }
        // Every error must say where it is: a position or a JSON path.
        for (const auto& d : diags.items()) {
            if (d.is_error() && d.where.file.empty()) std::abort();
        }
    }
    return 0;
}
