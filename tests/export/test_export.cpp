// tests/export: the safetensors writer and reader, the export plan's checks and `kvcali export`
// (every bad input of the spec with its category and nothing changed on disk; --into merges).
#define BOOST_TEST_MODULE export
#include <boost/test/unit_test.hpp>

#include <kvcali/export.hpp>

#include <sys/stat.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../support/test_support.hpp"

namespace fs = std::filesystem;
using kvcali_test::run_cli;
using kvcali_test::slurp;
using kvcali_test::spit;
using kvcali_test::temp_dir;

namespace {

// ---------------------------------------------------------------------------------------------
// Helpers

/// Every file under `dir` (relative path -> bytes and mode), to compare before and after.
std::map<std::string, std::pair<std::string, unsigned>> snapshot(const fs::path& dir) {
    std::map<std::string, std::pair<std::string, unsigned>> out;
    if (!fs::exists(dir)) return out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        struct ::stat st {};
        ::lstat(e.path().c_str(), &st);
        const std::string rel = fs::relative(e.path(), dir).string();
        out[rel] = {e.is_regular_file() ? slurp(e.path()) : std::string("<dir>"), static_cast<unsigned>(st.st_mode)};
    }
    return out;
}

struct layer_spec {
    std::string name;
    std::vector<std::string> scales;  ///< as written in the record
    std::vector<int> offsets;
    int granularity = -1;  ///< -1: 1 when more than one scale
};

std::string config_text(const std::vector<layer_spec>& layers) {
    std::string s = "{\n    \"batch_num\":1,\n    \"activation_offset\":true";
    for (const auto& l : layers) {
        const int g = l.granularity >= 0 ? l.granularity : (l.scales.size() > 1 ? 1 : 0);
        s += ",\n    \"" + l.name +
             "\":{\"kv_data_quant_config\":{\"act_algo\":\"hfmg\",\"num_of_bins\":4096,\"quant_granularity\":" + std::to_string(g) + "}}";
    }
    return s + "\n}";
}

std::string record_text(const std::vector<layer_spec>& layers) {
    std::string s;
    for (const auto& l : layers) {
        s += "record {\n  key: \"" + l.name + "\"\n  kv_cache_value {\n";
        for (const auto& x : l.scales) s += "    scale: " + x + "\n";
        for (int o : l.offsets) s += "    offset: " + std::to_string(o) + "\n";
        s += "  }\n}\n";
    }
    return s;
}

std::vector<layer_spec> two_modules() {
    return {{"model.layers.0.self_attn.k_proj", {"0.5", "0.25", "0.125", "1.0"}, {0, 3, -5, 127}},
            {"model.layers.0.self_attn.v_proj", {"0.01", "0.02", "0.03", "0.04"}, {1, 2, 3, -128}},
            {"model.layers.1.self_attn.k_proj", {"0.75"}, {10}},
            {"model.layers.1.self_attn.v_proj", {"1.5"}, {0}}};
}

/// A folder with config.json and record.txt for `layers` (the config may list other layers).
struct export_case {
    temp_dir tmp;
    fs::path config, record, out;
    export_case(const std::vector<layer_spec>& config_layers, const std::vector<layer_spec>& record_layers) {
        config = tmp / "config.json";
        record = tmp / "record.txt";
        out = tmp / "out";
        spit(config, config_text(config_layers));
        spit(record, record_text(record_layers));
    }
    explicit export_case(const std::vector<layer_spec>& layers) : export_case(layers, layers) {}
    std::vector<std::string> args(const std::string& format) const {
        return {"export", "--record", record.string(), "--config", config.string(), "--format", format, "-o", out.string()};
    }
};

/// Runs a failing export and checks its category, and that `watched` is byte for byte as before.
void expect_failure(const std::vector<std::string>& args, const std::string& category, const fs::path& watched,
                    const std::string& needle = {}) {
    const auto before = snapshot(watched);
    const auto r = run_cli(args);
    BOOST_TEST(r.status == 1, "exit " << r.status << ": " << r.err);
    BOOST_TEST(kvcali_test::cli_error_categories(r.err).contains(category), "expected [" << category << "] in: " << r.err);
    if (!needle.empty()) BOOST_TEST(r.err.find(needle) != std::string::npos, "expected \"" << needle << "\" in: " << r.err);
    BOOST_TEST(r.out.empty(), r.out);
    BOOST_TEST((snapshot(watched) == before), "files under " << watched << " changed");
}

std::string le_u64(std::uint64_t n) {
    std::string s;
    for (int i = 0; i < 8; ++i) s += static_cast<char>((n >> (8 * i)) & 0xFF);
    return s;
}

/// A safetensors file from a header text and a data size.
std::string st_file(const std::string& header, std::size_t data) { return le_u64(header.size()) + header + std::string(data, '\x11'); }

