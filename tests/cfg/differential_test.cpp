// Differential test: kvcali's quant.cfg parser against Debian's python3-protobuf text_format.Merge
// (the reference's parser family) on every conformance quant.cfg plus generated variants: the
// same files accepted and rejected, and the same values. Where spec §2 decides otherwise, the spec
// wins: those points are checked one by one (divergence_points).
#define BOOST_TEST_MODULE cfg_differential
#include <boost/test/unit_test.hpp>

#include <kvcali/quant_cfg.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <sstream>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr) throw std::runtime_error(std::string(name) + " is not set (run the tests through meson test)");
    return v;
}

/// For a longer run by hand: KVCALI_DIFF_COUNT=5000 KVCALI_DIFF_SEED=7 meson test cfg_differential
std::string env_or(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : fallback;
}

std::string hex(std::string_view s) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

std::string value_text(const kvcali::param_value& v) {
    switch (v.type) {
        case kvcali::param_type::boolean: return v.boolean ? "1" : "0";
        case kvcali::param_type::uint32: return std::to_string(v.uint);
        case kvcali::param_type::enumeration: return std::to_string(v.enumerator);
        case kvcali::param_type::float32: {
            if (std::isnan(v.real)) return "nan";
            std::uint32_t bits = 0;
            std::memcpy(&bits, &v.real, 4);
            char buf[16];
            std::snprintf(buf, sizeof buf, "%08x", bits);
            return buf;
        }
    }
    return "?";
}

void canon_block(std::vector<std::string>& out, const std::string& prefix, const kvcali::algorithm_config& c) {
    out.push_back(prefix);
    if (!c.algorithm) return;
    const auto& algo = kvcali::default_policies::algorithms[*c.algorithm];
    out.push_back(prefix + ".algo=" + std::string(algo.cfg_block));
    std::vector<std::pair<std::string, std::string>> fields;
    for (std::size_t i = 0; i < algo.params.size(); ++i) {
        if (c.values[i]) fields.emplace_back(std::string(algo.params[i].cfg_name), value_text(*c.values[i]));
    }
    std::sort(fields.begin(), fields.end());
    for (const auto& [name, value] : fields) out.push_back(prefix + "." + name + "=" + value);
}

/// The same canonical form differential.py writes.
std::string canon(const kvcali::simple_config& cfg) {
    std::vector<std::string> out;
    if (cfg.batch_num) out.push_back("batch_num=" + std::to_string(*cfg.batch_num));
    if (cfg.activation_offset) out.push_back(std::string("activation_offset=") + (*cfg.activation_offset ? "1" : "0"));
    if (cfg.has_common) {
        out.push_back("common");
        for (const auto& l : cfg.quant_layers) out.push_back("common.layer=" + hex(l.value));
        if (cfg.common) canon_block(out, "common.cal", *cfg.common);
    }
    for (const auto& o : cfg.overrides) {
        out.push_back("override");
        if (o.layer_name) out.push_back("override.layer_name=" + hex(o.layer_name->value));
        if (o.config) canon_block(out, "override.cal", *o.config);
    }
    std::string joined;
    for (std::size_t i = 0; i < out.size(); ++i) joined += (i ? ";" : "") + out[i];
    return joined;
}

struct verdict {
    std::string status;  // accept | reject
    std::string value;
    std::string first_error;
};

verdict kvcali_verdict(const fs::path& file) {
    kvcali::diagnostics diags;
    const kvcali::simple_config cfg =
        kvcali::parse_simple_config(slurp(file), file.filename().string(), kvcali::default_policies::algorithms, diags);
    if (diags.has_errors()) {
        for (const auto& d : diags.items()) {
            if (d.is_error()) return {"reject", "", d.to_string()};
        }
    }
    return {"accept", canon(cfg), ""};
}

