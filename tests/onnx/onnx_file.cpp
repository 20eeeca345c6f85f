// Reading .onnx files (kvcali/adapters/onnx_file.hpp) and `kvcali ... --model x.onnx`.
// The fixtures come from tests/onnx/make_fixtures.py.
#include <kvcali/adapters/onnx_file.hpp>

#define BOOST_TEST_MODULE onnx_file
#include <boost/test/unit_test.hpp>

#include <kvcali/generate.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "../support/conformance_support.hpp"

namespace kvo = kvcali::onnx;
namespace fs = std::filesystem;
using kvcali_test::run_cli;

namespace {

fs::path fixture(const std::string& name) { return kvcali_test::source_root() / "tests" / "onnx" / "fixtures" / name; }

std::vector<std::string> names_of(const kvo::graph& g) {
    std::vector<std::string> out;
    for (const auto& n : g.nodes) out.push_back(n.name);
    return out;
}

kvcali::error load_error(const fs::path& p) {
    try {
        kvo::load_onnx_layers(p);
    } catch (const kvcali::error& e) {
        return e;
    }
    BOOST_FAIL("expected kvcali::error for " + p.string());
    throw;  // unreachable
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

}  // namespace

BOOST_AUTO_TEST_CASE(nodes_in_graph_order_with_inputs_and_outputs) {
    const kvo::graph g = kvo::load_onnx_file(fixture("tiny.onnx"));
    BOOST_TEST(names_of(g) == (std::vector<std::string>{"matmul_a", "relu_b", "gemm_c", "add_y"}), boost::test_tools::per_element());
    BOOST_REQUIRE(g.nodes.size() == 4u);
    BOOST_TEST(g.nodes[0].op_type == "MatMul");
    BOOST_TEST(g.nodes[2].op_type == "Gemm");
    BOOST_TEST(g.nodes[2].inputs == (std::vector<std::string>{"b", "w1", "c1"}), boost::test_tools::per_element());
    BOOST_TEST(g.nodes[2].outputs == (std::vector<std::string>{"c"}), boost::test_tools::per_element());
    const kvcali::layer_table t = kvo::load_onnx_layers(fixture("tiny.onnx"));
    BOOST_TEST(t.size() == 4u);
    BOOST_TEST(t[0].eligible);
    BOOST_TEST(!t[1].eligible);
    BOOST_TEST(t[2].eligible);
    BOOST_TEST(!t[3].eligible);
}

BOOST_AUTO_TEST_CASE(unnamed_nodes_in_a_file) {
    const kvcali::layer_table t = kvo::load_onnx_layers(fixture("unnamed.onnx"));
    std::vector<std::string> names;
    for (const auto& l : t) names.push_back(l.name);
    BOOST_TEST(names == (std::vector<std::string>{"MatMul_0", "MatMul_3", "Gemm_2", "MatMul_3_1", "Relu_5", "Relu_5_2", "Relu_5_1"}),
               boost::test_tools::per_element());
    BOOST_TEST(t[3].eligible);
    BOOST_TEST(!t[1].eligible);  // the Relu named MatMul_3
}

BOOST_AUTO_TEST_CASE(module_paths_in_a_file) {
    const kvcali::layer_table t = kvo::load_onnx_layers(fixture("paths.onnx"));
    BOOST_TEST(t.find_alias("layers.0.attn.k_proj")->size() == 1u);
    BOOST_TEST(t.find_alias("layers.0.attn.v_proj")->size() == 1u);
    BOOST_TEST(t.find_alias("layers.0.mlp")->size() == 1u);
    BOOST_TEST(t.find_alias("layers.0.attn")->size() == 2u);
    BOOST_TEST(t.find_alias("top") == nullptr);  // "/top/Gemm_x" is not an export name
}

BOOST_AUTO_TEST_CASE(a_model_exported_by_torch) {
    const kvcali::layer_table t = kvo::load_onnx_layers(fixture("attention.onnx"));
    std::size_t eligible = 0;
    for (const auto& l : t) eligible += l.eligible ? 1 : 0;
    BOOST_TEST(eligible == 12u);  // 2 layers x (4 projections + 2 attention MatMuls)
    for (const char* layer : {"layers.0", "layers.1"}) {
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
            const std::string path = std::string(layer) + ".self_attn." + proj;
            const auto* targets = t.find_alias(path);
            BOOST_REQUIRE_MESSAGE(targets != nullptr, path);
            BOOST_TEST(targets->size() == 1u);
            BOOST_TEST(t[targets->front()].name == "/" + std::string(layer) + "/self_attn/" + proj + "/MatMul");
        }
    }
    const auto doc = kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"layers.1.self_attn.k_proj", "layers.1.self_attn.v_proj"});
    BOOST_TEST(doc.layers.at(0).name == "/layers.1/self_attn/k_proj/MatMul");
    BOOST_TEST(doc.layers.at(0).selector == "layers.1.self_attn.k_proj");
    try {
        kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"layers.0.self_attn"});
        BOOST_FAIL("expected an error");
    } catch (const kvcali::error& e) {
        BOOST_TEST(e.code() == kvcali::errc::unknown_layer);
        const std::string& m = e.diagnostics().at(0).message;
        BOOST_TEST(contains(m, "\"/layers.0/self_attn/MatMul\""), m);
        BOOST_TEST(contains(m, "\"/layers.0/self_attn/MatMul_1\""), m);
    }
}

