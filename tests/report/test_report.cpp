// kvcali report: the library's pieces (FP8 E4M3 rounding, the INT8 round trip, the figures' edge
// cases, assess_layer, the JSON writer) and `kvcali report` on bad inputs (each with its category,
// naming the file or layer, nothing written), the progress bar and the note without --record.
#define BOOST_TEST_MODULE kvcali_report
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <kvcali/calibration/npy.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/report.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "../support/test_support.hpp"

using namespace kvcali_test;

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// Every non-negative finite E4M3 (fn) value in code order: code = exponent << 3 | mantissa, bias 7,
/// exponent 0 subnormal (m/8 * 2^-6), code 0x7F NaN.
std::vector<float> e4m3_values() {
    std::vector<float> out;
    for (int code = 0; code < 0x7F; ++code) {
        const int e = code >> 3, m = code & 7;
        out.push_back(e == 0 ? std::ldexp(static_cast<float>(m) / 8.0f, -6) : std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7));
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fp8_e4m3_rounding) {
    const std::vector<float> v = e4m3_values();
    BOOST_TEST(v.back() == 448.0f);
    for (std::size_t i = 0; i < v.size(); ++i) {
        BOOST_TEST(kvcali::fp8_e4m3_round(v[i]) == v[i]);
        BOOST_TEST(kvcali::fp8_e4m3_round(-v[i]) == -v[i]);
        if (i + 1 < v.size()) {
            // The midpoint goes to the even code; a hair either side to the nearer neighbour.
            const float mid = (v[i] + v[i + 1]) / 2.0f;
            const float even = i % 2 == 0 ? v[i] : v[i + 1];
            BOOST_TEST(kvcali::fp8_e4m3_round(mid) == even, "midpoint " << mid);
            BOOST_TEST(kvcali::fp8_e4m3_round(-mid) == -even);
            BOOST_TEST(kvcali::fp8_e4m3_round(std::nextafter(mid, 0.0f)) == v[i]);
            BOOST_TEST(kvcali::fp8_e4m3_round(std::nextafter(mid, 1000.0f)) == v[i + 1]);
        }
    }
    // Saturation, and the smallest magnitudes.
    BOOST_TEST(kvcali::fp8_e4m3_round(449.0f) == 448.0f);
    BOOST_TEST(kvcali::fp8_e4m3_round(470.0f) == 448.0f);
    BOOST_TEST(kvcali::fp8_e4m3_round(1e30f) == 448.0f);
    BOOST_TEST(kvcali::fp8_e4m3_round(-1e30f) == -448.0f);
    BOOST_TEST(kvcali::fp8_e4m3_round(0x1p-10f) == 0.0f);            // half the smallest subnormal: to even (0)
    BOOST_TEST(kvcali::fp8_e4m3_round(0x1.000002p-10f) == 0x1p-9f);  // just above: up
    BOOST_TEST(kvcali::fp8_e4m3_round(1e-30f) == 0.0f);
    BOOST_TEST(kvcali::fp8_scale(0.0f) == 1.0f);
    BOOST_TEST(kvcali::fp8_scale(448.0f) == 1.0f);
    BOOST_TEST(kvcali::fp8_round_trip(3.0f, 0.5f) == 3.0f);
}

BOOST_AUTO_TEST_CASE(int8_round_trip_rounds_half_to_even_and_clamps) {
    BOOST_TEST(kvcali::int8_round_trip(0.5f, 1.0f, 0) == 0.0f);
    BOOST_TEST(kvcali::int8_round_trip(1.5f, 1.0f, 0) == 2.0f);
    BOOST_TEST(kvcali::int8_round_trip(2.5f, 1.0f, 0) == 2.0f);
    BOOST_TEST(kvcali::int8_round_trip(-0.5f, 1.0f, 0) == 0.0f);
    BOOST_TEST(kvcali::int8_round_trip(-2.5f, 1.0f, 0) == -2.0f);
    BOOST_TEST(kvcali::int8_round_trip(1000.0f, 1.0f, 0) == 127.0f);
    BOOST_TEST(kvcali::int8_round_trip(-1000.0f, 1.0f, 0) == -128.0f);
    // With an offset the range shifts: q = clamp(round(x / s) + o), dq = (q - o) * s.
    BOOST_TEST(kvcali::int8_round_trip(1000.0f, 0.5f, -100) == (127.0f + 100.0f) * 0.5f);
    BOOST_TEST(kvcali::int8_round_trip(-1000.0f, 0.5f, -100) == (-128.0f + 100.0f) * 0.5f);
    const auto [lo, hi] = kvcali::int8_clip_range(0.5f, -100);
    BOOST_TEST(lo == -14.0f);
    BOOST_TEST(hi == 113.5f);
}

