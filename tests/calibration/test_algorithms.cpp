// IFMR and HFMG against the reference's answers (data/cases.json), and the fast evaluations
// against straightforward ones.
#define BOOST_TEST_MODULE calibration_algorithms
#include <boost/test/unit_test.hpp>

#include <kvcali/calibration/hfmg.hpp>
#include <kvcali/calibration/ifmr.hpp>

#include <bit>
#include <cmath>
#include <random>

#include "../support/test_support.hpp"
#include "cali_support.hpp"

namespace {

using cali_test::json;

json load_cases() { return cali_test::parse_json(kvcali_test::slurp(kvcali_test::source_root() / "tests/calibration/data/cases.json")); }

/// The samples the algorithm sees: one (per tensor) or one per channel.
std::vector<std::vector<float>> samples_of(const std::vector<std::vector<float>>& batches, std::size_t channels, bool per_channel) {
    std::vector<std::vector<float>> out(per_channel ? channels : 1);
    for (const auto& b : batches) {
        for (std::size_t i = 0; i < b.size(); ++i) out[per_channel ? i % channels : 0].push_back(b[i]);
    }
    return out;
}

kvcali::ifmr_options ifmr_options_of(const json& params, bool with_offset) {
    kvcali::ifmr_options o;
    auto dec = [](double v) { return kvcali::decimal_double(static_cast<float>(v)); };
    o.max_percentile = dec(params["max_percentile"].number);
    o.min_percentile = dec(params["min_percentile"].number);
    o.search_range_start = dec(params["search_range"].items[0].number);
    o.search_range_end = dec(params["search_range"].items[1].number);
    o.search_step = dec(params["search_step"].number);
    o.with_offset = with_offset;
    return o;
}

/// The straightforward IFMR loss: one pass over the data per candidate, each value quantized in
/// float32 as the reference does; the squared error summed in double.
std::vector<double> slow_ifmr_losses(const std::vector<float>& sorted, const kvcali::ifmr_options& o) {
    const auto ratios = kvcali::ifmr_ratios(o);
    const auto start = kvcali::ifmr_start_points(sorted, o);
    std::vector<double> out;
    for (float r : ratios) {
        const auto c = kvcali::ifmr_candidate_at(start, r, o.with_offset);
        double sum = 0.0;
        for (float x : sorted) {
            const double d = static_cast<double>(kvcali::ifmr_dequantized(c, x)) - static_cast<double>(x);
            sum += d * d;
        }
        out.push_back(sum / static_cast<double>(sorted.size()));
    }
    return out;
}

/// PyTorch's HistogramObserver error, bin by bin (in double).
double slow_hfmg_error(const kvcali::hfmg_histogram& h, std::int64_t l, std::int64_t r) {
    const double w = static_cast<double>((h.hi - h.lo) / static_cast<float>(h.bins));
    const float dwf = (h.hi - h.lo) / static_cast<float>(h.bins) * static_cast<float>(r - l + 1) / 256.0f;
    if (dwf < kvcali::flt_epsilon) return 0.0;
    const double dw = w * static_cast<double>(r - l + 1) / 256.0;
    double total = 0.0;
    for (std::int64_t j = 0; j < static_cast<std::int64_t>(h.bins); ++j) {
        const double c = static_cast<double>(h.counts[static_cast<std::size_t>(j)]);
        if (c == 0.0) continue;
        const double begin = static_cast<double>(j - l) * w, end = begin + w;
        const double db = std::clamp(std::floor(begin / dw), 0.0, 255.0), de = std::clamp(std::floor(end / dw), 0.0, 255.0);
        const double density = c / w;
        const double cb = (db + 0.5) * dw, ce = de * dw + dw / 2;
        const double h3 = dw * dw * dw / 8;
        double norm = density * (h3 - std::pow(begin - cb, 3)) / 3;
        norm += (de - db - 1) * density * (2 * h3) / 3;
        norm += density * (std::pow(end - ce, 3) + h3) / 3;
        total += norm;
    }
    return total;
}

/// IFMR's offset for a candidate (ifmr_choose's rule).
std::int32_t ifmr_offset(const kvcali::ifmr_start& start, const kvcali::ifmr_candidate& c) {
    return static_cast<std::int32_t>(-kvcali::round_half_even(start.min0 / c.scale)) - 128;
}

/// True when `q` is within a few float32 steps of a value halfway between two integers.
bool near_rounding_tie(float q) {
    const float tie = std::floor(q) + 0.5f;
    return std::fabs(q - tie) <= 4.0f * (std::nextafter(std::fabs(q), INFINITY) - std::fabs(q));
}

bool close(double a, double b, double rel) { return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b)); }

}  // namespace

