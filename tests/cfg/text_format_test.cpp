// Unit tests of the simple config parser (spec §2): every text-format feature, positions,
// escapes, UTF-8, NUL bytes, limits, merge semantics and warnings, strict mode, the JSON form,
// a downstream algorithm policy, and hostile input.
#define BOOST_TEST_MODULE cfg_text_format
#include <boost/test/unit_test.hpp>

#include <kvcali/detail/text_format.hpp>
#include <kvcali/quant_cfg.hpp>

#include <cmath>
#include <random>

#include "../support/test_support.hpp"

using namespace kvcali_test;

namespace {

struct parsed {
    kvcali::simple_config cfg;
    std::vector<kvcali::diagnostic> diags;
    bool ok() const {
        return std::none_of(diags.begin(), diags.end(), [](const auto& d) { return d.is_error(); });
    }
    std::size_t count(kvcali::severity s) const {
        return static_cast<std::size_t>(std::count_if(diags.begin(), diags.end(), [&](const auto& d) { return d.severity == s; }));
    }
    std::size_t errors() const { return count(kvcali::severity::error); }
    std::size_t warnings() const { return count(kvcali::severity::warning); }
    std::string all() const {
        std::string out;
        for (const auto& d : diags) out += d.to_string() + "\n";
        return out;
    }
    const kvcali::diagnostic& first() const { return diags.at(0); }
};

template <class Algorithms = kvcali::default_policies>
parsed parse(std::string_view text, bool strict = false, const kvcali::simple_config_limits& limits = {}) {
    kvcali::diagnostics diags(strict);
    parsed p;
    p.cfg = kvcali::parse_simple_config(text, "quant.cfg", Algorithms::algorithms, diags, limits);
    p.diags = diags.take();
    return p;
}

parsed parse_json(std::string_view text, bool strict = false, const kvcali::simple_config_limits& limits = {}) {
    kvcali::diagnostics diags(strict);
    parsed p;
    p.cfg = kvcali::parse_simple_config_json(text, "quant.json", kvcali::default_policies::algorithms, diags, limits);
    p.diags = diags.take();
    return p;
}

/// The value of IFMR parameter `name` in the common block.
std::optional<kvcali::param_value> common_value(const parsed& p, std::string_view name) {
    const auto& algo = kvcali::default_policies::algorithms[*p.cfg.common->algorithm];
    const int i = algo.find_param(name);
    return p.cfg.common->values.at(static_cast<std::size_t>(i));
}

float common_float(std::string_view value, std::string_view field = "search_step") {
    const std::string text =
        "kv_cache_quant_config { calibration_config { ifmr_quantize { " + std::string(field) + ": " + std::string(value) + " } } }";
    const parsed p = parse(text);
    BOOST_TEST_REQUIRE(p.ok(), text << "\n" << p.all());
    return common_value(p, field)->real;
}

bool accepts(std::string_view text) { return parse(text).ok(); }

void expect_error_at(std::string_view text, std::uint32_t line, std::uint32_t column, std::string_view fragment) {
    const parsed p = parse(text);
    BOOST_TEST_CONTEXT(text << "\n" << p.all()) {
        BOOST_TEST_REQUIRE(p.errors() >= 1u);
        BOOST_TEST(p.first().category == kvcali::errc::parse_error);
        BOOST_TEST(p.first().where.file == "quant.cfg");
        BOOST_TEST(p.first().where.line == line);
        BOOST_TEST(p.first().where.column == column);
        BOOST_TEST(p.first().message.find(fragment) != std::string::npos, "message: " << p.first().message);
    }
}

}  // namespace

