// Every conformance case (tests/conformance/cases, the reference's real answers) through the
// library and through the `kvcali generate` binary.
#define BOOST_TEST_MODULE conformance
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <kvcali/kvcali.hpp>

#include <iostream>
#include <set>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

namespace {

struct expectation {
    bool success = false;
    std::string bytes;                 ///< expected.json
    std::set<std::string> categories;  ///< accepted error categories
};

expectation expected_of(const fs::path& dir) {
    expectation e;
    if (fs::exists(dir / "expected.json")) {
        e.success = true;
        e.bytes = slurp(dir / "expected.json");
        return e;
    }
    const auto doc = boost::json::parse(slurp(dir / "expected_error.json")).as_object();
    e.categories.insert(std::string(doc.at("category").as_string()));
    if (const auto* also = doc.if_contains("also_accept")) {
        for (const auto& c : also->as_array()) e.categories.insert(std::string(c.as_string()));
    }
    return e;
}

std::vector<fs::path> all_cases() {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(conformance_cases())) {
        if (entry.is_directory()) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string join(const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : "|") + x;
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_case_through_the_library) {
    const auto cases = all_cases();
    BOOST_TEST_REQUIRE(cases.size() >= 300u);
    std::size_t passed = 0, failed = 0;
    for (const auto& dir : cases) {
        const std::string name = dir.filename().string();
        BOOST_TEST_CONTEXT("case " << name) {
            const expectation want = expected_of(dir);
            temp_dir out;
            const fs::path config_file = out / "config.json";
            std::set<std::string> got_categories;
            bool ok = false;
            try {
                const kvcali::layer_table model = kvcali::load_layer_list(dir / "model.json");
                std::optional<kvcali::quant_layers> layers;
                if (fs::exists(dir / "quant_layers.json")) {
                    kvcali::diagnostics diags;
                    layers = kvcali::parse_quant_layers_json(slurp(dir / "quant_layers.json"), "quant_layers.json", diags);
                    diags.throw_if_errors();
                }
                std::optional<fs::path> cfg;
                if (fs::exists(dir / "quant.cfg")) cfg = dir / "quant.cfg";
                kvcali::create_quant_cali_config(config_file, model, layers, cfg);
                ok = true;
            } catch (const kvcali::error& e) {
                for (const auto& d : e.diagnostics()) got_categories.insert(std::string(kvcali::to_string(d.category)));
            }
            bool case_ok = false;
            if (want.success) {
                BOOST_TEST(ok, "expected success, got errors " << join(got_categories));
                if (ok) {
                    const std::string got = slurp(config_file);
                    BOOST_TEST(got == want.bytes, "bytes differ:\n" << got);
                    case_ok = got == want.bytes;
                }
            } else {
                BOOST_TEST(!ok, "expected an error " << join(want.categories) << ", but the call succeeded");
                bool any = false;
                for (const auto& c : want.categories) any = any || got_categories.contains(c);
                BOOST_TEST(any, "expected category " << join(want.categories) << ", got " << join(got_categories));
                BOOST_TEST(out.entries().empty(), "something was written on error");
                case_ok = !ok && any && out.entries().empty();
            }
            (case_ok ? passed : failed)++;
        }
    }
    std::cout << "conformance (library): " << cases.size() << " ran, " << passed << " passed, " << failed << " failed\n";
}

BOOST_AUTO_TEST_CASE(every_case_through_the_cli) {
    const auto cases = all_cases();
    std::size_t passed = 0, failed = 0;
    for (const auto& dir : cases) {
        const std::string name = dir.filename().string();
        BOOST_TEST_CONTEXT("case " << name) {
            const expectation want = expected_of(dir);
            temp_dir out;
            const fs::path config_file = out / "config.json";
            std::vector<std::string> args{"generate", "--model", (dir / "model.json").string(), "-o", config_file.string(), "--quiet"};
            if (fs::exists(dir / "quant.cfg")) {
                args.push_back("--cfg");
                args.push_back((dir / "quant.cfg").string());
            }
            if (fs::exists(dir / "quant_layers.json")) {
                args.push_back("--quant-layers");
                args.push_back((dir / "quant_layers.json").string());
            }
            const auto r = run_cli(args);
            bool case_ok = false;
            if (want.success) {
                BOOST_TEST(r.status == 0, "exit " << r.status << ", stderr:\n" << r.err);
                if (r.status == 0) {
                    const std::string got = slurp(config_file);
                    BOOST_TEST(got == want.bytes);
                    case_ok = got == want.bytes;
                }
            } else {
                BOOST_TEST(r.status == 1, "exit " << r.status << ", stderr:\n" << r.err);
                bool any = false;
                for (const auto& c : want.categories) any = any || r.err.find("[" + c + "]") != std::string::npos;
                BOOST_TEST(any, "stderr lacks [" << join(want.categories) << "]:\n" << r.err);
                BOOST_TEST(out.entries().empty());
                case_ok = r.status == 1 && any && out.entries().empty();
            }
            (case_ok ? passed : failed)++;
        }
    }
    std::cout << "conformance (cli): " << cases.size() << " ran, " << passed << " passed, " << failed << " failed\n";
}