// At most this many channels of cases.json may choose another IFMR candidate than the reference
// (float32 sums tying): none does on x86-64 with g++ 12 and clang 14 (the message prints the count);
// the margin is for other floating-point environments.
constexpr std::size_t max_alternative_candidates = 2;

BOOST_AUTO_TEST_CASE(every_case_of_cases_json_through_the_calibrator) {
    const json cases = load_cases();
    std::size_t checked = 0, alternative_candidates = 0, divergences = 0;
    for (const json& c : cases.items) {
        BOOST_TEST_CONTEXT("case " << c["name"].string) {
            const auto batch_num = static_cast<std::uint32_t>(c["batch_num"].number);
            const auto batches = cali_test::generate_batches(c["data"], batch_num);
            const std::int64_t shape[2] = {static_cast<std::int64_t>(c["data"]["shape"].items[0].number),
                                           static_cast<std::int64_t>(c["data"]["shape"].items[1].number)};
            kvcali::calibrator cal(cali_test::config_for_case(c));
            for (std::uint32_t b = 0; b < batch_num; ++b) {
                const auto outcome = cal.observe("layer", batches[b], shape);
                BOOST_TEST((outcome == (b + 1 == batch_num ? kvcali::batch_outcome::finished : kvcali::batch_outcome::accepted)));
            }
            BOOST_REQUIRE(cal.complete());
            const kvcali::quant_factors got = *cal.result("layer");
            const json& expected = c["expected"];
            if (expected.find("divergence")) {
                ++divergences;
                for (std::size_t i = 0; i < got.scale.size(); ++i) {
                    BOOST_TEST(std::isfinite(got.scale[i]));
                    BOOST_TEST(got.scale[i] > 0.0f);
                    BOOST_TEST(got.offset[i] >= -128);
                    BOOST_TEST(got.offset[i] <= 127);
                }
                ++checked;
                continue;
            }
            BOOST_REQUIRE_EQUAL(got.scale.size(), expected["scale"].items.size());
            BOOST_REQUIRE_EQUAL(got.offset.size(), expected["offset"].items.size());
            const bool ifmr = c["params"]["act_algo"].string == "ifmr";
            const bool per_channel = c["params"]["quant_granularity"].number == 1;
            const auto samples = samples_of(batches, static_cast<std::size_t>(shape[1]), per_channel);
            for (std::size_t i = 0; i < got.scale.size(); ++i) {
                const double want_scale = expected["scale"].items[i].number;
                const auto want_offset = static_cast<std::int32_t>(expected["offset"].items[i].number);
                if (close(got.scale[i], want_scale, 1e-5) && got.offset[i] == want_offset) continue;
                BOOST_TEST_INFO("channel " << i << ": got " << got.scale[i] << " / " << got.offset[i] << ", expected " << want_scale
                                           << " / " << want_offset);
                BOOST_REQUIRE(ifmr);
                // An exact computation may pick another candidate where the reference's float32 sums
                // tie: the reference's candidate must have (nearly) the same loss as ours.
                const auto o = ifmr_options_of(c["params"], c["with_offset"].boolean);
                std::vector<float> sorted = samples[i];
                std::sort(sorted.begin(), sorted.end());
                const kvcali::ifmr_sorted_sample sample(sorted);
                const auto losses = kvcali::ifmr_losses(sample, o);
                const auto start = kvcali::ifmr_start_points(sorted, o);
                const auto ratios = kvcali::ifmr_ratios(o);
                std::optional<double> reference_loss, our_loss;
                std::optional<kvcali::ifmr_candidate> reference_candidate, our_candidate;
                for (std::size_t k = 0; k < ratios.size(); ++k) {
                    const auto cand = kvcali::ifmr_candidate_at(start, ratios[k], o.with_offset);
                    if (!reference_loss && close(cand.scale, want_scale, 1e-6)) reference_loss = losses[k], reference_candidate = cand;
                    if (!our_loss && cand.scale == got.scale[i]) our_loss = losses[k], our_candidate = cand;
                }
                BOOST_REQUIRE(reference_loss.has_value());
                BOOST_REQUIRE(our_loss.has_value());
                BOOST_TEST(close(*reference_loss, *our_loss, 1e-5));
                // The offsets: each chosen candidate's own, as IFMR computes it from the minimum. The
                // reference's may differ by one only where min / scale sits a few float32 steps from a
                // rounding tie (its float32 arithmetic can land on the other side).
                if (o.with_offset) {
                    BOOST_TEST(got.offset[i] == ifmr_offset(start, *our_candidate));
                    const int d = std::abs(want_offset - ifmr_offset(start, *reference_candidate));
                    BOOST_TEST((d == 0 || (d == 1 && near_rounding_tie(start.min0 / reference_candidate->scale))),
                               "reference offset " << want_offset << " is not its candidate's");
                } else {
                    BOOST_TEST(got.offset[i] == 0);
                    BOOST_TEST(want_offset == 0);
                }
                ++alternative_candidates;
            }
            ++checked;
        }
    }
    BOOST_TEST(checked == cases.items.size());
    BOOST_TEST(checked == 150u);
    BOOST_TEST(divergences == 1u);
    // Cases whose IFMR choice differs from the reference's take the loss comparison above: capped,
    // so that a broken algorithm cannot pass by tying everywhere.
    BOOST_TEST(alternative_candidates <= max_alternative_candidates);
    BOOST_TEST_MESSAGE("cases: " << checked << ", IFMR alternative candidates: " << alternative_candidates);
}