BOOST_AUTO_TEST_CASE(eligible_nodes_in_subgraphs_are_warned_about) {
    std::vector<kvcali::diagnostic> warnings;
    const kvcali::layer_table t =
        kvo::load_onnx_layers(fixture("subgraph.onnx"), [&](const kvcali::diagnostic& d) { warnings.push_back(d); });
    BOOST_TEST(t.size() == 3u);  // main_matmul, branch, loop: subgraph nodes are not layers
    BOOST_TEST(t.get("then_matmul") == nullptr);
    BOOST_REQUIRE(warnings.size() == 1u);  // the If; the Loop body holds no eligible node
    const auto& w = warnings[0];
    BOOST_TEST(!w.is_error());
    BOOST_TEST(w.layer == "branch");
    BOOST_TEST(contains(w.where.file, "subgraph.onnx"));
    BOOST_TEST(contains(w.message, "then_branch: \"then_matmul\""), w.message);
    BOOST_TEST(contains(w.message, "else_branch: Gemm #0"), w.message);
    BOOST_TEST(contains(w.message, "2 eligible nodes"), w.message);
    // Strict mode makes it an error.
    try {
        kvo::load_onnx_layers(fixture("subgraph.onnx"), {}, true);
        BOOST_FAIL("expected an error in strict mode");
    } catch (const kvcali::error& e) {
        BOOST_TEST(e.code() == kvcali::errc::invalid_model);
    }
}

BOOST_AUTO_TEST_CASE(custom_domain_ops_are_not_onnx_ops) {
    const kvo::graph g = kvo::load_onnx_file(fixture("custom_domain.onnx"));
    BOOST_REQUIRE(g.nodes.size() == 2u);
    BOOST_TEST(g.nodes[0].op_type == "MatMul");
    BOOST_TEST(g.nodes[1].op_type == "com.example.MatMul");
    const kvcali::layer_table t = kvo::to_layer_table(g);
    BOOST_TEST(t[0].eligible);
    BOOST_TEST(!t[1].eligible);
}

BOOST_AUTO_TEST_CASE(duplicate_node_names) {
    const auto e = load_error(fixture("duplicate.onnx"));
    BOOST_TEST(e.code() == kvcali::errc::invalid_model);
    BOOST_TEST(contains(e.what(), "\"mm\""), e.what());
    BOOST_TEST(contains(e.what(), "duplicate.onnx"), e.what());
}

BOOST_AUTO_TEST_CASE(missing_files_and_folders_are_io_errors) {
    const kvcali_test::temp_dir dir;
    BOOST_TEST(load_error(dir / "nope.onnx").code() == kvcali::errc::io_error);
    BOOST_TEST(load_error(dir.path()).code() == kvcali::errc::io_error);
    kvcali::diagnostics diags;
    kvo::read_onnx_file(dir / "nope.onnx", diags);  // the non-throwing form records it
    BOOST_TEST(diags.error_count() == 1u);
    BOOST_TEST(diags.items().at(0).category == kvcali::errc::io_error);
}

BOOST_AUTO_TEST_CASE(files_that_are_not_onnx_are_invalid_model) {
    const kvcali_test::temp_dir dir;
    const std::vector<std::pair<std::string, std::string>> cases{
        {"empty", ""},
        {"text", "this is not an ONNX model\n"},
        {"json", "[{\"name\": \"k\", \"type\": \"Linear\"}]"},
        {"ir_only", std::string("\x08\x08", 2)},     // ir_version = 8, nothing else
        {"graph_only", std::string("\x3a\x00", 2)},  // an empty graph, no ir_version
        {"bad_varint", std::string(12, '\xff')},
        {"deep", std::string(4000, '\x3a')},  // nested lengths that never fit
    };
    for (const auto& [name, bytes] : cases) {
        const auto p = dir / (name + ".onnx");
        kvcali_test::spit(p, bytes);
        const auto e = load_error(p);
        BOOST_TEST(e.code() == kvcali::errc::invalid_model, name << ": " << e.what());
        BOOST_TEST(contains(e.what(), p.string()), name << ": " << e.what());
    }
}