// -- the text format ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(full_example_binds_every_field_with_positions) {
    const parsed p = parse(
        "batch_num: 4\n"
        "activation_offset: false\n"
        "kv_cache_quant_config {\n"
        "\tquant_layers: 'a'\n"
        "  quant_layers: \"b\"\n"
        "  calibration_config { ifmr_quantize { search_step: 0.02 asymmetric: true quant_granularity: per_channel } }\n"
        "}\n"
        "override_layers_configs { layer_name: 'c' kv_data_quant_config { hfmg_quantize { num_of_bins: 2048 } } }\n"
        "override_layers_configs { layer_name: 'd' }\n");
    BOOST_TEST_REQUIRE(p.ok(), p.all());
    BOOST_TEST(p.diags.empty());
    BOOST_TEST(*p.cfg.batch_num == 4u);
    BOOST_TEST((p.cfg.batch_num_where == kvcali::source_location{"quant.cfg", 1, 12}));
    BOOST_TEST(*p.cfg.activation_offset == false);
    BOOST_TEST((p.cfg.activation_offset_where == kvcali::source_location{"quant.cfg", 2, 20}));
    BOOST_TEST(p.cfg.has_common);
    BOOST_TEST((p.cfg.common_where == kvcali::source_location{"quant.cfg", 3, 1}));
    BOOST_TEST_REQUIRE(p.cfg.quant_layers.size() == 2u);
    BOOST_TEST(p.cfg.quant_layers[0].value == "a");
    BOOST_TEST((p.cfg.quant_layers[0].where == kvcali::source_location{"quant.cfg", 4, 16}));  // a tab is one byte
    BOOST_TEST((p.cfg.quant_layers[1].where == kvcali::source_location{"quant.cfg", 5, 17}));
    BOOST_TEST_REQUIRE(p.cfg.common.has_value());
    BOOST_TEST(*p.cfg.common->algorithm == 0u);
    BOOST_TEST((p.cfg.common->where == kvcali::source_location{"quant.cfg", 6, 3}));
    BOOST_TEST((p.cfg.common->algorithm_where == kvcali::source_location{"quant.cfg", 6, 24}));
    BOOST_TEST(p.cfg.common->values.size() == kvcali::ifmr_policy::params.size());
    BOOST_TEST(common_value(p, "search_step")->real == 0.02f);
    BOOST_TEST(common_value(p, "asymmetric")->boolean == true);
    BOOST_TEST(common_value(p, "quant_granularity")->enumerator == 1);
    BOOST_TEST(!common_value(p, "max_percentile").has_value());
    BOOST_TEST((p.cfg.common->value_locations[4] == kvcali::source_location{"quant.cfg", 6, 53}));
    BOOST_TEST_REQUIRE(p.cfg.overrides.size() == 2u);
    BOOST_TEST(p.cfg.overrides[0].layer_name->value == "c");
    BOOST_TEST((p.cfg.overrides[0].where == kvcali::source_location{"quant.cfg", 8, 1}));
    BOOST_TEST(*p.cfg.overrides[0].config->algorithm == 1u);
    BOOST_TEST(p.cfg.overrides[0].config->values[0]->uint == 2048u);
    BOOST_TEST(!p.cfg.overrides[1].config.has_value());
    BOOST_TEST(p.cfg.discarded.empty());
}

