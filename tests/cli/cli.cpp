// The kvcali binary as a user runs it: outputs, exit statuses, stderr lines, and that nothing is
// written on error or by check/explain.
#define BOOST_TEST_MODULE cli
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

namespace {

fs::path example(const std::string& name) { return source_root() / "examples" / "llama" / name; }

const std::string model = example("model.json").string();
const std::string cfg = example("quant.cfg").string();

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

std::size_t count_of(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + needle.size())) ++n;
    return n;
}

/// An .npy file (format 1.0) of `descr` ("<f4", "<f2") with C-order `shape` and raw little-endian data.
std::string npy_bytes(const std::string& descr, const std::vector<std::size_t>& shape, const std::string& raw) {
    std::string dims;
    for (std::size_t d : shape) dims += std::to_string(d) + ", ";
    if (shape.size() > 1) dims.resize(dims.size() - 2);
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + dims + "), }";
    header.append(64 - (10 + header.size() + 1) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xFF);
    out += static_cast<char>(header.size() >> 8);
    return out + header + raw;
}

/// Little-endian float32 and float16 bytes of values that float16 holds exactly (k / 8, |k| < 2048).
std::string f32_bytes(const std::vector<float>& v) {
    std::string out(v.size() * 4, '\0');
    std::memcpy(out.data(), v.data(), out.size());
    return out;
}
std::string f16_bytes(const std::vector<float>& v) {
    std::string out;
    for (float x : v) {
        std::uint16_t h = 0;
        if (x != 0.0f) {
            const auto bits = std::bit_cast<std::uint32_t>(x);
            const std::uint32_t sign = bits >> 31, exponent = (bits >> 23) & 0xFF, mantissa = bits & 0x7FFFFF;
            h = static_cast<std::uint16_t>((sign << 15) | ((exponent - 127 + 15) << 10) | (mantissa >> 13));
        }
        out += static_cast<char>(h & 0xFF);
        out += static_cast<char>(h >> 8);
    }
    return out;
}

/// The example's config and activations (batch_num 4, 8 layers, [16, 4] each) in `dir`; `half`
/// writes float16 files, else float32.
void write_example_activations(const temp_dir& dir, bool half) {
    const auto g = run_cli({"generate", "--model", model, "--cfg", cfg, "-o", (dir / "config.json").string(), "--quiet"});
    BOOST_REQUIRE_EQUAL(g.status, 0);
    const auto doc = boost::json::parse(slurp(dir / "config.json")).as_object();
    int layer = 0;
    for (const auto& kv : doc) {
        if (!kv.value().is_object()) continue;
        const std::string name(kv.key());
        fs::create_directories(dir.path() / "act" / name);
        for (int k = 0; k < 4; ++k) {
            std::vector<float> v(64);
            for (std::size_t i = 0; i < v.size(); ++i)
                v[i] = static_cast<float>((static_cast<int>(i) * 7 + k * 13 + layer * 5) % 61 - 23) / 8.0f;
            spit(dir.path() / "act" / name / (std::to_string(k) + ".npy"),
                 npy_bytes(half ? "<f2" : "<f4", {16, 4}, half ? f16_bytes(v) : f32_bytes(v)));
        }
        ++layer;
    }
    BOOST_REQUIRE_EQUAL(layer, 8);
}

std::vector<std::string> calibrate_args(const temp_dir& dir, const std::string& record) {
    return {
        "calibrate", "--config", (dir / "config.json").string(), "--activations", (dir / "act").string(), "-o", (dir / record).string()};
}

}  // namespace