BOOST_AUTO_TEST_CASE(fast_ifmr_losses_equal_the_straightforward_ones) {
    const json cases = load_cases();
    std::size_t compared = 0;
    auto compare = [&](std::vector<float> values, const kvcali::ifmr_options& o) {
        std::sort(values.begin(), values.end());
        const auto slow = slow_ifmr_losses(values, o);
        const auto fast = kvcali::ifmr_losses(kvcali::ifmr_sorted_sample(values), o);
        BOOST_REQUIRE_EQUAL(slow.size(), fast.size());
        for (std::size_t k = 0; k < slow.size(); ++k) {
            BOOST_TEST_INFO("candidate " << k << ": " << slow[k] << " vs " << fast[k]);
            BOOST_TEST((std::fabs(slow[k] - fast[k]) <= 1e-9 * std::fabs(slow[k]) + 1e-30));
        }
        ++compared;
    };
    for (const json& c : cases.items) {
        if (c["params"]["act_algo"].string != "ifmr") continue;
        const auto batches = cali_test::generate_batches(c["data"], static_cast<std::uint32_t>(c["batch_num"].number));
        const bool per_channel = c["params"]["quant_granularity"].number == 1;
        for (auto& s : samples_of(batches, static_cast<std::size_t>(c["data"]["shape"].items[1].number), per_channel)) {
            compare(std::move(s), ifmr_options_of(c["params"], c["with_offset"].boolean));
        }
    }
    // Larger random samples (blocks and super-blocks in use), both symmetries.
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.3f, 2.0f);
    for (std::size_t n : {100u, 4097u, 70000u}) {
        std::vector<float> v(n);
        for (auto& x : v) x = normal(rng);
        for (bool with_offset : {true, false}) {
            kvcali::ifmr_options o;
            o.with_offset = with_offset;
            compare(v, o);
        }
    }
    BOOST_TEST(compared > 60u);
}