BOOST_AUTO_TEST_CASE(the_document_keys_children_by_field_name) {
    // The located document: children in file order, keyed by field name; a field given several
    // times is several children, which equal_range finds in file order with their positions.
    const std::string text =
        "kv_cache_quant_config {\n  quant_layers: 'a'\n  calibration_config { }\n  quant_layers: 'b'\n}\nbatch_num: 1\n";
    kvcali::diagnostics diags;
    kvcali::detail::cfg_document doc;
    const kvcali::simple_config_limits limits;
    BOOST_TEST_REQUIRE(kvcali::detail::text_format_reader(text, "doc.cfg", diags, limits).read(doc));
    BOOST_TEST(doc.size() == 2u);
    BOOST_TEST(doc.begin()->first == "kv_cache_quant_config");
    BOOST_TEST(doc.find("batch_num")->second.data().text == "1");
    const kvcali::detail::cfg_document& common = doc.get_child("kv_cache_quant_config");
    BOOST_TEST(common.size() == 3u);
    BOOST_TEST(common.count("quant_layers") == 2u);
    BOOST_TEST(common.count("calibration_config") == 1u);
    BOOST_TEST(common.count("bogus") == 0u);
    std::vector<std::string> values;
    std::vector<std::uint32_t> lines, columns;
    const auto [first, last] = common.equal_range("quant_layers");
    for (auto it = first; it != last; ++it) {
        values.push_back(it->second.data().text);
        lines.push_back(it->second.data().value_line);
        columns.push_back(it->second.data().value_column);
    }
    BOOST_TEST(values == (std::vector<std::string>{"a", "b"}), boost::test_tools::per_element());
    BOOST_TEST(lines == (std::vector<std::uint32_t>{2, 4}), boost::test_tools::per_element());
    BOOST_TEST(columns == (std::vector<std::uint32_t>{17, 17}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(columns_are_bytes) {
    // "注" is three bytes: the unknown field after it is at byte column 45 (character column 43).
    expect_error_at("kv_cache_quant_config { quant_layers: '注' bogus: 1 }", 1, 45, "unknown field \"bogus\"");
}

BOOST_AUTO_TEST_CASE(syntax_forms) {
    BOOST_TEST(accepts(""));
    BOOST_TEST(accepts("# only a comment\n   \t\r\n"));
    BOOST_TEST(accepts("kv_cache_quant_config: { quant_layers: 'a' }"));  // colon before a message
    BOOST_TEST(accepts("kv_cache_quant_config < quant_layers: 'a' >"));
    BOOST_TEST(accepts("batch_num: 2; activation_offset: false, kv_cache_quant_config { quant_layers: 'a'; };"));
    BOOST_TEST(accepts("batch_num:2#comment\nactivation_offset:t"));
    BOOST_TEST(accepts("batch_num:\t2\r\nkv_cache_quant_config {\r\n\tquant_layers: 'a'\r\n}\r\n"));
    BOOST_TEST(
        accepts("batch_num:\xC2\xA0"
                "2\xE3\x80\x80"));  // Unicode spaces (U+00A0, U+3000) are whitespace
    BOOST_TEST(accepts("override_layers_configs [ { layer_name: 'a' }, < layer_name: 'b' > ]"));
    BOOST_TEST(accepts("override_layers_configs: []"));
    const parsed list = parse("kv_cache_quant_config { quant_layers: ['a', \"b\" 'c', 'd'] quant_layers: [] quant_layers: 'e' }");
    BOOST_TEST_REQUIRE(list.ok(), list.all());
    BOOST_TEST_REQUIRE(list.cfg.quant_layers.size() == 4u);
    BOOST_TEST(list.cfg.quant_layers[1].value == "bc");
    BOOST_TEST(list.cfg.quant_layers[3].value == "e");
    // Rejected shapes.
    BOOST_TEST(!accepts("batch_num 2"));
    BOOST_TEST(!accepts("kv_cache_quant_config { quant_layers: 'a' >"));
    BOOST_TEST(!accepts("kv_cache_quant_config { quant_layers: ['a',] }"));
    BOOST_TEST(!accepts("kv_cache_quant_config { quant_layers ['a'] }"));
    BOOST_TEST(!accepts("batch_num: [1]"));
    BOOST_TEST(!accepts("kv_cache_quant_config: 'a'"));
    BOOST_TEST(!accepts("kv_cache_quant_config: [ { } ]"));
    BOOST_TEST(!accepts("batch_num: 1,,"));
    BOOST_TEST(!accepts("}"));
}

BOOST_AUTO_TEST_CASE(located_syntax_errors) {
    expect_error_at("batch_num 2\n", 1, 11, "expected \":\"");
    expect_error_at("kv_cache_quant_config {\n  quant_layers: 'a'\n", 3, 1, "expected \"}\" to close the message opened at 1:23");
    expect_error_at("kv_cache_quant_config { quant_layers: 'a }\n", 1, 39, "unterminated string");
    expect_error_at("batch_num: 1\n  @", 2, 3, "expected a field name");
}

BOOST_AUTO_TEST_CASE(integers) {
    auto batch = [](std::string_view v) {
        const parsed p = parse("batch_num: " + std::string(v));
        return p.ok() ? std::optional<std::uint32_t>(*p.cfg.batch_num) : std::nullopt;
    };
    BOOST_TEST(*batch("16") == 16u);
    BOOST_TEST(*batch("0x10") == 16u);
    BOOST_TEST(*batch("0X1f") == 31u);
    BOOST_TEST(*batch("010") == 8u);
    BOOST_TEST(*batch("00") == 0u);
    BOOST_TEST(*batch("+7") == 7u);
    BOOST_TEST(*batch("-0") == 0u);
    BOOST_TEST(*batch("4294967295") == 4294967295u);
    BOOST_TEST(!batch("4294967296"));
    BOOST_TEST(!batch("99999999999999999999999"));
    BOOST_TEST(!batch("-1"));
    BOOST_TEST(!batch("08"));
    BOOST_TEST(!batch("1.0"));
    BOOST_TEST(!batch("1e3"));
    BOOST_TEST(!batch("0x"));
    BOOST_TEST(!batch("'2'"));
    BOOST_TEST(!batch("1_0"));
    BOOST_TEST(!batch("0b11"));
    expect_error_at("batch_num: -1", 1, 12, "out of range for uint32");
}

BOOST_AUTO_TEST_CASE(floats) {
    BOOST_TEST(common_float(".5") == 0.5f);
    BOOST_TEST(common_float("5.") == 5.0f);
    BOOST_TEST(common_float("1e-3") == 1e-3f);
    BOOST_TEST(common_float("1E-3") == 1e-3f);
    BOOST_TEST(common_float("0.5f") == 0.5f);
    BOOST_TEST(common_float("2") == 2.0f);
    BOOST_TEST(common_float("-0") == 0.0f);
    BOOST_TEST(std::signbit(common_float("-0")));
    BOOST_TEST(std::isinf(common_float("inf")));
    BOOST_TEST(std::isinf(common_float("-Infinity")));
    BOOST_TEST(common_float("-inf") < 0.0f);
    BOOST_TEST(std::isnan(common_float("nan")));
    BOOST_TEST(std::isnan(common_float("NaN")));
    // Decimal -> nearest double -> float32 (ties to even), not decimal -> float32 directly.
    BOOST_TEST(common_float("0.50222447514534") == static_cast<float>(0.50222447514534));
    BOOST_TEST(common_float("0.33333333333") == 0.333333343f);
    // Beyond FLT_MAX: inf, even where the double would round down to FLT_MAX.
    BOOST_TEST(std::isinf(common_float("1e39")));
    BOOST_TEST(std::isinf(common_float("3.4028235677973366e38")));
    BOOST_TEST(common_float("3.4028234663852886e38") == 3.4028234663852886e38f);
    BOOST_TEST(std::isinf(common_float("1e400")));
    BOOST_TEST(common_float("1e-400") == 0.0f);
    BOOST_TEST(!accepts("kv_cache_quant_config { calibration_config { ifmr_quantize { search_step: 1.0F } } }"));
    BOOST_TEST(!accepts("kv_cache_quant_config { calibration_config { ifmr_quantize { search_step: 0x10 } } }"));
    BOOST_TEST(!accepts("kv_cache_quant_config { calibration_config { ifmr_quantize { search_step: 1e } } }"));
    BOOST_TEST(!accepts("kv_cache_quant_config { calibration_config { ifmr_quantize { search_step: '1' } } }"));
}

BOOST_AUTO_TEST_CASE(bools_and_enums) {
    for (const char* t : {"true", "True", "t", "1"})
        BOOST_TEST(*parse(std::string("activation_offset: ") + t).cfg.activation_offset == true);
    for (const char* f : {"false", "False", "f", "0"})
        BOOST_TEST(*parse(std::string("activation_offset: ") + f).cfg.activation_offset == false);
    for (const char* bad : {"yes", "TRUE", "2", "'true'", "0x1"}) BOOST_TEST(!accepts(std::string("activation_offset: ") + bad));
    auto granularity = [](std::string_view v) -> std::optional<std::int32_t> {
        const parsed p =
            parse("kv_cache_quant_config { calibration_config { hfmg_quantize { quant_granularity: " + std::string(v) + " } } }");
        if (!p.ok()) return std::nullopt;
        return p.cfg.common->values[2]->enumerator;
    };
    BOOST_TEST(*granularity("per_tensor") == 0);
    BOOST_TEST(*granularity("per_channel") == 1);
    BOOST_TEST(*granularity("1") == 1);
    BOOST_TEST(*granularity("0x1") == 1);
    BOOST_TEST(!granularity("2"));
    BOOST_TEST(!granularity("-1"));
    BOOST_TEST(!granularity("01"));
    BOOST_TEST(!granularity("'per_channel'"));
    const parsed p = parse("kv_cache_quant_config { calibration_config { hfmg_quantize { quant_granularity: per_chanel } } }");
    BOOST_TEST(p.first().message.find("did you mean \"per_channel\"") != std::string::npos, p.all());
}

BOOST_AUTO_TEST_CASE(strings_escapes_and_utf8) {
    auto layer = [](std::string_view literal) -> std::optional<std::string> {
        const parsed p = parse("kv_cache_quant_config { quant_layers: " + std::string(literal) + " }");
        if (!p.ok()) return std::nullopt;
        return p.cfg.quant_layers.at(0).value;
    };
    BOOST_TEST(*layer("'model.' \"layers.0\"") == "model.layers.0");
    BOOST_TEST(*layer("'a\\056b\\x2ec'") == "a.b.c");
    BOOST_TEST(*layer("'\\346\\263\\250'") == "注");
    BOOST_TEST(*layer("'\\xe6' '\\xb3\\xa8'") == "注");  // UTF-8 is checked after concatenation
    BOOST_TEST(*layer("'\\u6ce8'") == "注");
    BOOST_TEST(*layer("'\\U0001F600'") == "\xF0\x9F\x98\x80");
    BOOST_TEST(*layer("'\\a\\b\\f\\n\\r\\t\\v\\\\\\'\\\"\\?'") == "\a\b\f\n\r\t\v\\'\"?");
    BOOST_TEST(*layer("'\\x4142'") == "A42");
    BOOST_TEST(*layer("'\\1x'") == std::string("\1x"));
    BOOST_TEST(*layer("\"it's\"") == "it's");
    BOOST_TEST(*layer("'块.注意力'") == "块.注意力");
    expect_error_at("kv_cache_quant_config { quant_layers: 'ab\\qc' }", 1, 42, "unknown escape \\q");
    expect_error_at("kv_cache_quant_config { quant_layers: '\\400' }", 1, 40, "above \\377");
    expect_error_at("kv_cache_quant_config { quant_layers: '\\x' }", 1, 40, "hex digits");
    expect_error_at("kv_cache_quant_config { quant_layers: '\\ud800' }", 1, 40, "not a Unicode scalar value");
    expect_error_at("kv_cache_quant_config { quant_layers: '\\u12' }", 1, 40, "exactly 4 hex digits");
    expect_error_at("kv_cache_quant_config { quant_layers: '\\377' }", 1, 39, "not valid UTF-8");
    // Literals without escapes are taken as written (the file is UTF-8); one with escapes among
    // them still has the whole value checked.
    BOOST_TEST(*layer("'a' '\\xe6\\xb3' '\\xa8b'") == "a注b");
    BOOST_TEST(*layer("'注' 'x' \"意\"") == "注x意");
    expect_error_at("kv_cache_quant_config { quant_layers: '注' '\\xe6' 'x' }", 1, 39, "not valid UTF-8");
    expect_error_at("kv_cache_quant_config { quant_layers: 'a\\\n' }", 1, 39, "unterminated string");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_nul_and_bom_are_located) {
    expect_error_at("batch_num: 1\n# caf\xE9\n", 2, 6, "invalid UTF-8 (byte 0xE9)");
    expect_error_at("batch_num: 1\nkv_cache_quant_config { quant_layers: 'a\xC0\xAF' }", 2, 41, "invalid UTF-8");  // overlong
    expect_error_at("batch_num: 1\n\xED\xA0\x80", 2, 1, "invalid UTF-8");                                          // surrogate
    expect_error_at(std::string_view("batch_num: 1 # \0 hidden\n", 24), 1, 16, "NUL byte");
    expect_error_at(std::string_view("kv_cache_quant_config { quant_layers: 'a\0' }", 44), 1, 41, "NUL byte");
    expect_error_at(
        "\xEF\xBB\xBF"
        "batch_num: 1",
        1, 1, "byte order mark");
}

// -- merge semantics and warnings ---------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(duplicate_scalar_keeps_last_with_warning) {
    const parsed p = parse("batch_num: 2\nbatch_num: 5\n");
    BOOST_TEST(p.ok());
    BOOST_TEST(*p.cfg.batch_num == 5u);
    BOOST_TEST_REQUIRE(p.warnings() == 1u);
    BOOST_TEST(p.first().category == kvcali::errc::parse_error);
    BOOST_TEST(p.first().where.line == 2u);
    BOOST_TEST(p.first().message.find("batch_num is given more than once") != std::string::npos);
    const parsed strict = parse("batch_num: 2\nbatch_num: 5\n", true);
    BOOST_TEST(strict.errors() == 1u);
    BOOST_TEST(strict.first().category == kvcali::errc::parse_error);
}

BOOST_AUTO_TEST_CASE(duplicate_message_merges_with_warning) {
    const parsed p = parse(
        "kv_cache_quant_config { quant_layers: 'a' calibration_config { ifmr_quantize { search_step: 0.5 } } }\n"
        "kv_cache_quant_config { quant_layers: 'b' calibration_config { ifmr_quantize { max_percentile: 0.9 } } }\n");
    BOOST_TEST(p.ok());
    BOOST_TEST(p.cfg.quant_layers.size() == 2u);  // repeated fields append
    BOOST_TEST(common_value(p, "search_step")->real == 0.5f);
    BOOST_TEST(common_value(p, "max_percentile")->real == 0.9f);
    BOOST_TEST(p.warnings() == 3u, p.all());  // kv_cache_quant_config, calibration_config, ifmr_quantize
    BOOST_TEST(parse("kv_cache_quant_config { quant_layers: 'a' quant_layers: 'b' } override_layers_configs { layer_name: 'a' } "
                     "override_layers_configs { layer_name: 'b' }")
                   .diags.empty());  // appending to a repeated field is never warned
}

BOOST_AUTO_TEST_CASE(both_algorithms_last_wins_and_the_first_is_discarded) {
    const parsed p = parse(
        "kv_cache_quant_config { calibration_config {\n"
        "  ifmr_quantize { search_step: 0.02 }\n"
        "  hfmg_quantize { num_of_bins: 2048 }\n"
        "} }\n");
    BOOST_TEST(p.ok());
    BOOST_TEST(*p.cfg.common->algorithm == 1u);
    BOOST_TEST(p.cfg.common->values.size() == kvcali::hfmg_policy::params.size());
    BOOST_TEST(p.cfg.common->values[0]->uint == 2048u);
    BOOST_TEST_REQUIRE(p.cfg.discarded.size() == 1u);
    BOOST_TEST(*p.cfg.discarded[0].algorithm == 0u);
    BOOST_TEST(p.cfg.discarded[0].values[4]->real == 0.02f);
    BOOST_TEST_REQUIRE(p.warnings() == 1u);
    BOOST_TEST(p.first().where.line == 3u);
    BOOST_TEST(p.first().message.find("sets both ifmr_quantize and hfmg_quantize") != std::string::npos);
    BOOST_TEST(
        parse("override_layers_configs { layer_name: 'x' kv_data_quant_config { hfmg_quantize {} ifmr_quantize {} } }", true).errors() ==
        1u);
    // Back again: the new block starts empty (a oneof member replaces the other).
    const parsed back = parse(
        "kv_cache_quant_config { calibration_config { ifmr_quantize { search_step: 0.5 } hfmg_quantize {} ifmr_quantize { max_percentile: "
        "0.9 } } }");
    BOOST_TEST(*back.cfg.common->algorithm == 0u);
    BOOST_TEST(!common_value(back, "search_step").has_value());
    BOOST_TEST(back.cfg.discarded.size() == 2u);
}

// -- semantic errors -----------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_semantic_error_is_reported_with_suggestions) {
    const parsed p = parse(
        "batch_nun: 2\n"
        "activation_offset: maybe\n"
        "kv_cache_quant_config {\n"
        "  quant_layers: 5\n"
        "  calibration_config { ifmr_quantize { search_stepp: 0.1 quant_granularity: 7 } hfmg_quantize { search_step: 1 } }\n"
        "}\n"
        "override_layers_configs { layer_nam: 'x' kv_data_quant_config { search_step: 0.1 } }\n");
    BOOST_TEST(p.errors() == 8u, p.all());
    const std::string all = p.all();
    BOOST_TEST(all.find("quant.cfg:1:1: error: unknown field \"batch_nun\" in AMCTQuantCaliConfig (the top level); did you mean "
                        "\"batch_num\"? [parse_error]") != std::string::npos,
               all);
    BOOST_TEST(all.find("quant.cfg:2:20: error: activation_offset expects a bool") != std::string::npos, all);
    BOOST_TEST(all.find("quant.cfg:4:17: error: quant_layers expects a string") != std::string::npos, all);
    BOOST_TEST(all.find("quant.cfg:5:40: error: unknown field \"search_stepp\" in ifmr_quantize; did you mean \"search_step\"?") !=
                   std::string::npos,
               all);
    BOOST_TEST(all.find("quant_granularity = 7 is not a value of the enumeration") != std::string::npos, all);
    BOOST_TEST(all.find("search_step is a field of ifmr_quantize, not of hfmg_quantize") != std::string::npos, all);
    BOOST_TEST(all.find("unknown field \"layer_nam\" in override_layers_configs; did you mean \"layer_name\"?") != std::string::npos, all);
    BOOST_TEST(all.find("search_step is a field of ifmr_quantize: write ifmr_quantize { search_step: ... }") != std::string::npos, all);
}

BOOST_AUTO_TEST_CASE(error_count_is_capped) {
    std::string text;
    for (int i = 0; i < 500; ++i) text += "bogus: 1\n";
    kvcali::simple_config_limits limits;
    limits.max_errors = 20;
    const parsed p = parse(text, false, limits);
    BOOST_TEST(p.errors() == 21u);
    BOOST_TEST(p.diags.back().message.find("too many errors") != std::string::npos);
}

// -- limits and hostile input ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(nesting_limit) {
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += "a{";
    const parsed p = parse(deep);
    BOOST_TEST_REQUIRE(p.errors() == 1u);
    BOOST_TEST(p.first().message.find("nesting deeper than 64 levels") != std::string::npos, p.all());
    BOOST_TEST(p.first().where.column == 130u);  // the 65th "{"
    std::string lists = "kv_cache_quant_config ";
    for (int i = 0; i < 100; ++i) lists += "[{a ";
    BOOST_TEST(parse(lists).first().message.find("nesting deeper") != std::string::npos);
    kvcali::simple_config_limits limits;
    limits.max_depth = 2;
    BOOST_TEST(parse("kv_cache_quant_config { calibration_config { ifmr_quantize {} } }", false, limits).errors() == 1u);
    BOOST_TEST(parse("kv_cache_quant_config { calibration_config { } }", false, limits).ok());
}

