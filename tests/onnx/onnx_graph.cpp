// The plain ONNX-like graph (kvcali/adapters/onnx.hpp): no protobuf in this translation unit.
// The adapter header comes first: it must compile on its own.
#include <kvcali/adapters/onnx.hpp>

#define BOOST_TEST_MODULE onnx_graph
#include <boost/test/unit_test.hpp>

#include <kvcali/config_writer.hpp>
#include <kvcali/generate.hpp>

#include <string>
#include <vector>

#include "../support/test_support.hpp"

namespace kvo = kvcali::onnx;

namespace {

kvo::node mk(std::string name, std::string op_type) { return {std::move(name), std::move(op_type), {"in"}, {"out"}}; }

std::vector<std::string> names_of(const kvcali::layer_table& t) {
    std::vector<std::string> out;
    for (const auto& l : t) out.push_back(l.name);
    return out;
}

// What a resolution errs with: the category and the messages.
kvcali::error resolve_error(const kvcali::layer_table& t, std::vector<std::string> layers) {
    try {
        kvcali::resolve_quant_cali_config(t, kvcali::quant_layers(std::move(layers)));
    } catch (const kvcali::error& e) {
        return e;
    }
    BOOST_FAIL("expected kvcali::error");
    throw;  // unreachable
}

}  // namespace

static_assert(kvcali::model_graph<kvo::graph>);

BOOST_AUTO_TEST_CASE(nodes_are_layers_in_graph_order_with_default_eligible_types) {
    const kvo::graph g{{mk("a", "MatMul"), mk("b", "Relu"), mk("c", "Gemm"), mk("d", "Add")}};
    const kvcali::layer_table t = kvo::to_layer_table(g);
    BOOST_TEST(names_of(t) == (std::vector<std::string>{"a", "b", "c", "d"}), boost::test_tools::per_element());
    BOOST_TEST(t[0].eligible);
    BOOST_TEST(!t[1].eligible);
    BOOST_TEST(t[2].eligible);
    BOOST_TEST(t[2].type == "Gemm");
    BOOST_TEST(!t[3].eligible);
    BOOST_TEST((kvo::default_eligible_op_types() == std::vector<std::string>{"MatMul", "Gemm"}));
}

BOOST_AUTO_TEST_CASE(the_caller_sets_the_eligible_types) {
    kvo::graph g{{mk("a", "MatMul"), mk("q", "MatMulInteger"), mk("c", "Gemm")}};
    g.eligible_op_types = {"MatMulInteger"};
    const kvcali::layer_table t = kvo::to_layer_table(g);
    BOOST_TEST(!t[0].eligible);
    BOOST_TEST(t[1].eligible);
    BOOST_TEST(!t[2].eligible);
    // The same through the traits, straight into the call.
    const auto doc = kvcali::resolve_quant_cali_config(g, kvcali::quant_layers{"q"});
    BOOST_TEST(doc.layers.size() == 1u);
    const auto e = resolve_error(kvo::to_layer_table(g), {"a"});
    BOOST_TEST(e.code() == kvcali::errc::unsupported_layer_type);
}

BOOST_AUTO_TEST_CASE(unnamed_nodes_are_op_type_and_index_made_unique) {
    // Index 3 would be MatMul_3 (held by node 1): MatMul_3_1. Index 5 would be Relu_5 (node 4) and
    // then Relu_5_1 (node 6): Relu_5_2. A later named node counts as holding its name too.
    const kvo::graph g{{mk("", "MatMul"), mk("MatMul_3", "Relu"), mk("", "Gemm"), mk("", "MatMul"), mk("Relu_5", "Relu"), mk("", "Relu"),
                        mk("Relu_5_1", "Add"), mk("", "")}};
    const std::vector<std::string> expected{"MatMul_0", "MatMul_3", "Gemm_2", "MatMul_3_1", "Relu_5", "Relu_5_2", "Relu_5_1", "node_7"};
    BOOST_TEST(kvo::node_names(g) == expected, boost::test_tools::per_element());
    BOOST_TEST(names_of(kvo::to_layer_table(g)) == expected, boost::test_tools::per_element());
    // Through the traits the same names reach the layer table.
    const auto doc = kvcali::resolve_quant_cali_config(g, kvcali::quant_layers{"MatMul_3_1", "Gemm_2"});
    BOOST_TEST(doc.layers.at(0).name == "MatMul_3_1");
    BOOST_TEST(doc.layers.at(1).name == "Gemm_2");
}

BOOST_AUTO_TEST_CASE(generated_names_do_not_collide_among_themselves) {
    // Node 10 would be MatMul_10 (held by node 1), then MatMul_10_1 (held by node 2): MatMul_10_2.
    // Node 11 keeps its plain name: only a held name takes a suffix.
    std::vector<kvo::node> nodes;
    for (int i = 0; i < 12; ++i) nodes.push_back(mk("", "MatMul"));
    nodes[1].name = "MatMul_10";
    nodes[2].name = "MatMul_10_1";
    const auto names = kvo::node_names(nodes);
    BOOST_TEST(names[0] == "MatMul_0");
    BOOST_TEST(names[10] == "MatMul_10_2");
    BOOST_TEST(names[11] == "MatMul_11");
    kvcali::diagnostics diags;
    const auto t = kvo::to_layer_table(kvo::graph{nodes}, diags);
    BOOST_TEST(!diags.has_errors());
    BOOST_TEST(t.size() == 12u);
}