BOOST_AUTO_TEST_CASE(unsorted_ifmr_equals_the_sorted_one_and_the_straightforward_losses) {
    // The unsorted path (threshold intervals, no sort) against the straightforward losses and the
    // sorted path's choice, on every IFMR sample of cases.json and on harder data.
    const json cases = load_cases();
    std::size_t compared = 0;
    auto compare = [&](const std::vector<float>& values, const kvcali::ifmr_options& o) {
        std::vector<float> sorted = values;
        std::sort(sorted.begin(), sorted.end());
        const auto slow = slow_ifmr_losses(sorted, o);
        const auto fast = kvcali::ifmr_losses_unsorted(values, o);
        BOOST_REQUIRE_EQUAL(slow.size(), fast.size());
        for (std::size_t k = 0; k < slow.size(); ++k) {
            BOOST_TEST_INFO("candidate " << k << ": " << slow[k] << " vs " << fast[k]);
            BOOST_TEST((std::fabs(slow[k] - fast[k]) <= 1e-9 * std::fabs(slow[k]) + 1e-30));
        }
        const auto unsorted_choice = kvcali::ifmr_choose_unsorted(values, o);
        BOOST_REQUIRE(unsorted_choice.has_value());
        BOOST_TEST((*unsorted_choice == kvcali::ifmr_choose(kvcali::ifmr_sorted_sample(sorted), o)));
        ++compared;
    };
    for (const json& c : cases.items) {
        if (c["params"]["act_algo"].string != "ifmr") continue;
        const auto batches = cali_test::generate_batches(c["data"], static_cast<std::uint32_t>(c["batch_num"].number));
        const bool per_channel = c["params"]["quant_granularity"].number == 1;
        for (const auto& s : samples_of(batches, static_cast<std::size_t>(c["data"]["shape"].items[1].number), per_channel)) {
            compare(s, ifmr_options_of(c["params"], c["with_offset"].boolean));
        }
    }
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.3f, 2.0f);
    std::vector<float> v(kvcali_test::sample(200000, 5));  // (40,000 under the sanitizers)
    for (auto& x : v) x = normal(rng);
    for (std::size_t i = 0; i < v.size(); i += 997) v[i] *= 30.0f;  // outliers
    std::vector<float> sparse = v;
    for (std::size_t i = 0; i < sparse.size(); ++i) {
        if (i % 3 != 0) sparse[i] = 0.0f;  // runs of equal values, one of them a level
    }
    std::vector<float> coarse = v;
    for (auto& x : coarse) x = std::round(x * 4.0f) / 4.0f;  // few distinct values
    const std::vector<float> constant(50000, 0.5f), negative(50000, -1.25f);
    const std::vector<float>* const data_sets[] = {&v, &sparse, &coarse, &constant, &negative};
    for (const std::vector<float>* data : data_sets) {
        for (bool with_offset : {true, false}) {
            kvcali::ifmr_options o;
            o.with_offset = with_offset;
            compare(*data, o);
            o.max_percentile = 0.99;  // a starting point inside the data
            o.min_percentile = 0.9;
            compare(*data, o);
        }
    }
    BOOST_TEST(compared > 80u);
    BOOST_TEST(kvcali::ifmr_prefers_unsorted(16u << 20, kvcali::ifmr_options{}));
    BOOST_TEST(!kvcali::ifmr_prefers_unsorted(8192, kvcali::ifmr_options{}));
}