BOOST_AUTO_TEST_CASE(size_and_node_limits) {
    kvcali::simple_config_limits limits;
    limits.max_bytes = 16;
    const parsed big = parse("batch_num: 1 # seventeen+ bytes", false, limits);
    BOOST_TEST_REQUIRE(big.errors() == 1u);
    BOOST_TEST(big.first().message.find("larger than the limit of 16 bytes") != std::string::npos);
    limits = {};
    limits.max_nodes = 3;
    BOOST_TEST(parse("batch_num: 1 batch_num: 2 batch_num: 3", false, limits).ok());
    const parsed many = parse("batch_num: 1 batch_num: 2 batch_num: 3 batch_num: 4", false, limits);
    BOOST_TEST(many.first().message.find("more than 3 fields") != std::string::npos);
    // load_simple_config refuses a large file before reading it.
    temp_dir dir;
    spit(dir / "quant.cfg", "batch_num: 1 # long enough\n");
    kvcali::diagnostics diags;
    limits = {};
    limits.max_bytes = 10;
    kvcali::load_simple_config(dir / "quant.cfg", kvcali::default_policies::algorithms, diags, limits);
    BOOST_TEST(diags.has_errors());
    BOOST_TEST(diags.items().at(0).message.find("larger than the limit") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(random_mutations_never_crash) {
    const std::string seed =
        "batch_num: 0x10 activation_offset: t\nkv_cache_quant_config < quant_layers: ['a' \"b\", '\\x2e\\056'] "
        "calibration_config { ifmr_quantize { search_step: .5f max_percentile: 1e-3 quant_granularity: per_channel } } >\n"
        "override_layers_configs: [{ layer_name: '注' kv_data_quant_config { hfmg_quantize { num_of_bins: 010 } } }]\n";
    const std::string alphabet = "{}<>[]:;,'\"\\#\n\t .-+0123456789abcxefinptu_\xE6\xB3\xA8\xFF";
    std::mt19937 rng(12345);
    std::size_t accepted = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string text = seed;
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = rng() % (text.size() + 1);
            switch (rng() % 3) {
                case 0: text.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
                case 1:
                    if (at < text.size()) text.erase(at, 1);
                    break;
                default:
                    if (at < text.size()) text[at] = alphabet[rng() % alphabet.size()];
                    break;
            }
        }
        const parsed p = parse(text);
        if (p.ok()) ++accepted;
        for (const auto& d : p.diags) {
            BOOST_TEST(d.category == kvcali::errc::parse_error);
            BOOST_TEST(d.where.file == "quant.cfg");
        }
    }
    BOOST_TEST(accepted > 0u);
    BOOST_TEST(accepted < 3000u);
}