BOOST_AUTO_TEST_CASE(figures_edge_cases) {
    kvcali::error_sums zeros;
    for (int i = 0; i < 4; ++i) zeros.add(0.0f, 0.0f, -1.0f, 1.0f);
    const auto z = zeros.figures(-1.0f, 1.0f);
    BOOST_TEST(std::isnan(z.sqnr_db));  // no signal, no error
    BOOST_TEST(z.cosine == 1.0);
    BOOST_TEST(z.mse == 0.0);
    kvcali::error_sums exact;
    exact.add(1.0f, 1.0f, -1.0f, 1.0f);
    exact.add(-2.0f, -2.0f, -1.0f, 1.0f);  // outside [-1, 1]
    const auto e = exact.figures(-1.0f, 1.0f);
    BOOST_TEST(std::isinf(e.sqnr_db));
    BOOST_TEST(e.clip_fraction == 0.5);
    BOOST_TEST(e.cosine == 1.0);
    kvcali::error_sums lost;
    lost.add(1.0f, 0.0f, -1.0f, 1.0f);
    const auto l = lost.figures(-1.0f, 1.0f);
    BOOST_TEST(l.cosine == 0.0);
    BOOST_TEST(l.sqnr_db == 0.0);
    BOOST_TEST(l.max_abs_error == 1.0);
    // JSON: non-finite figures are null.
    std::string out;
    kvcali::detail::append_json_double(out, e.sqnr_db);
    BOOST_TEST(out == "null");
}

namespace {

kvcali::resolved_config tiny_config(const std::string& granularity, const std::string& algo) {
    const std::string params = algo == "hfmg"
                                   ? R"("num_of_bins":4096)"
                                   : R"("max_percentile":0.999999,"min_percentile":0.999999,"search_range":[0.7,1.3],"search_step":0.01)";
    return kvcali::parse_quant_cali_config(R"({"batch_num":2,"activation_offset":true,"k":{"kv_data_quant_config":{"act_algo":")" + algo +
                                           "\"," + params + ",\"quant_granularity\":" + granularity + "}}}");
}

}  // namespace

