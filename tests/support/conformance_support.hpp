// The conformance cases (tests/conformance/cases, the reference's real answers) with one runner
// shared by every way a model reaches the generator: the layer list, torch modules, TorchScript and
// ONNX files. Each case must give exactly the reference's bytes, or an error of its expected
// category (error-severity diagnostics only) with nothing written.
#pragma once

#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <kvcali/error.hpp>
#include <kvcali/quant_layers_json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace kvcali_test {

/// tests/conformance/cases holds exactly this many cases (a copy of ../shared/conformance): a lost
/// or unreadable case fails every runner.
inline constexpr std::size_t conformance_case_count = 326;

struct conformance_expectation {
    bool success = false;
    std::string bytes;                 ///< expected.json
    std::set<std::string> categories;  ///< accepted error categories
};

inline conformance_expectation conformance_expected(const fs::path& dir) {
    conformance_expectation e;
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

/// Every case directory, sorted; requires exactly conformance_case_count of them.
inline std::vector<fs::path> conformance_case_dirs() {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(conformance_cases())) {
        if (entry.is_directory()) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    BOOST_TEST_REQUIRE(out.size() == conformance_case_count);
    return out;
}

inline std::string joined(const std::set<std::string>& s) {
    std::string out;
    for (const auto& x : s) out += (out.empty() ? "" : "|") + x;
    return out;
}

/// The quant_layers argument of a case (quant_layers.json), if it has one.
inline std::optional<kvcali::quant_layers> conformance_quant_layers(const fs::path& dir) {
    if (!fs::exists(dir / "quant_layers.json")) return std::nullopt;
    kvcali::diagnostics diags;
    auto layers = kvcali::parse_quant_layers_json(slurp(dir / "quant_layers.json"), "quant_layers.json", diags);
    diags.throw_if_errors();
    return layers;
}

/// The folder of the models made from the cases at build time (tests/models/make_models.py), from
/// KVCALI_MODELS_DIR.
inline fs::path conformance_models_dir() {
    const char* dir = std::getenv("KVCALI_MODELS_DIR");
    if (dir == nullptr) throw std::runtime_error("KVCALI_MODELS_DIR is not set (run the tests through meson test)");
    return dir;
}

/// What one route made of a case: whether it succeeded, the error categories (error diagnostics
/// only) and `detail` for messages (the CLI's stderr).
struct conformance_result {
    bool ok = false;
    std::set<std::string> categories;
    std::string detail;
};

/// Runs each of `cases` (case folders) through `run(case_dir, config_file)`, which returns a
/// conformance_result, and checks each against the reference: the expected bytes in config_file on
/// success, else an error of an expected category with nothing written in config_file's folder.
/// `label` names the route in the summary line; every case must pass.
template <class Run>
std::size_t check_every_case(const std::string& label, const std::vector<fs::path>& cases, Run&& run) {
    std::size_t passed = 0, failed = 0;
    for (const auto& dir : cases) {
        BOOST_TEST_CONTEXT("case " << dir.filename().string() << " (" << label << ")") {
            const conformance_expectation want = conformance_expected(dir);
            temp_dir out;
            const fs::path config_file = out / "config.json";
            const conformance_result got = run(dir, config_file);
            bool case_ok = false;
            if (want.success) {
                BOOST_TEST(got.ok, "expected success, got errors " << joined(got.categories) << "\n" << got.detail);
                if (got.ok) {
                    const std::string bytes = slurp(config_file);
                    BOOST_TEST(bytes == want.bytes, "bytes differ:\n" << bytes);
                    case_ok = bytes == want.bytes;
                }
            } else {
                BOOST_TEST(!got.ok, "expected an error " << joined(want.categories) << ", but the call succeeded");
                bool any = false;
                for (const auto& c : want.categories) any = any || got.categories.contains(c);
                BOOST_TEST(any, "expected an error of category " << joined(want.categories) << ", got errors " << joined(got.categories)
                                                                 << "\n"
                                                                 << got.detail);
                BOOST_TEST(out.entries().empty(), "something was written on error");
                case_ok = !got.ok && any && out.entries().empty();
            }
            (case_ok ? passed : failed)++;
        }
    }
    std::cout << "conformance (" << label << "): " << cases.size() << " ran, " << passed << " passed, " << failed << " failed\n";
    BOOST_TEST(passed == cases.size());
    return passed;
}

/// Every case through the library: `generate(case_dir, config_file, quant_layers, quant_cfg)` must
/// write config_file or throw kvcali::error.
template <class Generate>
std::size_t run_conformance(const std::string& label, Generate&& generate) {
    return check_every_case(label, conformance_case_dirs(), [&](const fs::path& dir, const fs::path& config_file) {
        conformance_result r;
        try {
            std::optional<fs::path> cfg;
            if (fs::exists(dir / "quant.cfg")) cfg = dir / "quant.cfg";
            generate(dir, config_file, conformance_quant_layers(dir), cfg);
            r.ok = true;
        } catch (const kvcali::error& e) {
            r.categories = error_categories_of(e.diagnostics());
        }
        return r;
    });
}

/// Every case through `kvcali generate --model model_of(case_dir) ...`: exit status 0, or 1 with
/// the expected category on one of its error lines (a warning line carrying it does not count).
/// Under the sanitizers, every fourth case (a process start there is slow: all 326 took 48 s at
/// -O0); every case still runs through the library there, and through the CLI in the other stages.
template <class ModelOf>
std::size_t run_conformance_cli(const std::string& label, ModelOf&& model_of) {
    return check_every_case(label, sample_of(conformance_case_dirs(), 4), [&](const fs::path& dir, const fs::path& config_file) {
        std::vector<std::string> args{"generate", "--model", fs::path(model_of(dir)).string(), "-o", config_file.string(), "--quiet"};
        if (fs::exists(dir / "quant.cfg")) {
            args.push_back("--cfg");
            args.push_back((dir / "quant.cfg").string());
        }
        if (fs::exists(dir / "quant_layers.json")) {
            args.push_back("--quant-layers");
            args.push_back((dir / "quant_layers.json").string());
        }
        const auto p = run_cli(args);
        conformance_result r;
        r.ok = p.status == 0;
        r.categories = cli_error_categories(p.err);
        // An error is exit status 1: a crash or a usage error (2) matches no category.
        if (p.status != 0 && p.status != 1) r.categories = {"(exit status " + std::to_string(p.status) + ")"};
        r.detail = "exit " + std::to_string(p.status) + ", stderr:\n" + p.err;
        return r;
    });
}

}  // namespace kvcali_test