kvcali::error parse_error_of(const std::string& bytes) {
    try {
        kvcali::parse_safetensors(bytes, "bad.safetensors");
    } catch (const kvcali::error& e) {
        return e;
    }
    BOOST_FAIL("no error");
    throw;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// float16 / bfloat16

BOOST_AUTO_TEST_CASE(half_and_bfloat16_round_to_nearest_even) {
    using kvcali::float_to_half_bits;
    BOOST_TEST(float_to_half_bits(1.0f) == 0x3C00);
    BOOST_TEST(float_to_half_bits(1.00048828125f) == 0x3C00);  // tie, to even (down)
    BOOST_TEST(float_to_half_bits(1.00146484375f) == 0x3C02);  // tie, to even (up)
    BOOST_TEST(float_to_half_bits(65504.0f) == 0x7BFF);
    BOOST_TEST(float_to_half_bits(65519.0f) == 0x7BFF);
    BOOST_TEST(float_to_half_bits(65520.0f) == 0x7C00);               // rounds to infinity
    BOOST_TEST(float_to_half_bits(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
    BOOST_TEST(float_to_half_bits(std::ldexp(1.0f, -25)) == 0x0000);  // tie to even: zero
    BOOST_TEST(float_to_half_bits(std::ldexp(3.0f, -26)) == 0x0001);
    BOOST_TEST(float_to_half_bits(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
    BOOST_TEST(float_to_half_bits(-2.0f) == 0xC000);
    for (std::uint32_t h = 0; h < 0x7C00; ++h) {  // every finite half survives a round trip
        if (float_to_half_bits(kvcali::half_bits_to_float(static_cast<std::uint16_t>(h))) != h) BOOST_FAIL("half " << h);
    }
    BOOST_TEST(kvcali::float_to_bfloat16_bits(1.0f) == 0x3F80);
    BOOST_TEST(kvcali::float_to_bfloat16_bits(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // tie, even
    BOOST_TEST(kvcali::float_to_bfloat16_bits(std::bit_cast<float>(0x3F818000u)) == 0x3F82);  // tie, up to even
    BOOST_TEST(kvcali::float_to_bfloat16_bits(std::bit_cast<float>(0x3F808001u)) == 0x3F81);
    BOOST_TEST(kvcali::dtype_conversion_problem(70000.0f, kvcali::tensor_dtype::float16).value().find("overflows") != std::string::npos);
    BOOST_TEST(kvcali::dtype_conversion_problem(1e-9f, kvcali::tensor_dtype::float16).value().find("underflows") != std::string::npos);
    BOOST_TEST(!kvcali::dtype_conversion_problem(70000.0f, kvcali::tensor_dtype::bfloat16));
}

// ---------------------------------------------------------------------------------------------
// safetensors

BOOST_AUTO_TEST_CASE(safetensors_round_trip) {
    temp_dir tmp;
    std::vector<kvcali::export_tensor> tensors{
        {"a.scale", kvcali::tensor_dtype::float32, {3}, {0.1f, 2.5f, -7.0f}},
        {"b.scale", kvcali::tensor_dtype::float16, {2, 1, 1}, {0.1f, 1.00048828125f}},
        {"c.scale", kvcali::tensor_dtype::bfloat16, {1}, {3.14159f}},
        {"empty", kvcali::tensor_dtype::float32, {0}, {}},
    };
    const fs::path file = tmp / "t.safetensors";
    kvcali::write_safetensors(file, tensors);
    const std::string bytes = slurp(file);
    const std::uint64_t n = kvcali::safetensors_header_length(bytes.substr(0, 8));
    BOOST_TEST(n % 8 == 0);
    BOOST_TEST(bytes.substr(8, 16) == "{\"__metadata__\":");
    BOOST_TEST(bytes.size() == 8 + n + 12 + 4 + 2);

    kvcali::safetensors_file f(file);
    const auto& h = f.header();
    BOOST_REQUIRE(h.tensors.size() == 4);
    BOOST_TEST(h.tensors[0].name == "a.scale");
    BOOST_TEST(h.tensors[1].dtype == "F16");
    BOOST_TEST((h.tensors[1].shape == std::vector<std::uint64_t>{2, 1, 1}));
    BOOST_TEST(h.tensors[2].begin == 16u);
    BOOST_TEST((h.metadata == std::vector<std::pair<std::string, std::string>>{{"format", "pt"}, {"producer", "kvcali 0.1.0"}}));
    const std::uint64_t after_header = f.bytes_read();
    BOOST_TEST(after_header == 8 + n);
    BOOST_TEST((f.read_floats("a.scale") == std::vector<float>{0.1f, 2.5f, -7.0f}));
    BOOST_TEST(f.bytes_read() == after_header + 12);  // that tensor's bytes, no more
    const auto half = f.read_floats("b.scale");
    BOOST_TEST(half[0] == kvcali::half_bits_to_float(0x2E66));
    BOOST_TEST(half[1] == 1.0f);
    BOOST_TEST(f.read_floats("c.scale")[0] == kvcali::bfloat16_bits_to_float(0x4049));
    BOOST_TEST(f.read_floats("empty").empty());
    BOOST_CHECK_EXCEPTION(f.read_floats("nope"), kvcali::error,
                          [](const kvcali::error& e) { return e.code() == kvcali::errc::invalid_argument; });
    // The same bytes through the in-memory reader.
    BOOST_TEST(kvcali::parse_safetensors(bytes).tensors.size() == 4u);
}

BOOST_AUTO_TEST_CASE(safetensors_reader_rejects_bad_files) {
    struct bad_case {
        std::string what, bytes, tensor, needle;
    };
    const std::string meta = "\"__metadata__\":{\"format\":\"pt\"}";
    const std::vector<bad_case> cases{
        {"too short", "abc", "", "too short"},
        {"header longer than the file", le_u64(1000) + "{}", "", "longer than the file"},
        {"huge header length", le_u64(~0ull) + "{}", "", "longer than the file"},
        {"bad JSON", st_file("{\"a\":", 0), "", "not valid JSON"},
        {"not an object", st_file("[1,2]   ", 0), "", "must be a JSON object"},
        {"unknown dtype", st_file("{\"w\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "w", "unknown dtype \"F12\""},
        {"shape and bytes differ", st_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4), "w", "span 4 bytes"},
        {"shape overflows", st_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4), "w",
         "too large"},
        {"offsets out of range", st_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 2), "w", "outside the data"},
        {"begin after end", st_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4), "w", "outside the data"},
        {"overlap",
         st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":["
                 "4,8]}}",
                 8),
         "b", "overlaps tensor \"a\""},
        {"gap",
         st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":["
                 "8,12]}}",
                 12),
         "b", "a gap of 4 bytes"},
        {"data after the last tensor", st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6), "a",
         "2 bytes of data after"},
        {"negative shape", st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "a", "non-negative integers"},
        {"missing offsets", st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "a", "data_offsets"},
        {"metadata not strings", st_file("{" + meta.substr(0, meta.size() - 5) + "1}}", 0), "", "must be a string"},
        {"invalid UTF-8", st_file("{\"\xff\":1}", 0), "", "not valid JSON"},
    };
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT(c.what) {
            const kvcali::error e = parse_error_of(c.bytes);
            BOOST_TEST((e.code() == kvcali::errc::invalid_data));
            BOOST_REQUIRE(!e.diagnostics().empty());
            const auto& d = e.diagnostics().front();
            BOOST_TEST(d.where.file == "bad.safetensors");
            BOOST_TEST(d.layer == c.tensor);
            if (!c.tensor.empty()) BOOST_TEST(d.message.find("\"" + c.tensor + "\"") != std::string::npos, d.message);
            BOOST_TEST(d.message.find(c.needle) != std::string::npos, d.message);
        }
    }
    // The file reader: the same checks, naming the path.
    temp_dir tmp;
    spit(tmp / "x.safetensors", cases[5].bytes);
    BOOST_CHECK_EXCEPTION(kvcali::safetensors_file(tmp / "x.safetensors"), kvcali::error, [&](const kvcali::error& e) {
        return e.code() == kvcali::errc::invalid_data && e.diagnostics().front().where.file == (tmp / "x.safetensors").string();
    });
    BOOST_CHECK_EXCEPTION(kvcali::safetensors_file(tmp / "none.safetensors"), kvcali::error,
                          [](const kvcali::error& e) { return e.code() == kvcali::errc::io_error; });
}