BOOST_AUTO_TEST_CASE(assess_layer_figures_and_flags) {
    const kvcali::resolved_config doc = tiny_config("1", "ifmr");
    const kvcali::layer_calibration plan = kvcali::calibration_of(doc, doc.layers[0]);
    // 3 channels, 2 batches of 4 rows; channel 2 is 1000x wider than the others.
    std::vector<float> v;
    for (int r = 0; r < 8; ++r) {
        v.push_back(0.1f * static_cast<float>(r) - 0.3f);
        v.push_back(-0.05f * static_cast<float>(r));
        v.push_back(100.0f * static_cast<float>(r % 3) - 80.0f);
    }
    const std::vector<std::size_t> ends{12, 24};
    const kvcali::layer_values data{v, 3, ends};
    // A record that clips channel 2 badly.
    const kvcali::quant_factors record{{0.01f, 0.01f, 0.01f}, {0, 0, 0}};
    const kvcali::layer_quality q = kvcali::assess_layer(plan, data, record);
    BOOST_TEST(q.per_channel);
    BOOST_TEST(q.channels.size() == 3u);
    BOOST_TEST(q.data.count == 24u);
    BOOST_TEST(q.other_algo == "hfmg");
    BOOST_TEST(q.other_algorithm.has_value());
    BOOST_TEST(q.wide_channels == std::vector<std::size_t>{2});
    BOOST_TEST(q.flags == (std::vector<std::string>{"sqnr_below_20db", "clipped_over_1pct", "channel_range_100x_median"}));
    BOOST_TEST(q.best != "record");
    BOOST_TEST(q.record.all.lo == -1.28f);
    BOOST_TEST(q.channels[2].data.max == 120.0f);
    BOOST_TEST(q.channels[2].record.clip_fraction == 1.0);  // every value of channel 2 is outside [-1.28, 1.27]
    // Min/max never clips by more than the offset's rounding; its SQNR beats this record's.
    BOOST_TEST(q.minmax.all.sqnr_db > q.record.all.sqnr_db);
    // The histogram holds every value.
    std::uint64_t total = 0;
    for (auto c : q.histogram.counts) total += c;
    BOOST_TEST(total == 24u);

    // A record of the wrong size names the layer.
    try {
        (void)kvcali::assess_layer(plan, data, kvcali::quant_factors{{0.1f}, {0}});
        BOOST_FAIL("expected an error");
    } catch (const kvcali::error& e) {
        BOOST_TEST(e.code() == kvcali::errc::invalid_data);
        BOOST_TEST(e.diagnostics().front().layer == "k");
        BOOST_TEST(contains(e.diagnostics().front().message, "expected 3"), e.diagnostics().front().message);
    }

    // JSON: parses, with the issue's keys in every method object, and per-channel entries.
    kvcali::quality_report report;
    report.layers.push_back(q);
    const boost::json::value j = boost::json::parse(kvcali::quality_report_json(report));
    const auto& layer = j.at("layers").at(0).as_object();
    for (const char* key :
         {"name", "act_algo", "granularity", "count", "min", "max", "record", "minmax", "other_algorithm", "fp8", "flags", "channels"}) {
        BOOST_TEST(layer.contains(key), key);
    }
    for (const char* m : {"record", "minmax", "other_algorithm", "fp8"}) {
        for (const char* key : {"lo", "hi", "clip_fraction", "mse", "sqnr_db", "max_abs_error", "cosine", "scale", "offset"}) {
            BOOST_TEST(layer.at(m).as_object().contains(key), m << "." << key);
            BOOST_TEST(layer.at("channels").at(0).at(m).as_object().contains(key), m << "." << key);
        }
    }
    BOOST_TEST(layer.at("granularity").as_string() == "per_channel");
    BOOST_TEST(layer.at("channels").as_array().size() == 3u);
    // The page: one row per layer, the flags, no external reference.
    const std::string page = kvcali::quality_report_html(report);
    BOOST_TEST(contains(page, "<tr data-index=\"0\" data-name=\"k\" class=\"flagged\">"));
    BOOST_TEST(!contains(page, "http://"));
    BOOST_TEST(!contains(page, "https://"));
}

// ---------------------------------------------------------------------------------------------
// The CLI on bad inputs

namespace {

struct fixture_files {
    temp_dir dir;
    std::string config, record, act;
    fixture_files() {
        const auto model = dir / "model.json";
        spit(model, R"([{"name":"m.k_proj","type":"Linear"},{"name":"m.v_proj","type":"Linear"}])");
        spit(dir / "quant.cfg",
             "batch_num: 2\nkv_cache_quant_config { quant_layers: ['m.k_proj', 'm.v_proj'] calibration_config { hfmg_quantize {} } }\n"
             "override_layers_configs { layer_name: 'm.v_proj' kv_data_quant_config { ifmr_quantize { quant_granularity: per_channel } } "
             "}\n");
        config = (dir / "config.json").string();
        record = (dir / "record.txt").string();
        act = (dir / "act").string();
        const auto g = run_cli({"generate", "--model", model.string(), "--cfg", (dir / "quant.cfg").string(), "-o", config, "--quiet"});
        if (g.status != 0) throw std::runtime_error(g.err);
        for (const char* layer : {"m.k_proj", "m.v_proj"}) {
            fs::create_directories(fs::path(act) / layer);
            for (int k = 0; k < 2; ++k) write_batch(layer, k, 0.0f);
        }
        const auto c = run_cli({"calibrate", "--config", config, "-a", act, "-o", record, "--quiet"});
        if (c.status != 0) throw std::runtime_error(c.err);
    }
    fs::path batch(const std::string& layer, int k) const { return fs::path(act) / layer / (std::to_string(k) + ".npy"); }
    void write_batch(const std::string& layer, int k, float poison, std::int64_t channels = 4) const {
        std::vector<float> v;
        for (int i = 0; i < 8 * channels; ++i)
            v.push_back(std::sin(0.37f * static_cast<float>(i + 100 * k)) * (1.0f + static_cast<float>(i % channels)));
        if (poison != 0.0f) v[5] = poison;
        const std::vector<std::int64_t> shape{8, channels};
        std::vector<unsigned char> bytes(v.size() * 4);
        std::memcpy(bytes.data(), v.data(), bytes.size());
        spit(batch(layer, k), kvcali::format_npy(kvcali::dtype::float32, shape, bytes));
    }
    std::vector<std::string> args(bool with_record = true) const {
        std::vector<std::string> a{
            "report", "--config", config, "-a", act, "-o", (dir / "out.html").string(), "--json", (dir / "out.json").string()};
        if (with_record) {
            a.push_back("--record");
            a.push_back(record);
        }
        return a;
    }
};

/// Runs report expecting failure with `category`, the message naming `names`, nothing written (an
/// existing page kept as it was).
void expect_failure(const fixture_files& f, const std::vector<std::string>& args, const std::string& category,
                    const std::vector<std::string>& names) {
    spit(f.dir / "out.html", "old page");
    fs::remove(f.dir / "out.json");
    const auto r = run_cli(args);
    BOOST_TEST(r.status == 1, r.err);
    BOOST_TEST(cli_error_categories(r.err).contains(category), r.err);
    for (const auto& n : names) BOOST_TEST(contains(r.err, n), "expected \"" << n << "\" in: " << r.err);
    BOOST_TEST(slurp(f.dir / "out.html") == "old page");
    BOOST_TEST(!fs::exists(f.dir / "out.json"));
    for (const auto& e : f.dir.entries()) BOOST_TEST(e.find(".tmp") == std::string::npos, "left over: " << e);
}

}  // namespace