BOOST_AUTO_TEST_CASE(truncated_files_never_crash) {
    // Every prefix of a small model and many of the exported one: an invalid_model error, or (cut
    // exactly between two top-level fields after the graph) a model whose nodes are all there.
    for (const char* name : {"tiny.onnx", "paths.onnx", "attention.onnx"}) {
        const std::string bytes = kvcali_test::slurp(fixture(name));
        const std::size_t full_nodes = kvo::load_onnx_file(fixture(name)).nodes.size();
        const std::size_t step = bytes.size() > 2000 ? 7 : 1;
        std::size_t rejected = 0, accepted = 0;
        for (std::size_t n = 0; n < bytes.size(); n += step) {
            kvcali::diagnostics diags;
            const kvo::graph g = kvo::parse_onnx(std::string_view(bytes).substr(0, n), name, diags);
            if (diags.has_errors()) {
                ++rejected;
                BOOST_TEST(diags.items().at(0).category == kvcali::errc::invalid_model);
            } else {
                ++accepted;
                BOOST_TEST(g.nodes.size() == full_nodes, name << " cut at " << n);
            }
        }
        BOOST_TEST_MESSAGE(name << ": " << rejected << " prefixes rejected, " << accepted << " accepted");
        BOOST_TEST(rejected > 0u);
        // Half a file is always rejected.
        kvcali::diagnostics half;
        kvo::parse_onnx(std::string_view(bytes).substr(0, bytes.size() / 2), name, half);
        BOOST_TEST(half.has_errors());
    }
}