BOOST_AUTO_TEST_CASE(safetensors_header_read_by_the_json_reader) {
    // A syntax error: the reader's message and its line:column in the header.
    const kvcali::error e = parse_error_of(st_file("{\n  \"a\": }", 0));
    BOOST_REQUIRE(!e.diagnostics().empty());
    BOOST_TEST(e.diagnostics().front().message ==
               "the header is not valid JSON (expected a JSON value, found '}', at line 2, column 8 of the header)");
    BOOST_TEST(parse_error_of(st_file("{\"a\": NaN}", 0)).diagnostics().front().message ==
               "the header is not valid JSON (expected a JSON value, found 'N', at line 1, column 7 of the header)");
    // At most 16 levels of nesting, as before.
    const std::string deep16 = "{\"__metadata__\":" + std::string(15, '[') + std::string(15, ']') + "}";
    const std::string deep17 = "{\"__metadata__\":" + std::string(16, '[') + std::string(16, ']') + "}";
    BOOST_TEST(parse_error_of(st_file(deep16, 0)).diagnostics().front().message.find("must be an object of strings") != std::string::npos);
    BOOST_TEST(parse_error_of(st_file(deep17, 0)).diagnostics().front().message.find("nesting deeper than 16 levels") != std::string::npos);
    BOOST_TEST(parse_error_of(st_file(std::string(100000, '['), 0)).diagnostics().front().message.find("nesting deeper than 16 levels") !=
               std::string::npos);
    // A tensor named twice: the later entry, as Boost.JSON's parser kept it.
    const auto h =
        kvcali::parse_safetensors(st_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                          "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                                          8));
    BOOST_REQUIRE(h.tensors.size() == 1u);
    BOOST_TEST((h.tensors[0].shape == std::vector<std::uint64_t>{2}));
}

// ---------------------------------------------------------------------------------------------
// The plan, through the library

BOOST_AUTO_TEST_CASE(plan_gives_tensors_before_writing) {
    const auto layers = two_modules();
    const auto config = kvcali::parse_quant_cali_config(config_text(layers));
    const auto records = kvcali::parse_record(record_text(layers));
    kvcali::export_options o;
    o.format = kvcali::export_format::ascend_c8;
    const auto plan = kvcali::plan_export(records, config, o);
    BOOST_TEST(plan.tensors.size() == 8u);
    BOOST_TEST(plan.tensors[0].name == "model.layers.0.self_attn.k_proj.kv_cache_scale");
    BOOST_TEST((plan.tensors[1].values == std::vector<float>{0.0f, 3.0f, -5.0f, 127.0f}));
    BOOST_TEST(plan.documents.at(0).file_name == "quant_model_description.json");

    o.format = kvcali::export_format::compressed_tensors;
    const auto ct = kvcali::plan_export(records, config, o);
    BOOST_REQUIRE(ct.tensors.size() == 4u);
    BOOST_TEST(ct.tensors[0].name == "model.layers.0.self_attn.k_scale");
    // k_proj of layer 0: channel 3 (scale 1.0, offset 127): lo = -255, amax 255.
    BOOST_TEST(ct.tensors[0].values.at(0) == 255.0f / 448.0f);
    // layer 1 k_proj: offset 10, scale 0.75: lo = -138 * 0.75 = -103.5.
    BOOST_TEST(ct.tensors[2].values.at(0) == 103.5f / 448.0f);

    // The non-throwing form: the same plan, or the diagnostics.
    const auto ok = kvcali::try_plan_export(records, config, o);
    BOOST_TEST(ok.value.has_value());
    auto broken = records;
    broken[0].factors.scale[0] = 0.0f;
    const auto failed = kvcali::try_plan_export(broken, config, o);
    BOOST_TEST(!failed.value.has_value());
    BOOST_TEST((failed.code() == kvcali::errc::invalid_data));

    o.strategy = kvcali::kv_scale_strategy::attn_head;
    o.kv_heads = 2;
    const auto heads = kvcali::plan_export(records, config, o);
    BOOST_TEST((heads.tensors[0].shape == std::vector<std::uint64_t>{2, 1, 1}));
    // head 0: channels 0, 1: amax(0.5, off 0) = 64, amax(0.25, off 3) = 0.25 * 131 = 32.75
    BOOST_TEST(heads.tensors[0].values[0] == 64.0f / 448.0f);
    BOOST_TEST(heads.tensors[0].values[1] == 255.0f / 448.0f);
    // a per-tensor layer: every head the same
    BOOST_TEST(heads.tensors[2].values[0] == heads.tensors[2].values[1]);
}

// ---------------------------------------------------------------------------------------------
// Bad inputs through the CLI: category, and nothing changed

BOOST_AUTO_TEST_CASE(bad_inputs_change_nothing) {
    struct bad {
        std::string what;
        std::vector<layer_spec> config, record;
        std::string format, category, needle;
        std::vector<std::string> extra = {};
    };
    auto with = [](std::vector<layer_spec> l, std::size_t i, std::vector<std::string> s, std::vector<int> o) {
        l[i].scales = std::move(s);
        l[i].offsets = std::move(o);
        return l;
    };
    const auto good = two_modules();
    auto fewer = good;
    fewer.pop_back();
    auto extra = good;
    extra.push_back({"model.layers.2.self_attn.k_proj", {"0.5"}, {0}});
    auto fused = good;
    fused.push_back({"model.layers.2.self_attn.qkv_proj", {"0.5"}, {0}});
    auto odd = good;
    odd[0] = {"model.layers.0.self_attn.k_proj", {"0.5", "0.5", "0.5"}, {0, 0, 0}};
    odd[1] = {"model.layers.0.self_attn.v_proj", {"0.5", "0.5", "0.5"}, {0, 0, 0}};
    auto mismatch = good;
    mismatch[1] = {"model.layers.0.self_attn.v_proj", {"0.5", "0.5"}, {0, 0}};
    const std::vector<bad> cases{
        {"NaN scale", good, with(good, 0, {"0.5", "nan", "0.1", "0.2"}, {0, 0, 0, 0}), "ascend-c8", "invalid_data", "channel 1"},
        {"infinite scale", good, with(good, 2, {"inf"}, {0}), "ascend-c8", "invalid_data", "not a finite number > 0"},
        {"zero scale", good, with(good, 3, {"0.0"}, {0}), "compressed-tensors", "invalid_data", "not a finite number > 0"},
        {"negative scale", good, with(good, 3, {"-1.0"}, {0}), "ascend-c8", "invalid_data", "not a finite number > 0"},
        {"offset out of range", good, with(good, 2, {"0.5"}, {128}), "ascend-c8", "invalid_data", "outside [-128, 127]"},
        {"offsets fewer than scales", good, with(good, 0, {"0.5", "0.5", "0.5", "0.5"}, {0}), "ascend-c8", "invalid_data", "one per scale"},
        {"missing layer", good, fewer, "ascend-c8", "incomplete_calibration", "v_proj\" of config.json"},
        {"extra record key", good, extra, "ascend-c8", "unknown_layer", "is not in config.json"},
        {"fused QKV for a role format", fused, fused, "compressed-tensors", "invalid_argument", "fused QKV"},
        {"fused QKV, vllm-scales-json", fused, fused, "vllm-scales-json", "invalid_argument", "fused QKV"},
        {"K and V channel counts differ", mismatch, mismatch, "ascend-c8", "invalid_data", "the same count expected"},
        {"per tensor with several values", good, with(good, 2, {"0.5", "0.5"}, {0, 0}), "ascend-c8", "invalid_data", "is per tensor"},
        {"asymmetric into int8", good, good, "compressed-tensors", "invalid_data", "\"activation_offset\": false", {"--kv-dtype", "int8"}},
        {"attn_head with C not divisible by H",
         odd,
         odd,
         "compressed-tensors",
         "invalid_argument",
         "not divisible by --kv-heads 2",
         {"--strategy", "attn_head", "--kv-heads", "2"}},
        {"float16 overflow", good, with(good, 3, {"70000.0"}, {0}), "ascend-c8", "invalid_data", "overflows to infinity"},
    };
    for (const auto& c : cases) {
        BOOST_TEST_CONTEXT(c.what) {
            export_case x(c.config, c.record);
            // A previous export in the folder must survive as it is.
            fs::create_directory(x.out);
            spit(x.out / "kv_cache_c8.safetensors", "old");
            spit(x.out / "quant_model_description.json", "{\"old\": 1}");
            spit(x.out / "kv_cache_scales.safetensors", "old");
            spit(x.out / "kv_cache_scheme.json", "{}");
            auto args = x.args(c.format);
            args.insert(args.end(), c.extra.begin(), c.extra.end());
            expect_failure(args, c.category, x.out, c.needle);
            // validate --record finds the same problem and writes nothing either.
            std::vector<std::string> v{"validate", "--config", x.config.string(), "--record", x.record.string(), "--format", c.format};
            v.insert(v.end(), c.extra.begin(), c.extra.end());
            const auto r = run_cli(v);
            BOOST_TEST(r.status == 1);
            BOOST_TEST(kvcali_test::cli_error_categories(r.err).contains(c.category), r.err);
        }
    }
}

BOOST_AUTO_TEST_CASE(all_problems_reported_at_once) {
    auto l = two_modules();
    l[0].scales[1] = "nan";
    l[2].offsets[0] = 300;
    auto record = l;
    record.pop_back();
    record.push_back({"model.layers.9.self_attn.k_proj", {"0.5"}, {0}});
    export_case x(l, record);
    const auto r = run_cli(x.args("ascend-c8"));
    BOOST_TEST(r.status == 1);
    const auto cats = kvcali_test::cli_error_categories(r.err);
    BOOST_TEST(cats.contains("invalid_data"));
    BOOST_TEST(cats.contains("incomplete_calibration"));
    BOOST_TEST(cats.contains("unknown_layer"));
    BOOST_TEST(r.err.find("channel 1") != std::string::npos);
    BOOST_TEST(r.err.find("offset 300") != std::string::npos);
    BOOST_TEST(!fs::exists(x.out));
}

BOOST_AUTO_TEST_CASE(k_without_v_warns_and_strict_fails) {
    auto l = two_modules();
    l.pop_back();  // layer 1 has K only
    export_case x(l);
    auto r = run_cli(x.args("compressed-tensors"));
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.err.find("warning: attention module \"model.layers.1.self_attn\" has K") != std::string::npos, r.err);
    BOOST_TEST(r.err.find("[incomplete_calibration]") != std::string::npos);
    kvcali::safetensors_file f(x.out / "kv_cache_scales.safetensors");
    BOOST_TEST(f.header().tensors.size() == 3u);
    BOOST_TEST(!f.header().find("model.layers.1.self_attn.v_scale"));

    fs::remove_all(x.out);
    auto args = x.args("compressed-tensors");
    args.push_back("--strict");
    expect_failure(args, "incomplete_calibration", x.tmp.path(), "has K");
    BOOST_TEST(!fs::exists(x.out));
}