// -- a downstream algorithm ---------------------------------------------------------------------------

namespace {
struct percentile_policy {
    static constexpr std::string_view act_algo = "pct";
    static constexpr std::string_view cfg_block = "pct_quantize";
    static constexpr std::array<kvcali::param_desc, 2> params = {{
        {"percentile", "percentile", -1, kvcali::param_type::float32, kvcali::param_value::of_float(0.99f), {}, nullptr, "p"},
        {"window", "window", -1, kvcali::param_type::uint32, kvcali::param_value::of_uint(8), {}, nullptr, "w"},
    }};
    static void cross_check(const kvcali::param_view&, std::vector<kvcali::check_result>&) {}
};
using extended_policies = kvcali::policy_list<kvcali::ifmr_policy, kvcali::hfmg_policy, percentile_policy>;
}  // namespace

BOOST_AUTO_TEST_CASE(downstream_policy_adds_its_block) {
    const parsed p =
        parse<extended_policies>("kv_cache_quant_config { calibration_config { pct_quantize { percentile: 0.9 window: 4 } } }");
    BOOST_TEST_REQUIRE(p.ok(), p.all());
    BOOST_TEST(*p.cfg.common->algorithm == 2u);
    BOOST_TEST(p.cfg.common->values[0]->real == 0.9f);
    BOOST_TEST(p.cfg.common->values[1]->uint == 4u);
    const parsed typo = parse<extended_policies>("kv_cache_quant_config { calibration_config { pct_quantize { windw: 4 } } }");
    BOOST_TEST(typo.first().message.find("did you mean \"window\"") != std::string::npos, typo.all());
    BOOST_TEST(!parse("kv_cache_quant_config { calibration_config { pct_quantize { } } }").ok());  // unknown without the policy
}

