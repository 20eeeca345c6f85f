// The kvcali binary as a user runs it: outputs, exit statuses, stderr lines, and that nothing is
// written on error or by check/explain.
#define BOOST_TEST_MODULE cli
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

namespace {

fs::path example(const std::string& name) { return source_root() / "examples" / "llama" / name; }

const std::string model = example("model.json").string();
const std::string cfg = example("quant.cfg").string();

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

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
    spit(dir / "bad.cfg", "kv_cache_quant_config {\n  quant_layers: 'model.layers.0.self_attn.k_prj'\n  calibration_config { ifmr_quantize { search_stepp: 0.1 } }\n}\n");
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
    BOOST_TEST(contains(r2.err, (dir / "bad2.cfg").string() + ":2:17: error: layer \"model.layers.0.self_attn.k_prj\" does not exist in the model; did you mean \"model.layers.0.self_attn.k_proj\""), r2.err);
    BOOST_TEST(contains(r2.err, ":3:17: error: layer \"model.norm\" is of type LlamaRMSNorm, which does not support KV-cache quantization [unsupported_layer_type]"), r2.err);
    BOOST_TEST(!fs::exists(dir / "out.json"));
}

BOOST_AUTO_TEST_CASE(exit_statuses) {
    temp_dir dir;
    BOOST_TEST(run_cli({}).status == 2);
    BOOST_TEST(run_cli({"frobnicate"}).status == 2);
    BOOST_TEST(run_cli({"generate", "--model", model, "--bogus", "-o", "x"}).status == 2);
    BOOST_TEST(run_cli({"generate", "--model"}).status == 2);       // missing value
    BOOST_TEST(run_cli({"generate", "--model", model}).status == 2);  // missing -o
    BOOST_TEST(run_cli({"generate", "--model", (dir / "missing.json").string(), "--layer", "x", "-o", (dir / "o.json").string()}).status == 1);
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
    BOOST_TEST(contains(explain.out, "model.layers.0.self_attn.v_proj  ifmr (override:20)  max_percentile=0.999999 (default)"), explain.out);
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
    const auto strict = run_cli({"generate", "--model", model, "--cfg", (dir / "w.cfg").string(), "-o", (dir / "b.json").string(), "--strict"});
    BOOST_TEST(strict.status == 1);
    BOOST_TEST(contains(strict.err, ":2:12: error: batch_num is given more than once"), strict.err);
    BOOST_TEST(!fs::exists(dir / "b.json"));
}

BOOST_AUTO_TEST_CASE(no_colour_unless_a_terminal) {
    const auto r = run_cli({"check", "--model", model, "--layer", "nope"});
    BOOST_TEST(r.err.find('\033') == std::string::npos);
    const auto n = run_cli({"check", "--model", model, "--layer", "nope"}, {"NO_COLOR=1"});
    BOOST_TEST(n.err.find('\033') == std::string::npos);
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