BOOST_AUTO_TEST_CASE(cell_walk_ifmr_equals_the_straightforward_search) {
    // The cell walk (the sorted path, per channel) against the block-hierarchy search
    // (ifmr_choose, one binary search per level) and the straightforward losses: the same scale
    // bit for bit and the same offset, on every IFMR sample of cases.json and on varied data.
    const json cases = load_cases();
    std::size_t compared = 0;
    kvcali::ifmr_walk_workspace ws;
    auto compare = [&](const std::vector<float>& values, const kvcali::ifmr_options& o) {
        const auto sorted_span = kvcali::ifmr_sort_sample(values, ws);
        const std::vector<float> sorted(sorted_span.begin(), sorted_span.end());
        BOOST_REQUIRE(std::is_sorted(sorted.begin(), sorted.end()));
        std::vector<double> errors;
        const auto walk = kvcali::ifmr_choose_sorted(sorted, o, ws, &errors);
        BOOST_REQUIRE(walk.has_value());
        const auto slow = slow_ifmr_losses(sorted, o);
        BOOST_REQUIRE_EQUAL(errors.size(), slow.size());
        for (std::size_t k = 0; k < slow.size(); ++k) {
            const double loss = errors[k] / static_cast<double>(sorted.size());
            BOOST_TEST_INFO("candidate " << k << ": " << slow[k] << " vs " << loss << " (n " << sorted.size() << ", from " << sorted.front()
                                         << " to " << sorted.back() << ")");
            BOOST_TEST((std::fabs(slow[k] - loss) <= 1e-9 * std::fabs(slow[k]) + 1e-30));
        }
        const auto expected = kvcali::ifmr_choose(kvcali::ifmr_sorted_sample(sorted), o);
        BOOST_TEST(std::bit_cast<std::uint32_t>(walk->scale) == std::bit_cast<std::uint32_t>(expected.scale),
                   walk->scale << " vs " << expected.scale << " (n " << sorted.size() << ")");
        BOOST_TEST(walk->offset == expected.offset);
        // Without `errors`, candidates are given up early, starting from the previous sample's
        // winner (ws.hint, left by the sample before, unrelated): the same choice.
        ws.hint = compared % 61;
        const auto pruned = kvcali::ifmr_choose_sorted(sorted, o, ws);
        BOOST_REQUIRE(pruned.has_value());
        BOOST_TEST(std::bit_cast<std::uint32_t>(pruned->scale) == std::bit_cast<std::uint32_t>(expected.scale));
        BOOST_TEST(pruned->offset == expected.offset);
        // ifmr_calibrate takes the same path for a sample of this size.
        if (!kvcali::ifmr_prefers_unsorted(values.size(), o)) BOOST_TEST((kvcali::ifmr_calibrate(values, o) == *walk));
        ++compared;
    };
    for (const json& c : cases.items) {
        if (c["params"]["act_algo"].string != "ifmr") continue;
        const auto batches = cali_test::generate_batches(c["data"], static_cast<std::uint32_t>(c["batch_num"].number));
        const bool per_channel = c["params"]["quant_granularity"].number == 1;
        for (const auto& s : samples_of(batches, static_cast<std::size_t>(c["data"]["shape"].items[1].number), per_channel)) {
            compare(s, ifmr_options_of(c["params"], c["with_offset"].boolean));
        }
    }
    std::mt19937 rng(23);
    auto as_float16 = [](float x) {  // float16's 11 significant bits: many equal values
        int e = 0;
        const float m = std::frexp(x, &e);
        return std::ldexp(std::nearbyint(m * 2048.0f) / 2048.0f, e);
    };
    std::vector<std::vector<float>> data_sets;
    for (std::size_t n : {1u, 2u, 3u, 17u, 255u, 1000u, 8192u, 15000u}) {
        for (int kind = 0; kind < 9; ++kind) {
            std::normal_distribution<float> normal(kind % 2 ? 0.3f : -0.2f, kind < 3 ? 1.5f : 0.02f);
            std::uniform_real_distribution<float> uniform(-3.0f, 5.0f);
            std::vector<float> v(n);
            for (std::size_t i = 0; i < n; ++i) {
                switch (kind) {
                    case 0: v[i] = normal(rng); break;
                    case 1: v[i] = normal(rng) * (i % 97 == 5 ? 12.0f : 1.0f); break;  // outliers
                    case 2: v[i] = as_float16(normal(rng)); break;                     // float16 data
                    case 3: v[i] = 1000.0f + normal(rng); break;                       // far from zero
                    case 4: v[i] = std::fabs(normal(rng)) * 1e-6f; break;              // tiny: scale 1.0
                    case 5: v[i] = uniform(rng); break;
                    case 6: v[i] = -std::fabs(normal(rng)); break;                 // no positive value
                    case 7: v[i] = std::round(uniform(rng) * 4.0f) / 4.0f; break;  // few distinct values
                    default: v[i] = 0.75f; break;                                  // constant
                }
            }
            data_sets.push_back(std::move(v));
        }
    }
    for (const auto& data : data_sets) {
        for (bool with_offset : {true, false}) {
            kvcali::ifmr_options o;
            o.with_offset = with_offset;
            compare(data, o);
            o.max_percentile = 0.99;  // starting points inside the data
            o.min_percentile = 0.9;
            o.search_range_start = 0.5;
            o.search_range_end = 2.0;
            o.search_step = 0.05;
            compare(data, o);
        }
    }
    BOOST_TEST(compared > 300u);
}