BOOST_AUTO_TEST_CASE(duplicate_node_names_are_invalid_model) {
    const kvo::graph g{{mk("mm", "MatMul"), mk("x", "Relu"), mk("mm", "Gemm")}};
    kvcali::diagnostics diags;
    const auto t = kvo::to_layer_table(g, diags, "m.onnx");
    BOOST_TEST(diags.error_count() == 1u);
    const auto& d = diags.items().at(0);
    BOOST_TEST(d.category == kvcali::errc::invalid_model);
    BOOST_TEST(d.where.file == "m.onnx");
    BOOST_TEST(d.layer == "mm");
    BOOST_TEST(d.message.find("#0 and #2") != std::string::npos, d.message);
    BOOST_CHECK_THROW(kvo::to_layer_table(g), kvcali::error);
    // Through the traits, the core reports the same problem.
    try {
        kvcali::resolve_quant_cali_config(g, kvcali::quant_layers{"mm"});
        BOOST_FAIL("expected an error");
    } catch (const kvcali::error& e) {
        BOOST_TEST(e.code() == kvcali::errc::invalid_model);
    }
}

BOOST_AUTO_TEST_CASE(module_path_rule) {
    BOOST_TEST(*kvo::module_path("/layers.0/self_attn/k_proj/MatMul", "MatMul") == "layers.0.self_attn.k_proj");
    BOOST_TEST(*kvo::module_path("/model/layers.11/mlp/Gemm_3", "Gemm") == "model.layers.11.mlp");
    BOOST_TEST(*kvo::module_path("/lm_head/MatMul", "MatMul") == "lm_head");
    BOOST_TEST(!kvo::module_path("/MatMul", "MatMul"));                 // no module
    BOOST_TEST(!kvo::module_path("layers.0/k_proj/MatMul", "MatMul"));  // no leading '/'
    BOOST_TEST(!kvo::module_path("/k_proj/Gemm", "MatMul"));            // op part is another type
    BOOST_TEST(!kvo::module_path("/k_proj/MatMulX", "MatMul"));         // not MatMul[_digits]
    BOOST_TEST(!kvo::module_path("/k_proj/MatMul_", "MatMul"));
    BOOST_TEST(!kvo::module_path("/k_proj/MatMul_1a", "MatMul"));
    BOOST_TEST(!kvo::module_path("//k_proj/MatMul", "MatMul"));  // empty segment
    BOOST_TEST(!kvo::module_path("/a//k_proj/MatMul", "MatMul"));
    BOOST_TEST(!kvo::module_path("//MatMul", "MatMul"));
    BOOST_TEST(!kvo::module_path("MatMul_3", "MatMul"));
    BOOST_TEST(!kvo::module_path("", "MatMul"));
}

namespace {
// The shape of a PyTorch export: layers.0.attn.k_proj and layers.0.mlp are unique among eligible
// nodes; layers.0.attn carries two MatMuls.
kvo::graph exported() {
    return {{mk("/layers.0/attn/k_proj/MatMul", "MatMul"), mk("/layers.0/attn/v_proj/Gemm", "Gemm"), mk("/layers.0/attn/MatMul", "MatMul"),
             mk("/layers.0/attn/Softmax", "Softmax"), mk("/layers.0/attn/MatMul_1", "MatMul"), mk("/layers.0/mlp/Add", "Add"),
             mk("/layers.0/mlp/MatMul", "MatMul")}};
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_unique_module_path_names_its_node) {
    const kvcali::layer_table t = kvo::to_layer_table(exported());
    BOOST_TEST(t.has_aliases());
    const auto* k = t.find_alias("layers.0.attn.k_proj");
    BOOST_REQUIRE(k != nullptr);
    BOOST_TEST(k->size() == 1u);
    BOOST_TEST(t[k->front()].name == "/layers.0/attn/k_proj/MatMul");
    // The Add is not eligible: it does not make layers.0.mlp ambiguous.
    BOOST_TEST(t.find_alias("layers.0.mlp")->size() == 1u);
    BOOST_TEST(t.find_alias("layers.0.attn")->size() == 2u);

    const auto doc =
        kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"layers.0.attn.k_proj", "layers.0.attn.v_proj", "/layers.0/attn/MatMul"});
    BOOST_REQUIRE(doc.layers.size() == 3u);
    BOOST_TEST(doc.layers[0].name == "/layers.0/attn/k_proj/MatMul");
    BOOST_TEST(doc.layers[0].selector == "layers.0.attn.k_proj");
    BOOST_TEST(doc.layers[1].name == "/layers.0/attn/v_proj/Gemm");
    BOOST_TEST(doc.layers[2].name == "/layers.0/attn/MatMul");
    BOOST_TEST(doc.layers[2].selector == "/layers.0/attn/MatMul");
    // config.json holds the node name, not the path.
    const std::string json = kvcali::write_config_json(doc);
    BOOST_TEST(json.find("\"/layers.0/attn/k_proj/MatMul\"") != std::string::npos, json);
    BOOST_TEST(json.find("\"layers.0.attn.k_proj\"") == std::string::npos, json);
}

