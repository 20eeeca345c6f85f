// Layer selectors (glob:, re:, auto:kv), their resolution rules, and the auto:kv naming rule on
// LLaMA-, GPT-2-, BLOOM-, Falcon- and Qwen-shaped layer lists.
#define BOOST_TEST_MODULE selectors
#include <boost/test/unit_test.hpp>

#include <kvcali/detail/regex.hpp>
#include <kvcali/kvcali.hpp>
#include <kvcali/selector.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <regex>
#include <thread>

#include "../support/test_support.hpp"

using namespace kvcali_test;

namespace {

kvcali::layer_table table_of(const std::vector<std::pair<std::string, std::string>>& layers) {
    kvcali::layer_table t;
    for (const auto& [name, type] : layers) t.add(name, type, type == "Linear");
    return t;
}

kvcali::layer_table llama(int n) {
    std::vector<std::pair<std::string, std::string>> l{{"model.embed_tokens", "Embedding"}};
    for (int i = 0; i < n; ++i) {
        const std::string p = "model.layers." + std::to_string(i);
        for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) l.emplace_back(p + ".self_attn." + proj, "Linear");
        for (const char* proj : {"gate_proj", "up_proj", "down_proj"}) l.emplace_back(p + ".mlp." + proj, "Linear");
        l.emplace_back(p + ".input_layernorm", "LlamaRMSNorm");
    }
    l.emplace_back("lm_head", "Linear");
    return table_of(l);
}

std::vector<std::string> names(const kvcali::resolved_config& doc) {
    std::vector<std::string> out;
    for (const auto& l : doc.layers) out.push_back(l.name);
    return out;
}

std::vector<std::string> selected(const kvcali::layer_table& t, std::vector<std::string> written,
                                  std::vector<kvcali::diagnostic>* warnings = nullptr) {
    kvcali::options opts;
    if (warnings) opts.on_warning = [warnings](const kvcali::diagnostic& d) { warnings->push_back(d); };
    return names(kvcali::resolve_quant_cali_config(t, kvcali::quant_layers(std::move(written)), std::nullopt, opts));
}

kvcali::errc failure(const kvcali::layer_table& t, std::vector<std::string> written, std::string* what = nullptr) {
    try {
        kvcali::resolve_quant_cali_config(t, kvcali::quant_layers(std::move(written)));
    } catch (const kvcali::error& e) {
        if (what) *what = e.what();
        return e.code();
    }
    BOOST_FAIL("no error");
    return kvcali::errc::invalid_argument;
}

using strings = std::vector<std::string>;

}  // namespace

BOOST_AUTO_TEST_CASE(glob_semantics) {
    using kvcali::glob_match;
    BOOST_TEST(glob_match("model.layers.*.self_attn.k_proj", "model.layers.12.self_attn.k_proj"));
    BOOST_TEST(!glob_match("model.*.k_proj", "model.layers.0.self_attn.k_proj"));  // * stays in one segment
    BOOST_TEST(glob_match("model.**.k_proj", "model.layers.0.self_attn.k_proj"));  // ** crosses segments
    BOOST_TEST(glob_match("**k_proj", "model.layers.0.self_attn.k_proj"));
    BOOST_TEST(glob_match("**.[kv]_proj", "a.b.v_proj"));
    BOOST_TEST(!glob_match("**.[kv]_proj", "a.b.q_proj"));
    BOOST_TEST(glob_match("**.[!q]_proj", "a.b.k_proj"));
    BOOST_TEST(glob_match("layer?", "layer7"));
    BOOST_TEST(!glob_match("a?b", "a.b"));  // ? is one character within a segment
    BOOST_TEST(glob_match("m.layers.[0-2].k", "m.layers.1.k"));
    BOOST_TEST(!glob_match("m.layers.[0-2].k", "m.layers.3.k"));
    BOOST_TEST(glob_match("*", "abc"));
    BOOST_TEST(!glob_match("*", "a.b"));
    BOOST_TEST(glob_match("**", "a.b"));
    BOOST_TEST(!glob_match("a*", ""));
    BOOST_TEST(glob_match("", ""));
    BOOST_TEST(glob_match("a[b", "a[b"));  // a malformed class is a literal '['
    // No exponential blow-up on adversarial patterns.
    BOOST_TEST(!glob_match("**a**a**a**a**a**a**a**a**b", std::string(2000, 'a')));
}

