// Every conformance case (tests/conformance/cases, the reference's real answers) through the
// library (the layer list) and through the `kvcali generate` binary.
#define BOOST_TEST_MODULE conformance
#include <boost/test/unit_test.hpp>

#include <kvcali/kvcali.hpp>

#include "../support/conformance_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

BOOST_AUTO_TEST_CASE(every_case_through_the_library) {
    run_conformance("library", [](const fs::path& dir, const fs::path& config_file, const std::optional<kvcali::quant_layers>& layers,
                                  const std::optional<fs::path>& cfg) {
        const kvcali::layer_table model = kvcali::load_layer_list(dir / "model.json");
        kvcali::create_quant_cali_config(config_file, model, layers, cfg);
    });
}

BOOST_AUTO_TEST_CASE(every_case_through_the_cli) {
    run_conformance_cli("cli", [](const fs::path& dir) { return dir / "model.json"; });
}
