// The JSON reader under config_reader.hpp: positions, number texts, strings, duplicates, limits.
// The first include proves that the detail header compiles on its own; being a second translation
// unit of the reader test, it also links the inline functions twice (ODR).
#include <kvcali/detail/json_reader.hpp>

#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

using kvcali::detail::json_node;
using kvcali::detail::parse_json_document;

BOOST_AUTO_TEST_CASE(json_values_keep_offsets_and_number_text) {
    const std::string text = "{\"a\" : [1, -0, 2.50, 1E+3, NaN, -Infinity],\n \"b\":{\"c\":null,\"d\":false}}";
    const auto doc = parse_json_document(text);
    BOOST_TEST_REQUIRE(doc.ok, doc.error);
    BOOST_TEST_REQUIRE(doc.root.members.size() == 2u);
    const json_node& a = doc.root.members[0].value;
    BOOST_TEST_REQUIRE(a.items.size() == 6u);
    BOOST_TEST(a.items[0].number == "1");
    BOOST_TEST(a.items[0].integer_syntax);
    BOOST_TEST(a.items[1].number == "-0");
    BOOST_TEST(a.items[1].integer_syntax);
    BOOST_TEST(a.items[2].number == "2.50");
    BOOST_TEST(!a.items[2].integer_syntax);
    BOOST_TEST(a.items[3].number == "1E+3");
    BOOST_TEST(!a.items[3].integer_syntax);
    BOOST_TEST(a.items[4].number == "NaN");
    BOOST_TEST(a.items[5].number == "-Infinity");
    BOOST_TEST(a.items[2].offset == text.find("2.50"));
    BOOST_TEST(doc.root.members[1].key_offset == text.find("\"b\""));
    const kvcali::detail::line_index lines(text);
    const auto where = lines.at(doc.root.members[1].key_offset, "f");
    BOOST_TEST(where.line == 2u);
    BOOST_TEST(where.column == 2u);
    BOOST_TEST((doc.root.members[1].value.find("d")->value.type == json_node::kind::boolean));
}

BOOST_AUTO_TEST_CASE(json_strings_decode_escapes_and_utf8) {
    const auto doc = parse_json_document(R"(["a\"\\\/\b\f\n\r\t", "\u00e9\u6ce8\ud83d\ude00", "é"])");
    BOOST_TEST_REQUIRE(doc.ok, doc.error);
    BOOST_TEST(doc.root.items[0].string == "a\"\\/\b\f\n\r\t");
    BOOST_TEST(doc.root.items[1].string == "\xC3\xA9\xE6\xB3\xA8\xF0\x9F\x98\x80");
    BOOST_TEST(doc.root.items[2].string == "\xC3\xA9");
}

BOOST_AUTO_TEST_CASE(json_duplicates_are_listed_with_both_positions) {
    const std::string text = R"({"x":1,"o":{"y":1,"y":2},"x":3})";
    const auto doc = parse_json_document(text);
    BOOST_TEST_REQUIRE(doc.ok);
    BOOST_TEST_REQUIRE(doc.duplicates.size() == 2u);
    BOOST_TEST(doc.duplicates[0].object_path == "$.o");
    BOOST_TEST(doc.duplicates[0].key == "y");
    BOOST_TEST(doc.duplicates[0].depth == 2u);
    BOOST_TEST(doc.duplicates[0].offset == text.find("\"y\":2"));
    BOOST_TEST(doc.duplicates[0].first_offset == text.find("\"y\":1"));
    BOOST_TEST(doc.duplicates[1].object_path == "$");
    BOOST_TEST(doc.duplicates[1].depth == 1u);
    BOOST_TEST(doc.root.members.size() == 2u);  // the repeated "x" is dropped
    BOOST_TEST(doc.root.find("x")->value.number == "1");
}

BOOST_AUTO_TEST_CASE(json_syntax_errors_point_at_the_problem) {
    struct bad {
        std::string text;
        std::size_t offset;
        std::string message_part;
    };
    const std::vector<bad> cases = {
        {"", 0, "end of the text"},
        {"\xEF\xBB\xBF{}", 0, "byte order mark"},
        {"{\"a\":1,}", 7, "string key"},
        {"[1,]", 3, "JSON value"},
        {"[1 2]", 3, "',' or ']'"},
        {"{\"a\" 1}", 5, "':'"},
        {"[\"abc", 1, "unterminated string"},
        {"[\"a\tb\"]", 3, "control character"},
        {"[\"\\x41\"]", 2, "unknown escape"},
        {"[\"\\ud800x\"]", 2, "low one"},
        {"[\"\xC3\x28\"]", 2, "invalid UTF-8"},
        {"[-]", 2, "digit after '-'"},
        {"[1.]", 3, "decimal point"},
        {"[1e]", 3, "exponent"},
        {"[012]", 1, "does not start with 0"},
        {"[+1]", 1, "JSON value"},
        {"[tru]", 1, "JSON value"},
        {"{} {}", 3, "end of the text"},
        {std::string(65, '[') + std::string(65, ']'), 64, "deeper than 64"},
    };
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT(c.text) {
            const auto doc = parse_json_document(c.text);
            BOOST_TEST(!doc.ok);
            BOOST_TEST(doc.error_offset == c.offset);
            BOOST_TEST(doc.error.find(c.message_part) != std::string::npos, doc.error);
        }
    }
    BOOST_TEST(parse_json_document(std::string(64, '[') + std::string(64, ']')).ok);
}