BOOST_AUTO_TEST_CASE(report_runs_and_says_when_it_calibrates) {
    fixture_files f;
    const auto r = run_cli(f.args());
    BOOST_TEST(r.status == 0, r.err);
    BOOST_TEST(contains(r.out, "wrote " + (f.dir / "out.html").string() + " and " + (f.dir / "out.json").string() + ": 2 layers"), r.out);
    BOOST_TEST(r.err.empty(), r.err);  // no progress bar off a terminal
    const std::string with_record = slurp(f.dir / "out.json");
    // Without --record: a note on stderr and in the page; the same figures.
    auto a = f.args(false);
    a[8] = (f.dir / "here.json").string();
    const auto h = run_cli(a);
    BOOST_TEST(h.status == 0, h.err);
    BOOST_TEST(contains(h.err, "no --record given: calibrating 2 layers"), h.err);
    BOOST_TEST(contains(h.out, "(scales calibrated here: no --record)"), h.out);
    BOOST_TEST(contains(slurp(f.dir / "out.html"), "id=\"calibrated-here\""));
    std::string here = slurp(f.dir / "here.json");
    BOOST_TEST(here.rfind("{\"calibrated_here\":true,", 0) == 0u);
    here.replace(0, std::strlen("{\"calibrated_here\":true"), "{\"calibrated_here\":false");
    BOOST_TEST(here == with_record);
    // On a terminal: the progress bar, ending at 2/2 layers; --quiet: nothing.
    const auto tty = run_cli(f.args(), {}, {.on_terminal = true});
    BOOST_TEST(tty.status == 0, tty.out);
    BOOST_TEST(contains(tty.out, "\rreport [..............................] 0/2 layers"), tty.out);
    BOOST_TEST(contains(tty.out, "\rreport [##############################] 2/2 layers"), tty.out);
    auto q = f.args(false);
    q.push_back("--quiet");
    const auto quiet = run_cli(q, {}, {.on_terminal = true});
    BOOST_TEST(quiet.status == 0, quiet.out);
    BOOST_TEST(quiet.out.empty(), quiet.out);
}

BOOST_AUTO_TEST_CASE(missing_npy) {
    fixture_files f;
    fs::remove(f.batch("m.v_proj", 1));
    expect_failure(f, f.args(), "io_error", {f.batch("m.v_proj", 1).string(), "no such file"});
    expect_failure(f, f.args(false), "io_error", {f.batch("m.v_proj", 1).string()});
}

BOOST_AUTO_TEST_CASE(truncated_npy) {
    fixture_files f;
    const std::string bytes = slurp(f.batch("m.k_proj", 0));
    spit(f.batch("m.k_proj", 0), bytes.substr(0, bytes.size() - 10));
    expect_failure(f, f.args(), "invalid_data", {f.batch("m.k_proj", 0).string(), "bytes; the header's shape and dtype need"});
}