BOOST_AUTO_TEST_CASE(generate_writes_the_config_and_one_summary_line) {
    temp_dir dir;
    const auto r = run_cli({"generate", "--model", model, "--cfg", cfg, "-o", (dir / "config.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.out == "wrote " + (dir / "config.json").string() + ": 8 layers (hfmg 7, ifmr 1), batch_num 4, activation_offset true\n");
    BOOST_TEST(r.err.empty(), r.err);
    const std::string json = slurp(dir / "config.json");
    BOOST_TEST(json.rfind("{\n    \"batch_num\":4,\n    \"activation_offset\":true,\n    \"model.layers.0.self_attn.k_proj\":{", 0) == 0u);
    const auto quiet = run_cli({"generate", "--model", model, "--cfg", cfg, "-o", (dir / "c2.json").string(), "--quiet"});
    BOOST_TEST(quiet.status == 0);
    BOOST_TEST(quiet.out.empty());
}

BOOST_AUTO_TEST_CASE(errors_are_compiler_style_lines_and_nothing_is_written) {
    temp_dir dir;
    spit(dir / "bad.cfg",
         "kv_cache_quant_config {\n  quant_layers: 'model.layers.0.self_attn.k_prj'\n  calibration_config { ifmr_quantize { search_stepp: "
         "0.1 } }\n}\n");
    spit(dir / "config.json", "old");
    const auto r = run_cli({"generate", "--model", model, "--cfg", (dir / "bad.cfg").string(), "-o", (dir / "config.json").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.out.empty());
    BOOST_TEST(contains(r.err, (dir / "bad.cfg").string() + ":3:40: error: "), r.err);
    BOOST_TEST(contains(r.err, "did you mean \"search_step\"? [parse_error]"), r.err);
    BOOST_TEST(slurp(dir / "config.json") == "old");  // untouched
    BOOST_TEST(dir.entries().size() == 2u);
    // A semantic error: every line ends with its category; the unknown layer gets suggestions.
    spit(dir / "bad2.cfg", "kv_cache_quant_config {\n  quant_layers: 'model.layers.0.self_attn.k_prj'\n  quant_layers: 'model.norm'\n}\n");
    const auto r2 = run_cli({"generate", "--model", model, "--cfg", (dir / "bad2.cfg").string(), "-o", (dir / "out.json").string()});
    BOOST_TEST(r2.status == 1);
    BOOST_TEST(contains(r2.err, (dir / "bad2.cfg").string() + ":2:17: error: layer \"model.layers.0.self_attn.k_prj\" does not exist in "
                                                              "the model; did you mean \"model.layers.0.self_attn.k_proj\""),
               r2.err);
    BOOST_TEST(contains(r2.err,
                        ":3:17: error: layer \"model.norm\" is of type LlamaRMSNorm, which does not support KV-cache quantization "
                        "[unsupported_layer_type]"),
               r2.err);
    BOOST_TEST(!fs::exists(dir / "out.json"));
}

BOOST_AUTO_TEST_CASE(exit_statuses) {
    temp_dir dir;
    BOOST_TEST(run_cli({}).status == 2);
    BOOST_TEST(run_cli({"frobnicate"}).status == 2);
    BOOST_TEST(run_cli({"generate", "--model", model, "--bogus", "-o", "x"}).status == 2);
    BOOST_TEST(run_cli({"generate", "--model"}).status == 2);         // missing value
    BOOST_TEST(run_cli({"generate", "--model", model}).status == 2);  // missing -o
    BOOST_TEST(run_cli({"generate", "--model", (dir / "missing.json").string(), "--layer", "x", "-o", (dir / "o.json").string()}).status ==
               1);
    const auto io = run_cli({"generate", "--model", model, "--layer", "lm_head", "-o", (dir / "no" / "o.json").string()});
    BOOST_TEST(io.status == 1);
    BOOST_TEST(contains(io.err, "[io_error]"), io.err);
    const auto arg = run_cli({"generate", "--model", model, "--quant-layers", "{\"layers\": []}", "-o", (dir / "o.json").string()});
    BOOST_TEST(arg.status == 1);
    BOOST_TEST(contains(arg.err, "[invalid_argument]"), arg.err);
    BOOST_TEST(run_cli({"generate", "--model", model, "--layer", "lm_head", "-o", (dir / "o.json").string()}).status == 0);
}

BOOST_AUTO_TEST_CASE(help_and_version) {
    const auto help = run_cli({"--help"});
    BOOST_TEST(help.status == 0);
    for (const char* cmd : {"generate", "check", "explain", "layers"}) {
        BOOST_TEST(contains(help.out, std::string("  ") + cmd), cmd);
        const auto h = run_cli({cmd, "--help"});
        BOOST_TEST(h.status == 0);
        BOOST_TEST(contains(h.out, std::string("Usage: kvcali ") + cmd), h.out);
    }
    const auto v = run_cli({"--version"});
    BOOST_TEST(v.status == 0);
    BOOST_TEST(v.out.rfind("kvcali ", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(layers_lists_model_order_and_json) {
    const auto text = run_cli({"layers", "--model", model, "--eligible"});
    BOOST_TEST(text.status == 0);
    BOOST_TEST(contains(text.out, "model.layers.0.self_attn.k_proj  Linear  yes"), text.out);
    BOOST_TEST(!contains(text.out, "LlamaRMSNorm"));
    BOOST_TEST(contains(text.out, "29 layers shown; 29 of 61 can be KV-cache quantized"), text.out);
    const auto json = run_cli({"layers", "--model", model, "--json"});
    BOOST_TEST(json.status == 0);
    const auto arr = boost::json::parse(json.out).as_array();
    BOOST_TEST(arr.size() == 61u);
    BOOST_TEST(arr[0].at("name").as_string() == "model");  // implicit container first
    BOOST_TEST(arr[0].at("eligible").as_bool() == false);
    BOOST_TEST(arr[2].at("name").as_string() == "model.layers");
}

BOOST_AUTO_TEST_CASE(check_and_explain_write_nothing) {
    temp_dir dir;
    spit(dir / "quant.cfg", slurp(cfg));
    const auto before = dir.entries();
    const auto check = run_cli({"check", "--model", model, "--cfg", (dir / "quant.cfg").string()});
    BOOST_TEST(check.status == 0, check.err);
    BOOST_TEST(check.out == "ok: 8 layers (hfmg 7, ifmr 1), batch_num 4, activation_offset true\n");
    const auto bad = run_cli({"check", "--model", model, "--layer", "nope", "--layer", "lm_head", "--layer", "lm_head"});
    BOOST_TEST(bad.status == 1);
    BOOST_TEST(contains(bad.err, "[unknown_layer]"));
    BOOST_TEST(contains(bad.err, "[duplicate_layer]"));
    const auto explain = run_cli({"explain", "--model", model, "--cfg", (dir / "quant.cfg").string()});
    BOOST_TEST(explain.status == 0, explain.err);
    BOOST_TEST(contains(explain.out, "batch_num = 4 (config file at " + (dir / "quant.cfg").string() + ":2)"), explain.out);
    BOOST_TEST(contains(explain.out, "model.layers.0.self_attn.v_proj  ifmr (override:20)  max_percentile=0.999999 (default)"),
               explain.out);
    BOOST_TEST(contains(explain.out, "search_step=0.005 (override:23)"), explain.out);
    BOOST_TEST(contains(explain.out, "model.layers.1.self_attn.k_proj  hfmg (common:12)    num_of_bins=4096 (common:12)"), explain.out);
    const auto ej = run_cli({"explain", "--model", model, "--cfg", (dir / "quant.cfg").string(), "--json"});
    BOOST_TEST(ej.status == 0);
    const auto doc = boost::json::parse(ej.out).as_object();
    BOOST_TEST(doc.at("batch_num").at("value").as_int64() == 4);
    const auto& v = doc.at("layers").as_array()[1].as_object();
    BOOST_TEST(v.at("name").as_string() == "model.layers.0.self_attn.v_proj");
    BOOST_TEST(v.at("algorithm").at("source").at("origin").as_string() == "override");
    BOOST_TEST(v.at("algorithm").at("source").at("line").as_int64() == 20);
    BOOST_TEST(dir.entries() == before, boost::test_tools::per_element());
    // The quant_layers argument as a source.
    const auto arg = run_cli({"explain", "--model", model, "--layer", "lm_head"});
    BOOST_TEST(contains(arg.out, "lm_head  ifmr (default)"), arg.out);
    BOOST_TEST(contains(arg.out, "search_step=0.01 (default)"), arg.out);
}

BOOST_AUTO_TEST_CASE(strict_mode_and_warnings_on_stderr) {
    temp_dir dir;
    spit(dir / "w.cfg", "batch_num: 1\nbatch_num: 2\nkv_cache_quant_config { quant_layers: 'lm_head' }\n");
    const auto lax = run_cli({"generate", "--model", model, "--cfg", (dir / "w.cfg").string(), "-o", (dir / "a.json").string()});
    BOOST_TEST(lax.status == 0);
    BOOST_TEST(contains(lax.err, (dir / "w.cfg").string() + ":2:12: warning: batch_num is given more than once"), lax.err);
    const auto strict =
        run_cli({"generate", "--model", model, "--cfg", (dir / "w.cfg").string(), "-o", (dir / "b.json").string(), "--strict"});
    BOOST_TEST(strict.status == 1);
    BOOST_TEST(contains(strict.err, ":2:12: error: batch_num is given more than once"), strict.err);
    BOOST_TEST(!fs::exists(dir / "b.json"));
}

BOOST_AUTO_TEST_CASE(colour_only_on_a_terminal_without_no_color) {
    // The suite sets NO_COLOR for every test: each run here says what it wants of it.
    const std::vector<std::string> args{"check", "--model", model, "--layer", "nope"};
    const auto piped = run_cli(args, {"-NO_COLOR"});
    BOOST_TEST(piped.status == 1);
    BOOST_TEST(contains(piped.err, "error: "), piped.err);
    BOOST_TEST(piped.err.find('\033') == std::string::npos);
    const auto tty = run_cli(args, {"-NO_COLOR"}, {.on_terminal = true});
    BOOST_TEST(tty.status == 1);
    BOOST_TEST(contains(tty.out, "\033[1;31merror: \033[0m"), tty.out);
    const auto no_color = run_cli(args, {"NO_COLOR=1"}, {.on_terminal = true});
    BOOST_TEST(no_color.status == 1);
    BOOST_TEST(contains(no_color.out, "error: "), no_color.out);
    BOOST_TEST(no_color.out.find('\033') == std::string::npos);
    const auto empty = run_cli(args, {"NO_COLOR="}, {.on_terminal = true});  // an empty NO_COLOR does not count
    BOOST_TEST(contains(empty.out, "\033[1;31merror: "), empty.out);
}

BOOST_AUTO_TEST_CASE(selectors_through_the_cli) {
    temp_dir dir;
    const auto r = run_cli({"generate", "--model", model, "--layer", "auto:kv", "-o", (dir / "c.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.out, "8 layers"), r.out);
    const auto e = run_cli({"explain", "--model", model, "--layer", "glob:model.layers.3.self_attn.[kv]_proj"});
    BOOST_TEST(contains(e.out, "model.layers.3.self_attn.v_proj <- glob:model.layers.3.self_attn.[kv]_proj"), e.out);
    const auto none = run_cli({"check", "--model", model, "--layer", "glob:model.*.k_proj"});
    BOOST_TEST(none.status == 1);
    BOOST_TEST(contains(none.err, "selector \"glob:model.*.k_proj\" matches no KV-quantizable layer"), none.err);
}

BOOST_AUTO_TEST_CASE(calibrate_progress_bar_on_a_terminal_and_quiet) {
    temp_dir dir;
    write_example_activations(dir, false);
    // Not a terminal: no bar, only the summary line (issue 15; it was silent before).
    const auto piped = run_cli(calibrate_args(dir, "r1.txt"));
    BOOST_TEST(piped.status == 0, piped.err);
    BOOST_TEST(piped.out.rfind("wrote " + (dir / "r1.txt").string() + ": 8 layers (hfmg 7, ifmr 1), 2048 values read in ", 0) == 0u,
               piped.out);
    BOOST_TEST(piped.err.empty());
    // On a terminal: the bar, redrawn in place, ending at 8/8 layers.
    const auto tty = run_cli(calibrate_args(dir, "r2.txt"), {}, {.on_terminal = true});
    BOOST_TEST(tty.status == 0, tty.out);
    BOOST_TEST(contains(tty.out, "\rcalibrate [..............................] 0/8 layers"), tty.out);
    BOOST_TEST(contains(tty.out, "\rcalibrate [##############################] 8/8 layers"), tty.out);
    BOOST_TEST(contains(tty.out, "M values/s"), tty.out);
    // --quiet on a terminal: nothing.
    const auto quiet = run_cli(
        [&] {
            auto a = calibrate_args(dir, "r3.txt");
            a.push_back("--quiet");
            return a;
        }(),
        {}, {.on_terminal = true});
    BOOST_TEST(quiet.status == 0, quiet.out);
    BOOST_TEST(quiet.out.empty(), quiet.out);
    BOOST_TEST(slurp(dir / "r1.txt") == slurp(dir / "r2.txt"));
    BOOST_TEST(slurp(dir / "r1.txt") == slurp(dir / "r3.txt"));
}

BOOST_AUTO_TEST_CASE(calibrate_jobs_give_the_same_record_in_the_config_order) {
    temp_dir dir;
    write_example_activations(dir, true);
    const auto one = run_cli([&] {
        auto a = calibrate_args(dir, "r1.txt");
        a.insert(a.end(), {"--jobs", "1"});
        return a;
    }());
    BOOST_REQUIRE_EQUAL(one.status, 0);
    const std::string want = slurp(dir / "r1.txt");
    // The records in the config's order, whatever order the threads finish in.
    std::vector<std::string> keys;
    for (std::size_t at = want.find("key: \""); at != std::string::npos; at = want.find("key: \"", at + 1)) {
        keys.push_back(want.substr(at + 6, want.find('"', at + 6) - at - 6));
    }
    const auto doc = boost::json::parse(slurp(dir / "config.json")).as_object();
    std::vector<std::string> config_order;
    for (const auto& kv : doc) {
        if (kv.value().is_object()) config_order.emplace_back(kv.key());
    }
    BOOST_TEST((keys == config_order));
    for (const char* jobs : {"2", "3", "8", "64"}) {
        for (int round = 0; round < 3; ++round) {
            const auto r = run_cli([&] {
                auto a = calibrate_args(dir, "rn.txt");
                a.insert(a.end(), {"-j", jobs});
                return a;
            }());
            BOOST_TEST(r.status == 0, r.err);
            BOOST_TEST(slurp(dir / "rn.txt") == want, "--jobs " << jobs);
        }
    }
    // Without --jobs (the number of cores): the same.
    const auto dflt = run_cli(calibrate_args(dir, "rd.txt"));
    BOOST_TEST(dflt.status == 0, dflt.err);
    BOOST_TEST(slurp(dir / "rd.txt") == want);
    for (const char* bad : {"0", "x", "-1", "2000", ""}) {
        const auto r = run_cli([&] {
            auto a = calibrate_args(dir, "bad.txt");
            a.insert(a.end(), {"--jobs", bad});
            return a;
        }());
        BOOST_TEST(r.status != 0, bad);
        BOOST_TEST(contains(r.err, "--jobs"), r.err);
        BOOST_TEST(!fs::exists(dir / "bad.txt"));
    }
}

BOOST_AUTO_TEST_CASE(calibrate_jobs_report_the_earliest_layers_error) {
    // Non-finite values in two layers (found only while calibrating): every --jobs reports the
    // earlier layer in the config's order, as one thread does, and writes nothing.
    temp_dir dir;
    write_example_activations(dir, false);
    const auto doc = boost::json::parse(slurp(dir / "config.json")).as_object();
    std::vector<std::string> names;
    for (const auto& kv : doc) {
        if (kv.value().is_object()) names.emplace_back(kv.key());
    }
    BOOST_REQUIRE_EQUAL(names.size(), 8u);
    std::vector<float> v(64, 0.5f);
    v[10] = std::numeric_limits<float>::quiet_NaN();
    spit(dir.path() / "act" / names[2] / "1.npy", npy_bytes("<f4", {16, 4}, f32_bytes(v)));
    spit(dir.path() / "act" / names[6] / "0.npy", npy_bytes("<f4", {16, 4}, f32_bytes(v)));
    for (const char* jobs : {"1", "2", "8"}) {
        const auto r = run_cli([&] {
            auto a = calibrate_args(dir, "r.txt");
            a.insert(a.end(), {"--jobs", jobs});
            return a;
        }());
        BOOST_TEST(r.status == 1, jobs);
        BOOST_TEST(contains(r.err, "layer \"" + names[2] + "\""), r.err);
        BOOST_TEST(!contains(r.err, "layer \"" + names[6] + "\""), r.err);
        BOOST_TEST(contains(r.err, (dir.path() / "act" / names[2] / "1.npy").string()), r.err);
        BOOST_TEST(!fs::exists(dir / "r.txt"));
    }
}

BOOST_AUTO_TEST_CASE(calibrate_reads_float16_npy_files) {
    temp_dir f32, f16;
    write_example_activations(f32, false);
    write_example_activations(f16, true);
    const auto a = run_cli(calibrate_args(f32, "record.txt"));
    const auto b = run_cli(calibrate_args(f16, "record.txt"));
    BOOST_TEST(a.status == 0, a.err);
    BOOST_TEST(b.status == 0, b.err);
    // The same values as float16 and float32: the same record, byte for byte.
    BOOST_TEST(slurp(f16 / "record.txt") == slurp(f32 / "record.txt"));
    BOOST_TEST(count_of(slurp(f16 / "record.txt"), "record {") == 8u);
}

BOOST_AUTO_TEST_CASE(calibrate_with_a_batch_missing_writes_nothing) {
    temp_dir dir;
    write_example_activations(dir, false);
    const fs::path missing = dir.path() / "act" / "model.layers.3.self_attn.v_proj" / "3.npy";
    fs::remove(missing);
    spit(dir / "record.txt", "old");
    const auto r = run_cli(calibrate_args(dir, "record.txt"));
    BOOST_TEST(r.status == 1);
    BOOST_TEST(contains(r.err, missing.string()), r.err);
    BOOST_TEST(cli_error_categories(r.err).contains("io_error"), r.err);
    BOOST_TEST(slurp(dir / "record.txt") == "old");
}

BOOST_AUTO_TEST_CASE(check_strict_makes_warnings_errors) {
    temp_dir dir;
    spit(dir / "w.cfg", "batch_num: 1\nbatch_num: 2\nkv_cache_quant_config { quant_layers: 'lm_head' }\n");
    const auto lax = run_cli({"check", "--model", model, "--cfg", (dir / "w.cfg").string()});
    BOOST_TEST(lax.status == 0, lax.err);
    BOOST_TEST(contains(lax.err, ":2:12: warning: batch_num is given more than once"), lax.err);
    BOOST_TEST(contains(lax.out, "ok: 1 layer (ifmr 1), batch_num 2"), lax.out);
    const auto strict = run_cli({"check", "--model", model, "--cfg", (dir / "w.cfg").string(), "--strict"});
    BOOST_TEST(strict.status == 1);
    BOOST_TEST(contains(strict.err, ":2:12: error: batch_num is given more than once"), strict.err);
    BOOST_TEST(cli_error_categories(strict.err) == std::set<std::string>{"parse_error"}, strict.err);
    BOOST_TEST(strict.out.empty(), strict.out);
}

BOOST_AUTO_TEST_CASE(quant_cfg_as_json_through_the_cli) {
    temp_dir dir;
    spit(dir / "quant.json",
         "{\"batch_num\": 2, \"kv_cache_quant_config\": {\"quant_layers\": [\"model.layers.0.self_attn.k_proj\"],"
         " \"calibration_config\": {\"hfmg_quantize\": {\"num_of_bins\": 2048}}}}");
    const auto ok = run_cli({"generate", "--model", model, "--cfg", (dir / "quant.json").string(), "-o", (dir / "c.json").string()});
    BOOST_TEST(ok.status == 0, ok.err);
    const auto doc = boost::json::parse(slurp(dir / "c.json")).as_object();
    BOOST_TEST(doc.at("batch_num").as_int64() == 2);
    BOOST_TEST(doc.at("model.layers.0.self_attn.k_proj").at("kv_data_quant_config").at("num_of_bins").as_int64() == 2048);
    spit(dir / "bad.json", "{\"kv_cache_quant_config\": {\"quant_layers\": [\"model.layers.0.self_attn.k_proj\", 7]}}");
    const auto bad = run_cli({"generate", "--model", model, "--cfg", (dir / "bad.json").string(), "-o", (dir / "d.json").string()});
    BOOST_TEST(bad.status == 1);
    BOOST_TEST(contains(bad.err, "$.kv_cache_quant_config.quant_layers[1]: quant_layers expects a string"), bad.err);
    BOOST_TEST(cli_error_categories(bad.err).contains("parse_error"), bad.err);
    BOOST_TEST(!fs::exists(dir / "d.json"));
}

BOOST_AUTO_TEST_CASE(quant_cfg_default_limits) {
    temp_dir dir;
    // 100 errors are reported, then one line saying there are more.
    std::string many;
    for (int i = 0; i < 150; ++i) many += "bogus: 1\n";
    spit(dir / "many.cfg", many);
    const auto r = run_cli({"check", "--model", model, "--cfg", (dir / "many.cfg").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(count_of(r.err, ": error: ") == 101u, r.err.substr(0, 400));
    BOOST_TEST(contains(r.err, "too many errors"), r.err.substr(r.err.size() > 400 ? r.err.size() - 400 : 0));
    // 4M fields are the most a document may hold (the file stays under the 64 MiB limit). Not under
    // the sanitizers: the 52 MB file takes 90 s there at -O0 and runs no code the 150 fields above
    // do not (the limit's own code is the cfg tests', with small limits); the other stages run it.
    if constexpr (kvcali_test::sanitized) return;
    std::string fields;
    fields.reserve(4'000'001u * 13u);
    for (std::size_t i = 0; i < 4'000'001u; ++i) fields += "batch_num: 1 ";
    spit(dir / "fields.cfg", fields);
    const auto f = run_cli({"check", "--model", model, "--cfg", (dir / "fields.cfg").string()});
    BOOST_TEST(f.status == 1);
    BOOST_TEST(contains(f.err, "more than 4000000 fields"), f.err.substr(0, 400));
}

namespace {

/// Runs the kvcali binary with its stdout a pipe (as in `kvcali generate -o /dev/stdout | jq`); returns
/// the exit status and what came through the pipe. stderr goes to /dev/null.
std::pair<int, std::string> run_cli_into_a_pipe(const std::vector<std::string>& args) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    std::vector<std::string> argv{kvcali_exe().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, raw[0], &actions, nullptr, raw.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error("cannot start " + argv[0]);
    }
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
        if (n > 0)
            out.append(buf, static_cast<std::size_t>(n));
        else if (errno != EINTR)
            break;
    }
    ::close(fds[0]);
    int wstatus = 0;
    while (::waitpid(pid, &wstatus, 0) < 0) {
    }
    return {WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus), out};
}

}  // namespace

BOOST_AUTO_TEST_CASE(generate_to_stdout_and_through_a_symlink) {
    temp_dir dir;
    BOOST_REQUIRE(run_cli({"generate", "--model", model, "--cfg", cfg, "-o", (dir / "config.json").string(), "--quiet"}).status == 0);
    const std::string config = slurp(dir / "config.json");
    // stdout, when it is a file: exactly the config's bytes, no summary line. /proc/self/fd/1 first:
    // a writer that replaced the path it was given fails there, before /dev/stdout is tried.
    for (const std::string out : {"-", "/proc/self/fd/1", "/dev/stdout"}) {
        BOOST_TEST_CONTEXT("-o " << out) {
            const auto r = run_cli({"generate", "--model", model, "--cfg", cfg, "-o", out});
            BOOST_REQUIRE_EQUAL(r.status, 0);
            BOOST_TEST(r.out == config);
            BOOST_TEST(r.err.empty(), r.err);
        }
    }
    BOOST_TEST(fs::is_symlink("/dev/stdout"));
    // stdout, when it is a pipe.
    for (const std::string out : {"-", "/dev/stdout"}) {
        BOOST_TEST_CONTEXT("-o " << out << " | ...") {
            const auto [status, bytes] = run_cli_into_a_pipe({"generate", "--model", model, "--cfg", cfg, "-o", out});
            BOOST_TEST(status == 0);
            BOOST_TEST(bytes == config);
        }
    }
    // A symlink to a file: the file gets the config, the link stays a link, the summary names the link.
    spit(dir / "real.json", "old");
    fs::create_symlink("real.json", dir / "link.json");
    const auto r = run_cli({"generate", "--model", model, "--cfg", cfg, "-o", (dir / "link.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.out == "wrote " + (dir / "link.json").string() + ": 8 layers (hfmg 7, ifmr 1), batch_num 4, activation_offset true\n");
    BOOST_TEST(fs::is_symlink(dir / "link.json"));
    BOOST_TEST(fs::read_symlink(dir / "link.json") == fs::path("real.json"));
    BOOST_TEST(slurp(dir / "real.json") == config);
    std::vector<std::string> names = dir.entries();
    std::sort(names.begin(), names.end());
    BOOST_TEST(names == (std::vector<std::string>{"config.json", "link.json", "real.json"}), boost::test_tools::per_element());
}

// ---------------------------------------------------------------------------------------------
// Issue 15: rough edges found by a new user.

BOOST_AUTO_TEST_CASE(calibrate_checks_every_file_first_and_reports_them_all) {
    temp_dir dir;
    write_example_activations(dir, false);
    // Two missing batches, one float64 file (numpy's default), one with a bad header; the record
    // file exists and must stay as it was.
    const fs::path act = dir.path() / "act";
    const fs::path missing1 = act / "model.layers.0.self_attn.k_proj" / "0.npy",
                   missing2 = act / "model.layers.3.self_attn.v_proj" / "3.npy";
    fs::remove(missing1);
    fs::remove(missing2);
    const fs::path float64 = act / "model.layers.1.self_attn.k_proj" / "2.npy", bad = act / "model.layers.2.self_attn.k_proj" / "1.npy";
    spit(float64, npy_bytes("<f8", {16, 4}, std::string(16 * 4 * 8, '\0')));
    spit(bad, "not an npy file at all");
    spit(dir / "record.txt", "old");
    const auto r = run_cli(calibrate_args(dir, "record.txt"));
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.out.empty(), r.out);
    BOOST_TEST(count_of(r.err, ": error: ") == 4u, r.err);
    BOOST_TEST(contains(r.err, missing1.string() + ": error: cannot read " + missing1.string() + ": no such file [io_error]"), r.err);
    BOOST_TEST(contains(r.err, missing2.string() + ": error: cannot read " + missing2.string() + ": no such file [io_error]"), r.err);
    BOOST_TEST(
        contains(r.err, float64.string() + ":1:11: error: the array has dtype float64 ('<f8'); kvcali reads little-endian float32 ('<f4') "
                                           "or float16 ('<f2'): save it with .astype(np.float32) [invalid_data]"),
        r.err);
    BOOST_TEST(contains(r.err, bad.string() + ":1:1: error: not a .npy file"), r.err);
    BOOST_TEST((cli_error_categories(r.err) == std::set<std::string>{"io_error", "invalid_data"}), r.err);
    BOOST_TEST(slurp(dir / "record.txt") == "old");
    // The output's folder is checked with them: a missing folder is one more line.
    const auto nofolder = run_cli(calibrate_args(dir, "no/record.txt"));
    BOOST_TEST(nofolder.status == 1);
    BOOST_TEST(count_of(nofolder.err, ": error: ") == 5u, nofolder.err);
    BOOST_TEST(contains(nofolder.err, "cannot write " + (dir / "no/record.txt").string() + ": the folder " + (dir / "no").string() +
                                          " does not exist [io_error]"),
               nofolder.err);
    BOOST_TEST(!fs::exists(dir / "no"));
    spit(dir / "file", "x");
    const auto notfolder = run_cli(calibrate_args(dir, "file/record.txt"));
    BOOST_TEST(contains(notfolder.err, (dir / "file").string() + " is not a folder [io_error]"), notfolder.err);
}

BOOST_AUTO_TEST_CASE(calibrate_prints_one_summary_line) {
    temp_dir dir;
    write_example_activations(dir, true);
    const auto r = run_cli(calibrate_args(dir, "record.txt"));
    BOOST_TEST(r.status == 0, r.err);
    const std::string head = "wrote " + (dir / "record.txt").string() + ": 8 layers (hfmg 7, ifmr 1), 2048 values read in ";
    BOOST_TEST_REQUIRE(r.out.rfind(head, 0) == 0u, r.out);
    // "<seconds, two decimals> s\n"
    const std::string tail = r.out.substr(head.size());
    BOOST_TEST(tail.size() >= 7u, tail);
    BOOST_TEST(tail.substr(tail.size() - 3) == " s\n", tail);
    BOOST_TEST(tail[tail.size() - 6] == '.', tail);
    BOOST_TEST(r.err.empty(), r.err);
    // --quiet: nothing; -o -: the record alone.
    const auto quiet = run_cli([&] {
        auto a = calibrate_args(dir, "r2.txt");
        a.push_back("--quiet");
        return a;
    }());
    BOOST_TEST(quiet.status == 0);
    BOOST_TEST(quiet.out.empty(), quiet.out);
    const auto out = run_cli({"calibrate", "--config", (dir / "config.json").string(), "--activations", (dir / "act").string(), "-o", "-"});
    BOOST_TEST(out.status == 0);
    BOOST_TEST(out.out == slurp(dir / "record.txt"));
}

BOOST_AUTO_TEST_CASE(an_output_naming_an_input_is_refused) {
    temp_dir dir;
    spit(dir / "model.json", slurp(model));
    spit(dir / "quant.cfg", slurp(cfg));
    spit(dir / "layers.json", "[\"lm_head\"]");
    fs::create_symlink("quant.cfg", dir / "link.cfg");
    const std::string m = (dir / "model.json").string(), c = (dir / "quant.cfg").string();
    const std::vector<std::pair<std::vector<std::string>, std::string>> runs = {
        {{"generate", "--model", m, "--cfg", c, "-o", m}, "--model"},
        {{"generate", "--model", m, "--cfg", c, "-o", c}, "--cfg"},
        {{"generate", "--model", m, "--cfg", c, "-o", (dir / "link.cfg").string()}, "--cfg"},  // the same file through a link
        {{"generate", "--model", m, "--cfg", c, "-o", (dir.path() / "." / "quant.cfg").string()}, "--cfg"},
        {{"generate", "--model", m, "--quant-layers", (dir / "layers.json").string(), "-o", (dir / "layers.json").string()},
         "--quant-layers"},
    };
    for (const auto& [args, option] : runs) {
        BOOST_TEST_CONTEXT(args.back()) {
            const auto r = run_cli(args);
            BOOST_TEST(r.status == 1);
            BOOST_TEST(contains(r.err, "is the input given with " + option + " "), r.err);
            BOOST_TEST(contains(r.err, "choose another output path [invalid_argument]"), r.err);
        }
    }
    BOOST_TEST(slurp(dir / "model.json") == slurp(model));
    BOOST_TEST(slurp(dir / "quant.cfg") == slurp(cfg));
    BOOST_TEST(slurp(dir / "layers.json") == "[\"lm_head\"]");
    // An input that does not exist yet is compared by its path.
    const auto absent = run_cli({"generate", "--model", m, "--cfg", (dir / "new.cfg").string(), "-o", (dir / "new.cfg").string()});
    BOOST_TEST(absent.status == 1);
    BOOST_TEST(contains(absent.err, "[invalid_argument]"), absent.err);
    BOOST_TEST(!fs::exists(dir / "new.cfg"));
    // calibrate: the config.json.
    BOOST_REQUIRE(run_cli({"generate", "--model", m, "--cfg", c, "-o", (dir / "config.json").string(), "--quiet"}).status == 0);
    const std::string config = slurp(dir / "config.json");
    fs::create_directories(dir / "act");
    const auto cal = run_cli({"calibrate", "--config", (dir / "config.json").string(), "--activations", (dir / "act").string(), "-o",
                              (dir / "config.json").string()});
    BOOST_TEST(cal.status == 1);
    BOOST_TEST(contains(cal.err, "is the input given with --config"), cal.err);
    BOOST_TEST(cli_error_categories(cal.err) == std::set<std::string>{"invalid_argument"}, cal.err);
    BOOST_TEST(slurp(dir / "config.json") == config);
}

BOOST_AUTO_TEST_CASE(quant_layers_as_a_json_array) {
    temp_dir dir;
    const std::string k = "model.layers.0.self_attn.k_proj", v = "model.layers.0.self_attn.v_proj";
    const std::string array = "[\"" + k + "\", \"" + v + "\"]";
    spit(dir / "array.json", "\n  " + array + "\n");
    spit(dir / "object.json", "{\"kv_cache_quant_layers\": " + array + "}");
    std::string want;
    for (const std::string& value :
         {array, "{\"kv_cache_quant_layers\": " + array + "}", (dir / "array.json").string(), (dir / "object.json").string()}) {
        BOOST_TEST_CONTEXT(value) {
            const auto r = run_cli({"generate", "--model", model, "--quant-layers", value, "-o", "-"});
            BOOST_TEST(r.status == 0, r.err);
            BOOST_TEST(contains(r.out, "\"" + k + "\":{"), r.out);
            BOOST_TEST(contains(r.out, "\"" + v + "\":{"), r.out);
            if (want.empty()) want = r.out;
            BOOST_TEST(r.out == want);
        }
    }
    // Not an array of strings: invalid_argument naming the element.
    const auto bad = run_cli({"check", "--model", model, "--quant-layers", "[\"" + k + "\", 3]"});
    BOOST_TEST(bad.status == 1);
    BOOST_TEST(contains(bad.err, "--quant-layers: error: [1] must be a string (a layer name) [invalid_argument]"), bad.err);
    // An empty array: nothing to quantize, as the empty object list.
    const auto empty = run_cli({"check", "--model", model, "--quant-layers", "[]"});
    BOOST_TEST(empty.status == 1);
    BOOST_TEST(cli_error_categories(empty.err) == std::set<std::string>{"no_quant_layers"}, empty.err);
}

BOOST_AUTO_TEST_CASE(option_errors_suggest_and_short_forms_mean_one_thing) {
    const auto config = run_cli({"generate", "--config", "x"});
    BOOST_TEST(config.status == 2);
    BOOST_TEST(contains(config.err, "kvcali: unknown option '--config' for 'kvcali generate'; did you mean '--cfg'?\n"), config.err);
    const auto typo = run_cli({"check", "--modle", model});
    BOOST_TEST(typo.status == 2);
    BOOST_TEST(contains(typo.err, "unknown option '--modle' for 'kvcali check'; did you mean '--model'?"), typo.err);
    const auto out = run_cli({"generate", "--out=x"});
    BOOST_TEST(contains(out.err, "did you mean '--output'?"), out.err);
    const auto nothing_near = run_cli({"layers", "--frobnicate"});
    BOOST_TEST(nothing_near.status == 2);
    BOOST_TEST(contains(nothing_near.err, "unknown option '--frobnicate' for 'kvcali layers'\n"), nothing_near.err);
    // An empty value is a command-line error, inline or not.
    for (const std::vector<std::string>& args : {std::vector<std::string>{"generate", "--model=", "--layer", "lm_head", "-o", "-"},
                                                 std::vector<std::string>{"generate", "--model", model, "--layer", "", "-o", "-"},
                                                 std::vector<std::string>{"layers", "--model="}}) {
        const auto r = run_cli(args);
        BOOST_TEST(r.status == 2, r.err);
        BOOST_TEST(contains(r.err, "), not an empty one"), r.err);
    }
    // -c is --cfg where there is one; calibrate and validate spell --config out.
    temp_dir dir;
    BOOST_TEST(run_cli({"check", "-m", model, "-c", cfg, "--quiet"}).status == 0);
    const auto cal = run_cli({"calibrate", "-c", "config.json", "--activations", dir.path().string(), "-o", "-"});
    BOOST_TEST(cal.status == 2);
    BOOST_TEST(contains(cal.err, "unknown option '-c' for 'kvcali calibrate'; did you mean '--config'?"), cal.err);
    const auto val = run_cli({"validate", "-c", "config.json"});
    BOOST_TEST(val.status == 2);
    BOOST_TEST(contains(val.err, "unknown option '-c' for 'kvcali validate'; did you mean '--config'?"), val.err);
    for (const char* cmd : {"calibrate", "validate"}) {
        const auto help = run_cli({cmd, "--help"});
        BOOST_TEST(contains(help.out, "      --config PATH"), help.out);
        BOOST_TEST(!contains(help.out, "-c, "), help.out);
    }
}

BOOST_AUTO_TEST_CASE(an_empty_model_is_one_error) {
    temp_dir dir;
    spit(dir / "model.json", "[]");
    const std::string m = (dir / "model.json").string();
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"check", "--model", m, "--layer", "a", "--layer", "b"},
          std::vector<std::string>{"generate", "--model", m, "--cfg", cfg, "-o", (dir / "c.json").string()},
          std::vector<std::string>{"explain", "--model", m, "--layer", "auto:kv"}}) {
        const auto r = run_cli(args);
        BOOST_TEST(r.status == 1);
        BOOST_TEST(r.err == m + ": error: the model has no layers [invalid_model]\n", r.err);
    }
    BOOST_TEST(!fs::exists(dir / "c.json"));
    // Listing it is fine: nothing to list.
    const auto layers = run_cli({"layers", "--model", m});
    BOOST_TEST(layers.status == 0);
    BOOST_TEST(contains(layers.out, "0 layers shown; 0 of 0"), layers.out);
}

BOOST_AUTO_TEST_CASE(layer_list_errors_have_line_column_and_suggestions) {
    temp_dir dir;
    spit(dir / "model.json",
         "[\n  {\"name\": \"a\", \"typ\": \"Linear\"},\n  {\"name\": \"b\", \"type\": \"Linear\", \"in\": -1, \"out\": 8}\n]\n");
    const std::string m = (dir / "model.json").string();
    const auto r = run_cli({"layers", "--model", m});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(contains(r.err, m + ":2:17: error: [0]: unknown key \"typ\"; did you mean \"type\"? [invalid_model]"), r.err);
    BOOST_TEST(contains(r.err, m + ":3:41: error: [1].in of layer \"b\" must be a non-negative integer, not -1 [invalid_model]"), r.err);
}

BOOST_AUTO_TEST_CASE(a_quant_cfg_given_as_config_json_points_to_check) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"validate", cfg}, std::vector<std::string>{"validate", "--config", cfg},
          std::vector<std::string>{"calibrate", "--config", cfg, "--activations", ".", "-o", "-"}}) {
        const auto r = run_cli(args);
        BOOST_TEST(r.status == 1);
        BOOST_TEST(r.err == cfg +
                                ": error: this looks like a quant.cfg (the simple config file, protobuf text format), not a config.json: "
                                "check it with `kvcali check --model MODEL --cfg " +
                                cfg +
                                "`, and write the config.json from it with "
                                "`kvcali generate` [parse_error]\n",
                   r.err);
    }
    // A config.json that is merely broken keeps its own message.
    temp_dir dir;
    spit(dir / "config.json", "{\"batch_num\": }");
    const auto broken = run_cli({"validate", (dir / "config.json").string()});
    BOOST_TEST(broken.status == 1);
    BOOST_TEST(!contains(broken.err, "quant.cfg"), broken.err);
}

BOOST_AUTO_TEST_CASE(no_layers_given_names_the_cli_options) {
    for (const char* cmd : {"generate", "check", "explain"}) {
        std::vector<std::string> args{cmd, "--model", model};
        if (std::string(cmd) == "generate") args.insert(args.end(), {"-o", "-"});
        const auto r = run_cli(args);
        BOOST_TEST(r.status == 1);
        BOOST_TEST(r.err ==
                       "error: no layer to quantize: give a quant.cfg with --cfg PATH, or the layers with --layer NAME (repeatable) "
                       "or --quant-layers JSON|PATH [no_quant_layers]\n",
                   r.err);
        BOOST_TEST(r.out.empty());
    }
}

BOOST_AUTO_TEST_CASE(explain_legend_explains_unset_and_policy_default) {
    const auto text = run_cli({"explain", "--model", model, "--cfg", cfg});
    BOOST_TEST(text.status == 0, text.err);
    BOOST_TEST(contains(text.out, "asymmetric=unset (activation_offset)"), text.out);
    BOOST_TEST(contains(text.out,
                        "\nunset (activation_offset) = set nowhere, so not written to config.json: calibration then takes the value "
                        "of activation_offset"),
               text.out);
    BOOST_TEST(contains(text.out, "default = the algorithm policy's default (origin \"policy default\" in --json)"), text.out);
    const auto help = run_cli({"explain", "--help"});
    BOOST_TEST(contains(help.out, "origin \"policy default\" is the algorithm policy's default"), help.out);
    BOOST_TEST(contains(help.out, "`unset (activation_offset)`"), help.out);
}

BOOST_AUTO_TEST_CASE(readme_synopsis_matches_every_help) {
    // The synopsis: the first code block of README.md's "## The command-line tool".
    const std::string readme = slurp(source_root() / "README.md");
    const std::size_t section = readme.find("## The command-line tool\n");
    BOOST_TEST_REQUIRE(section != std::string::npos);
    const std::size_t open = readme.find("```\n", section), close = readme.find("```\n", open + 4);
    BOOST_TEST_REQUIRE((open != std::string::npos && close != std::string::npos));
    auto squeeze = [](const std::string& line) {
        std::string out;
        for (const char c : line) {
            if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
            out += c;
        }
        while (!out.empty() && out.back() == ' ') out.pop_back();
        return out;
    };
    std::map<std::string, std::string> synopsis;  // command -> its line, spaces squeezed
    {
        std::istringstream block(readme.substr(open + 4, close - open - 4));
        for (std::string line; std::getline(block, line);) {
            line = squeeze(line);
            if (line.rfind("kvcali ", 0) != 0) continue;
            synopsis[line.substr(7, line.find(' ', 7) - 7)] = line + " ";
        }
    }
    // Every command of `kvcali --help`.
    const auto program = run_cli({"--help"});
    std::istringstream listing(program.out.substr(program.out.find("Commands:\n") + 10));
    std::size_t commands = 0;
    for (std::string line; std::getline(listing, line) && line.rfind("  ", 0) == 0;) {
        const std::string cmd = line.substr(2, line.find(' ', 2) - 2);
        ++commands;
        BOOST_TEST_CONTEXT("kvcali " << cmd) {
            BOOST_TEST_REQUIRE(synopsis.contains(cmd));
            const std::string& syn = synopsis[cmd];
            const auto help = run_cli({cmd, "--help"});
            BOOST_TEST_REQUIRE(help.status == 0);
            const std::string usage = help.out.substr(7, help.out.find('\n') - 7);  // after "Usage: "
            BOOST_TEST(squeeze(usage) + " " == syn);
            // Every option the help lists appears in the synopsis, by its long or its short form.
            std::istringstream options(help.out.substr(help.out.find("\nOptions:\n") + 10));
            std::size_t listed = 0;
            for (std::string o; std::getline(options, o);) {
                const std::size_t dashes = o.find("--");
                if (dashes == std::string::npos) continue;
                const std::string long_name = o.substr(dashes, o.find(' ', dashes) - dashes);
                if (long_name == "--help") continue;
                ++listed;
                const std::string short_name = o.size() > 4 && o[2] == '-' && o[3] != '-' ? o.substr(2, 2) : "";
                const bool shown = contains(syn, " " + long_name + " ") || contains(syn, "[" + long_name + "]") ||
                                   contains(syn, "[" + long_name + " ") || (!short_name.empty() && contains(syn, " " + short_name + " "));
                BOOST_TEST(shown, long_name << " is not in README.md's line: " << syn);
            }
            BOOST_TEST(listed > 0u);
        }
    }
    BOOST_TEST(commands == 8u);
    BOOST_TEST(synopsis.size() == commands);
}