BOOST_AUTO_TEST_CASE(json_paths_quote_keys_that_are_not_identifiers) {
    BOOST_TEST(kvcali::detail::json_path_member("$", "batch_num") == "$.batch_num");
    BOOST_TEST(kvcali::detail::json_path_member("$", "model.layers.0") == "$[\"model.layers.0\"]");
    BOOST_TEST(kvcali::detail::json_path_member("$", "0a") == "$[\"0a\"]");
    BOOST_TEST(kvcali::detail::json_path_member("$", "\xE6\xB3\xA8") == "$[\"\\u6ce8\"]");
    BOOST_TEST(kvcali::detail::json_path_index("$.a", 3) == "$.a[3]");
}

// skip_value checks a value as read_value does (the layer list and the JSON quant.cfg use it for
// values they refuse or ignore): the same outcome, error, offset and end position, and the same
// facts for a scalar, on valid texts, on every prefix of them and on single-byte changes.
BOOST_AUTO_TEST_CASE(json_skip_value_checks_as_read_value_does) {
    const std::vector<std::string> valid = {
        R"({"a" : [1, -0, 2.50, 1E+3, NaN, -Infinity, Infinity], "b":{"c":null,"d":false,"e":true}, "a": "x\u00e9\ud83d\ude00"})",
        R"([[], {}, [[{"k": [0.5e-3, "s\"\\\/\b\f\n\r\t"]}]], "é", 12345678901234567890123])",
        "\"plain\"",
        "-12",
        "0",
        "true",
        "null",
        "  [ 1 , 2 ]  ",
        "-Infinity",
        "7",
        "NaN",
        std::string(6, '[') + std::string(6, ']')};
    std::vector<std::string> texts = valid;
    for (const std::string& v : valid) {
        for (std::size_t n = 0; n < v.size(); ++n) texts.push_back(v.substr(0, n));
        for (std::size_t i = 0; i < v.size(); ++i) {
            for (const char c : std::string("{}[]\",:\\0-.eEtnNI \x01\xC3\x80")) {
                std::string t = v;
                t[i] = c;
                texts.push_back(t);
            }
        }
    }
    std::size_t failures_seen = 0;
    kvcali::detail::json_scalar scalar;  // reused, as the layer list reuses its own: no fact of one value may outlive it
    std::string scratch = "left over";
    for (const std::string& t : texts) {
        for (const std::size_t max_depth : {std::size_t{3}, std::size_t{64}}) {
            kvcali::detail::json_parser tree(t, max_depth), skip(t, max_depth);
            json_node node;
            const bool tree_ok = tree.document_start() && tree.read_value(node, 0);
            const bool skip_ok = skip.document_start() && skip.skip_value(scalar, scratch, 0);
            BOOST_TEST_CONTEXT(t << " (max depth " << max_depth << ")") {
                BOOST_TEST(tree_ok == skip_ok);
                BOOST_TEST(tree.error() == skip.error());
                BOOST_TEST(tree.error_offset() == skip.error_offset());
                BOOST_TEST(tree.position() == skip.position());
                if (tree_ok && skip_ok) {
                    BOOST_TEST((node.type == scalar.type));
                    if (node.type == json_node::kind::number) {
                        BOOST_TEST(node.number == scalar.number);
                        BOOST_TEST(node.integer_syntax == scalar.integer_syntax);
                    }
                    if (node.type == json_node::kind::boolean) BOOST_TEST(node.boolean == scalar.boolean);
                    if (node.type == json_node::kind::string) BOOST_TEST(node.string == scratch);
                }
            }
            failures_seen += tree_ok ? 0 : 1;
        }
    }
    BOOST_TEST(texts.size() > 3000u);
    BOOST_TEST(failures_seen > 1000u);  // most changes break the text: the error paths are compared too
}