// -- the JSON form -----------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(json_form_binds_the_same_schema) {
    const parsed p = parse_json(R"({"batch_num": 3, "activation_offset": false,
        "kv_cache_quant_config": {"quant_layers": ["a", "b"],
            "calibration_config": {"ifmr_quantize": {"min_percentile": 0.50222447514534, "quant_granularity": "per_channel",
                                                     "asymmetric": true, "search_range_end": "Infinity"}}},
        "override_layers_configs": [{"layer_name": "c", "kv_data_quant_config": {"hfmg_quantize": {"num_of_bins": 1024, "quant_granularity": 1}}}]})");
    BOOST_TEST_REQUIRE(p.ok(), p.all());
    BOOST_TEST(*p.cfg.batch_num == 3u);
    BOOST_TEST(*p.cfg.activation_offset == false);
    BOOST_TEST(p.cfg.quant_layers.size() == 2u);
    // Correctly rounded (std::from_chars), not Boost.JSON's double.
    BOOST_TEST(common_value(p, "min_percentile")->real == static_cast<float>(0.50222447514534));
    BOOST_TEST(std::isinf(common_value(p, "search_range_end")->real));
    BOOST_TEST(common_value(p, "quant_granularity")->enumerator == 1);
    BOOST_TEST(p.cfg.overrides.at(0).config->values[2]->enumerator == 1);
    BOOST_TEST(p.cfg.quant_layers[0].where.file == "quant.json");
}