BOOST_AUTO_TEST_CASE(selectors_choose_eligible_layers_in_model_order) {
    const auto t = llama(3);
    BOOST_TEST(selected(t, {"glob:model.layers.*.self_attn.[kv]_proj"}) ==
                   (strings{"model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj", "model.layers.1.self_attn.k_proj",
                            "model.layers.1.self_attn.v_proj", "model.layers.2.self_attn.k_proj", "model.layers.2.self_attn.v_proj"}),
               boost::test_tools::per_element());
    BOOST_TEST(selected(t, {R"(re:model\.layers\.[12]\.self_attn\.v_proj)"}) ==
                   (strings{"model.layers.1.self_attn.v_proj", "model.layers.2.self_attn.v_proj"}),
               boost::test_tools::per_element());
    // Only eligible layers: the norms match the glob but are not selected.
    BOOST_TEST(selected(t, {"glob:model.layers.0.**"}).size() == 7u);
    BOOST_TEST(failure(t, {"glob:model.layers.0.*"}) == kvcali::errc::unknown_layer);  // * does not cross dots
    // re: matches the whole name.
    BOOST_TEST(failure(t, {"re:k_proj"}) == kvcali::errc::unknown_layer);
}

BOOST_AUTO_TEST_CASE(repeats_and_overlaps) {
    const auto t = llama(2);
    // Selected twice by selectors, or by a name and a selector: listed once, at its first place.
    BOOST_TEST(selected(t, {"model.layers.1.self_attn.k_proj", "glob:**.k_proj", "re:.*k_proj"}) ==
                   (strings{"model.layers.1.self_attn.k_proj", "model.layers.0.self_attn.k_proj"}),
               boost::test_tools::per_element());
    // An exact name given twice is still the reference's duplicate_layer.
    BOOST_TEST(failure(t, {"lm_head", "lm_head"}) == kvcali::errc::duplicate_layer);
}

BOOST_AUTO_TEST_CASE(a_selector_matching_nothing_is_an_error_with_near_names) {
    const auto t = llama(2);
    std::string what;
    BOOST_TEST(failure(t, {"glob:model.layers.*.self_attn.kv_proj"}, &what) == kvcali::errc::unknown_layer);
    BOOST_TEST(what.find("glob:model.layers.*.self_attn.kv_proj") != std::string::npos, what);
    BOOST_TEST(what.find("did you mean") != std::string::npos, what);
    BOOST_TEST(failure(t, {"re:(unclosed"}) == kvcali::errc::invalid_argument);
    BOOST_TEST(failure(t, {"auto:qk"}) == kvcali::errc::invalid_argument);
}