BOOST_AUTO_TEST_CASE(model_channel_mismatch) {
    const auto l = two_modules();
    export_case x(l);
    const std::string model =
        "[{\"name\": \"model.layers.0.self_attn.k_proj\", \"type\": \"Linear\", \"in\": 8, \"out\": 4},"
        " {\"name\": \"model.layers.0.self_attn.v_proj\", \"type\": \"Linear\", \"in\": 8, \"out\": 8},"
        " {\"name\": \"model.layers.1.self_attn.k_proj\", \"type\": \"Linear\", \"in\": 8, \"out\": 8},"
        " {\"name\": \"model.layers.1.self_attn.v_proj\", \"type\": \"Linear\", \"in\": 8, \"out\": 8}]";
    spit(x.tmp / "model.json", model);
    auto args = x.args("ascend-c8");
    args.insert(args.end(), {"--model", (x.tmp / "model.json").string()});
    expect_failure(args, "invalid_data", x.tmp.path(), "has 4 channels but the model's layer has 8 output features");
    // Matching channels pass (per-tensor layers are not compared).
    std::string fixed = model;
    fixed.replace(fixed.find("\"out\": 8}"), 9, "\"out\": 4}");
    spit(x.tmp / "model.json", fixed);
    const auto r = run_cli(args);
    BOOST_TEST(r.status == 0, r.err);
}