BOOST_AUTO_TEST_CASE(json_diagnostics_name_the_json_path) {
    const parsed p = parse_json(R"({"kv_cache_quant_config": {"quant_layers": ["a", 7],
        "calibration_config": {"ifmr_quantize": {"search_stepp": 0.1}}}, "batch_num": -1, "activation_offset": 1,
        "override_layers_configs": [{"layer_name": "x"}, 5]})");
    BOOST_TEST(p.errors() == 5u, p.all());
    auto has_path = [&](std::string_view path) {
        return std::any_of(p.diags.begin(), p.diags.end(),
                           [&](const auto& d) { return d.json_path == path && d.message.rfind(std::string(path) + ": ", 0) == 0; });
    };
    BOOST_TEST(has_path("$.kv_cache_quant_config.quant_layers[1]"), p.all());
    BOOST_TEST(has_path("$.kv_cache_quant_config.calibration_config.ifmr_quantize.search_stepp"), p.all());
    BOOST_TEST(has_path("$.batch_num"), p.all());
    BOOST_TEST(has_path("$.activation_offset"), p.all());
    BOOST_TEST(has_path("$.override_layers_configs[1]"), p.all());
    // Each names its line and column too: the key of a misspelt field, the value of a wrong one.
    auto where_of = [&](std::string_view path) {
        const auto it = std::find_if(p.diags.begin(), p.diags.end(), [&](const auto& d) { return d.json_path == path; });
        return it == p.diags.end() ? std::pair<std::uint32_t, std::uint32_t>{0, 0} : std::pair{it->where.line, it->where.column};
    };
    BOOST_TEST((where_of("$.kv_cache_quant_config.quant_layers[1]") == std::pair<std::uint32_t, std::uint32_t>{1, 50}));
    BOOST_TEST((where_of("$.kv_cache_quant_config.calibration_config.ifmr_quantize.search_stepp") ==
                std::pair<std::uint32_t, std::uint32_t>{2, 50}));
    BOOST_TEST((where_of("$.batch_num") == std::pair<std::uint32_t, std::uint32_t>{2, 87}));
    BOOST_TEST((where_of("$.override_layers_configs[1]") == std::pair<std::uint32_t, std::uint32_t>{3, 58}));
    const parsed dup = parse_json(R"({"batch_num": 1, "batch_num": 2})");
    BOOST_TEST(dup.ok());
    BOOST_TEST(*dup.cfg.batch_num == 2u);
    BOOST_TEST(dup.warnings() == 1u);
}