BOOST_AUTO_TEST_CASE(radix_sort_sorts) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1e6f, 1e6f);
    std::vector<float> v(50000);
    for (auto& x : v) x = u(rng) * (rng() % 2 ? 1e-30f : 1.0f);
    v[5] = -0.0f;
    v[6] = 0.0f;
    std::vector<std::uint32_t> keys;
    for (float x : v) keys.push_back(kvcali::float_key(x));
    kvcali::sort_float_keys(keys);
    std::vector<float> sorted;
    for (auto k : keys) sorted.push_back(kvcali::key_float(k));
    // Ascending, -0 before +0, and the same bits as the input: std::sort in that total order gives
    // the one expected sequence (an O(n log n) check: std::is_permutation was quadratic past the
    // zeros, 50 s at -O0 under the sanitizers).
    auto expected = v;
    std::sort(expected.begin(), expected.end(), [](float a, float b) { return a < b || (a == b && std::signbit(a) && !std::signbit(b)); });
    BOOST_TEST(std::is_sorted(sorted.begin(), sorted.end()));
    BOOST_REQUIRE_EQUAL(sorted.size(), expected.size());
    std::size_t bits_differ = 0;
    for (std::size_t i = 0; i < sorted.size(); ++i)
        bits_differ += std::bit_cast<std::uint32_t>(sorted[i]) != std::bit_cast<std::uint32_t>(expected[i]) ? 1 : 0;
    BOOST_TEST(bits_differ == 0u);
    // The radix sort's skipped passes (a digit shared by every key; the low digit of float16 data)
    // give the bits std::sort gives, through sort_float_keys and through ifmr_sort_sample (whose
    // buffers are reused: twice over one workspace), on these values, on values that differ only in
    // the low digit, on equal values, on a short sample and on float16 values.
    kvcali::ifmr_walk_workspace ws;
    std::vector<float> low_digit(3000), equal(2500, -2.5f), short_sample(v.begin(), v.begin() + 2047), halves(5000);
    for (std::size_t i = 0; i < low_digit.size(); ++i) low_digit[i] = 1.0f + static_cast<float>((i * 7919) % 2000) * 0x1p-23f;
    // float16 values of both signs (low 13 bits 0: the low digit is not sorted on), with zeros of both signs.
    for (std::size_t i = 0; i < halves.size(); ++i) {
        halves[i] = std::bit_cast<float>(std::bit_cast<std::uint32_t>(u(rng) * 1e-3f) & 0xFFFFE000u);
    }
    halves[7] = -0.0f;
    halves[8] = 0.0f;
    for (const std::vector<float>* input : {&v, &low_digit, &equal, &short_sample, &halves, &v}) {
        std::vector<std::uint32_t> reference;
        for (float x : *input) reference.push_back(kvcali::float_key(x));
        std::vector<std::uint32_t> radix = reference;
        std::sort(reference.begin(), reference.end());
        kvcali::sort_float_keys(radix);
        BOOST_TEST(radix == reference, "n " << input->size());
        const auto got = kvcali::ifmr_sort_sample(*input, ws);
        BOOST_REQUIRE_EQUAL(got.size(), reference.size());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < got.size(); ++i) differ += kvcali::float_key(got[i]) != reference[i] ? 1 : 0;
        BOOST_TEST(differ == 0u, "n " << input->size());
    }
}

