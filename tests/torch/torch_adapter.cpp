// The libtorch adapter: torch::nn::Module trees and TorchScript modules as model graphs, the
// TorchScript loader (library and `kvcali --model x.pt`), and every conformance case with its model
// built as real torch modules. The only libtorch TU of the test suite (each costs ~25 s to compile).
#define BOOST_TEST_MODULE torch_adapter
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <kvcali/adapters/torch.hpp>
#include <kvcali/kvcali.hpp>

#include <algorithm>
#include <iostream>
#include <map>
#include <set>

#include "../support/conformance_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;
using kvcali::libtorch::layer;

namespace {

// ---------------------------------------------------------------------------------------------
// A LLaMA-like model written as C++ modules, with the names and types PyTorch would list for the
// same model in Python.

struct MyLinear : torch::nn::LinearImpl {  // a Linear subclass with another name: not eligible
    using torch::nn::LinearImpl::LinearImpl;
};

struct LlamaAttention : torch::nn::Module {
    explicit LlamaAttention(int64_t hidden) {
        q_proj = register_module("q_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, hidden).bias(false)));
        k_proj = register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, hidden).bias(false)));
        v_proj = register_module("v_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, hidden).bias(false)));
        o_proj = register_module("o_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, hidden).bias(false)));
    }
    torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};

struct LlamaMLP : torch::nn::Module {
    LlamaMLP(int64_t hidden, int64_t ffn) {
        register_module("gate_proj", torch::nn::Linear(hidden, ffn));
        register_module("up_proj", std::make_shared<MyLinear>(torch::nn::LinearOptions(hidden, ffn)));
        register_module("down_proj", torch::nn::Linear(ffn, hidden));
        register_module("act_fn", torch::nn::SiLU());
    }
};

struct LlamaDecoderLayer : torch::nn::Module {
    LlamaDecoderLayer(int64_t hidden, int64_t ffn) {
        register_module("self_attn", std::make_shared<LlamaAttention>(hidden));
        register_module("mlp", std::make_shared<LlamaMLP>(hidden, ffn));
        register_module("input_layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
        register_module("post_attention_layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
    }
};

struct LlamaModel : torch::nn::Module {
    LlamaModel(int64_t layers, int64_t hidden, int64_t ffn, int64_t vocab) {
        register_module("embed_tokens", torch::nn::Embedding(vocab, hidden));
        torch::nn::ModuleList list;
        for (int64_t i = 0; i < layers; ++i) list->push_back(std::make_shared<LlamaDecoderLayer>(hidden, ffn));
        register_module("layers", list);
        register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden})));
        // Nested containers: a ModuleDict holding a Sequential and a ModuleList.
        torch::nn::ModuleDict adapters;
        std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> entries;
        entries.emplace_back("lora",
                             torch::nn::Sequential(torch::nn::Linear(hidden, 2), torch::nn::GELU(), torch::nn::Linear(2, hidden)).ptr());
        entries.emplace_back("extra", torch::nn::ModuleList(torch::nn::Linear(hidden, hidden),
                                                            std::make_shared<MyLinear>(torch::nn::LinearOptions(hidden, hidden)))
                                          .ptr());
        adapters->update(entries);
        register_module("adapters", adapters);
    }
};

struct LlamaForCausalLM : torch::nn::Module {
    explicit LlamaForCausalLM(int64_t layers = 2) {
        register_module("model", std::make_shared<LlamaModel>(layers, 8, 12, 16));
        register_module("lm_head", torch::nn::Linear(8, 16));
    }
};