BOOST_AUTO_TEST_CASE(json_syntax_depth_and_shape) {
    const parsed bad = parse_json("{\n  \"batch_num\": 1,\n  }");
    BOOST_TEST_REQUIRE(bad.errors() == 1u);
    BOOST_TEST(bad.first().where.line == 3u);
    BOOST_TEST(bad.first().message.find("not valid JSON") != std::string::npos);
    const parsed deep = parse_json("{\"a\":" + std::string(100000, '['));
    BOOST_TEST_REQUIRE(deep.errors() == 1u);
    BOOST_TEST(deep.first().message.find("nesting deeper than 64") != std::string::npos, deep.all());
    BOOST_TEST(parse_json("[1, 2]").first().message.find("must be an object") != std::string::npos);
    BOOST_TEST(!parse_json("{\"kv_cache_quant_config\": {\"quant_layers\": [null]}}").ok());
    BOOST_TEST(!parse_json("{\"batch_num\": 1.5}").ok());
    BOOST_TEST(!parse_json("{\"batch_num\": \"1\"}").ok());
}

BOOST_AUTO_TEST_CASE(load_picks_the_form_by_extension) {
    temp_dir dir;
    spit(dir / "quant.json", R"({"kv_cache_quant_config": {"quant_layers": ["a"]}})");
    spit(dir / "quant.cfg", "kv_cache_quant_config { quant_layers: 'b' }");
    kvcali::diagnostics diags;
    const auto j = kvcali::load_simple_config(dir / "quant.json", kvcali::default_policies::algorithms, diags);
    const auto t = kvcali::load_simple_config(dir / "quant.cfg", kvcali::default_policies::algorithms, diags);
    BOOST_TEST(!diags.has_errors());
    BOOST_TEST(j.quant_layers.at(0).value == "a");
    BOOST_TEST(t.quant_layers.at(0).value == "b");
    BOOST_TEST(t.file == (dir / "quant.cfg").string());
    BOOST_CHECK_THROW(kvcali::load_simple_config(dir / "missing.cfg", kvcali::default_policies::algorithms, diags), kvcali::error);
}