BOOST_AUTO_TEST_CASE(layer_missing_from_the_activations) {
    fixture_files f;
    fs::remove_all(fs::path(f.act) / "m.k_proj");
    expect_failure(f, f.args(), "io_error", {f.batch("m.k_proj", 0).string(), f.batch("m.k_proj", 1).string()});
}

BOOST_AUTO_TEST_CASE(layer_missing_from_the_record) {
    fixture_files f;
    std::string rec = slurp(f.record);
    const std::size_t second = rec.find("record {", 1);
    spit(f.record, rec.substr(0, second));  // only the first layer's block
    expect_failure(f, f.args(), "incomplete_calibration", {"layer \"m.v_proj\" of the config is not in the record", f.record});
}

BOOST_AUTO_TEST_CASE(record_of_another_config) {
    fixture_files f;
    std::string rec = slurp(f.record);
    for (std::size_t at; (at = rec.find("key: \"m.")) != std::string::npos;) rec.replace(at, 8, "key: \"other.");
    spit(f.record, rec);
    expect_failure(
        f, f.args(), "unknown_layer",
        {"the record has layer \"other.k_proj\", which the config does not have", "layer \"m.k_proj\" of the config is not in the record"});
    const auto r = run_cli(f.args());
    BOOST_TEST(cli_error_categories(r.err) == (std::set<std::string>{"unknown_layer", "incomplete_calibration"}), r.err);
}

BOOST_AUTO_TEST_CASE(record_with_the_wrong_channel_count) {
    fixture_files f;
    f.write_batch("m.v_proj", 0, 0.0f, 2);  // per channel: 2 channels now in both batches,
    f.write_batch("m.v_proj", 1, 0.0f, 2);  // the record has 4
    expect_failure(f, f.args(), "invalid_data", {"layer \"m.v_proj\" has 4 scales in the record; its config and data need 2"});
    f.write_batch("m.v_proj", 1, 0.0f, 4);  // the batches disagree
    expect_failure(f, f.args(false), "invalid_data", {"per channel but its batches differ in their last dimension"});
}

BOOST_AUTO_TEST_CASE(non_finite_data) {
    fixture_files f;
    f.write_batch("m.v_proj", 1, std::numeric_limits<float>::quiet_NaN());
    expect_failure(f, f.args(), "invalid_data", {f.batch("m.v_proj", 1).string(), "layer \"m.v_proj\": value 5 of batch 1 is nan"});
    f.write_batch("m.v_proj", 1, -std::numeric_limits<float>::infinity());
    expect_failure(f, f.args(false), "invalid_data", {f.batch("m.v_proj", 1).string(), "is -inf"});
}

BOOST_AUTO_TEST_CASE(outputs_over_inputs_and_usage) {
    fixture_files f;
    auto a = f.args();
    a[6] = f.config;  // -o config.json
    const auto r = run_cli(a);
    BOOST_TEST(r.status == 1);
    BOOST_TEST(cli_error_categories(r.err).contains("invalid_argument"), r.err);
    auto b = f.args();
    b[8] = b[6];  // --json the page
    const auto s = run_cli(b);
    BOOST_TEST(s.status == 1);
    BOOST_TEST(cli_error_categories(s.err).contains("invalid_argument"), s.err);
    const auto u = run_cli({"report", "--config", f.config, "-a", f.act});
    BOOST_TEST(u.status == 2);
    BOOST_TEST(contains(u.err, "missing -o PATH"), u.err);
}

BOOST_AUTO_TEST_CASE(library_without_exceptions) {
    fixture_files f;
    const kvcali::resolved_config doc = kvcali::read_quant_cali_config(f.config);
    const auto ok = kvcali::try_build_quality_report(doc, f.act, {});
    BOOST_TEST_REQUIRE(ok.value.has_value());
    BOOST_TEST(ok.value->calibrated_here);
    BOOST_TEST(ok.value->layers.size() == 2u);
    BOOST_TEST(ok.value->layers[1].channels.size() == 4u);  // m.v_proj: per channel
    fs::remove(f.batch("m.k_proj", 1));
    const auto bad = kvcali::try_build_quality_report(doc, f.act, {});
    BOOST_TEST(!bad);
    BOOST_TEST((bad.code() == kvcali::errc::io_error));
    BOOST_TEST(bad.diagnostics().front().layer == "m.k_proj");
}