std::vector<layer> llama_expected_layers() {
    std::vector<layer> out{{"model", "LlamaModel"}, {"model.embed_tokens", "Embedding"}, {"model.layers", "ModuleList"}};
    for (int i = 0; i < 2; ++i) {
        const std::string p = "model.layers." + std::to_string(i);
        for (layer l : std::vector<layer>{{"", "LlamaDecoderLayer"},
                                          {".self_attn", "LlamaAttention"},
                                          {".self_attn.q_proj", "Linear"},
                                          {".self_attn.k_proj", "Linear"},
                                          {".self_attn.v_proj", "Linear"},
                                          {".self_attn.o_proj", "Linear"},
                                          {".mlp", "LlamaMLP"},
                                          {".mlp.gate_proj", "Linear"},
                                          {".mlp.up_proj", "MyLinear"},
                                          {".mlp.down_proj", "Linear"},
                                          {".mlp.act_fn", "SiLU"},
                                          {".input_layernorm", "LayerNorm"},
                                          {".post_attention_layernorm", "LayerNorm"}}) {
            out.push_back({p + l.path, l.type});
        }
    }
    for (layer l : std::vector<layer>{{"model.norm", "LayerNorm"},
                                      {"model.adapters", "ModuleDict"},
                                      {"model.adapters.lora", "Sequential"},
                                      {"model.adapters.lora.0", "Linear"},
                                      {"model.adapters.lora.1", "GELU"},
                                      {"model.adapters.lora.2", "Linear"},
                                      {"model.adapters.extra", "ModuleList"},
                                      {"model.adapters.extra.0", "Linear"},
                                      {"model.adapters.extra.1", "MyLinear"},
                                      {"lm_head", "Linear"}}) {
        out.push_back(l);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

std::string show(const std::vector<layer>& layers) {
    std::string out;
    for (const auto& l : layers) out += "  " + l.path + " : " + l.type + "\n";
    return out;
}

/// The same names and types as a layer list (the core's JSON model format), read back.
kvcali::layer_table as_layer_list(const std::vector<layer>& layers) {
    auto quoted = [](const std::string& s) {
        std::string out = "\"";
        for (char c : s) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        return out + "\"";
    };
    std::string text = "[";
    for (const auto& l : layers)
        text += (text.size() > 1 ? "," : "") + std::string("{\"name\":") + quoted(l.path) + ",\"type\":" + quoted(l.type) + "}";
    text += "]";
    kvcali::diagnostics diags;
    auto table = kvcali::parse_layer_list(text, "layers.json", diags);
    diags.throw_if_errors();
    return table;
}

template <class G>
std::string config_bytes(const G& model, const kvcali::quant_layers& layers) {
    return kvcali::write_config_json(kvcali::resolve_quant_cali_config(model, layers));
}

/// The categories of the error a call throws (empty when it does not throw).
template <class F>
std::set<std::string> error_categories(F&& call) {
    std::set<std::string> out;
    try {
        call();
    } catch (const kvcali::error& e) {
        out = error_categories_of(e.diagnostics());
    }
    return out;
}

std::vector<std::string> names_matching(const std::vector<layer>& layers, const std::vector<std::string>& suffixes) {
    std::vector<std::string> out;
    for (const auto& l : layers) {
        if (l.type != "Linear") continue;
        for (const auto& s : suffixes) {
            if (l.path.size() >= s.size() && l.path.compare(l.path.size() - s.size(), s.size(), s) == 0) out.push_back(l.path);
        }
    }
    return out;
}

fs::path fixtures() { return source_root() / "tests" / "torch" / "fixtures"; }

std::vector<fs::path> torchscript_fixtures() {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(fixtures())) {
        if (e.path().extension() == ".pt") out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

fs::path layer_list_of(const fs::path& pt) { return fs::path(pt).replace_extension(".layers.json"); }

}  // namespace

// ---------------------------------------------------------------------------------------------

static_assert(kvcali::model_graph<kvcali::libtorch::module_graph>);
static_assert(kvcali::model_graph<kvcali::libtorch::script_module_graph>);
static_assert(kvcali::model_graph<torch::nn::Module>);
static_assert(kvcali::model_graph<LlamaForCausalLM>);
static_assert(kvcali::model_graph<torch::nn::Sequential>);  // a ModuleHolder
static_assert(kvcali::model_graph<torch::nn::LinearImpl>);
static_assert(kvcali::model_graph<torch::jit::Module>);
static_assert(!kvcali::model_graph<torch::Tensor>);

BOOST_AUTO_TEST_CASE(cpp_type_names_become_python_class_names) {
    using kvcali::libtorch::python_class_name;
    BOOST_TEST(python_class_name("torch::nn::LinearImpl") == "Linear");
    BOOST_TEST(python_class_name("torch::nn::ModuleListImpl") == "ModuleList");
    BOOST_TEST(python_class_name("torch::nn::Conv2dImpl") == "Conv2d");
    BOOST_TEST(python_class_name("torch::nn::Module") == "Module");
    BOOST_TEST(python_class_name("LlamaAttention") == "LlamaAttention");
    BOOST_TEST(python_class_name("my::LlamaAttention") == "LlamaAttention");
    BOOST_TEST(python_class_name("my::BlockImpl") == "BlockImpl");  // only libtorch's own Impl suffix goes
    BOOST_TEST(python_class_name("(anonymous namespace)::Block") == "Block");
    BOOST_TEST(python_class_name("ns::Wrap<ns::Inner, 2>") == "Wrap<ns::Inner, 2>");
    BOOST_TEST(python_class_name("Impl") == "Impl");
    // What libtorch itself reports for its modules and for a user subclass.
    BOOST_TEST(python_class_name(torch::nn::Linear(2, 2)->name()) == "Linear");
    BOOST_TEST(python_class_name(torch::nn::ModuleDict()->name()) == "ModuleDict");
    BOOST_TEST(python_class_name(MyLinear(torch::nn::LinearOptions(2, 2)).name()) == "MyLinear");
    BOOST_TEST(python_class_name(torch::nn::Module("Custom").name()) == "Custom");
}

BOOST_AUTO_TEST_CASE(llama_like_cpp_tree_lists_named_modules) {
    auto model = std::make_shared<LlamaForCausalLM>();
    const kvcali::libtorch::module_graph graph(*model);
    const auto want = llama_expected_layers();
    BOOST_TEST((graph.layers() == want), "got:\n" << show(graph.layers()) << "want:\n" << show(want));
    // The shared_ptr form and the traits on the module type give the same layers.
    BOOST_TEST((kvcali::libtorch::module_graph(model).layers() == want));
    BOOST_TEST((kvcali::model_graph_traits<LlamaForCausalLM>::layers(*model) == want));
    // Eligibility: exactly Linear.
    BOOST_TEST(graph.supports_kv_quant("Linear"));
    BOOST_TEST(!graph.supports_kv_quant("MyLinear"));
    BOOST_TEST(!graph.supports_kv_quant("LinearImpl"));
}

BOOST_AUTO_TEST_CASE(llama_like_cpp_tree_gives_the_layer_list_json) {
    auto model = std::make_shared<LlamaForCausalLM>();
    const kvcali::libtorch::module_graph graph(*model);
    const kvcali::layer_table list = as_layer_list(llama_expected_layers());
    const std::vector<std::vector<std::string>> selections{
        names_matching(graph.layers(), {"k_proj", "v_proj"}),
        names_matching(graph.layers(), {"proj", "lm_head", ".0"}),
        {"model.layers.1.self_attn.v_proj"},
    };
    for (const auto& names : selections) {
        BOOST_TEST_REQUIRE(!names.empty());
        const kvcali::quant_layers q(names);
        const std::string want = config_bytes(list, q);
        BOOST_TEST(config_bytes(graph, q) == want);
        BOOST_TEST(config_bytes(*model, q) == want);  // the module itself, through the traits
        for (const auto& n : names) BOOST_TEST(want.find("\"" + n + "\":{") != std::string::npos, n);
    }
    BOOST_TEST(names_matching(graph.layers(), {"k_proj", "v_proj"}).size() == 4u);

    // The file form, with a quant.cfg, writes the same bytes as the layer list.
    temp_dir dir;
    spit(dir / "quant.cfg",
         "batch_num: 2\nkv_cache_quant_config {\n  quant_layers: \"model.layers.0.self_attn.k_proj\"\n"
         "  quant_layers: \"model.layers.1.self_attn.v_proj\"\n}\n");
    const auto from_torch = kvcali::create_quant_cali_config(dir / "a.json", *model, std::nullopt, dir / "quant.cfg");
    kvcali::create_quant_cali_config(dir / "b.json", list, std::nullopt, dir / "quant.cfg");
    BOOST_TEST(slurp(dir / "a.json") == slurp(dir / "b.json"));
    BOOST_TEST(slurp(dir / "a.json").find("\"batch_num\":2") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(linear_subclass_and_unknown_names_are_rejected) {
    auto model = std::make_shared<LlamaForCausalLM>();
    BOOST_TEST(error_categories([&] { config_bytes(*model, kvcali::quant_layers{"model.layers.0.mlp.up_proj"}); }) ==
               std::set<std::string>{"unsupported_layer_type"});
    BOOST_TEST(error_categories([&] { config_bytes(*model, kvcali::quant_layers{"model.layers.0.input_layernorm"}); }) ==
               std::set<std::string>{"unsupported_layer_type"});
    BOOST_TEST(
        error_categories([&] { config_bytes(*model, kvcali::quant_layers{"model.layers.7.self_attn.k_proj"}); }).contains("unknown_layer"));
    // Nothing is written on error.
    temp_dir dir;
    BOOST_CHECK_THROW(kvcali::create_quant_cali_config(dir / "c.json", *model, kvcali::quant_layers{"model.adapters.extra.1"}),
                      kvcali::error);
    BOOST_TEST(dir.entries().empty());
}

BOOST_AUTO_TEST_CASE(module_holders_and_containers_as_roots) {
    torch::nn::Sequential seq(torch::nn::Linear(4, 4), torch::nn::ReLU(), torch::nn::Linear(4, 2));
    const std::vector<layer> want{{"0", "Linear"}, {"1", "ReLU"}, {"2", "Linear"}};
    BOOST_TEST((kvcali::libtorch::module_graph(seq).layers() == want), show(kvcali::libtorch::module_graph(seq).layers()));
    BOOST_TEST((kvcali::model_graph_traits<torch::nn::Sequential>::layers(seq) == want));
    BOOST_TEST(config_bytes(seq, kvcali::quant_layers{"0"}) == config_bytes(as_layer_list(want), kvcali::quant_layers{"0"}));
    // A single Linear has no layers (the root is not one): nothing to quantize.
    torch::nn::Linear lone(2, 2);
    BOOST_TEST(kvcali::libtorch::module_graph(lone).layers().empty());
}

BOOST_AUTO_TEST_CASE(shared_submodules_are_listed_once_as_pytorch_does) {
    // Python: k_proj = Linear; v_proj = k_proj; blocks = ModuleList([k_proj, Linear]) lists
    // ['k_proj', 'blocks', 'blocks.1'] (named_modules skips modules it has seen).
    auto root = std::make_shared<torch::nn::Module>();
    torch::nn::Linear shared(4, 4);
    root->register_module("k_proj", shared);
    root->register_module("v_proj", shared);
    root->register_module("blocks", torch::nn::ModuleList(shared, torch::nn::Linear(4, 4)));
    const std::vector<layer> want{{"k_proj", "Linear"}, {"blocks", "ModuleList"}, {"blocks.1", "Linear"}};
    BOOST_TEST((kvcali::libtorch::module_graph(*root).layers() == want), show(kvcali::libtorch::module_graph(*root).layers()));
    BOOST_TEST(root->named_modules("", false).size() == 5u);  // libtorch's own listing repeats it
}

BOOST_AUTO_TEST_CASE(torchscript_fixtures_match_the_eager_named_modules) {
    const auto files = torchscript_fixtures();
    BOOST_TEST_REQUIRE(files.size() >= 4u);
    bool saw_mangled = false, saw_hf_attention = false, saw_subclass = false;
    for (const auto& pt : files) {
        BOOST_TEST_CONTEXT("fixture " << pt.filename()) {
            const torch::jit::Module module = kvcali::libtorch::load_script_module(pt);
            const kvcali::libtorch::script_module_graph graph(module);
            const kvcali::layer_table want = kvcali::load_layer_list(layer_list_of(pt));
            BOOST_TEST_REQUIRE(graph.layers().size() == want.size(), show(graph.layers()));
            for (std::size_t i = 0; i < want.size(); ++i) {
                BOOST_TEST(graph.layers()[i].path == want[i].name);
                BOOST_TEST(graph.layers()[i].type == want[i].type, want[i].name);
                BOOST_TEST(graph.supports_kv_quant(graph.layers()[i].type) == want[i].eligible, want[i].name);
                saw_subclass = saw_subclass || graph.layers()[i].type == "MyLinear";
            }
            for (const auto& item : module.named_modules()) {
                const std::string qualified = item.value.type()->name()->qualifiedName();
                if (qualified.find("___torch_mangle_") != std::string::npos &&
                    kvcali::libtorch::python_class_name(item.value) == "Linear") {
                    saw_mangled = true;
                }
            }
            saw_hf_attention = saw_hf_attention || (want.get("q_proj") && want.get("rotary_emb"));

            // The JSON equals the layer list's, for two selections.
            std::vector<std::string> all_linear;
            for (const auto& l : want) {
                if (l.eligible) all_linear.push_back(l.name);
            }
            BOOST_TEST_REQUIRE(!all_linear.empty());
            for (const auto& names : {all_linear, std::vector<std::string>{all_linear.back()}}) {
                const kvcali::quant_layers q(names);
                BOOST_TEST(config_bytes(graph, q) == config_bytes(want, q));
                BOOST_TEST(config_bytes(module, q) == config_bytes(want, q));
            }
        }
    }
    BOOST_TEST(saw_mangled, "no fixture has a ___torch_mangle_N.Linear type");
    BOOST_TEST(saw_hf_attention, "the scripted HF-style attention block is missing");
    BOOST_TEST(saw_subclass, "no fixture has a Linear subclass");
}

BOOST_AUTO_TEST_CASE(files_that_are_not_torchscript_are_errors_not_crashes) {
    temp_dir dir;
    const std::string fixture = slurp(fixtures() / "hf_attention_scripted.pt");
    spit(dir / "empty.pt", "");
    spit(dir / "text.pt", "this is not a model\n");
    spit(dir / "truncated.pt", fixture.substr(0, fixture.size() / 2));
    spit(dir / "tail.pt", fixture.substr(fixture.size() / 2));
    std::string noise(4096, '\0');
    std::mt19937 rng(7);
    for (auto& c : noise) c = static_cast<char>(rng());
    spit(dir / "noise.pt", noise);
    fs::create_directory(dir / "folder.pt");
    const std::vector<std::pair<fs::path, std::string>> cases{
        {fixtures() / "state_dict.pth", "invalid_model"},
        {dir / "empty.pt", "invalid_model"},
        {dir / "text.pt", "invalid_model"},
        {dir / "truncated.pt", "invalid_model"},
        {dir / "tail.pt", "invalid_model"},
        {dir / "noise.pt", "invalid_model"},
        {dir / "missing.pt", "io_error"},
        {dir / "folder.pt", "io_error"},
    };
    for (const auto& [path, category] : cases) {
        BOOST_TEST_CONTEXT(path.filename()) {
            bool threw = false;
            try {
                kvcali::libtorch::load_script_layers(path);
            } catch (const kvcali::error& e) {
                threw = true;
                BOOST_TEST(kvcali::to_string(e.code()) == category);
                BOOST_TEST_REQUIRE(e.diagnostics().size() == 1u);
                BOOST_TEST(e.diagnostics()[0].where.file == path.string());
                BOOST_TEST(e.diagnostics()[0].message.find('\n') == std::string::npos);
            }
            BOOST_TEST(threw);
        }
    }
    // Damaged copies of a real file: loaded or refused with kvcali::error, nothing else.
    std::size_t loaded = 0, refused = 0;
    for (int i = 0; i < 40; ++i) {
        std::string damaged = fixture;
        for (int k = 0; k < 1 + i % 8; ++k) damaged[rng() % damaged.size()] = static_cast<char>(rng());
        const fs::path p = dir / ("damaged" + std::to_string(i) + ".pt");
        spit(p, damaged);
        try {
            kvcali::libtorch::load_script_layers(p);
            ++loaded;
        } catch (const kvcali::error& e) {
            BOOST_TEST(e.code() == kvcali::errc::invalid_model);
            ++refused;
        }
    }
    BOOST_TEST(loaded + refused == 40u);
}

BOOST_AUTO_TEST_CASE(cli_reads_torchscript_models) {
    temp_dir dir;
    for (const auto& pt : torchscript_fixtures()) {
        BOOST_TEST_CONTEXT("fixture " << pt.filename()) {
            const kvcali::layer_table want = kvcali::load_layer_list(layer_list_of(pt));
            std::vector<std::string> layer_args;
            for (const auto& l : want) {
                if (l.eligible) {
                    layer_args.push_back("--layer");
                    layer_args.push_back(l.name);
                }
            }
            auto generate = [&](const fs::path& model, const fs::path& out) {
                std::vector<std::string> args{"generate", "--model", model.string(), "-o", out.string(), "--quiet"};
                args.insert(args.end(), layer_args.begin(), layer_args.end());
                return run_cli(args);
            };
            const auto from_list = generate(layer_list_of(pt), dir / "list.json");
            BOOST_TEST_REQUIRE(from_list.status == 0, from_list.err);
            // The same file under each TorchScript extension.
            for (const std::string ext : {".pt", ".pth", ".ts"}) {
                const fs::path copy = dir / ("model" + ext);
                fs::copy_file(pt, copy, fs::copy_options::overwrite_existing);
                const auto r = generate(copy, dir / ("out" + ext + ".json"));
                BOOST_TEST(r.status == 0, ext << ": " << r.err);
                if (r.status == 0) BOOST_TEST(slurp(dir / ("out" + ext + ".json")) == slurp(dir / "list.json"), ext);
            }
        }
    }
    // The other commands that read a model: layers, check, explain.
    for (const auto& pt : torchscript_fixtures()) {
        BOOST_TEST_CONTEXT("fixture " << pt.filename()) {
            const auto from_pt = run_cli({"layers", "--model", pt.string(), "--json"});
            const auto from_list = run_cli({"layers", "--model", layer_list_of(pt).string(), "--json"});
            BOOST_TEST(from_pt.status == 0, from_pt.err);
            BOOST_TEST(from_pt.out == from_list.out);
            BOOST_TEST(from_pt.out.find("\"Linear\"") != std::string::npos, from_pt.out);
        }
    }
    const std::string attention = (fixtures() / "hf_attention_scripted.pt").string();
    const auto checked = run_cli({"check", "--model", attention, "--layer", "k_proj", "--layer", "v_proj"});
    BOOST_TEST(checked.status == 0, checked.err);
    const auto refused = run_cli({"check", "--model", attention, "--layer", "rotary_emb"});
    BOOST_TEST(refused.status == 1);
    BOOST_TEST(refused.err.find("[unsupported_layer_type]") != std::string::npos, refused.err);
    const auto explained = run_cli({"explain", "--model", attention, "--layer", "k_proj"});
    BOOST_TEST(explained.status == 0, explained.err);
    BOOST_TEST(explained.out.find("k_proj") != std::string::npos, explained.out);
    for (const std::string command : {"layers", "check", "explain"}) {
        std::vector<std::string> args{command, "--model", (fixtures() / "state_dict.pth").string()};
        if (command != "layers") args.insert(args.end(), {"--layer", "fc1"});
        const auto r = run_cli(args);
        BOOST_TEST(r.status == 1, command << ": " << r.err);
        BOOST_TEST(r.err.find("[invalid_model]") != std::string::npos, command << ": " << r.err);
    }

    // Not TorchScript: exit 1 with an invalid_model diagnostic naming the file, nothing written.
    spit(dir / "bad.pt", "not a zip");
    for (const fs::path& bad : {fixtures() / "state_dict.pth", dir / "bad.pt"}) {
        const auto r = run_cli({"generate", "--model", bad.string(), "-o", (dir / "never.json").string(), "--layer", "fc1"});
        BOOST_TEST(r.status == 1, r.err);
        BOOST_TEST(r.err.find("[invalid_model]") != std::string::npos, r.err);
        BOOST_TEST(r.err.find(bad.string() + ": error: ") != std::string::npos, r.err);
        BOOST_TEST(!fs::exists(dir / "never.json"));
    }
    const auto missing =
        run_cli({"generate", "--model", (dir / "missing.pt").string(), "-o", (dir / "never.json").string(), "--layer", "x"});
    BOOST_TEST(missing.status == 1);
    BOOST_TEST(missing.err.find("[io_error]") != std::string::npos, missing.err);
}

// ---------------------------------------------------------------------------------------------
// Every conformance case, its model.json built as a tree of real torch::nn modules.

namespace {

/// A user module of any class name (types the cases use that libtorch has no module for).
struct named_module : torch::nn::Module {
    explicit named_module(std::string class_name) : torch::nn::Module(std::move(class_name)) {}
};

std::shared_ptr<torch::nn::Module> make_module(const std::string& type, int64_t in, int64_t out, std::map<std::string, int>& made) {
    ++made[type];
    if (type == "Linear") return torch::nn::Linear(in, out).ptr();
    if (type == "MyLinear") return std::make_shared<MyLinear>(torch::nn::LinearOptions(in, out));
    if (type == "LayerNorm") return torch::nn::LayerNorm(torch::nn::LayerNormOptions({out})).ptr();
    if (type == "Embedding") return torch::nn::Embedding(in, out).ptr();
    if (type == "Conv1d") return torch::nn::Conv1d(torch::nn::Conv1dOptions(in, out, 1)).ptr();
    if (type == "Conv2d") return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)).ptr();
    if (type == "GELU") return torch::nn::GELU().ptr();
    if (type == "Dropout") return torch::nn::Dropout().ptr();
    if (type == "Module") return std::make_shared<torch::nn::Module>();
    --made[type];
    ++made["(user module " + type + ")"];
    return std::make_shared<named_module>(type);
}

int64_t dim(const boost::json::object& entry, const char* key) {
    const auto* v = entry.if_contains(key);
    return v != nullptr && v->is_int64() && v->as_int64() > 0 ? v->as_int64() : 4;
}

/// The model of a case as torch modules: every layer-list entry (containers included) becomes a
/// module registered under its parent.
std::shared_ptr<torch::nn::Module> torch_model_of(const fs::path& model_json, std::map<std::string, int>& made) {
    const kvcali::layer_table table = kvcali::load_layer_list(model_json);
    std::map<std::string, boost::json::object> entries;
    const boost::json::value doc = boost::json::parse(slurp(model_json));
    for (const auto& v : doc.as_array()) {
        const auto& o = v.as_object();
        entries[std::string(o.at("name").as_string())] = o;
    }
    auto root = std::make_shared<torch::nn::Module>();
    std::map<std::string, std::shared_ptr<torch::nn::Module>> by_name;
    for (const auto& l : table) {
        const auto it = entries.find(l.name);
        const boost::json::object none;
        const auto& entry = it == entries.end() ? none : it->second;
        const auto dot = l.name.rfind('.');
        auto& parent = dot == std::string::npos ? root : by_name.at(l.name.substr(0, dot));
        by_name[l.name] = parent->register_module(dot == std::string::npos ? l.name : l.name.substr(dot + 1),
                                                  make_module(l.type, dim(entry, "in"), dim(entry, "out"), made));
    }
    return root;
}

}  // namespace

BOOST_AUTO_TEST_CASE(conformance_cases_with_real_torch_modules) {
    std::map<std::string, int> made;
    run_conformance("torch modules", [&](const fs::path& dir, const fs::path& config_file,
                                         const std::optional<kvcali::quant_layers>& layers, const std::optional<fs::path>& cfg) {
        const auto model = torch_model_of(dir / "model.json", made);
        // The tree mirrors the layer list exactly (names, order, types).
        const kvcali::layer_table list = kvcali::load_layer_list(dir / "model.json");
        const kvcali::libtorch::module_graph graph(*model);
        BOOST_TEST_REQUIRE(graph.layers().size() == list.size());
        for (std::size_t i = 0; i < list.size(); ++i) {
            BOOST_TEST(graph.layers()[i].path == list[i].name);
            BOOST_TEST(graph.layers()[i].type == list[i].type);
        }
        kvcali::create_quant_cali_config(config_file, *model, layers, cfg);
    });
    std::cout << "modules built:";
    for (const auto& [type, n] : made) std::cout << ' ' << type << '=' << n;
    std::cout << '\n';
}

// Every conformance case as a TorchScript file, made from its model.json at build time by
// tests/models/make_models.py (torch.jit.script of an nn.Module tree; Linear is torch.nn.Linear).
BOOST_AUTO_TEST_CASE(conformance_cases_as_torchscript_files) {
    const fs::path models = conformance_models_dir();
    run_conformance("TorchScript files", [&](const fs::path& dir, const fs::path& config_file,
                                             const std::optional<kvcali::quant_layers>& layers, const std::optional<fs::path>& cfg) {
        const fs::path file = models / (dir.filename().string() + ".pt");
        BOOST_TEST_REQUIRE(fs::exists(file), file << " was not made");
        const kvcali::layer_table table = kvcali::libtorch::load_script_layers(file);
        kvcali::create_quant_cali_config(config_file, table, layers, cfg);
    });
}