BOOST_AUTO_TEST_CASE(unwritable_existing_file) {
    const auto l = two_modules();
    {
        export_case x(l);
        fs::create_directory(x.out);
        spit(x.out / "quant_model_description.json", "{}");
        fs::permissions(x.out / "quant_model_description.json", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
        expect_failure(x.args("ascend-c8"), "io_error", x.out, "read-only");
        BOOST_TEST(!fs::exists(x.out / "kv_cache_c8.safetensors"));
    }
    {
        export_case x(l);
        fs::create_directories(x.out / "kv_cache_c8.safetensors");
        expect_failure(x.args("ascend-c8"), "io_error", x.out, "is a directory");
    }
    {
        export_case x(l);
        spit(x.out, "a file, not a folder");
        expect_failure(x.args("ascend-c8"), "io_error", x.tmp.path(), "not a folder");
    }
}

// ---------------------------------------------------------------------------------------------
// --into

BOOST_AUTO_TEST_CASE(into_merges_and_keeps_the_rest_byte_for_byte) {
    const auto l = two_modules();
    export_case x(l);
    const fs::path ckpt = x.tmp / "ckpt";
    fs::create_directory(ckpt);
    // The model's own weights, an existing KV file with an unrelated tensor, a description and an index.
    kvcali::write_safetensors(
        ckpt / "model.safetensors",
        std::vector<kvcali::export_tensor>{{"model.embed_tokens.weight", kvcali::tensor_dtype::bfloat16, {2, 2}, {1, 2, 3, 4}}});
    const std::string weights = slurp(ckpt / "model.safetensors");
    std::vector<kvcali::raw_tensor> old{{"other.kv_cache_scale", "I8", {3}, std::string("\x01\x02\x03", 3)},
                                        {"model.layers.0.self_attn.k_proj.kv_cache_scale", "F16", {1}, std::string("\x00\x3c", 2)}};
    spit(ckpt / "kv_cache_c8.safetensors", kvcali::safetensors_bytes(std::span<const kvcali::raw_tensor>(old), {{"note", "kept"}}));
    spit(ckpt / "quant_model_description.json",
         "{\"model_quant_type\": \"W8A8\", \"version\": \"1.0.0\", \"model.embed_tokens.weight\": \"FLOAT\", \"rms_norm_eps\": 1e-05}");
    spit(ckpt / "model.safetensors.index.json",
         "{\"metadata\": {\"total_size\": 16}, \"weight_map\": {\"model.embed_tokens.weight\": \"model.safetensors\"}}");
    spit(ckpt / "config.json",
         "{\"architectures\": [\"LlamaForCausalLM\"], \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie\": false, "
         "\"big\": 1000000000000000.0, \"huge\": 1e+16, \"third\": 0.30000000000000004}");
    const std::string config_before = slurp(ckpt / "config.json");

    const std::vector<std::string> base{"export", "--record", x.record.string(), "--config", x.config.string()};
    auto args = base;
    args.insert(args.end(), {"--format", "ascend-c8", "--into", ckpt.string()});
    auto r = run_cli(args);
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(r.out.find("model.safetensors.index.json") != std::string::npos, r.out);
    BOOST_TEST(slurp(ckpt / "model.safetensors") == weights);
    BOOST_TEST(slurp(ckpt / "config.json") == config_before);
    {
        kvcali::safetensors_file f(ckpt / "kv_cache_c8.safetensors");
        BOOST_TEST(f.read_bytes("other.kv_cache_scale") == std::string("\x01\x02\x03", 3));  // kept as it was
        BOOST_TEST(f.header().find("other.kv_cache_scale")->dtype == "I8");
        BOOST_TEST(f.read_floats("model.layers.0.self_attn.k_proj.kv_cache_scale").size() == 4u);  // replaced
        BOOST_TEST(f.header().tensors.size() == 9u);
        bool note = false;
        for (const auto& m : f.header().metadata) note = note || (m.first == "note" && m.second == "kept");
        BOOST_TEST(note);
    }
    const std::string desc = slurp(ckpt / "quant_model_description.json");
    BOOST_TEST(desc.find("\"version\": \"1.0.0\"") != std::string::npos, desc);
    BOOST_TEST(desc.find("\"rms_norm_eps\": 1e-05") != std::string::npos, desc);
    BOOST_TEST(desc.find("\"model.embed_tokens.weight\": \"FLOAT\"") != std::string::npos);
    BOOST_TEST(desc.find("\"model.layers.1.self_attn.v_proj.kv_cache_offset\": \"W8A8\"") != std::string::npos, desc);
    BOOST_TEST(desc.find("\"kv_cache_type\": \"C8\"") != std::string::npos);
    const std::string index = slurp(ckpt / "model.safetensors.index.json");
    BOOST_TEST(index.find("\"model.embed_tokens.weight\": \"model.safetensors\"") != std::string::npos, index);
    BOOST_TEST(index.find("\"model.layers.0.self_attn.v_proj.kv_cache_scale\": \"kv_cache_c8.safetensors\"") != std::string::npos, index);
    BOOST_TEST(index.find("\"total_size\": 16") != std::string::npos);

    // compressed-tensors: the scheme goes into config.json, other keys kept.
    args = base;
    args.insert(args.end(), {"--format", "compressed-tensors", "--into", ckpt.string()});
    r = run_cli(args);
    BOOST_TEST(r.status == 0, r.err);
    const std::string config = slurp(ckpt / "config.json");
    BOOST_TEST(config.find("\"rms_norm_eps\": 1e-05") != std::string::npos, config);
    // Numbers of other keys as Python writes them (the shortest digits alone would give 5e+05, 1e+15).
    BOOST_TEST(config.find("\"rope_theta\": 500000.0,") != std::string::npos, config);
    BOOST_TEST(config.find("\"big\": 1000000000000000.0,") != std::string::npos, config);
    BOOST_TEST(config.find("\"huge\": 1e+16,") != std::string::npos, config);
    BOOST_TEST(config.find("\"third\": 0.30000000000000004") != std::string::npos, config);
    BOOST_TEST(config.find("\"quant_method\": \"compressed-tensors\"") != std::string::npos, config);
    BOOST_TEST(config.find("\"kv_cache_scheme\": {") != std::string::npos, config);
    BOOST_TEST(!fs::exists(ckpt / "kv_cache_scheme.json"));
    BOOST_TEST(slurp(ckpt / "model.safetensors") == weights);
    BOOST_TEST(slurp(ckpt / "model.safetensors.index.json").find("\"model.layers.0.self_attn.k_scale\": \"kv_cache_scales.safetensors\"") !=
               std::string::npos);

    // A failing merge (one unreadable file among them) changes none of the files.
    spit(ckpt / "quant_model_description.json", "[not an object]");
    args = base;
    args.insert(args.end(), {"--format", "ascend-c8", "--into", ckpt.string()});
    expect_failure(args, "invalid_data", ckpt);
    spit(ckpt / "quant_model_description.json", "{}");
    spit(ckpt / "kv_cache_c8.safetensors", le_u64(100) + "{}");
    expect_failure(args, "invalid_data", ckpt, "longer than the file");
    // --into a folder without config.json, for compressed-tensors.
    fs::remove(ckpt / "config.json");
    args = base;
    args.insert(args.end(), {"--format", "compressed-tensors", "--into", ckpt.string()});
    expect_failure(args, "invalid_argument", ckpt, "no such file");
}

/// The bytes prepare_export gives for `ckpt`/config.json when merging the kv_cache_scheme into it.
std::string merged_config(const fs::path& ckpt) {
    const auto layers = two_modules();
    kvcali::export_options o;
    o.format = kvcali::export_format::compressed_tensors;
    const auto plan =
        kvcali::plan_export(kvcali::parse_record(record_text(layers)), kvcali::parse_quant_cali_config(config_text(layers)), o);
    for (const auto& f : kvcali::prepare_export(plan, ckpt, true)) {
        if (f.path == ckpt / "config.json") return f.bytes;
    }
    BOOST_FAIL("no config.json among the files");
    return {};
}

/// The first diagnostic of merging into `ckpt`/config.json holding `text`.
kvcali::diagnostic merge_error(const fs::path& ckpt, const std::string& text) {
    spit(ckpt / "config.json", text);
    try {
        merged_config(ckpt);
    } catch (const kvcali::error& e) {
        BOOST_REQUIRE(!e.diagnostics().empty());
        return e.diagnostics().front();
    }
    BOOST_FAIL("the merge succeeded");
    return {};
}

BOOST_AUTO_TEST_CASE(into_keeps_numbers_and_duplicate_keys_as_before) {
    temp_dir tmp;
    // Integers as int64, then uint64, then (beyond) double; a fraction or an exponent: the double,
    // written back as Python writes it; beyond the double range: +-Infinity (as Boost.JSON 1.81
    // gave, and Python writes; also for an exponent of 2^31 or more, which Boost.JSON refused).
    // The last two doubles were one ulp off through Boost.JSON 1.81's parser (0.9783926500593084,
    // 0.49406583030893): now they are kept as written.
    spit(tmp / "config.json",
         "{\"f1\": 10000.0, \"f2\": 1e-05, \"int_neg_zero\": -0, \"zero\": 0.0, \"neg_zero\": -0.0, \"u64_max\": 18446744073709551615, "
         "\"i64_min\": -9223372036854775808, \"u64\": 9223372036854775808, \"beyond_u64\": 18446744073709551616, "
         "\"beyond_i64\": -9223372036854775809, \"big\": 123456789012345678901234567890, \"over\": 1e400, \"under\": -1e400, "
         "\"tiny\": 1e-400, \"far\": 1e4294967296, \"near\": -1e-4294967296, \"max\": 1.7976931348623157e+308, \"min_sub\": 5e-324, "
         "\"upper_e\": 1E5, \"dup\": 1, "
         "\"nested\": {\"x\": [1, {\"y\": 2.5}], \"x\": \"later\"}, \"seventeen\": 0.9783926500593085, "
         "\"seventeen2\": 0.49406583030893003, \"dup\": [2]}");
    const std::string merged = merged_config(tmp.path());
    const std::string expected =
        "{\n  \"f1\": 10000.0,\n  \"f2\": 1e-05,\n  \"int_neg_zero\": 0,\n  \"zero\": 0.0,\n  \"neg_zero\": -0.0,\n"
        "  \"u64_max\": 18446744073709551615,\n  \"i64_min\": -9223372036854775808,\n  \"u64\": 9223372036854775808,\n"
        "  \"beyond_u64\": 1.8446744073709552e+19,\n  \"beyond_i64\": -9.223372036854776e+18,\n  \"big\": 1.2345678901234568e+29,\n"
        "  \"over\": Infinity,\n  \"under\": -Infinity,\n  \"tiny\": 0.0,\n  \"far\": Infinity,\n  \"near\": -0.0,\n  \"max\": "
        "1.7976931348623157e+308,\n  \"min_sub\": 5e-324,\n"
        "  \"upper_e\": 100000.0,\n  \"dup\": [\n    2\n  ],\n  \"nested\": {\n    \"x\": \"later\"\n  },\n"
        "  \"seventeen\": 0.9783926500593085,\n  \"seventeen2\": 0.49406583030893003,\n  \"quantization_config\": {";
    BOOST_TEST(merged.substr(0, expected.size()) == expected);
    // Merged again, the file comes back byte for byte (without the infinities, which are not JSON
    // and are refused when read, as by Boost.JSON).
    std::string again = merged;
    for (const std::string infinity : {"  \"over\": Infinity,\n  \"under\": -Infinity,\n", "  \"far\": Infinity,\n"}) {
        BOOST_REQUIRE(again.find(infinity) != std::string::npos);
        again.erase(again.find(infinity), infinity.size());
    }
    spit(tmp / "config.json", again);
    BOOST_TEST(merged_config(tmp.path()) == again);
    BOOST_TEST(merge_error(tmp.path(), merged).message == "config.json is not valid JSON: expected a JSON value, found 'I'");
}

BOOST_AUTO_TEST_CASE(into_reports_bad_json_with_line_and_column) {
    temp_dir tmp;
    const std::string file = (tmp / "config.json").string();
    auto d = merge_error(tmp.path(), "{\n  \"a\": 1,\n  \"b\": }\n");
    BOOST_TEST((d.category == kvcali::errc::invalid_data));
    BOOST_TEST(d.message == "config.json is not valid JSON: expected a JSON value, found '}'");
    BOOST_TEST(d.where.file == file);
    BOOST_TEST(d.where.line == 3u);
    BOOST_TEST(d.where.column == 8u);
    d = merge_error(tmp.path(), "{\"a\": NaN}");
    BOOST_TEST(d.message == "config.json is not valid JSON: expected a JSON value, found 'N'");
    BOOST_TEST(d.where.line == 1u);
    BOOST_TEST(d.where.column == 7u);
    d = merge_error(tmp.path(), "\xEF\xBB\xBF{}");
    BOOST_TEST(d.message == "config.json is not valid JSON: it starts with a UTF-8 byte order mark, which JSON does not allow; remove it");
    BOOST_TEST(d.where.line == 1u);
    BOOST_TEST(d.where.column == 1u);
    d = merge_error(tmp.path(), "{\"a\": [\"b\xff\"]}");
    BOOST_TEST(d.message == "config.json is not valid JSON: invalid UTF-8 in a string");
    BOOST_TEST(d.where.column == 10u);
    d = merge_error(tmp.path(), "[1]");
    BOOST_TEST(d.message == file + " must hold a JSON object to merge into");
    // At most 64 levels of nesting, as before.
    d = merge_error(tmp.path(), "{\"a\":" + std::string(64, '[') + std::string(64, ']') + "}");
    BOOST_TEST(d.message == "config.json is not valid JSON: nesting deeper than 64 levels");
    BOOST_TEST(d.where.column == 69u);
    d = merge_error(tmp.path(), "{\"a\":" + std::string(100000, '['));  // refused at the limit, not by the stack
    BOOST_TEST(d.message == "config.json is not valid JSON: nesting deeper than 64 levels");
    spit(tmp / "config.json", "{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}");
    BOOST_TEST(merged_config(tmp.path()).find("\"quantization_config\"") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(output_over_an_input_is_refused) {
    // kvcali's config.json inside the --into folder: merging the scheme into it would destroy it.
    const auto l = two_modules();
    export_case x(l);
    const std::string config_before = slurp(x.config);
    expect_failure({"export", "--record", x.record.string(), "--config", x.config.string(), "--format", "compressed-tensors", "--into",
                    x.tmp.path().string()},
                   "invalid_argument", x.tmp.path(), "--config");
    BOOST_TEST(slurp(x.config) == config_before);
}

BOOST_AUTO_TEST_CASE(usage_errors) {
    const auto l = two_modules();
    export_case x(l);
    auto args = x.args("compressed-tensors");
    args.insert(args.end(), {"--strategy", "attn_head"});
    BOOST_TEST(run_cli(args).status == 2);
    args = x.args("nonsense");
    BOOST_TEST(run_cli(args).status == 2);
    args = x.args("ascend-c8");
    args.insert(args.end(), {"--into", x.tmp.path().string()});
    BOOST_TEST(run_cli(args).status == 2);
    BOOST_TEST(!fs::exists(x.out));
}