BOOST_AUTO_TEST_CASE(fast_hfmg_errors_equal_the_straightforward_ones) {
    const json cases = load_cases();
    std::size_t compared = 0, candidates_compared = 0;
    auto compare = [&](const kvcali::hfmg_histogram& h) {
        const kvcali::hfmg_error_model model(h);
        const auto cands = kvcali::hfmg_candidates(h);
        std::size_t slow_best = 0, fast_best = 0;
        double slow_min = 0, fast_min = 0;
        for (std::size_t k = 0; k < cands.size(); ++k) {
            const double slow = slow_hfmg_error(h, cands[k].first, cands[k].second);
            const double fast = model.error(cands[k].first, cands[k].second);
            BOOST_TEST_INFO("candidate " << k << " [" << cands[k].first << ", " << cands[k].second << "]: " << slow << " vs " << fast);
            BOOST_TEST((std::fabs(slow - fast) <= 1e-9 * std::fabs(slow) + 1e-300));
            if (k == 0 || slow < slow_min) slow_min = slow, slow_best = k;
            if (k == 0 || fast < fast_min) fast_min = fast, fast_best = k;
            ++candidates_compared;
        }
        BOOST_TEST(slow_best == fast_best);
        if (model.has_fast_path()) {
            // A limit gives a candidate up (+inf) only when its error is above it.
            for (const auto& [l, r] : cands) {
                const double full = model.approximate_error(l, r);
                BOOST_TEST(model.approximate_error(l, r, full * (1.0 + 1e-6)) == full);
                if (full > 0.0) BOOST_TEST(std::isinf(model.approximate_error(l, r, full * 0.5)));
            }
        }
        // Whatever candidate is scored first, the choice is the same, and the hint comes back as
        // the chosen candidate's index.
        const auto plain = kvcali::hfmg_clip_range(h);
        for (const std::size_t first : {std::size_t{0}, cands.size() / 2, cands.size() - (cands.empty() ? 0 : 1), cands.size() + 3}) {
            std::size_t hint = first;
            const auto hinted = kvcali::detail::hfmg_clip_range(kvcali::detail::view_of(h), &hint);
            BOOST_TEST((hinted == plain), "hint " << first);
            if (!cands.empty() && model.has_fast_path()) {
                BOOST_REQUIRE(hint < cands.size());
                const float width = (h.hi - h.lo) / static_cast<float>(h.bins);
                BOOST_TEST(plain.first == h.lo + static_cast<float>(cands[hint].first) * width);
                BOOST_TEST(plain.second == h.lo + static_cast<float>(cands[hint].second + 1) * width);
            }
        }
        ++compared;
    };
    for (const json& c : cases.items) {
        if (c["params"]["act_algo"].string != "hfmg") continue;
        const auto bins = static_cast<std::uint32_t>(c["params"]["num_of_bins"].number);
        const auto batches = cali_test::generate_batches(c["data"], static_cast<std::uint32_t>(c["batch_num"].number));
        const auto channels = static_cast<std::size_t>(c["data"]["shape"].items[1].number);
        const bool per_channel = c["params"]["quant_granularity"].number == 1;
        std::vector<kvcali::hfmg_histogram> hs(per_channel ? channels : 1);
        for (const auto& b : batches) {
            if (per_channel) {
                for (std::size_t ch = 0; ch < channels; ++ch) kvcali::hfmg_add(hs[ch], bins, b.data() + ch, b.size() / channels, channels);
            } else {
                kvcali::hfmg_add(hs[0], bins, b.data(), b.size());
            }
        }
        for (const auto& h : hs) compare(h);
    }
    BOOST_TEST(compared > 40u);
    BOOST_TEST_MESSAGE("HFMG histograms: " << compared << ", candidates: " << candidates_compared);
}

BOOST_AUTO_TEST_CASE(histc_rule_and_degenerate_range) {
    kvcali::hfmg_histogram h;
    const float same[3] = {2.5f, 2.5f, 2.5f};
    kvcali::hfmg_add(h, 1024, same, 3);
    BOOST_TEST(h.lo == 2.5f);
    BOOST_TEST(h.hi == 2.5f);
    BOOST_TEST(h.counts[512] == 3);
    kvcali::hfmg_histogram g;
    const float edge[4] = {0.0f, 1.0f, 0.5f, 0.25f};
    kvcali::hfmg_add(g, 1024, edge, 4);
    BOOST_TEST(g.counts[0] == 1);
    BOOST_TEST(g.counts[1023] == 1);  // the maximum lands in the last bin
    BOOST_TEST(g.counts[512] == 1);
    BOOST_TEST(g.counts[256] == 1);
}