BOOST_AUTO_TEST_CASE(a_real_name_that_looks_like_a_selector_is_exact) {
    const auto t = table_of({{"glob:odd", "Linear"}, {"glob:odder", "Linear"}});
    BOOST_TEST(selected(t, {"glob:odd"}) == (strings{"glob:odd"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(auto_kv_on_common_architectures) {
    std::vector<kvcali::diagnostic> warnings;
    // LLaMA / Mistral / Qwen2: k_proj and v_proj.
    BOOST_TEST(
        selected(llama(2), {"auto:kv"}, &warnings) == (strings{"model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
                                                               "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj"}),
        boost::test_tools::per_element());
    BOOST_TEST(warnings.empty());
    // GPT-2 (and Qwen-1): fused c_attn, with a warning; c_proj and the MLP are not selected.
    const auto gpt2 = table_of({{"transformer.wte", "Embedding"},
                                {"transformer.h.0.attn.c_attn", "Linear"},
                                {"transformer.h.0.attn.c_proj", "Linear"},
                                {"transformer.h.0.mlp.c_fc", "Linear"},
                                {"transformer.h.1.attn.c_attn", "Linear"},
                                {"lm_head", "Linear"}});
    BOOST_TEST(selected(gpt2, {"auto:kv"}, &warnings) == (strings{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"}),
               boost::test_tools::per_element());
    BOOST_TEST_REQUIRE(warnings.size() == 1u);
    BOOST_TEST(warnings[0].message.find("fused") != std::string::npos);
    // BLOOM and Falcon: fused query_key_value.
    warnings.clear();
    const auto bloom = table_of({{"transformer.h.0.self_attention.query_key_value", "Linear"},
                                 {"transformer.h.0.self_attention.dense", "Linear"},
                                 {"transformer.h.0.mlp.dense_h_to_4h", "Linear"}});
    BOOST_TEST(selected(bloom, {"auto:kv"}, &warnings) == (strings{"transformer.h.0.self_attention.query_key_value"}),
               boost::test_tools::per_element());
    BOOST_TEST(warnings.size() == 1u);
    // Falcon: fused query_key_value under self_attention, MLP untouched.
    const auto falcon = table_of({{"transformer.word_embeddings", "Embedding"},
                                  {"transformer.h.0.self_attention.query_key_value", "Linear"},
                                  {"transformer.h.0.self_attention.dense", "Linear"},
                                  {"transformer.h.0.mlp.dense_h_to_4h", "Linear"},
                                  {"transformer.h.0.mlp.dense_4h_to_h", "Linear"},
                                  {"transformer.h.1.self_attention.query_key_value", "Linear"},
                                  {"lm_head", "Linear"}});
    BOOST_TEST(selected(falcon, {"auto:kv"}) ==
                   (strings{"transformer.h.0.self_attention.query_key_value", "transformer.h.1.self_attention.query_key_value"}),
               boost::test_tools::per_element());
    // Qwen (1): fused c_attn under attn, with w1/w2/c_proj in the MLP; Qwen2 is LLaMA-shaped (above).
    const auto qwen = table_of({{"transformer.wte", "Embedding"},
                                {"transformer.h.0.attn.c_attn", "Linear"},
                                {"transformer.h.0.attn.c_proj", "Linear"},
                                {"transformer.h.0.mlp.w1", "Linear"},
                                {"transformer.h.0.mlp.w2", "Linear"},
                                {"transformer.h.0.mlp.c_proj", "Linear"}});
    BOOST_TEST(selected(qwen, {"auto:kv"}) == (strings{"transformer.h.0.attn.c_attn"}), boost::test_tools::per_element());
    // Baichuan-style W_pack is fused too.
    BOOST_TEST(selected(table_of({{"model.layers.0.self_attn.W_pack", "Linear"}}), {"auto:kv"}).size() == 1u);
    // BERT-style key/value, Meta's wk/wv, and bare k/v only inside attention blocks.
    const auto mixed = table_of({{"encoder.layer.0.attention.self.query", "Linear"},
                                 {"encoder.layer.0.attention.self.key", "Linear"},
                                 {"encoder.layer.0.attention.self.value", "Linear"},
                                 {"layers.0.attention.wk", "Linear"},
                                 {"layers.0.attention.wv", "Linear"},
                                 {"blocks.0.attn.k", "Linear"},
                                 {"blocks.0.attn.v", "Linear"},
                                 {"blocks.0.mlp.k", "Linear"}});
    BOOST_TEST(selected(mixed, {"auto:kv"}).size() == 6u);
    // Strict mode makes the fused warning an error.
    kvcali::options strict;
    strict.strict = true;
    BOOST_CHECK_THROW(kvcali::resolve_quant_cali_config(gpt2, kvcali::quant_layers{"auto:kv"}, std::nullopt, strict), kvcali::error);
    // Nothing conventional: an error naming the selector.
    BOOST_TEST(failure(table_of({{"fc1", "Linear"}}), {"auto:kv"}) == kvcali::errc::unknown_layer);
}

BOOST_AUTO_TEST_CASE(auto_kv_every_documented_form) {
    // The README's list, each form on its own: key_proj/value_proj, to_k/to_v, and bare k/v only
    // under a parent whose name holds attn, attention or Attention (its other projections and k/v
    // elsewhere are not selected).
    const auto separate = table_of({{"blocks.0.attn.query_proj", "Linear"},
                                    {"blocks.0.attn.key_proj", "Linear"},
                                    {"blocks.0.attn.value_proj", "Linear"},
                                    {"unet.down.0.attn1.to_q", "Linear"},
                                    {"unet.down.0.attn1.to_k", "Linear"},
                                    {"unet.down.0.attn1.to_v", "Linear"},
                                    {"layers.0.SelfAttention.q", "Linear"},
                                    {"layers.0.SelfAttention.k", "Linear"},
                                    {"layers.0.SelfAttention.v", "Linear"},
                                    {"layers.0.ffn.k", "Linear"},
                                    {"layers.0.ffn.v", "Linear"},
                                    {"k", "Linear"}});
    std::vector<kvcali::diagnostic> warnings;
    BOOST_TEST(selected(separate, {"auto:kv"}, &warnings) ==
                   (strings{"blocks.0.attn.key_proj", "blocks.0.attn.value_proj", "unet.down.0.attn1.to_k", "unet.down.0.attn1.to_v",
                            "layers.0.SelfAttention.k", "layers.0.SelfAttention.v"}),
               boost::test_tools::per_element());
    BOOST_TEST(warnings.empty());
    // Fused projections, each selected with a warning that says it is fused.
    for (const std::string name :
         {"model.layers.0.self_attn.qkv_proj", "transformer.blocks.0.attn.Wqkv", "blocks.0.attn.qkv", "layers.0.self_attn.in_proj",
          "transformer.h.0.self_attention.query_key_value", "model.layers.0.self_attn.W_pack", "transformer.h.0.attn.c_attn"}) {
        BOOST_TEST_CONTEXT(name) {
            warnings.clear();
            BOOST_TEST(selected(table_of({{name, "Linear"}, {"lm_head", "Linear"}}), {"auto:kv"}, &warnings) == strings{name},
                       boost::test_tools::per_element());
            BOOST_TEST_REQUIRE(warnings.size() == 1u);
            BOOST_TEST(warnings[0].message.find("fused") != std::string::npos, warnings[0].message);
        }
    }
    // A conventional name on a layer that cannot be quantized is not selected.
    BOOST_TEST(failure(table_of({{"blocks.0.attn.key_proj", "Conv1d"}}), {"auto:kv"}) == kvcali::errc::unknown_layer);
}

BOOST_AUTO_TEST_CASE(selectors_in_quant_cfg_with_overrides) {
    temp_dir dir;
    const auto t = llama(4);
    spit(dir / "quant.cfg", R"(kv_cache_quant_config {
  quant_layers: 'glob:model.layers.*.self_attn.[kv]_proj'
  calibration_config { hfmg_quantize {} }
}
override_layers_configs { layer_name: 're:model\\.layers\\.[02]\\.self_attn\\.v_proj' kv_data_quant_config { ifmr_quantize { search_step: 0.02 } } }
override_layers_configs { layer_name: 'glob:model.layers.2.self_attn.*' kv_data_quant_config { ifmr_quantize { search_step: 0.03 } } }
)");
    std::vector<kvcali::diagnostic> warnings;
    kvcali::options opts;
    opts.on_warning = [&](const kvcali::diagnostic& d) { warnings.push_back(d); };
    const auto doc = kvcali::create_quant_cali_config(dir / "config.json", t, std::nullopt, dir / "quant.cfg", opts);
    BOOST_TEST_REQUIRE(doc.layers.size() == 10u);  // the 8 K/V projections, then q_proj and o_proj of layer 2
    auto step_of = [&](const std::string& name) -> float {
        for (const auto& l : doc.layers) {
            if (l.name == name) return doc.algorithm_of(l).act_algo == "ifmr" ? l.values[4]->real : -1.0f;
        }
        return -2.0f;
    };
    BOOST_TEST(step_of("model.layers.0.self_attn.v_proj") == 0.02f);
    BOOST_TEST(step_of("model.layers.1.self_attn.v_proj") == -1.0f);  // hfmg from the common config
    BOOST_TEST(step_of("model.layers.2.self_attn.v_proj") == 0.03f);  // two overrides: the later wins...
    BOOST_TEST_REQUIRE(warnings.size() == 1u);                        // ...with a warning
    BOOST_TEST(warnings[0].message.find("later one applies") != std::string::npos, warnings[0].message);
    // The JSON holds concrete names only.
    const std::string json = slurp(dir / "config.json");
    BOOST_TEST(json.find("glob:") == std::string::npos);
    BOOST_TEST(json.find("re:") == std::string::npos);
    // explain: which selector chose each layer.
    BOOST_TEST(doc.layers[0].selector == "glob:model.layers.*.self_attn.[kv]_proj");
}

BOOST_AUTO_TEST_SUITE(re_selectors)

// The `re:` matcher against std::regex (ECMAScript), which it replaced: 60,000 generated patterns
// (6,000 under the sanitizers, where std::regex at -O0 took a minute) over the whole syntax, each
// accepted or refused by both, and each accepted one tried on 20 generated names with the same
// answer. Quantifiers are capped at two per pattern so that std::regex's backtracking stays fast;
// `^`/`$` are not put inside lookaheads (std::regex lets a lookahead's `^` match where the
// lookahead starts, which ECMAScript does not).
BOOST_AUTO_TEST_CASE(agrees_with_std_regex) {
    namespace rx = kvcali::detail::regex;
    static const char* const pieces[] = {
        "a",   "b",     "_",       ".",   "*",   "+",      "?",   "|",     "(",    ")",     "[",      "]",         "{",
        "}",   "^",     "$",       "\\",  "-",   ",",      "0",   "1",     "2",    "\\d",   "\\w",    "\\s",       "\\W",
        "\\D", "\\b",   "\\B",     "(?=", "(?!", "(?:",    "{2}", "{1,2}", "{2,}", "[^a-]", "[a-c_]", "[:alpha:]", "[[:digit:]]",
        "\\.", "\\x61", "\\u0062", ".*",  "\\-", "[\\d.]", "[]",  "[^]",   "*?",   "\\t"};
    const std::string name_bytes = "ab_ .-0129\n";
    std::mt19937 rng(20261201);
    int accepted = 0, refused = 0, answers = 0;
    const int patterns = static_cast<int>(kvcali_test::sample(60000, 10));
    for (int n = 0; n < patterns; ++n) {
        std::string pattern;
        int quantifiers = 0;
        bool in_lookahead = false;
        for (int len = 1 + static_cast<int>(rng() % 10), i = 0; i < len; ++i) {
            const std::string piece = pieces[rng() % std::size(pieces)];
            const bool quantifier = piece == "*" || piece == "+" || piece == "?" || piece[0] == '{' || piece == ".*" || piece == "*?";
            if (quantifier && ++quantifiers > 2) continue;
            if (piece.starts_with("(?=") || piece.starts_with("(?!")) in_lookahead = true;
            if (in_lookahead && (piece == "^" || piece == "$")) continue;
            pattern += piece;
        }
        std::string why;
        const auto mine = rx::program::compile(pattern, why);
        std::optional<std::regex> theirs;
        try {
            theirs.emplace(pattern, std::regex::ECMAScript);
        } catch (const std::regex_error&) {
        }
        if (!mine && why.starts_with("backreferences")) continue;  // (see the next case)
        BOOST_TEST_REQUIRE(mine.has_value() == theirs.has_value(), "pattern " << pattern << ": " << why);
        if (!mine) {
            ++refused;
            BOOST_TEST(why.find(" at offset ") != std::string::npos, why);
            continue;
        }
        ++accepted;
        for (int t = 0; t < 20; ++t) {
            std::string name;
            for (int len = static_cast<int>(rng() % 7), i = 0; i < len; ++i) name += name_bytes[rng() % name_bytes.size()];
            BOOST_TEST_REQUIRE(mine->full_match(name) == std::regex_match(name, *theirs), "pattern " << pattern << " on \"" << name << '"');
            ++answers;
        }
    }
    BOOST_TEST(accepted > patterns / 3);
    BOOST_TEST(refused > patterns / 6);
    BOOST_TEST_MESSAGE(accepted << " patterns accepted, " << refused << " refused by both; " << answers << " answers agree");
}

BOOST_AUTO_TEST_CASE(what_std_regex_did_differently) {
    namespace rx = kvcali::detail::regex;
    std::string why;
    // Backreferences need backtracking: refused, with where.
    BOOST_TEST(!rx::program::compile("(a)\\1", why).has_value());
    BOOST_TEST(why == "backreferences (\\1) are not supported at offset 4");
    // \cX is the control character X % 32 (ECMAScript), not the letter X.
    BOOST_TEST(rx::program::compile("\\cI", why)->full_match("\t"));
    // Lookahead, the usual way to leave layers out.
    const auto not_mlp = rx::program::compile("(?!.*mlp).*_proj", why);
    BOOST_TEST_REQUIRE(not_mlp.has_value());
    BOOST_TEST(not_mlp->full_match("model.layers.0.self_attn.k_proj"));
    BOOST_TEST(!not_mlp->full_match("model.layers.0.mlp.up_proj"));
}

// The lookaheads' answers for one text, kept in the matcher's own open-addressing table: every key
// answered as stored, through growth from empty to 20,000 entries, and none after clear() (which
// releases a table that large).
BOOST_AUTO_TEST_CASE(lookahead_answers_are_kept_and_forgotten) {
    kvcali::detail::regex::answer_memo memo;
    BOOST_TEST(!memo.find(0).has_value());
    memo.clear();  // (empty: nothing to do)
    for (std::uint64_t k = 0; k < 20000; ++k) {
        // Keys as the matcher makes them (lookahead * (text size + 1) + position): clustered.
        const std::uint64_t key = (k % 7) * 100003 + k / 7;
        BOOST_TEST_REQUIRE(!memo.find(key).has_value());
        memo.add(key, k % 3 == 0);
    }
    std::size_t right = 0;
    for (std::uint64_t k = 0; k < 20000; ++k) {
        const std::optional<bool> answer = memo.find((k % 7) * 100003 + k / 7);
        right += answer.has_value() && *answer == (k % 3 == 0);
    }
    BOOST_TEST(right == 20000u);
    BOOST_TEST(!memo.find(7 * 100003).has_value());
    BOOST_TEST(!memo.find(std::uint64_t{1} << 60).has_value());
    memo.clear();
    BOOST_TEST(!memo.find(0).has_value());
    BOOST_TEST(!memo.find(100003).has_value());
    memo.add(5, true);
    memo.add(6, false);
    BOOST_TEST(*memo.find(5));
    BOOST_TEST(!*memo.find(6));
    memo.clear();
    BOOST_TEST(!memo.find(5).has_value());
}

BOOST_AUTO_TEST_CASE(time_is_linear_in_the_name) {
    namespace rx = kvcali::detail::regex;
    std::string why;
    // Patterns that make a backtracking matcher take exponential time or recurse once per byte
    // (std::regex overflows the stack on the second), on a 1 MB name: answered at once.
    const std::string name(1 << 20, 'a');
    BOOST_TEST(!rx::program::compile("(a|aa)*b", why)->full_match(name));
    BOOST_TEST(rx::program::compile("(a*)*", why)->full_match(name));
    BOOST_TEST(!rx::program::compile("(?=a*b).*", why)->full_match(name.substr(0, 4096)));
    // And a pattern too large to run is refused when compiled.
    BOOST_TEST(!rx::program::compile("((a{1000}){1000}){1000}", why).has_value());
    BOOST_TEST(why.find("too large") != std::string::npos, why);
    BOOST_TEST(!rx::program::compile(std::string(1000, '(') + std::string(1000, ')'), why).has_value());
    BOOST_TEST(why.find("nested deeper") != std::string::npos, why);
}

BOOST_AUTO_TEST_CASE(work_is_bounded_by_a_budget) {
    namespace rx = kvcali::detail::regex;
    std::string why;
    // A lookahead that reads to the end of the name from every byte: quadratic in the name.
    const auto quadratic = rx::program::compile("((?=.*x).)*y", why);
    const std::string name = std::string(3000, 'a') + "xy";
    BOOST_TEST(quadratic->full_match(name));  // about 27 million steps, unbounded
    std::uint64_t budget = 1'000'000;
    BOOST_TEST(!quadratic->full_match(name, budget).has_value());
    BOOST_TEST(budget == 0u);
    budget = 100'000'000;
    BOOST_TEST((quadratic->full_match(name, budget) == std::optional<bool>(true)));
    const std::uint64_t used = 100'000'000 - budget;
    BOOST_TEST(used > 4'500'000u);  // at least one step per byte the lookaheads read (3000^2 / 2)
    BOOST_TEST(used < 40'000'000u);
    budget = used;  // exactly enough
    BOOST_TEST((quadratic->full_match(name, budget) == std::optional<bool>(true)));
    budget = used - 1;
    BOOST_TEST(!quadratic->full_match(name, budget).has_value());
    // The buffers kept between matches (per thread) give the same answers after a match that ran
    // out, and from several threads at once.
    const auto kv = rx::program::compile(R"(.*\.(k|v)_proj)", why);
    const std::vector<std::string> names{"model.layers.0.self_attn.k_proj", "model.layers.0.mlp.up_proj", "a.v_proj", "v_proj", ".k_proj"};
    const std::vector<bool> expected{true, false, true, false, true};
    for (std::size_t i = 0; i < names.size(); ++i) BOOST_TEST(kv->full_match(names[i]) == expected[i]);
    std::vector<int> wrong(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 2000; ++round) {
                const std::size_t i = static_cast<std::size_t>(round + t) % names.size();
                wrong[static_cast<std::size_t>(t)] += kv->full_match(names[i]) != expected[i] ? 1 : 0;
            }
        });
    }
    for (auto& th : threads) th.join();
    BOOST_TEST(wrong == std::vector<int>(4, 0), boost::test_tools::per_element());

    // The resolver's budget: 2^24 steps plus 256 per byte of the names, so a long name against
    // this pattern is an error naming the selector and the layer, in well under a second.
    kvcali::layer_table t;
    t.add("model.layers.0.self_attn.k_proj", "Linear", true);
    t.add(std::string(20000, 'a') + "xy", "Linear", true);
    std::string what;
    BOOST_TEST(failure(t, {"re:((?=.*x).)*y"}, &what) == kvcali::errc::invalid_argument);
    BOOST_TEST(what.find("selector \"re:((?=.*x).)*y\" needs more than 21906176 matching steps over the model's layer names (it ran "
                         "out at layer \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" (20002 "
                         "bytes)): simplify the pattern") != std::string::npos,
               what);
    // A plain pattern over the same names stays well inside it.
    BOOST_TEST(selected(t, {R"(re:.*\.k_proj)"}) == (strings{"model.layers.0.self_attn.k_proj"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(errors_say_what_and_where) {
    const auto t = llama(1);
    std::string what;
    BOOST_TEST(failure(t, {"re:model.(layers"}, &what) == kvcali::errc::invalid_argument);
    BOOST_TEST(what.find("invalid regular expression: '(' without a matching ')' at offset 6") != std::string::npos, what);
    BOOST_TEST(failure(t, {"re:a{3,2}"}, &what) == kvcali::errc::invalid_argument);
    BOOST_TEST(what.find("wrong order") != std::string::npos, what);
    BOOST_TEST(failure(t, {"re:[z-a]"}, &what) == kvcali::errc::invalid_argument);
    BOOST_TEST(what.find("from a higher character to a lower one") != std::string::npos, what);
}

BOOST_AUTO_TEST_SUITE_END()
