// Reading config.json back: round trips of every conformance expected.json, the consumer's
// validation (paths, positions, categories), exact numbers, calibration helpers, `kvcali validate`.
// The first include proves that the public header compiles on its own.
#include <kvcali/config_reader.hpp>

#define BOOST_TEST_MODULE reader
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <kvcali/config_writer.hpp>
#include <kvcali/detail/json_reader.hpp>  // the number helpers tested below
#include <kvcali/layer_list.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>
#include <tuple>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using namespace kvcali_test;

namespace {

std::vector<fs::path> cases_with_expected_json() {
    std::vector<fs::path> out;
    for (const auto& entry : fs::directory_iterator(conformance_cases())) {
        if (fs::exists(entry.path() / "expected.json")) out.push_back(entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

/// Reads `text`; returns every diagnostic (errors and warnings) and whether it succeeded.
struct read_result {
    bool ok = false;
    std::vector<kvcali::diagnostic> diagnostics;
    kvcali::resolved_config config;

    const kvcali::diagnostic* find(kvcali::errc category, kvcali::severity level = kvcali::severity::error) const {
        for (const auto& d : diagnostics) {
            if (d.category == category && d.severity == level) return &d;
        }
        return nullptr;
    }
    std::string all() const {
        std::string out;
        for (const auto& d : diagnostics) out += d.to_string() + "\n";
        return out;
    }
};

read_result read_text(const std::string& text, bool strict = false, const kvcali::layer_table* model = nullptr) {
    read_result r;
    kvcali::diagnostics diags(strict);
    r.config = kvcali::read_config_json(text, "config.json", kvcali::default_policies::algorithms, diags, model);
    r.ok = !diags.has_errors();
    r.diagnostics = diags.take();
    return r;
}

const std::string ifmr_block =
    R"({"act_algo":"ifmr","max_percentile":0.999999,"min_percentile":0.999999,"search_range":[0.7,1.3],"search_step":0.01,"quant_granularity":0})";
const std::string hfmg_block = R"({"act_algo":"hfmg","num_of_bins":4096,"quant_granularity":0})";

std::string doc_with(const std::string& block, const std::string& layer = "k") {
    return "{\"batch_num\":1,\"activation_offset\":true,\"" + layer + "\":{\"kv_data_quant_config\":" + block + "}}";
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
    const auto at = s.find(from);
    BOOST_TEST_REQUIRE(at != std::string::npos, "no '" << from << "' in " << s);
    return s.replace(at, from.size(), to);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Round trips

BOOST_AUTO_TEST_CASE(every_expected_json_round_trips_byte_for_byte) {
    const auto cases = cases_with_expected_json();
    BOOST_TEST_REQUIRE(cases.size() == 181u);  // every conformance case with an expected.json
    std::size_t identical = 0, layers = 0;
    for (const auto& dir : cases) {
        const std::string bytes = slurp(dir / "expected.json");
        std::vector<kvcali::diagnostic> warnings;
        kvcali::reader_options opts;
        opts.on_warning = [&](const kvcali::diagnostic& d) { warnings.push_back(d); };
        const kvcali::layer_table model = kvcali::load_layer_list(dir / "model.json");
        opts.model = &model;
        try {
            const kvcali::resolved_config doc = kvcali::read_quant_cali_config(dir / "expected.json", opts);
            const std::string again = kvcali::write_config_json(doc);
            BOOST_TEST(again == bytes, dir.filename().string() << ": read then written differs");
            identical += again == bytes ? 1 : 0;
            layers += doc.layers.size();
        } catch (const kvcali::error& e) {
            BOOST_TEST(false, dir.filename().string() << ": " << e.what());
        }
        // min_percentile outside (0.5, 1] and steps larger than the range are the reference's
        // accepted-with-warning values; nothing else may warn about a file the writer wrote.
        for (const auto& w : warnings) {
            BOOST_TEST(w.category == kvcali::errc::invalid_value, dir.filename().string() << ": " << w.to_string());
        }
    }
    BOOST_TEST(identical == cases.size());
    BOOST_TEST_MESSAGE(identical << " of " << cases.size() << " expected.json files round-trip (" << layers << " layers)");
}

BOOST_AUTO_TEST_CASE(the_parsed_values_are_the_written_ones) {
    const auto doc = kvcali::parse_quant_cali_config(R"({
    "batch_num":3,
    "activation_offset":false,
    "a.b":{
        "kv_data_quant_config":{
            "act_algo":"ifmr",
            "max_percentile":0.99,
            "min_percentile":0.98,
            "search_range":[
                0.5,
                1.5
            ],
            "search_step":0.02,
            "asymmetric":true,
            "quant_granularity":1
        }
    },
    "\u6ce8":{
        "kv_data_quant_config":{
            "act_algo":"hfmg",
            "num_of_bins":1024,
            "quant_granularity":0
        }
    }
})");
    BOOST_TEST(doc.batch_num == 3u);
    BOOST_TEST(doc.activation_offset == false);
    BOOST_TEST_REQUIRE(doc.layers.size() == 2u);
    BOOST_TEST(doc.layers[0].name == "a.b");
    BOOST_TEST(doc.algorithm_of(doc.layers[0]).act_algo == "ifmr");
    const kvcali::param_view ifmr(doc.algorithm_of(doc.layers[0]).params, doc.layers[0].values);
    BOOST_TEST(ifmr.real("max_percentile") == 0.99f);
    BOOST_TEST(ifmr.real("search_range_start") == 0.5f);
    BOOST_TEST(ifmr.real("search_range_end") == 1.5f);
    BOOST_TEST(ifmr.get("asymmetric")->boolean == true);
    BOOST_TEST(ifmr.get("quant_granularity")->enumerator == 1);
    BOOST_TEST(doc.layers[1].name == "\xE6\xB3\xA8");  // U+6CE8 as UTF-8
    BOOST_TEST(doc.algorithm_of(doc.layers[1]).act_algo == "hfmg");
    // Positions of what was read: the layer key and a value.
    BOOST_TEST(doc.layers[0].listed.where.line == 4u);
    BOOST_TEST(doc.layers[0].listed.where.column == 5u);
    BOOST_TEST(doc.layers[0].sources[0].where.line == 7u);
    BOOST_TEST(doc.layers[0].sources[0].where.column == 30u);
}

// ---------------------------------------------------------------------------------------------
// Errors: category, JSON path, line and column

struct error_case {
    const char* name;
    std::string text;  ///< '@' marks where the diagnostic must point (and is removed)
    kvcali::errc category;
    std::string path;
    std::string message_part;
};

/// Removes the '@' marker; returns the text and the 1-based line and byte column it marked.
std::tuple<std::string, std::uint32_t, std::uint32_t> take_marker(std::string text) {
    const auto at = text.find('@');
    BOOST_TEST_REQUIRE(at != std::string::npos, "no @ marker in " << text);
    text.erase(at, 1);
    const auto line_start = text.rfind('\n', at == 0 ? 0 : at - 1);
    const auto line = static_cast<std::uint32_t>(1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
    const auto column = static_cast<std::uint32_t>(line_start == std::string::npos || line == 1 ? at + 1 : at - line_start);
    return {text, line, column};
}

BOOST_AUTO_TEST_CASE(errors_name_the_json_path_line_and_column) {
    using kvcali::errc;
    const std::string good = doc_with(ifmr_block);
    const std::string max_p = "\"max_percentile\":0.999999";
    const std::vector<error_case> cases = {
        {"duplicate layer",
         "{\"batch_num\":1,\"activation_offset\":true,\n\"k\":{\"kv_data_quant_config\":" + ifmr_block +
             "},\n  @\"k\":{\"kv_data_quant_config\":" + hfmg_block + "}}",
         errc::duplicate_layer, "$.k", "(first at 2:1)"},
        {"duplicate global",
         "{\"batch_num\":1,@\"batch_num\":2,\"activation_offset\":true,\"k\":{\"kv_data_quant_config\":" + ifmr_block + "}}",
         errc::parse_error, "$.batch_num", "duplicate key \"batch_num\""},
        {"duplicate parameter", replace(good, "\"search_step\":0.01", "\"search_step\":0.01,@\"search_step\":0.02"), errc::parse_error,
         "$.k.kv_data_quant_config.search_step", "duplicate key \"search_step\""},
        {"duplicate deep inside an ignored key",
         replace(good, "\"quant_granularity\":0", "\"quant_granularity\":0,\"x\":{\"y\":[{\"z\":1,@\"z\":2}]}"), errc::parse_error,
         "$.k.kv_data_quant_config.x.y[0].z", "duplicate key \"z\""},
        {"float written as an integer", replace(good, max_p, "\"max_percentile\":@1"), errc::parse_error,
         "$.k.kv_data_quant_config.max_percentile", "1.0, not 1"},
        {"integer in search_range", replace(good, "[0.7,1.3]", "[0.7,@2]"), errc::parse_error, "$.k.kv_data_quant_config.search_range[1]",
         "2.0, not 2"},
        {"search_range of one", replace(good, "[0.7,1.3]", "@[0.7]"), errc::parse_error, "$.k.kv_data_quant_config.search_range",
         "an array of 2 values [search_range_start, search_range_end], found an array of 1"},
        {"unknown top-level key", replace(good, "\"activation_offset\":true", "\"activation_offset\":true,\"batch_nun\":@3"),
         errc::parse_error, "$.batch_nun", "did you mean \"batch_num\"?"},
        {"missing kv_data_quant_config", replace(good, "\"k\":{\"kv_data_quant_config\":", "\"k\":@{\"kv_data_quant_confg\":"),
         errc::parse_error, "$.k", "has no kv_data_quant_config"},
        {"kv_data_quant_config not an object", doc_with("@[]"), errc::parse_error, "$.k.kv_data_quant_config", "must be an object"},
        {"no act_algo", replace(good, "{\"act_algo\":\"ifmr\",", "@{"), errc::parse_error, "$.k.kv_data_quant_config", "has no act_algo"},
        {"unknown act_algo", replace(good, "\"ifmr\"", "@\"ifmx\""), errc::parse_error, "$.k.kv_data_quant_config.act_algo",
         "did you mean \"ifmr\"?"},
        {"max_percentile above one", replace(good, max_p, "\"max_percentile\":@1.5"), errc::invalid_value,
         "$.k.kv_data_quant_config.max_percentile", "must be greater than 0.5"},
        {"search_range reversed", replace(replace(good, "[0.7,1.3]", "[1.3,0.7]"), "{\"act_algo\"", "@{\"act_algo\""), errc::invalid_value,
         "$.k.kv_data_quant_config", "must not be greater than search_range_end"},
        {"search_step zero", replace(good, "\"search_step\":0.01", "\"search_step\":@0.0"), errc::invalid_value,
         "$.k.kv_data_quant_config.search_step", "greater than zero"},
        {"NaN", replace(good, "\"search_step\":0.01", "\"search_step\":@NaN"), errc::invalid_value, "$.k.kv_data_quant_config.search_step",
         "finite"},
        {"beyond float32", replace(good, "[0.7,1.3]", "[0.7,@3.5e38]"), errc::invalid_value, "$.k.kv_data_quant_config.search_range[1]",
         "finite"},
        {"num_of_bins", doc_with(replace(hfmg_block, "4096", "@100")), errc::invalid_value, "$.k.kv_data_quant_config.num_of_bins",
         "1024, 2048, 4096, 8192"},
        {"num_of_bins as a float", doc_with(replace(hfmg_block, "4096", "@4096.0")), errc::parse_error,
         "$.k.kv_data_quant_config.num_of_bins", "an integer"},
        {"quant_granularity 2", doc_with(replace(hfmg_block, "\"quant_granularity\":0", "\"quant_granularity\":@2")), errc::parse_error,
         "$.k.kv_data_quant_config.quant_granularity", "0 (per_tensor), 1 (per_channel)"},
        {"asymmetric as a number", replace(good, "\"quant_granularity\":0", "\"asymmetric\":@1,\"quant_granularity\":0"), errc::parse_error,
         "$.k.kv_data_quant_config.asymmetric", "true or false"},
        {"batch_num zero", replace(good, "\"batch_num\":1", "\"batch_num\":@0"), errc::invalid_value, "$.batch_num", "at least 1"},
        {"batch_num negative", replace(good, "\"batch_num\":1", "\"batch_num\":@-1"), errc::parse_error, "$.batch_num", "uint32"},
        {"batch_num above uint32", replace(good, "\"batch_num\":1", "\"batch_num\":@4294967296"), errc::parse_error, "$.batch_num",
         "uint32"},
        {"batch_num as a float", replace(good, "\"batch_num\":1", "\"batch_num\":@1.0"), errc::parse_error, "$.batch_num", "an integer"},
        {"activation_offset as a string", replace(good, "true", "@\"true\""), errc::parse_error, "$.activation_offset",
         "true or false, found the string \"true\""},
        {"no layer", "@{\"batch_num\":1,\"activation_offset\":true}", errc::no_quant_layers, "$", "no layer"},
        {"not an object", "@[1]", errc::parse_error, "$", "must be a JSON object"},
        {"syntax: missing brace", "{\"batch_num\":1,\n\"activation_offset\":true@", errc::parse_error, "$", "expected ',' or '}'"},
        {"syntax: trailing comma", "{\"batch_num\":1,@}", errc::parse_error, "$", "expected a string key"},
        {"syntax: leading zero", "{\"batch_num\":@01}", errc::parse_error, "$", "does not start with 0"},
        {"syntax: lone surrogate", doc_with(ifmr_block, "@\\udc00"), errc::parse_error, "$", "surrogate"},
        {"syntax: trailing text", good + " @x", errc::parse_error, "$", "end of the text"},
        {"empty layer name", replace(doc_with(ifmr_block, ""), "\"\":", "@\"\":"), errc::unknown_layer, "$[\"\"]", "root"},
    };
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT(c.name) {
            const auto [text, line, column] = take_marker(c.text);
            const read_result r = read_text(text);
            BOOST_TEST(!r.ok);
            const kvcali::diagnostic* d = r.find(c.category);
            BOOST_TEST_REQUIRE(d != nullptr, "no " << kvcali::to_string(c.category) << " error among:\n" << r.all());
            BOOST_TEST(d->json_path == c.path);
            BOOST_TEST(d->where.file == "config.json");
            BOOST_TEST(d->where.line == line);
            BOOST_TEST(d->where.column == column);
            BOOST_TEST(d->message.find(c.message_part) != std::string::npos, d->message);
            BOOST_TEST(d->message.rfind(c.path + ": ", 0) == 0, "the message starts with its path: " << d->message);
        }
    }
}

BOOST_AUTO_TEST_CASE(every_problem_is_reported_together) {
    std::string text = doc_with(ifmr_block);
    text = replace(text, "\"batch_num\":1", "\"batch_num\":0");
    text = replace(text, "\"max_percentile\":0.999999", "\"max_percentile\":1");
    text = replace(text, "[0.7,1.3]", "[0.7,\"x\"]");
    const read_result r = read_text(text);
    BOOST_TEST(!r.ok);
    std::size_t errors = 0;
    for (const auto& d : r.diagnostics) errors += d.is_error() ? 1 : 0;
    BOOST_TEST(errors == 3u, r.all());
    // The exception carries them all; the first error's category is the code.
    try {
        (void)kvcali::parse_quant_cali_config(text);
        BOOST_TEST(false, "no exception");
    } catch (const kvcali::error& e) {
        BOOST_TEST(e.diagnostics().size() == 3u);
        BOOST_TEST((e.code() == kvcali::errc::invalid_value));
        BOOST_TEST(std::string(e.what()) ==
                   "config.json:1:14: error: $.batch_num: batch_num = 0: batch_num must be at least 1 [invalid_value]");
    }
}

// ---------------------------------------------------------------------------------------------
// Warnings (the reference accepts these) and strict mode

BOOST_AUTO_TEST_CASE(warnings_do_not_fail_unless_strict) {
    const std::string good = doc_with(ifmr_block);
    const std::vector<std::pair<std::string, std::string>> warned = {
        {replace(good, "\"quant_granularity\":0", "\"quant_granularity\":0,\"search_stepp\":0.1"), "did you mean \"search_step\"?"},
        {replace(good, "\"quant_granularity\":0", "\"quant_granularity\":0,\"num_of_bins\":4096"), "it is a parameter of hfmg"},
        {replace(good, "\"min_percentile\":0.999999", "\"min_percentile\":0.2"), "the reference does not check it"},
        {replace(good, "\"search_step\":0.01", "\"search_step\":0.9"), "larger than the search range"},
        {replace(good, ",\"search_step\":0.01", ""), "search_step is missing; the default 0.01 is used"},
        {replace(good, ",\"search_range\":[0.7,1.3]", ""), "search_range is missing; the default [0.7, 1.3] is used"},
        {replace(good, "\"batch_num\":1,", ""), "batch_num is missing; the default 1 is used"},
        {replace(good, "}}", "},\"comment\":\"x\"}"), "unknown key \"comment\" in a layer object is ignored"},
        {replace(good, "0.999999", "0.99999999999"), "holds more precision than float32: it is read as 1.0"},
    };
    for (const auto& [text, message] : warned) {
        BOOST_TEST_CONTEXT(message) {
            const read_result lax = read_text(text);
            BOOST_TEST(lax.ok, lax.all());
            bool found = false;
            for (const auto& d : lax.diagnostics) found = found || (!d.is_error() && d.message.find(message) != std::string::npos);
            BOOST_TEST(found, lax.all());
            const read_result strict = read_text(text, true);
            BOOST_TEST(!strict.ok);
        }
    }
    // Missing values take the policy's defaults, so the result is complete and writable.
    const auto doc = kvcali::parse_quant_cali_config(replace(good, ",\"search_step\":0.01", ""));
    BOOST_TEST(kvcali::write_config_json(doc).find("\"search_step\":0.01") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(warnings_reach_the_sink_and_the_outcome) {
    const temp_dir dir;
    spit(dir / "config.json", replace(doc_with(ifmr_block), "\"quant_granularity\":0", "\"quant_granularity\":0,\"x\":1"));
    std::size_t seen = 0;
    kvcali::reader_options opts;
    opts.on_warning = [&](const kvcali::diagnostic&) { ++seen; };
    const auto ok = kvcali::try_read_quant_cali_config(dir / "config.json", opts);
    BOOST_TEST(static_cast<bool>(ok));
    BOOST_TEST(seen == 1u);
    BOOST_TEST(ok.diagnostics().size() == 1u);
    BOOST_TEST(!ok.code().has_value());

    spit(dir / "bad.json", replace(doc_with(ifmr_block), "\"max_percentile\":0.999999", "\"max_percentile\":1"));
    const auto bad = kvcali::try_read_quant_cali_config(dir / "bad.json");
    BOOST_TEST(!bad);
    BOOST_TEST((bad.code() == kvcali::errc::parse_error));
    BOOST_TEST_REQUIRE(bad.diagnostics().size() == 1u);
    BOOST_TEST(bad.diagnostics()[0].where.file == (dir / "bad.json").string());

    const auto missing = kvcali::try_read_quant_cali_config(dir / "missing.json");
    BOOST_TEST((missing.code() == kvcali::errc::io_error));
}

// ---------------------------------------------------------------------------------------------
// Against a model

BOOST_AUTO_TEST_CASE(layers_are_checked_against_a_model) {
    kvcali::diagnostics model_diags;
    const kvcali::layer_table model = kvcali::parse_layer_list(
        R"([{"name":"model.layers.0.self_attn.k_proj","type":"Linear"},{"name":"model.layers.0.self_attn.rotary","type":"Rotary"}])",
        "model.json", model_diags);
    BOOST_TEST_REQUIRE(!model_diags.has_errors());

    const read_result ok = read_text(doc_with(ifmr_block, "model.layers.0.self_attn.k_proj"), false, &model);
    BOOST_TEST(ok.ok, ok.all());

    const read_result typo = read_text(doc_with(ifmr_block, "model.layers.0.self_attn.k_prj"), false, &model);
    const auto* unknown = typo.find(kvcali::errc::unknown_layer);
    BOOST_TEST_REQUIRE(unknown != nullptr, typo.all());
    BOOST_TEST(unknown->message.find("did you mean \"model.layers.0.self_attn.k_proj\"?") != std::string::npos, unknown->message);
    BOOST_TEST(unknown->layer == "model.layers.0.self_attn.k_prj");
    BOOST_TEST(unknown->where.column == 41u);

    const read_result container = read_text(doc_with(ifmr_block, "model.layers.0"), false, &model);
    BOOST_TEST(container.find(kvcali::errc::unsupported_layer_type) != nullptr, container.all());
    const read_result rotary = read_text(doc_with(ifmr_block, "model.layers.0.self_attn.rotary"), false, &model);
    BOOST_TEST(rotary.find(kvcali::errc::unsupported_layer_type) != nullptr, rotary.all());

    // Without a model, any name is accepted.
    BOOST_TEST(read_text(doc_with(ifmr_block, "anything")).ok);

    // The model-graph overload.
    const temp_dir dir;
    spit(dir / "config.json", doc_with(ifmr_block, "model.layers.0.self_attn.rotary"));
    BOOST_CHECK_THROW(kvcali::read_quant_cali_config(dir / "config.json", model), kvcali::error);
}

// ---------------------------------------------------------------------------------------------
// Numbers

BOOST_AUTO_TEST_CASE(numbers_are_read_exactly) {
    // Every float32 written in the writer's shortest form reads back to the same bits; Boost.JSON's
    // own double parsing is compared on the same texts (for information).
    std::mt19937 rng(12345);
    std::uniform_real_distribution<float> unit(0.5000001f, 1.0f);
    std::uniform_int_distribution<std::uint32_t> bits(0x00800000u, 0x7F7FFFFFu);  // positive normal floats
    const std::size_t count = 4000;
    std::vector<float> values;
    std::string text = "{\"batch_num\":1,\"activation_offset\":true";
    for (std::size_t i = 0; i < count; ++i) {
        const float percentile = unit(rng);
        const float any = std::bit_cast<float>(bits(rng));
        values.push_back(percentile);
        values.push_back(any);
        text += ",\"l" + std::to_string(i) +
                "\":{\"kv_data_quant_config\":{\"act_algo\":\"ifmr\",\"max_percentile\":" + kvcali::float32_repr(percentile) +
                ",\"min_percentile\":0.999999,\"search_range\":[" + kvcali::float32_repr(-any) + "," + kvcali::float32_repr(any) +
                "],\"search_step\":" + kvcali::float32_repr(any) + ",\"quant_granularity\":0}}";
    }
    text += "}";
    const auto doc = kvcali::parse_quant_cali_config(text);
    BOOST_TEST_REQUIRE(doc.layers.size() == count);
    std::size_t exact = 0, boost_json_off = 0;
    for (std::size_t i = 0; i < count; ++i) {
        const kvcali::param_view v(doc.algorithm_of(doc.layers[i]).params, doc.layers[i].values);
        const float percentile = values[2 * i], any = values[2 * i + 1];
        const bool same = std::bit_cast<std::uint32_t>(v.real("max_percentile")) == std::bit_cast<std::uint32_t>(percentile) &&
                          std::bit_cast<std::uint32_t>(v.real("search_range_end")) == std::bit_cast<std::uint32_t>(any) &&
                          std::bit_cast<std::uint32_t>(v.real("search_range_start")) == std::bit_cast<std::uint32_t>(-any);
        exact += same ? 1 : 0;
        // The double of the decimal: Boost.JSON against std::from_chars.
        const std::string decimal = kvcali::float32_repr(any);
        const double by_boost = boost::json::parse(decimal).to_number<double>();
        boost_json_off += by_boost != kvcali::detail::json_number_to_double(decimal) ? 1 : 0;
    }
    BOOST_TEST(exact == count);
    BOOST_TEST_MESSAGE(exact << " of " << count << " layers read back bit for bit; Boost.JSON's parser gives another double for "
                             << boost_json_off << " of " << count << " of the same decimals");

    // Random doubles printed with 17 digits: the reader's double equals std::from_chars (exact).
    std::uniform_int_distribution<std::uint64_t> dbits(0x0010000000000000ull, 0x7FEFFFFFFFFFFFFFull);
    for (int i = 0; i < 2000; ++i) {
        const double d = std::bit_cast<double>(dbits(rng));
        char buf[64];
        const auto res = std::to_chars(buf, buf + sizeof buf - 1, d, std::chars_format::scientific, 16);
        *res.ptr = '\0';
        BOOST_TEST(kvcali::detail::json_number_to_double(std::string_view(buf, static_cast<std::size_t>(res.ptr - buf))) ==
                   std::strtod(buf, nullptr));
    }
}

BOOST_AUTO_TEST_CASE(decimal_to_double_to_float32_as_the_reference) {
    // 1 + 2^-24 is halfway between the floats 1 and 1 + 2^-23. A decimal just above it rounds to that
    // double first, then ties to even: 1.0 (the direct decimal-to-float answer would be 1 + 2^-23).
    const auto doc = kvcali::parse_quant_cali_config(replace(doc_with(ifmr_block), "[0.7,1.3]", "[0.7,1.0000000596046447753906250000001]"));
    const kvcali::param_view v(doc.algorithm_of(doc.layers[0]).params, doc.layers[0].values);
    BOOST_TEST(v.real("search_range_end") == 1.0f);

    BOOST_TEST(kvcali::detail::double_to_float32(3.4028235e38) == std::numeric_limits<float>::max());
    BOOST_TEST(kvcali::detail::double_to_float32(3.4028235677e38) == std::numeric_limits<float>::max());  // below halfway
    BOOST_TEST(std::isinf(kvcali::detail::double_to_float32(3.4028236e38)));                              // above it
    BOOST_TEST(std::isinf(kvcali::detail::double_to_float32(0x1.ffffffp127)));
    BOOST_TEST(std::isinf(kvcali::detail::json_number_to_double("1e400")));
    BOOST_TEST(kvcali::detail::json_number_to_double("-1e400") < 0);
    BOOST_TEST(kvcali::detail::json_number_to_double("1e-400") == 0.0);
    BOOST_TEST(std::signbit(kvcali::detail::json_number_to_double("-1e-400")));
    BOOST_TEST(kvcali::detail::json_number_to_double("0.000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                                                     "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                                                     "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                                                     "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                                                     "1") == 0.0);
    BOOST_TEST(std::isinf(kvcali::detail::json_number_to_double(std::string(400, '9'))));
}

// ---------------------------------------------------------------------------------------------
// What calibration needs

BOOST_AUTO_TEST_CASE(calibration_helpers_resolve_each_layer) {
    const auto doc = kvcali::parse_quant_cali_config(R"({"batch_num":4,"activation_offset":true,
        "k":{"kv_data_quant_config":{"act_algo":"ifmr","max_percentile":0.999999,"min_percentile":0.999999,
             "search_range":[0.7,1.3],"search_step":0.33333334,"asymmetric":false,"quant_granularity":1}},
        "v":{"kv_data_quant_config":{"act_algo":"hfmg","num_of_bins":2048,"quant_granularity":0}}})");
    const auto plan = kvcali::calibration_plan(doc);
    BOOST_TEST_REQUIRE(plan.size() == 2u);

    const auto& k = plan[0];
    BOOST_TEST(k.name == "k");
    BOOST_TEST(k.act_algo == "ifmr");
    BOOST_TEST(k.batch_num == 4u);
    BOOST_TEST(k.with_offset == false);  // asymmetric overrides activation_offset
    BOOST_TEST((k.granularity == kvcali::granularity::per_channel));
    const auto ifmr = k.ifmr();
    BOOST_TEST_REQUIRE(ifmr.has_value());
    BOOST_TEST(!k.hfmg().has_value());
    // The doubles of the decimals written, not the float32 values widened.
    BOOST_TEST(ifmr->search_range_start == 0.7);
    BOOST_TEST(ifmr->search_range_end == 1.3);
    BOOST_TEST(ifmr->search_step == 0.33333334);
    BOOST_TEST(ifmr->search_step != static_cast<double>(0.33333334f));
    BOOST_TEST(ifmr->max_percentile == 0.999999);
    BOOST_TEST(std::isnan(k.real("num_of_bins")));

    const auto& v = plan[1];
    BOOST_TEST(v.with_offset == true);  // no asymmetric: activation_offset
    BOOST_TEST((v.granularity == kvcali::granularity::per_tensor));
    BOOST_TEST_REQUIRE(v.hfmg().has_value());
    BOOST_TEST(v.hfmg()->num_of_bins == 2048u);
    BOOST_TEST(!v.ifmr().has_value());
    BOOST_TEST(v.find("asymmetric") == nullptr);
}

namespace {
struct fine_defaults : kvcali::ifmr_defaults {
    static constexpr float search_step = 0.005f;
};
}  // namespace

BOOST_AUTO_TEST_CASE(custom_policies_read_their_own_defaults) {
    using fine = kvcali::policy_list<kvcali::basic_ifmr_policy<fine_defaults>, kvcali::hfmg_policy>;
    const auto doc = kvcali::parse_quant_cali_config<fine>(replace(doc_with(ifmr_block), ",\"search_step\":0.01", ""));
    BOOST_TEST(kvcali::calibration_of(doc, doc.layers[0]).real("search_step") == 0.005);
    // A policy list without HFMG does not know "hfmg".
    using only_ifmr = kvcali::policy_list<kvcali::ifmr_policy>;
    BOOST_CHECK_THROW(kvcali::parse_quant_cali_config<only_ifmr>(doc_with(hfmg_block)), kvcali::error);
}

// ---------------------------------------------------------------------------------------------
// kvcali validate

BOOST_AUTO_TEST_CASE(validate_through_the_binary) {
    const temp_dir dir;
    const fs::path good = conformance_cases() / "doc_sample" / "expected.json";

    auto r = run_cli({"validate", good.string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.out.find("valid: 3 layers (hfmg 2, ifmr 1), batch_num 1, activation_offset true") != std::string::npos, r.out);

    r = run_cli({"validate", "--config", good.string(), "--model", (conformance_cases() / "doc_sample" / "model.json").string()});
    BOOST_TEST(r.status == 0, r.err);

    const std::string typo = replace(doc_with(ifmr_block, "matmul9"), "\"max_percentile\":0.999999", "\"max_percentile\":1");
    spit(dir / "typo.json", typo);
    r = run_cli({"validate", (dir / "typo.json").string()});
    BOOST_TEST(r.status == 1);
    const std::string column = std::to_string(typo.find("\"max_percentile\":1") + 18);
    BOOST_TEST(r.err.find((dir / "typo.json").string() + ":1:" + column + ": error: $.matmul9.kv_data_quant_config.max_percentile: ") !=
                   std::string::npos,
               r.err);
    BOOST_TEST(r.err.find("[parse_error]") != std::string::npos, r.err);
    BOOST_TEST(r.out.empty());

    spit(dir / "unknown.json", doc_with(ifmr_block, "matmul9"));
    r = run_cli({"validate", (dir / "unknown.json").string(), "-m", (conformance_cases() / "doc_sample" / "model.json").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.err.find("[unknown_layer]") != std::string::npos, r.err);

    spit(dir / "warn.json", replace(doc_with(ifmr_block), "\"quant_granularity\":0", "\"quant_granularity\":0,\"x\":1"));
    r = run_cli({"validate", (dir / "warn.json").string()});
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.err.find("warning: $.k.kv_data_quant_config.x: unknown key") != std::string::npos, r.err);
    BOOST_TEST(r.out.find("warnings: 1") != std::string::npos, r.out);
    r = run_cli({"validate", (dir / "warn.json").string(), "--strict"});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.err.find("error: $.k.kv_data_quant_config.x: unknown key") != std::string::npos, r.err);
    r = run_cli({"validate", "-q", (dir / "warn.json").string()});
    BOOST_TEST(r.status == 0);
    BOOST_TEST(r.out.empty());

    r = run_cli({"validate", (dir / "missing.json").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.err.find("[io_error]") != std::string::npos, r.err);

    BOOST_TEST(run_cli({"validate"}).status == 2);
    BOOST_TEST(run_cli({"validate", "--bogus", good.string()}).status == 2);
    BOOST_TEST(run_cli({"validate", good.string(), good.string()}).status == 2);
    BOOST_TEST(run_cli({"validate", "--config", good.string(), good.string()}).status == 2);
}

BOOST_AUTO_TEST_CASE(validate_accepts_every_expected_json) {
    // Every case's expected.json through `kvcali validate` (every fourth under the sanitizers, where
    // a process start is slow; every_expected_json_round_trips_byte_for_byte reads them all through
    // the library there).
    std::size_t valid = 0;
    const auto cases = kvcali_test::sample_of(cases_with_expected_json(), 4);
    for (const auto& dir : cases) {
        const auto r = run_cli({"validate", "-q", (dir / "expected.json").string(), "--model", (dir / "model.json").string()});
        BOOST_TEST(r.status == 0, dir.filename().string() << ": " << r.err);
        valid += r.status == 0 ? 1 : 0;
    }
    BOOST_TEST(valid == cases.size());
}