// The contiguous histogram (vectorised bin numbers, lane-wise min and max, counting in place)
// against the strided one (the plain loops), bit for bit: signed zeros, ties, huge values whose
// bin number overflows, equal values, batches that widen the range and batches that do not.
BOOST_AUTO_TEST_CASE(contiguous_histogram_equals_the_strided_one) {
    std::mt19937 rng(21);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<std::vector<float>> cases;
    for (std::size_t size : {1u, 7u, 64u, 100u, 1000u, 2500u}) {
        std::vector<float> v(size);
        for (auto& x : v) x = normal(rng);
        cases.push_back(v);
        for (std::size_t i = 0; i < size; i += 3) v[i] = (i / 3) % 2 ? 0.0f : -0.0f;  // zeros of both signs
        cases.push_back(v);
        for (auto& x : v) x = std::fabs(x);
        cases.push_back(v);  // the minimum is a zero
        for (auto& x : v) x = -x;
        cases.push_back(v);  // the maximum is a zero
        for (auto& x : v) x = x * 3e35f;
        if (size > 1) v[size - 1] = 3e38f;
        cases.push_back(v);  // bin numbers past 2^63 and inf
        cases.push_back(std::vector<float>(size, 1.5f));
    }
    for (std::uint32_t bins : {1u, 3u, 1024u, 4096u}) {
        for (std::size_t first = 0; first < cases.size(); ++first) {
            kvcali::hfmg_histogram a, b;
            for (std::size_t k : {first, (first + 5) % cases.size(), first, (first + 11) % cases.size()}) {
                const auto& v = cases[k];
                std::vector<float> strided(2 * v.size(), 99.0f);
                for (std::size_t i = 0; i < v.size(); ++i) strided[2 * i] = v[i];
                kvcali::hfmg_add(a, bins, v.data(), v.size(), 1);
                kvcali::hfmg_add(b, bins, strided.data(), v.size(), 2);
                BOOST_TEST_REQUIRE(std::bit_cast<std::uint32_t>(a.lo) == std::bit_cast<std::uint32_t>(b.lo));
                BOOST_TEST_REQUIRE(std::bit_cast<std::uint32_t>(a.hi) == std::bit_cast<std::uint32_t>(b.hi));
                BOOST_TEST_REQUIRE((a.counts == b.counts), "bins " << bins << ", case " << k);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(scale_from_range_and_rounding) {
    BOOST_TEST(kvcali::round_half_even(2.5f) == 2.0f);
    BOOST_TEST(kvcali::round_half_even(-3.5f) == -4.0f);
    const auto asym = kvcali::scale_offset_from_range(-1.0f, 2.0f, true);
    BOOST_TEST(asym.scale == 3.0f / 255.0f);
    BOOST_TEST(asym.offset == -43);
    const auto sym = kvcali::scale_offset_from_range(-2.0f, 1.0f, false);
    BOOST_TEST(sym.scale == 2.0f / 128.0f);
    BOOST_TEST(sym.offset == 0);
    const auto zero = kvcali::scale_offset_from_range(0.0f, 0.0f, true);
    BOOST_TEST(zero.scale == 1.0f);
    BOOST_TEST(zero.offset == -128);
    BOOST_CHECK_THROW(kvcali::scale_offset_from_range(-3e38f, 3e38f, true), kvcali::error);
}

BOOST_AUTO_TEST_CASE(ifmr_candidate_grid) {
    kvcali::ifmr_options o;
    o.search_range_start = kvcali::decimal_double(0.7f);
    o.search_range_end = kvcali::decimal_double(1.3f);
    o.search_step = kvcali::decimal_double(0.01f);
    const auto r = kvcali::ifmr_ratios(o);
    BOOST_TEST(r.size() == 61u);
    BOOST_TEST(r.front() == 0.7f);
    BOOST_TEST(r.back() == 1.3f);
    o.search_range_end = o.search_range_start;
    try {
        kvcali::ifmr_ratios(o);
        BOOST_FAIL("expected an error");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::invalid_value));
    }
    o.search_range_end = 2000.0;
    o.search_step = 0.001;
    BOOST_CHECK_THROW(kvcali::ifmr_ratios(o), kvcali::error);
}