BOOST_AUTO_TEST_CASE(an_ambiguous_module_path_is_unknown_layer_listing_the_candidates) {
    const auto e = resolve_error(kvo::to_layer_table(exported()), {"layers.0.attn"});
    BOOST_TEST(e.code() == kvcali::errc::unknown_layer);
    BOOST_REQUIRE(e.diagnostics().size() == 1u);
    const std::string& m = e.diagnostics()[0].message;
    BOOST_TEST(m.find("ambiguous") != std::string::npos, m);
    BOOST_TEST(m.find("\"/layers.0/attn/MatMul\"") != std::string::npos, m);
    BOOST_TEST(m.find("\"/layers.0/attn/MatMul_1\"") != std::string::npos, m);
    BOOST_TEST(m.find("k_proj") == std::string::npos, m);
}

BOOST_AUTO_TEST_CASE(paths_of_ineligible_nodes_are_no_names) {
    const auto e = resolve_error(kvo::to_layer_table(exported()), {"layers.0.attn.Softmax"});
    BOOST_TEST(e.code() == kvcali::errc::unknown_layer);
    kvo::graph g{{mk("/blk/Softmax", "Softmax")}};
    BOOST_TEST(!kvo::to_layer_table(g).has_aliases());
}

BOOST_AUTO_TEST_CASE(a_node_name_wins_over_a_module_path) {
    // A node literally named "enc.k" and another node whose path is enc.k: the name is the node.
    const kvo::graph g{{mk("enc.k", "Gemm"), mk("/enc/k/MatMul", "MatMul")}};
    const auto t = kvo::to_layer_table(g);
    BOOST_TEST(t.find_alias("enc.k") == nullptr);
    const auto doc = kvcali::resolve_quant_cali_config(t, kvcali::quant_layers{"enc.k"});
    BOOST_TEST(doc.layers.at(0).name == "enc.k");
}

BOOST_AUTO_TEST_CASE(module_paths_reach_the_simple_config_file_too) {
    const kvcali_test::temp_dir dir;
    const auto cfg = dir / "quant.cfg";
    kvcali_test::spit(cfg, "kv_cache_quant_config {\n  quant_layers: \"layers.0.mlp\"\n  calibration_config { hfmg_quantize {} }\n}\n");
    const auto doc = kvcali::resolve_quant_cali_config(kvo::to_layer_table(exported()), std::nullopt, cfg);
    BOOST_REQUIRE(doc.layers.size() == 1u);
    BOOST_TEST(doc.layers[0].name == "/layers.0/mlp/MatMul");
    BOOST_TEST(doc.layers[0].selector == "layers.0.mlp");
}

// A user's own ONNX-like IR, adapted through the traits in a few lines.
namespace user_ir {
struct op {
    std::string id;
    std::string kind;
};
struct program {
    std::vector<op> ops;
};
}  // namespace user_ir

template <>
struct kvcali::model_graph_traits<user_ir::program> {
    static const std::vector<user_ir::op>& layers(const user_ir::program& p) { return p.ops; }
    static std::string_view name(const user_ir::op& o) { return o.id; }
    static std::string_view type_name(const user_ir::op& o) { return o.kind; }
    static bool supports_kv_quant(const user_ir::program&, std::string_view kind) { return kind == "MatMul" || kind == "Gemm"; }
};

static_assert(kvcali::model_graph<user_ir::program>);

BOOST_AUTO_TEST_CASE(a_users_own_ir_through_the_traits) {
    const user_ir::program p{{{"proj_k", "MatMul"}, {"act", "Gelu"}, {"proj_v", "Gemm"}}};
    const auto doc = kvcali::resolve_quant_cali_config(p, kvcali::quant_layers{"proj_v", "proj_k"});
    BOOST_REQUIRE(doc.layers.size() == 2u);
    BOOST_TEST(doc.layers[0].name == "proj_v");
    BOOST_TEST(doc.layers[1].name == "proj_k");
    const auto e = resolve_error(kvcali::extract_layers(p, [](std::string_view) {}), {"act"});
    BOOST_TEST(e.code() == kvcali::errc::unsupported_layer_type);
}

BOOST_AUTO_TEST_CASE(a_users_ir_converted_to_the_plain_graph_gets_module_paths) {
    // Or convert to the plain graph to get the naming and module-path rules.
    const user_ir::program p{{{"/dec/k_proj/MatMul", "MatMul"}, {"", "Gemm"}}};
    kvo::graph g;
    for (const auto& o : p.ops) g.nodes.push_back({o.id, o.kind, {}, {}});
    const auto doc = kvcali::resolve_quant_cali_config(kvo::to_layer_table(g), kvcali::quant_layers{"dec.k_proj", "Gemm_1"});
    BOOST_TEST(doc.layers.at(0).name == "/dec/k_proj/MatMul");
    BOOST_TEST(doc.layers.at(1).name == "Gemm_1");
}