std::map<std::string, verdict> read_oracle(const fs::path& path) {
    std::map<std::string, verdict> out;
    std::istringstream in(slurp(path));
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const auto a = line.find('\t'), b = line.find('\t', a + 1);
        out[line.substr(0, a)] = {line.substr(a + 1, b - a - 1), line.substr(b + 1), ""};
    }
    return out;
}

struct oracle_run {
    temp_dir dir;
    std::map<std::string, verdict> oracle, divergent;
    oracle_run() {
        const fs::path script = source_root() / "tests" / "cfg" / "differential.py";
        const auto r = run_process({env("KVCALI_PYTHON"), script.string(), env("KVCALI_PB2_DIR"), conformance_cases().string(),
                                    dir.path().string(), env_or("KVCALI_DIFF_COUNT", "400"), env_or("KVCALI_DIFF_SEED", "20240601")});
        if (r.status != 0) throw std::runtime_error("differential.py failed:\n" + r.out + r.err);
        std::cout << r.out;
        oracle = read_oracle(dir / "oracle.txt");
        divergent = read_oracle(dir / "divergent.txt");
    }
};

oracle_run& run() {
    static oracle_run r;
    return r;
}

}  // namespace

BOOST_AUTO_TEST_CASE(same_verdict_and_values_as_python_protobuf) {
    auto& r = run();
    BOOST_TEST_REQUIRE(r.oracle.size() >= 270u + std::stoul(env_or("KVCALI_DIFF_COUNT", "400")));
    std::size_t agree = 0, accepted = 0, conformance = 0;
    for (const auto& [name, want] : r.oracle) {
        BOOST_TEST_CONTEXT("file " << name << ".cfg:\n" << slurp(r.dir / (name + ".cfg"))) {
            const verdict got = kvcali_verdict(r.dir / (name + ".cfg"));
            BOOST_TEST(got.status == want.status, "kvcali " << got.status << " (" << got.first_error << "), python " << want.status);
            if (got.status == want.status && want.status == "accept") {
                BOOST_TEST(got.value == want.value);
                ++accepted;
            }
            if (got.status == want.status && (want.status == "reject" || got.value == want.value)) ++agree;
            if (name.rfind("case_", 0) == 0) ++conformance;
        }
    }
    std::cout << "differential: " << r.oracle.size() << " files (" << conformance << " conformance quant.cfg), " << agree
              << " agree with python3-protobuf (" << accepted << " accepted with equal values)\n";
    BOOST_TEST(agree == r.oracle.size());
}

// Where spec §2 wins (the README lists these): the oracle accepts, kvcali does what the spec says.
BOOST_AUTO_TEST_CASE(divergence_points) {
    auto& r = run();
    const std::map<std::string, std::string> kvcali_expects = {
        {"div_u_escape", "accept:common;common.layer=61e6b3a8"},  // \u6ce8 is U+6CE8 as UTF-8
        {"div_unknown_escape", "reject"},
        {"div_question_escape", "accept:common;common.layer=613f"},  // \? is '?', as in C
        {"div_octal_above_377", "reject"},
        {"div_underscore_int", "reject"},
        {"div_binary_int", "reject"},
        {"div_0o_int", "reject"},
        {"div_underscore_float", "reject"},
        {"div_nul_in_comment", "reject"},
        {"div_nul_in_string", "reject"},
    };
    BOOST_TEST(r.divergent.size() == kvcali_expects.size());
    for (const auto& [name, python] : r.divergent) {
        BOOST_TEST_CONTEXT("divergence " << name) {
            BOOST_TEST(python.status == "accept", "python3-protobuf no longer accepts it: not a divergence any more");
            const verdict got = kvcali_verdict(r.dir / (name + ".cfg"));
            const std::string got_text = got.status == "reject" ? "reject" : "accept:" + got.value;
            BOOST_TEST(got_text == kvcali_expects.at(name));
            BOOST_TEST(got_text != "accept:" + python.value);
        }
    }
}