// --- the CLI ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(cli_generate_on_an_exported_model) {
    const kvcali_test::temp_dir dir;
    const auto r = run_cli({"generate", "--model", fixture("attention.onnx").string(), "--layer", "layers.0.self_attn.k_proj", "--layer",
                            "/layers.1/self_attn/v_proj/MatMul", "-o", (dir / "config.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    const std::string json = kvcali_test::slurp(dir / "config.json");
    BOOST_TEST(contains(json, "\"/layers.0/self_attn/k_proj/MatMul\""), json);
    BOOST_TEST(contains(json, "\"/layers.1/self_attn/v_proj/MatMul\""), json);
    BOOST_TEST(!contains(json, "layers.0.self_attn.k_proj\""), json);

    // Byte for byte what the same layers give from a layer list naming the nodes.
    kvcali_test::spit(dir / "list.json",
                      "[{\"name\": \"/layers.0/self_attn/k_proj/MatMul\", \"type\": \"Linear\"},"
                      " {\"name\": \"/layers.1/self_attn/v_proj/MatMul\", \"type\": \"Linear\"}]");
    const auto r2 = run_cli({"generate", "--model", (dir / "list.json").string(), "--layer", "/layers.0/self_attn/k_proj/MatMul", "--layer",
                             "/layers.1/self_attn/v_proj/MatMul", "-o", (dir / "expected.json").string()});
    BOOST_TEST(r2.status == 0, r2.err);
    BOOST_TEST(json == kvcali_test::slurp(dir / "expected.json"));
}

BOOST_AUTO_TEST_CASE(cli_generate_with_a_cfg_naming_module_paths) {
    const kvcali_test::temp_dir dir;
    kvcali_test::spit(dir / "quant.cfg",
                      "batch_num: 2\n"
                      "kv_cache_quant_config {\n"
                      "  quant_layers: \"layers.0.self_attn.k_proj\"\n"
                      "  quant_layers: \"layers.0.self_attn.v_proj\"\n"
                      "  calibration_config { hfmg_quantize { num_of_bins: 1024 } }\n"
                      "}\n");
    const auto r = run_cli({"generate", "--model", fixture("attention.onnx").string(), "--cfg", (dir / "quant.cfg").string(), "-o",
                            (dir / "config.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.out, "2 layers"), r.out);
    const std::string json = kvcali_test::slurp(dir / "config.json");
    BOOST_TEST(contains(json, "\"/layers.0/self_attn/v_proj/MatMul\""), json);
}

BOOST_AUTO_TEST_CASE(cli_ambiguous_path_lists_candidates) {
    const kvcali_test::temp_dir dir;
    const auto r = run_cli(
        {"generate", "--model", fixture("attention.onnx").string(), "--layer", "layers.1.self_attn", "-o", (dir / "config.json").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(contains(r.err, "[unknown_layer]"), r.err);
    BOOST_TEST(contains(r.err, "\"/layers.1/self_attn/MatMul\""), r.err);
    BOOST_TEST(contains(r.err, "\"/layers.1/self_attn/MatMul_1\""), r.err);
    BOOST_TEST(dir.entries().empty());
}

BOOST_AUTO_TEST_CASE(cli_bad_files) {
    const kvcali_test::temp_dir dir;
    const std::string out = (dir / "config.json").string();
    kvcali_test::spit(dir / "text.onnx", "not a model");
    const std::string attention = kvcali_test::slurp(fixture("attention.onnx"));
    kvcali_test::spit(dir / "cut.onnx", attention.substr(0, attention.size() / 3));
    const std::vector<std::pair<std::string, std::string>> cases{
        {(dir / "missing.onnx").string(), "[io_error]"},
        {(dir / "text.onnx").string(), "[invalid_model]"},
        {(dir / "cut.onnx").string(), "[invalid_model]"},
        {fixture("duplicate.onnx").string(), "[invalid_model]"},
    };
    for (const auto& [model, category] : cases) {
        const auto r = run_cli({"generate", "--model", model, "--layer", "x", "-o", out});
        BOOST_TEST(r.status == 1, model << ": " << r.err);
        BOOST_TEST(contains(r.err, category), model << ": " << r.err);
        BOOST_TEST(contains(r.err, model), model << ": " << r.err);
    }
    BOOST_TEST(!fs::exists(out));
}

BOOST_AUTO_TEST_CASE(cli_prints_the_subgraph_warning) {
    const kvcali_test::temp_dir dir;
    const auto r =
        run_cli({"generate", "--model", fixture("subgraph.onnx").string(), "--layer", "main_matmul", "-o", (dir / "c.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.err, "warning: node \"branch\" (If)"), r.err);
}

BOOST_AUTO_TEST_CASE(cli_explain_shows_the_node_a_module_path_took) {
    const auto r = run_cli({"explain", "--model", fixture("attention.onnx").string(), "--layer", "layers.0.self_attn.k_proj"});
    BOOST_TEST(r.status == 0, r.err);
    // One line names both: the node taken and the path written.
    std::size_t found = 0;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        if (contains(line, "/layers.0/self_attn/k_proj/MatMul <- layers.0.self_attn.k_proj")) ++found;
    }
    BOOST_TEST(found == 1u, r.out);
}

BOOST_AUTO_TEST_CASE(cli_check_and_layers_read_onnx) {
    const std::string attention = fixture("attention.onnx").string();
    const auto ok = run_cli({"check", "--model", attention, "--layer", "layers.1.self_attn.o_proj"});
    BOOST_TEST(ok.status == 0, ok.err);
    const auto ambiguous = run_cli({"check", "--model", attention, "--layer", "layers.0.self_attn"});
    BOOST_TEST(ambiguous.status == 1);
    BOOST_TEST(contains(ambiguous.err, "[unknown_layer]"), ambiguous.err);
    const auto missing = run_cli({"check", "--model", "/nonexistent/model.onnx", "--layer", "x"});
    BOOST_TEST(missing.status == 1);
    BOOST_TEST(contains(missing.err, "[io_error]"), missing.err);

    const auto listed = run_cli({"layers", "--model", fixture("paths.onnx").string(), "--eligible", "--json"});
    BOOST_TEST(listed.status == 0, listed.err);
    for (const char* name : {"/layers.0/attn/k_proj/MatMul", "/layers.0/attn/v_proj/Gemm", "/layers.0/attn/MatMul",
                             "/layers.0/attn/MatMul_1", "/layers.0/mlp/MatMul", "/top/Gemm_x"}) {
        BOOST_TEST(contains(listed.out, "\"" + std::string(name) + "\""), name << " in " << listed.out);
    }
    BOOST_TEST(!contains(listed.out, "Softmax"), listed.out);
    const auto unnamed = run_cli({"layers", "--model", fixture("unnamed.onnx").string()});
    BOOST_TEST(unnamed.status == 0, unnamed.err);
    BOOST_TEST(contains(unnamed.out, "MatMul_3_1"), unnamed.out);
    BOOST_TEST(contains(unnamed.out, "Relu_5_2"), unnamed.out);
}

// Every conformance case as an .onnx file, made from its model.json at build time by
// tests/models/make_models.py (one node per layer; Linear is a MatMul node, other types are not
// eligible), through the library and through `kvcali generate`.
BOOST_AUTO_TEST_CASE(conformance_cases_as_onnx_files) {
    const fs::path models = kvcali_test::conformance_models_dir();
    kvcali_test::run_conformance("ONNX files", [&](const fs::path& dir, const fs::path& config_file,
                                                   const std::optional<kvcali::quant_layers>& layers, const std::optional<fs::path>& cfg) {
        const fs::path file = models / (dir.filename().string() + ".onnx");
        BOOST_TEST_REQUIRE(fs::exists(file), file << " was not made");
        const kvcali::layer_table table = kvo::load_onnx_layers(file);
        kvcali::create_quant_cali_config(config_file, table, layers, cfg);
    });
    kvcali_test::run_conformance_cli("ONNX files, kvcali generate",
                                     [&](const fs::path& dir) { return models / (dir.filename().string() + ".onnx"); });
}
