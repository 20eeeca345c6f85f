// The calibrator, the record file, npy files, and the e2e cases (data/e2e) through the library and
// through `kvcali calibrate`.
#define BOOST_TEST_MODULE calibration_calibrator
#include <boost/test/unit_test.hpp>

#include <kvcali/calibration/calibrator.hpp>
#include <kvcali/calibration/hfmg.hpp>
#include <kvcali/calibration/ifmr.hpp>
#include <kvcali/calibration/layout.hpp>
#include <kvcali/calibration/npy.hpp>
#include <kvcali/calibration/record.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/detail/huge_pages.hpp>
#include <kvcali/detail/layer_buffer.hpp>
#include <kvcali/detail/widen.hpp>
#include <kvcali/generate.hpp>
#include <kvcali/layer_list.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <thread>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../support/test_support.hpp"
#include "cali_support.hpp"

namespace {

using cali_test::json;
namespace fs = std::filesystem;

/// A two-layer config: "k" (IFMR per tensor) and "v" (HFMG per channel), batch_num 2.
kvcali::resolved_config two_layers() {
    kvcali::resolved_config cfg;
    cfg.algorithms = kvcali::default_policies::algorithms;
    cfg.batch_num = 2;
    cfg.layers.push_back(cali_test::layer_from_params("k", cali_test::parse_json(R"({"act_algo":"ifmr"})"), cfg.algorithms));
    cfg.layers.push_back(cali_test::layer_from_params(
        "v", cali_test::parse_json(R"({"act_algo":"hfmg","num_of_bins":1024,"quant_granularity":1})"), cfg.algorithms));
    return cfg;
}

template <class F>
kvcali::errc error_of(F&& f) {
    try {
        f();
    } catch (const kvcali::error& e) {
        return e.code();
    }
    return static_cast<kvcali::errc>(0);
}

std::vector<float> ramp(std::size_t n, float scale) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = scale * (static_cast<float>(i % 97) - 40.0f);
    return v;
}

/// How many layers a config.json lists.
std::size_t resolved_layers(const fs::path& config) { return kvcali::read_quant_cali_config(config).layers.size(); }

fs::path e2e_root() { return kvcali_test::source_root() / "tests/calibration/data/e2e"; }

std::vector<fs::path> e2e_cases() {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(e2e_root())) out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

/// Float32 steps between two positive floats of the same sign (the distance in units in the last place).
std::uint32_t ulps_apart(float a, float b) {
    const auto ia = std::bit_cast<std::uint32_t>(a), ib = std::bit_cast<std::uint32_t>(b);
    return ia > ib ? ia - ib : ib - ia;
}

/// Compares records by key: scales within 1e-5 relative; offsets exactly, or by one only where the
/// scales are a few float32 steps apart (the reference's float32 sums can land a rounding tie on
/// the other side). Returns how many channels took that allowance.
std::size_t compare_records(const std::vector<kvcali::layer_record>& got, const std::vector<kvcali::layer_record>& want) {
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    std::size_t off_by_one = 0;
    for (const auto& w : want) {
        const auto it = std::find_if(got.begin(), got.end(), [&](const kvcali::layer_record& g) { return g.key == w.key; });
        BOOST_REQUIRE(it != got.end());
        BOOST_REQUIRE_EQUAL(it->factors.scale.size(), w.factors.scale.size());
        BOOST_REQUIRE_EQUAL(it->factors.offset.size(), w.factors.offset.size());
        for (std::size_t i = 0; i < w.factors.scale.size(); ++i) {
            BOOST_TEST_INFO(w.key << " channel " << i << ": " << it->factors.scale[i] << " / " << it->factors.offset[i] << " vs "
                                  << w.factors.scale[i] << " / " << w.factors.offset[i]);
            const float gs = it->factors.scale[i], ws = w.factors.scale[i];
            BOOST_TEST((std::fabs(static_cast<double>(gs) - ws) <= 1e-5 * std::fabs(static_cast<double>(ws))));
            const int d = std::abs(it->factors.offset[i] - w.factors.offset[i]);
            const bool near_tie = gs != ws && ulps_apart(gs, ws) <= 4;
            BOOST_TEST((d == 0 || (d == 1 && near_tie)));
            if (d == 1) ++off_by_one;
        }
    }
    return off_by_one;
}

}  // namespace

BOOST_AUTO_TEST_CASE(layers_finish_in_any_order_and_interleaving) {
    kvcali::calibrator cal(two_layers());
    const std::int64_t shape[2] = {64, 4};
    const auto a = ramp(256, 0.1f), b = ramp(256, 0.2f);
    BOOST_TEST((cal.observe("v", a, shape) == kvcali::batch_outcome::accepted));
    BOOST_TEST((cal.observe("k", a, shape) == kvcali::batch_outcome::accepted));
    BOOST_TEST(!cal.complete());
    BOOST_TEST((cal.pending_layers() == std::vector<std::string>{"k", "v"}));
    BOOST_TEST((cal.observe("k", b, shape) == kvcali::batch_outcome::finished));
    BOOST_TEST((cal.observe("k", b, shape) == kvcali::batch_outcome::ignored));  // past batch_num
    BOOST_TEST(cal.ignored_batches("k") == 1u);
    BOOST_TEST(cal.done("k"));
    BOOST_TEST(!cal.done("v"));
    // Writing now is incomplete_calibration naming "v".
    kvcali_test::temp_dir dir;
    try {
        cal.write_record(dir / "record.txt");
        BOOST_FAIL("expected incomplete_calibration");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::incomplete_calibration));
        BOOST_REQUIRE_EQUAL(e.diagnostics().size(), 1u);
        BOOST_TEST(e.diagnostics()[0].layer == "v");
    }
    BOOST_TEST(dir.entries().empty());
    BOOST_TEST((cal.observe("v", b, shape) == kvcali::batch_outcome::finished));
    BOOST_TEST((cal.finished_layers() == std::vector<std::string>{"k", "v"}));
    cal.write_record(dir / "record.txt");
    const auto records = kvcali::parse_record(kvcali_test::slurp(dir / "record.txt"));
    BOOST_REQUIRE_EQUAL(records.size(), 2u);
    BOOST_TEST(records[0].key == "k");
    BOOST_TEST(records[0].factors.scale.size() == 1u);
    BOOST_TEST(records[1].key == "v");
    BOOST_TEST(records[1].factors.scale.size() == 4u);  // per channel
    BOOST_TEST(records[1].factors.offset.size() == 4u);
    BOOST_TEST((records == cal.records()));
}

BOOST_AUTO_TEST_CASE(layers_fed_from_several_threads_at_once_give_the_single_threaded_results) {
    // 16 layers (IFMR and HFMG, per tensor and per channel, float32 and float16 batches), fed by 4
    // threads at once (each thread its own layers, interleaved), against one thread feeding all.
    kvcali::resolved_config cfg;
    cfg.algorithms = kvcali::default_policies::algorithms;
    cfg.batch_num = 3;
    const char* params[] = {R"({"act_algo":"ifmr"})", R"({"act_algo":"ifmr","quant_granularity":1})",
                            R"({"act_algo":"hfmg","num_of_bins":512})", R"({"act_algo":"hfmg","num_of_bins":1024,"quant_granularity":1})"};
    for (int i = 0; i < 16; ++i) {
        cfg.layers.push_back(
            cali_test::layer_from_params("layer" + std::to_string(i), cali_test::parse_json(params[i % 4]), cfg.algorithms));
    }
    const std::int64_t shape[2] = {512, 16};
    auto batch = [](int layer, int k) {
        std::vector<float> v(512 * 16);
        std::uint32_t h = static_cast<std::uint32_t>(layer * 7919 + k * 104729 + 1);
        for (auto& x : v) {
            h = h * 1664525u + 1013904223u;
            x = (static_cast<float>(h >> 8) / 16777216.0f - 0.45f) * static_cast<float>(1 + layer % 5);
        }
        return v;
    };
    auto feed = [&](kvcali::calibrator& cal, int layer) {
        for (int k = 0; k < 4; ++k) {  // one batch past batch_num: ignored
            const auto v = batch(layer, k);
            if (layer % 2) {
                std::vector<std::uint16_t> half(v.size());
                for (std::size_t i = 0; i < v.size(); ++i) half[i] = kvcali::float_to_half(v[i]);
                cal.observe("layer" + std::to_string(layer), half.data(), kvcali::dtype::float16, shape);
            } else {
                cal.observe("layer" + std::to_string(layer), v, shape);
            }
        }
    };
    kvcali::calibrator single(cfg);
    for (int layer = 0; layer < 16; ++layer) feed(single, layer);
    BOOST_REQUIRE(single.complete());
    for (int round = 0; round < 3; ++round) {
        kvcali::calibrator shared(cfg);
        std::vector<std::thread> threads;
        std::atomic<int> polls{0};
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&, t] {
                for (int layer = t; layer < 16; layer += 4) feed(shared, layer);
            });
        }
        // Queries while the layers are fed.
        std::thread watcher([&] {
            while (!shared.complete()) {
                (void)shared.finished_layers();
                (void)shared.pending_layers();
                (void)shared.done("layer3");
                ++polls;
            }
        });
        for (auto& th : threads) th.join();
        watcher.join();
        BOOST_REQUIRE(shared.complete());
        BOOST_TEST(polls.load() >= 0);
        for (int layer = 0; layer < 16; ++layer) {
            const std::string name = "layer" + std::to_string(layer);
            BOOST_TEST((shared.result(name) == single.result(name)), name);
            BOOST_TEST(shared.batches(name) == 3u);
            BOOST_TEST(shared.ignored_batches(name) == 1u);
        }
        auto finished = shared.finished_layers();
        BOOST_TEST(finished.size() == 16u);
        std::sort(finished.begin(), finished.end());
        BOOST_TEST((std::adjacent_find(finished.begin(), finished.end()) == finished.end()));
        BOOST_TEST(shared.records().size() == 16u);
    }
}

BOOST_AUTO_TEST_CASE(large_layers_fed_by_threads_one_after_another_give_the_single_threaded_results) {
    // Layers whose buffers are large enough to be kept and reused (a [1024, 512] float16 batch
    // widens to 2 MiB; IFMR keeps 6 MiB of values, HFMG 4 MiB of per-channel counts), 3 threads each
    // calibrating its layers one after another, so that layers take the blocks earlier layers of
    // other kinds filled on other threads. Against one thread, and against a fresh thread per layer.
    kvcali::resolved_config cfg;
    cfg.algorithms = kvcali::default_policies::algorithms;
    cfg.batch_num = 3;
    const char* params[] = {R"({"act_algo":"ifmr","quant_granularity":1})",
                            R"({"act_algo":"hfmg","num_of_bins":1024,"quant_granularity":1})", R"({"act_algo":"ifmr"})",
                            R"({"act_algo":"hfmg","num_of_bins":2048})"};
    const int layers = 12;
    for (int i = 0; i < layers; ++i) {
        cfg.layers.push_back(
            cali_test::layer_from_params("layer" + std::to_string(i), cali_test::parse_json(params[i % 4]), cfg.algorithms));
    }
    const std::int64_t shape[2] = {1024, 512};
    auto feed = [&](kvcali::calibrator& cal, int layer) {
        std::vector<std::uint16_t> half(1024 * 512);
        for (int k = 0; k < 3; ++k) {
            std::uint32_t h = static_cast<std::uint32_t>(layer * 7919 + k * 104729 + 3);
            for (std::size_t i = 0; i < half.size(); ++i) {
                h = h * 1664525u + 1013904223u;
                const float x = (static_cast<float>(h >> 8) / 16777216.0f - 0.45f) * static_cast<float>(1 + (layer + k) % 5) *
                                (1.0f + static_cast<float>(i % 512) / 256.0f);
                half[i] = kvcali::float_to_half(x);
            }
            cal.observe("layer" + std::to_string(layer), half.data(), kvcali::dtype::float16, shape);
        }
    };
    kvcali::calibrator single(cfg);
    for (int layer = 0; layer < layers; ++layer) feed(single, layer);
    BOOST_REQUIRE(single.complete());
    kvcali::calibrator fresh(cfg);
    for (int layer = 0; layer < layers; ++layer) std::thread([&] { feed(fresh, layer); }).join();
    kvcali::calibrator shared(cfg);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&, t] {
            for (int layer = t; layer < layers; layer += 3) feed(shared, layer);
        });
    }
    for (auto& th : threads) th.join();
    BOOST_REQUIRE(shared.complete());
    BOOST_REQUIRE(fresh.complete());
    for (int layer = 0; layer < layers; ++layer) {
        const std::string name = "layer" + std::to_string(layer);
        BOOST_TEST((shared.result(name) == single.result(name)), name);
        BOOST_TEST((fresh.result(name) == single.result(name)), name);
    }
}

BOOST_AUTO_TEST_CASE(layer_buffers_come_from_and_go_back_to_the_pool_in_scope) {
    using kvcali::detail::buffer_pool;
    using kvcali::detail::layer_buffer;
    const std::size_t mib = std::size_t{1} << 20;
    buffer_pool pool;
    {
        layer_buffer outside(2 * mib);  // no pool in scope: allocated, and freed
        BOOST_TEST(outside.size() == 2 * mib);
    }
    BOOST_TEST(pool.kept() == 0u);
    const void* first = nullptr;
    {
        const buffer_pool::scope in(pool);
        {
            layer_buffer a(2 * mib);
            BOOST_REQUIRE(a.as<void>() != nullptr);
            BOOST_TEST(a.size() == 2 * mib);
            BOOST_TEST(reinterpret_cast<std::uintptr_t>(a.as<void>()) % alignof(std::max_align_t) == 0u);
            std::memset(a.as<void>(), 0x5A, a.size());
            first = a.as<void>();
        }
        BOOST_TEST(pool.kept() == 1u);
        layer_buffer small(100 * 1024);  // under 1 MiB: not pooled
        BOOST_TEST(small.as<void>() != first);
        layer_buffer b(2 * mib - 64);  // fits the kept block: the same one, at its full size
        BOOST_TEST(b.as<void>() == first);
        BOOST_TEST(b.size() == 2 * mib);
        BOOST_TEST(pool.kept() == 0u);
        layer_buffer c(2 * mib);  // nothing kept: a new block
        BOOST_TEST(c.as<void>() != first);
        layer_buffer moved = std::move(b);
        BOOST_TEST(moved.as<void>() == first);
        BOOST_TEST(b.as<void>() == nullptr);
        BOOST_TEST(b.size() == 0u);
        {
            buffer_pool other;
            const buffer_pool::scope inner(other);
            { layer_buffer d(2 * mib); }
            BOOST_TEST(other.kept() == 1u);
        }
        { layer_buffer e(2 * mib); }  // the outer scope's pool again
        BOOST_TEST(pool.kept() == 1u);
    }  // moved and c back to the pool, small freed
    BOOST_TEST(pool.kept() == 3u);
    {
        layer_buffer later(2 * mib);  // made after the scope: not from the pool
        BOOST_TEST(later.as<void>() != first);
    }
    BOOST_TEST(pool.kept() == 3u);
    {
        const buffer_pool::scope in(pool);
        layer_buffer half(mib);  // a kept block serves a request down to a quarter of its size
        BOOST_TEST(half.size() == 2 * mib);
        BOOST_TEST(pool.kept() == 2u);
        // Larger than every kept block: a new one, and the kept blocks too small for it are freed.
        layer_buffer big(16 * mib);
        BOOST_TEST(big.size() == 16 * mib);
        BOOST_TEST(pool.kept() == 0u);
        const void* kept = big.as<void>();
        big.reset();
        BOOST_TEST(big.as<void>() == nullptr);
        BOOST_TEST(pool.kept() == 1u);
        layer_buffer modest(3 * mib);  // the 16 MiB block is more than four times larger
        BOOST_TEST(modest.size() == 3 * mib);
        BOOST_TEST(modest.as<void>() != kept);
        layer_buffer again(16 * mib);
        BOOST_TEST(again.as<void>() == kept);
    }
    // Blocks given back on some threads and taken on others; the pool holds at most what its
    // layers had in use at once, and frees it when destroyed (the sanitizer build checks leaks).
    buffer_pool shared;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&shared] {
            const buffer_pool::scope in(shared);
            for (int k = 0; k < 3; ++k) {
                layer_buffer a(static_cast<std::size_t>(k + 1) << 20), b(std::size_t{4} << 20);
                std::memset(a.as<void>(), k, a.size());
            }
        });
    }
    for (auto& th : threads) th.join();
    BOOST_TEST(shared.kept() >= 1u);
    BOOST_TEST(shared.kept() <= 8u);
}

namespace {

/// Whether this kernel takes MADV_HUGEPAGE hints (it may be built without transparent huge pages, or
/// a sandbox may refuse the call): a probe on a mapping of the test's own.
bool kernel_takes_huge_page_hints() {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const std::size_t size = 2 * kvcali::detail::huge_page_bytes;  // holds a whole huge page wherever it starts
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    const auto at = kvcali::detail::huge_page_ceil(reinterpret_cast<std::uintptr_t>(p));
    const bool taken = ::madvise(reinterpret_cast<void*>(at), kvcali::detail::huge_page_bytes, MADV_HUGEPAGE) == 0;
    ::munmap(p, size);
    return taken;
#else
    return false;
#endif
}

/// The "VmFlags:" line of the mapping that holds `address` (/proc/self/smaps), or "".
std::string vm_flags_of(std::uintptr_t address) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line, flags;
    bool inside = false;
    while (std::getline(smaps, line)) {
        unsigned long lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
            inside = lo <= address && address < hi;  // a mapping's first line: "lo-hi perms offset dev inode path"
        } else if (inside && line.rfind("VmFlags:", 0) == 0) {
            flags = line;
        }
    }
    return flags;
}

}  // namespace

BOOST_AUTO_TEST_CASE(large_layer_buffers_start_at_a_huge_page_hinted_for_huge_pages) {
    using kvcali::detail::layer_buffer;
    const std::size_t huge = kvcali::detail::huge_page_bytes;
    const bool hints = kernel_takes_huge_page_hints();
    BOOST_TEST_MESSAGE("the kernel takes huge-page hints: " << (hints ? "yes" : "no (only the alignment is checked)"));
    kvcali::detail::buffer_pool pool;
    for (const bool pooled : {false, true}) {
        std::optional<kvcali::detail::buffer_pool::scope> in;
        if (pooled) in.emplace(pool);
        for (const std::size_t bytes : {huge, 3 * huge + 100, 4 * huge}) {
            BOOST_TEST_CONTEXT("pooled " << pooled << ", " << bytes << " bytes") {
                layer_buffer b(bytes);
                const auto at = reinterpret_cast<std::uintptr_t>(b.as<void>());
                BOOST_TEST(at % huge == 0u);
                BOOST_TEST(b.size() == bytes);
                std::memset(b.as<void>(), 0x33, b.size());  // all of it usable (ASan checks the bounds)
                // The hint is in the mapping's flags ("hg": MADV_HUGEPAGE) where the kernel takes
                // such hints.
                if (hints) {
                    const std::string flags = vm_flags_of(at);
                    BOOST_TEST(flags.find(" hg") != std::string::npos, "VmFlags of the block's mapping: " << flags);
                }
            }
        }
    }
    // Under 2 MiB: a plain block (not moved to a boundary; what operator new aligns to).
    layer_buffer small(huge - 4096);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(small.as<void>()) % alignof(std::max_align_t) == 0u);
    // A size within 2 MiB of the largest: std::bad_alloc, not a block of the wrapped-around size.
    // (AddressSanitizer's allocator stops the program on such a request instead of throwing.)
#if !defined(__SANITIZE_ADDRESS__)
    BOOST_CHECK_THROW(layer_buffer(std::numeric_limits<std::size_t>::max() - huge / 2), std::bad_alloc);
#endif
}

BOOST_AUTO_TEST_CASE(accumulators_give_the_same_answers_whatever_their_buffers_held) {
    // Layers large enough for the reused buffers (2 MiB of IFMR values, 8 MiB of HFMG counts per
    // layer), calibrated one after another with one pool in scope, so each takes the blocks the
    // previous one (of another kind) filled; IFMR told 0, 2 (fewer than given) or 5 batches in advance.
    // Against the per-channel values and histograms built directly.
    const std::size_t rows = 512, channels = 256, batches = 5;
    auto batch = [&](std::size_t k) {
        std::vector<float> v(rows * channels);
        std::uint32_t h = static_cast<std::uint32_t>(k * 104729 + 17);
        for (std::size_t i = 0; i < v.size(); ++i) {
            h = h * 1664525u + 1013904223u;
            const float spread = 1.0f + static_cast<float>(i % channels % 7) + static_cast<float>(k);
            v[i] = (static_cast<float>(h >> 8) / 16777216.0f - 0.4f) * spread;
        }
        return v;
    };
    std::vector<std::vector<float>> data;
    for (std::size_t k = 0; k < batches; ++k) data.push_back(batch(k));
    kvcali::ifmr_options ifmr;
    ifmr.with_offset = true;
    kvcali::hfmg_options hfmg;
    hfmg.num_of_bins = 4096;
    hfmg.with_offset = true;
    // Expected: per channel, every batch's values in order.
    kvcali::quant_factors ifmr_channels, ifmr_tensor, hfmg_channels;
    {
        std::vector<float> all;
        for (const auto& b : data) all.insert(all.end(), b.begin(), b.end());
        const auto so = kvcali::ifmr_calibrate(all, ifmr);
        ifmr_tensor.scale.push_back(so.scale);
        ifmr_tensor.offset.push_back(so.offset);
        for (std::size_t c = 0; c < channels; ++c) {
            std::vector<float> column;
            kvcali::hfmg_histogram h;
            for (const auto& b : data) {
                std::vector<float> part;
                for (std::size_t r = 0; r < rows; ++r) part.push_back(b[r * channels + c]);
                column.insert(column.end(), part.begin(), part.end());
                kvcali::hfmg_add(h, hfmg.num_of_bins, part.data(), part.size());
            }
            const auto i = kvcali::ifmr_calibrate(column, ifmr);
            ifmr_channels.scale.push_back(i.scale);
            ifmr_channels.offset.push_back(i.offset);
            const auto g = kvcali::hfmg_calibrate(h, hfmg.with_offset);
            hfmg_channels.scale.push_back(g.scale);
            hfmg_channels.offset.push_back(g.offset);
        }
    }
    auto run = [&](kvcali::accumulator& acc) {
        for (const auto& b : data) acc.add_batch(b, channels);
        return acc.finish();
    };
    auto same = [](const kvcali::quant_factors& a, const kvcali::quant_factors& b) { return a.scale == b.scale && a.offset == b.offset; };
    kvcali::detail::buffer_pool pool;
    const kvcali::detail::buffer_pool::scope in(pool);
    for (int round = 0; round < 2; ++round) {
        for (std::uint32_t expected : {0u, 2u, 5u}) {
            kvcali::ifmr_accumulator per_channel(ifmr, true, expected);
            BOOST_TEST(same(run(per_channel), ifmr_channels), "IFMR per channel, expected batches " << expected);
            kvcali::hfmg_accumulator histograms(hfmg, true);
            BOOST_TEST(same(run(histograms), hfmg_channels), "HFMG per channel");
            kvcali::ifmr_accumulator per_tensor(ifmr, false, expected);
            BOOST_TEST(same(run(per_tensor), ifmr_tensor), "IFMR per tensor, expected batches " << expected);
        }
    }
    // A per-channel accumulator refuses a batch with another number of channels.
    for (int algorithm = 0; algorithm < 2; ++algorithm) {
        std::unique_ptr<kvcali::accumulator> acc;
        if (algorithm == 0) {
            acc = std::make_unique<kvcali::ifmr_accumulator>(ifmr, true, 2);
        } else {
            acc = std::make_unique<kvcali::hfmg_accumulator>(hfmg, true);
        }
        acc->add_batch(data[0], channels);
        try {
            acc->add_batch(std::span<const float>(data[1]).first(rows * 128), 128);
            BOOST_ERROR("no error for a batch of 128 channels after 256");
        } catch (const kvcali::error& e) {
            BOOST_TEST((e.code() == kvcali::errc::invalid_data));
            BOOST_TEST(std::string(e.what()).find("a batch of 128 channels after batches of 256") != std::string::npos, e.what());
        }
    }
}

BOOST_AUTO_TEST_CASE(branch_free_float16_widening_equals_half_to_float) {
    for (std::uint32_t h = 0; h < 65536; ++h) {
        const float a = kvcali::half_to_float(static_cast<std::uint16_t>(h));
        const float b = kvcali::detail::widen_half(static_cast<std::uint16_t>(h));
        if (std::isnan(a)) {
            BOOST_TEST(std::isnan(b), h);
        } else {
            BOOST_TEST(std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b), h);
        }
    }
}

BOOST_AUTO_TEST_CASE(bulk_float16_widening_equals_half_to_float) {
    // Every binary16 value, at an odd address (a memory-mapped file need not be aligned), through
    // the bulk conversion (F16C where the CPU has it) and the portable loop.
    std::vector<unsigned char> bytes(2 * 65536 + 1);
    for (std::uint32_t h = 0; h < 65536; ++h) {
        bytes[1 + 2 * h] = static_cast<unsigned char>(h & 0xFFu);
        bytes[2 + 2 * h] = static_cast<unsigned char>(h >> 8);
    }
    for (int path = 0; path < 2; ++path) {
        std::vector<float> out(65536 + 1, 7.0f);
        for (std::size_t count : {std::size_t{65536}, std::size_t{13}}) {
            if (path == 0) {
                kvcali::detail::widen_halves(bytes.data() + 1, out.data(), count);
            } else {
                kvcali::detail::widen_halves_portable(bytes.data() + 1, out.data(), count);
            }
            BOOST_TEST(out[count] == (count == 65536 ? 7.0f : kvcali::half_to_float(static_cast<std::uint16_t>(count))));
        }
        for (std::uint32_t h = 0; h < 65536; ++h) {
            const float a = kvcali::half_to_float(static_cast<std::uint16_t>(h));
            if (std::isnan(a)) {
                BOOST_TEST(std::isnan(out[h]), h);
            } else {
                BOOST_TEST(std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(out[h]), h);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(invalid_data_and_unknown_layers) {
    const std::int64_t shape[2] = {2, 2};
    {
        kvcali::calibrator cal(two_layers());
        std::vector<float> v{1.0f, 2.0f, NAN, 3.0f};
        BOOST_TEST((error_of([&] { cal.observe("k", v, shape); }) == kvcali::errc::invalid_data));
        v[2] = INFINITY;
        BOOST_TEST((error_of([&] { cal.observe("k", v, shape); }) == kvcali::errc::invalid_data));
        BOOST_TEST(cal.batches("k") == 0u);  // rejected batches do not count
        BOOST_TEST((error_of([&] { cal.observe("q_proj", v, shape); }) == kvcali::errc::unknown_layer));
        BOOST_TEST((error_of([&] { (void)cal.done("nope"); }) == kvcali::errc::unknown_layer));
        v[2] = 0.5f;
        BOOST_TEST((error_of([&] { cal.observe("k", v.data(), static_cast<kvcali::dtype>(9), shape); }) == kvcali::errc::invalid_data));
        const std::int64_t wrong[2] = {3, 2};
        BOOST_TEST((error_of([&] { cal.observe("k", std::span<const float>(v), wrong); }) == kvcali::errc::invalid_data));
        const std::int64_t negative[2] = {-1, 2};
        BOOST_TEST((error_of([&] { cal.observe("k", v.data(), kvcali::dtype::float32, negative); }) == kvcali::errc::invalid_data));
    }
    {
        // A per-channel layer whose channel count changes between batches.
        kvcali::calibrator cal(two_layers());
        const std::vector<float> v{1.0f, 2.0f, 3.0f, 4.0f};
        cal.observe("v", v, shape);
        const std::int64_t other[2] = {1, 4};
        try {
            cal.observe("v", v, other);
            BOOST_FAIL("expected invalid_data");
        } catch (const kvcali::error& e) {
            BOOST_TEST((e.code() == kvcali::errc::invalid_data));
            BOOST_TEST(e.diagnostics()[0].layer == "v");
            BOOST_TEST(e.diagnostics()[0].message.find("channels") != std::string::npos);
        }
    }
}

BOOST_AUTO_TEST_CASE(float16_bfloat16_and_strides_give_the_same_result) {
    // Values exactly representable in float16 and bfloat16: the results must be identical.
    std::vector<float> v(512);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(static_cast<int>(i % 61) - 23) * 0.125f;
    std::vector<std::uint16_t> half, bf;
    for (float x : v) {
        half.push_back(kvcali::float_to_half(x));
        bf.push_back(static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(x) >> 16));
        BOOST_REQUIRE(kvcali::half_to_float(half.back()) == x);
    }
    // A transposed view: shape [8, 64] over storage [64, 8].
    std::vector<float> transposed(512);
    for (std::size_t r = 0; r < 8; ++r) {
        for (std::size_t c = 0; c < 64; ++c) transposed[c * 8 + r] = v[r * 64 + c];
    }
    const std::int64_t shape[2] = {8, 64};
    const std::int64_t strides[2] = {1, 8};
    std::vector<kvcali::quant_factors> results;
    for (int variant = 0; variant < 4; ++variant) {
        kvcali::resolved_config cfg = two_layers();
        cfg.batch_num = 1;
        kvcali::calibrator cal(cfg);
        for (const char* layer : {"k", "v"}) {
            switch (variant) {
                case 0: cal.observe(layer, v, shape); break;
                case 1: cal.observe(layer, half.data(), kvcali::dtype::float16, shape); break;
                case 2: cal.observe(layer, bf.data(), kvcali::dtype::bfloat16, shape); break;
                case 3: cal.observe(layer, transposed.data(), kvcali::dtype::float32, shape, strides); break;
            }
        }
        results.push_back(*cal.result("k"));
        results.push_back(*cal.result("v"));
    }
    for (std::size_t i = 2; i < results.size(); ++i) BOOST_TEST((results[i] == results[i % 2]));
    BOOST_TEST(results[1].scale.size() == 64u);
}

BOOST_AUTO_TEST_CASE(record_text_layout) {
    const std::vector<kvcali::layer_record> r{{"model.layers.0.self_attn.k_proj", {{0.03873975f}, {37}}},
                                              {"a\"b\\c", {{1.0f, 1e-05f}, {-128, 0}}}};
    const std::string text = kvcali::format_record(r);
    BOOST_TEST(text ==
               "record {\n  key: \"model.layers.0.self_attn.k_proj\"\n  kv_cache_value {\n    scale: 0.03873975\n    offset: 37\n  }\n}\n"
               "record {\n  key: \"a\\\"b\\\\c\"\n  kv_cache_value {\n    scale: 1.0\n    scale: 1e-05\n    offset: -128\n    offset: 0\n  "
               "}\n}\n");
    BOOST_TEST((kvcali::parse_record(text) == r));
    try {
        kvcali::parse_record("record {\n  key: \"x\"\n  kv_cache_value {\n    scale: zz\n", "r.txt");
        BOOST_FAIL("expected parse_error");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::parse_error));
        BOOST_TEST(e.diagnostics()[0].where.line == 4u);
        BOOST_TEST(e.diagnostics()[0].where.column == 12u);
    }
}

BOOST_AUTO_TEST_CASE(npy_reading_checks_every_header_field) {
    const std::vector<float> v{1.0f, -2.5f, 3.25f, 0.0f, 5.0f, 6.0f};
    std::vector<unsigned char> raw(v.size() * 4);
    std::memcpy(raw.data(), v.data(), raw.size());
    const std::int64_t shape[2] = {3, 2};
    const std::string good = kvcali::format_npy(kvcali::dtype::float32, shape, raw);
    const auto a = kvcali::parse_npy(good);
    BOOST_TEST((a.shape == std::vector<std::int64_t>{3, 2}));
    BOOST_TEST((a.type == kvcali::dtype::float32));
    BOOST_TEST(std::memcmp(a.bytes.data(), raw.data(), raw.size()) == 0);
    // float16, version 3.0 header with a 4-byte length, keys in another order.
    std::string dict = "{'shape': (2,), 'fortran_order': False, 'descr': '<f2'}";
    dict.append(64 - (12 + dict.size() + 1) % 64, ' ');
    dict += '\n';
    std::string v3("\x93NUMPY\x03\x00", 8);
    const auto len = static_cast<std::uint32_t>(dict.size());
    for (int k = 0; k < 4; ++k) v3 += static_cast<char>((len >> (8 * k)) & 0xFF);
    v3 += dict;
    const std::uint16_t h[2] = {kvcali::float_to_half(1.5f), kvcali::float_to_half(-2.0f)};
    v3.append(reinterpret_cast<const char*>(h), 4);
    const auto b = kvcali::parse_npy(v3);
    BOOST_TEST((b.type == kvcali::dtype::float16));
    BOOST_TEST(b.size() == 2u);

    auto code_of = [](const std::string& bytes) { return error_of([&] { kvcali::parse_npy(bytes, "x.npy"); }); };
    auto with = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        const auto at = s.find(from);
        BOOST_REQUIRE(at != std::string::npos);
        s.replace(at, from.size(), to);
        return s;
    };
    BOOST_TEST((code_of(good.substr(0, good.size() - 4)) == kvcali::errc::invalid_data));  // data too short
    BOOST_TEST((code_of(with("<f4", "<f8")) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with("<f4", ">f4")) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with("False", "True ")) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with("'shape'", "'shapf'")) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with("(3, 2)", "(3, 2")) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with("NUMPY", "NUMPZ")) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with(std::string("\x01\x00", 2), std::string("\x04\x00", 2))) == kvcali::errc::invalid_data));
    BOOST_TEST((code_of(with("(3, 2)", "()    ")) == kvcali::errc::invalid_data));  // rank 0
    kvcali_test::temp_dir dir;
    BOOST_TEST((error_of([&] { kvcali::read_npy(dir / "missing.npy"); }) == kvcali::errc::io_error));
}

// At most this many channels of the 24 cases may differ from the reference's record by one in the
// offset (scales a few float32 steps apart: a rounding tie on the other side). None does on x86-64
// with g++ 12 and clang 14 (the message prints the count); the margin is for other environments.
constexpr std::size_t max_off_by_one_offsets = 2;

BOOST_AUTO_TEST_CASE(e2e_cases_through_the_library) {
    std::size_t cases = 0, layers = 0, off_by_one = 0;
    for (const auto& dir : e2e_cases()) {
        BOOST_TEST_CONTEXT(dir.filename().string()) {
            // The config is generated from the case's model and quant.cfg, as a user would, and must
            // be the reference's byte for byte.
            kvcali_test::temp_dir tmp;
            kvcali::create_quant_cali_config(tmp / "config.json", kvcali::load_layer_list(dir / "model.json"), std::nullopt,
                                             dir / "quant.cfg");
            BOOST_TEST(kvcali_test::slurp(tmp / "config.json") == kvcali_test::slurp(dir / "expected_config.json"));
            const kvcali::resolved_config cfg = kvcali::read_quant_cali_config(tmp / "config.json");
            const json data = cali_test::parse_json(kvcali_test::slurp(dir / "data.json"));
            kvcali::calibrator cal(cfg);
            // data.json's order: all batches of one layer, then the next (the reference's order).
            for (const auto& [name, d] : data.members) {
                const auto batches = cali_test::generate_batches(d, cfg.batch_num);
                const std::int64_t shape[2] = {static_cast<std::int64_t>(d["shape"].items[0].number),
                                               static_cast<std::int64_t>(d["shape"].items[1].number)};
                for (const auto& b : batches) cal.observe(name, b, shape);
                ++layers;
            }
            const auto want = kvcali::parse_record(kvcali_test::slurp(dir / "expected_record.txt"));
            const auto got = cal.records();
            off_by_one += compare_records(got, want);
            // The library writes layers in the order they finished: the reference's order.
            for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) BOOST_TEST(got[i].key == want[i].key);
            ++cases;
        }
    }
    BOOST_TEST(cases == 24u);
    BOOST_TEST(off_by_one <= max_off_by_one_offsets);
    BOOST_TEST_MESSAGE("e2e cases through the library: " << cases << " (" << layers << " layers), offsets off by one: " << off_by_one);
}

BOOST_AUTO_TEST_CASE(e2e_cases_through_the_cli) {
    std::size_t cases = 0, off_by_one = 0;
    for (const auto& dir : e2e_cases()) {
        BOOST_TEST_CONTEXT(dir.filename().string()) {
            kvcali_test::temp_dir tmp;
            // generate, then calibrate with what it wrote.
            const fs::path config = tmp / "config.json";
            const auto g = kvcali_test::run_cli({"generate", "--model", (dir / "model.json").string(), "--cfg",
                                                 (dir / "quant.cfg").string(), "-o", config.string(), "--quiet"});
            BOOST_TEST_INFO(g.err);
            BOOST_REQUIRE_EQUAL(g.status, 0);
            BOOST_TEST(kvcali_test::slurp(config) == kvcali_test::slurp(dir / "expected_config.json"));
            const json cfg = cali_test::parse_json(kvcali_test::slurp(config));
            const auto batch_num = static_cast<std::uint32_t>(cfg["batch_num"].number);
            const json data = cali_test::parse_json(kvcali_test::slurp(dir / "data.json"));
            for (const auto& [name, d] : data.members) {
                fs::create_directories(tmp / "act" / name);
                const std::int64_t shape[2] = {static_cast<std::int64_t>(d["shape"].items[0].number),
                                               static_cast<std::int64_t>(d["shape"].items[1].number)};
                const auto batches = cali_test::generate_batches(d, batch_num);
                for (std::size_t k = 0; k < batches.size(); ++k) {
                    std::vector<unsigned char> raw(batches[k].size() * 4);
                    std::memcpy(raw.data(), batches[k].data(), raw.size());
                    kvcali_test::spit(tmp.path() / "act" / name / (std::to_string(k) + ".npy"),
                                      kvcali::format_npy(kvcali::dtype::float32, shape, raw));
                }
            }
            const auto r = kvcali_test::run_cli(
                {"calibrate", "--config", config.string(), "--activations", (tmp / "act").string(), "-o", (tmp / "record.txt").string()});
            BOOST_TEST_INFO(r.err);
            BOOST_REQUIRE_EQUAL(r.status, 0);
            // One summary line (issue 15; it was silent before), no progress bar off a terminal.
            BOOST_TEST(
                r.out.rfind("wrote " + (tmp / "record.txt").string() + ": " + std::to_string(resolved_layers(config)) + " layer", 0) == 0u,
                r.out);
            BOOST_TEST(std::count(r.out.begin(), r.out.end(), '\n') == 1);
            BOOST_TEST(r.err.empty());
            const auto got = kvcali::parse_record(kvcali_test::slurp(tmp / "record.txt"));
            off_by_one += compare_records(got, kvcali::parse_record(kvcali_test::slurp(dir / "expected_record.txt")));
            // The CLI feeds and writes layers in the config's order.
            const kvcali::resolved_config resolved = kvcali::read_quant_cali_config(config);
            BOOST_REQUIRE_EQUAL(got.size(), resolved.layers.size());
            for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST(got[i].key == resolved.layers[i].name);
            ++cases;
        }
    }
    BOOST_TEST(cases == 24u);
    BOOST_TEST(off_by_one <= max_off_by_one_offsets);
}

BOOST_AUTO_TEST_CASE(cli_errors_name_the_file) {
    const fs::path cfg = e2e_root() / "e5_000" / "expected_config.json";
    kvcali_test::temp_dir tmp;
    fs::create_directories(tmp / "act");
    auto r = kvcali_test::run_cli(
        {"calibrate", "--config", cfg.string(), "--activations", (tmp / "act").string(), "-o", (tmp / "record.txt").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.err.find("[io_error]") != std::string::npos);
    BOOST_TEST(r.err.find("0.npy") != std::string::npos);
    BOOST_TEST(!fs::exists(tmp / "record.txt"));
    // A float64 file: invalid_data naming the file.
    const std::string layer = "model.layers.0.self_attn.k_proj";
    fs::create_directories(tmp / "act" / layer);
    const std::int64_t shape[1] = {2};
    std::string npy = kvcali::format_npy(kvcali::dtype::float32, shape, std::vector<unsigned char>(8, 0));
    npy.replace(npy.find("<f4"), 3, "<f8");
    kvcali_test::spit(tmp.path() / "act" / layer / "0.npy", npy);
    r = kvcali_test::run_cli(
        {"calibrate", "--config", cfg.string(), "--activations", (tmp / "act").string(), "-o", (tmp / "record.txt").string()});
    BOOST_TEST(r.status == 1);
    BOOST_TEST(r.err.find("[invalid_data]") != std::string::npos);
    BOOST_TEST(r.err.find("0.npy") != std::string::npos);
    r = kvcali_test::run_cli({"calibrate", "--config", cfg.string()});
    BOOST_TEST(r.status == 2);  // usage error
}

BOOST_AUTO_TEST_CASE(activation_dir_names_stay_inside_the_folder) {
    using kvcali::activation_dir_name;
    // Safe names are kept, so existing dumps (act/model.layers.0.self_attn.k_proj/0.npy) still work.
    BOOST_TEST(activation_dir_name("model.layers.0.self_attn.k_proj") == "model.layers.0.self_attn.k_proj");
    BOOST_TEST(activation_dir_name("Block_3-kv.proj") == "Block_3-kv.proj");
    BOOST_TEST(activation_dir_name("...") == "...");
    // Every other byte becomes %XX.
    BOOST_TEST(activation_dir_name("a/b") == "a%2Fb");
    BOOST_TEST(activation_dir_name("/layers.0/self_attn/k_proj/MatMul") == "%2Flayers.0%2Fself_attn%2Fk_proj%2FMatMul");
    BOOST_TEST(activation_dir_name("../escape") == "..%2Fescape");
    BOOST_TEST(activation_dir_name("a\\b") == "a%5Cb");
    BOOST_TEST(activation_dir_name("50%") == "50%25");
    BOOST_TEST(activation_dir_name("x y~z") == "x%20y%7Ez");
    BOOST_TEST(activation_dir_name("\xC3\xA9t\xE5\x9D\x97") == "%C3%A9t%E5%9D%97");  // UTF-8 bytes
    BOOST_TEST(activation_dir_name(std::string_view("\0\n\x7F", 3)) == "%00%0A%7F");
    // The names a folder cannot have: ".", "..", and the empty name.
    BOOST_TEST(activation_dir_name(".") == "%2E");
    BOOST_TEST(activation_dir_name("..") == "%2E%2E");
    BOOST_TEST(activation_dir_name("") == "%");

    // Longer than 255 bytes escaped: the first 200 bytes, "~", the name's 64-bit FNV-1a in hex.
    auto fnv1a = [](std::string_view s) {
        std::uint64_t h = 0xcbf29ce484222325ull;
        for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
        char hex[17];
        std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
        return std::string(hex);
    };
    BOOST_TEST(activation_dir_name(std::string(255, 'a')) == std::string(255, 'a'));  // 255 bytes: kept
    BOOST_TEST(activation_dir_name(std::string(85, '/')).size() == 255u);             // 85 * 3 bytes: kept
    const std::string long_name(300, 'a');
    BOOST_TEST(activation_dir_name(long_name) == std::string(200, 'a') + "~" + fnv1a(long_name));
    const std::string slashes(100, '/');  // 300 bytes escaped
    std::string escaped_slashes;
    for (int i = 0; i < 100; ++i) escaped_slashes += "%2F";
    BOOST_TEST(activation_dir_name(slashes) == escaped_slashes.substr(0, 200) + "~" + fnv1a(slashes));
    const std::string one = std::string(280, 'x') + "/k_proj", two = std::string(280, 'x') + "/v_proj";
    BOOST_TEST(activation_dir_name(one) != activation_dir_name(two));
    BOOST_TEST(activation_dir_name(std::string(256, 'a')) != activation_dir_name(std::string(257, 'a')));

    const std::vector<std::string> names{"",
                                         ".",
                                         "..",
                                         "/",
                                         "//",
                                         "a/../b",
                                         "../../etc/passwd",
                                         "/abs",
                                         "C:\\x",
                                         "%2F",
                                         std::string(1000, '.'),
                                         std::string(300, '/'),
                                         long_name,
                                         one,
                                         two,
                                         std::string("\xFF\xFE\x80", 3),
                                         std::string(1, '\0')};
    for (const auto& name : names) {
        const std::string dir = activation_dir_name(name);
        BOOST_TEST_CONTEXT("name of " << name.size() << " bytes") {
            BOOST_TEST(!dir.empty());
            BOOST_TEST(dir != ".");
            BOOST_TEST(dir != "..");
            BOOST_TEST(dir.size() <= 255u);
            BOOST_TEST(dir.find('/') == std::string::npos);
            BOOST_TEST(dir.find('\0') == std::string::npos);
            BOOST_TEST(fs::path(dir).filename() == fs::path(dir));  // one component
        }
    }
}

BOOST_AUTO_TEST_CASE(cli_reads_activations_inside_the_folder_whatever_the_layer_names) {
    // ONNX node names start with '/'; a name with ".." must not climb out of --activations either.
    const std::string onnx_name = "/layers.0/self_attn/k_proj/MatMul", climbing = "../escape";
    auto config_json = [](const std::vector<std::string>& names) {
        std::string s = "{\n    \"batch_num\":1,\n    \"activation_offset\":true";
        for (const auto& n : names) {
            s += ",\n    \"" + n +
                 "\":{\n        \"kv_data_quant_config\":{\n            \"act_algo\":\"ifmr\",\n"
                 "            \"max_percentile\":0.999999,\n            \"min_percentile\":0.999999,\n"
                 "            \"search_range\":[\n                0.7,\n                1.3\n            ],\n"
                 "            \"search_step\":0.01,\n            \"quant_granularity\":0\n        }\n    }";
        }
        return s + "\n}";
    };
    const std::int64_t shape[2] = {16, 4};
    auto npy_of = [&](const std::vector<float>& v) {
        std::vector<unsigned char> raw(v.size() * 4);
        std::memcpy(raw.data(), v.data(), raw.size());
        return kvcali::format_npy(kvcali::dtype::float32, shape, raw);
    };
    const std::vector<float> inside_k = ramp(64, 0.5f), inside_escape = ramp(64, 0.25f), outside = ramp(64, 40.0f);

    kvcali_test::temp_dir tmp;
    const fs::path act = tmp / "act";
    // The escaped folders, as the documented rule names them.
    fs::create_directories(act / "%2Flayers.0%2Fself_attn%2Fk_proj%2FMatMul");
    fs::create_directories(act / "..%2Fescape");
    kvcali_test::spit(act / "%2Flayers.0%2Fself_attn%2Fk_proj%2FMatMul" / "0.npy", npy_of(inside_k));
    kvcali_test::spit(act / "..%2Fescape" / "0.npy", npy_of(inside_escape));
    BOOST_TEST(kvcali::activation_dir_name(onnx_name) == "%2Flayers.0%2Fself_attn%2Fk_proj%2FMatMul");
    BOOST_TEST(kvcali::activation_dir_name(climbing) == "..%2Fescape");
    // Planted where act / "../escape" leads, outside the folder: never to be read.
    fs::create_directories(tmp / "escape");
    kvcali_test::spit(tmp / "escape" / "0.npy", npy_of(outside));
    BOOST_REQUIRE(!fs::exists(fs::path(onnx_name)));  // act / onnx_name would be this absolute path

    for (const auto& names : {std::vector<std::string>{onnx_name, climbing}, std::vector<std::string>{climbing}}) {
        BOOST_TEST_CONTEXT(names.size() << " layers") {
            kvcali_test::spit(tmp / "config.json", config_json(names));
            const auto config = kvcali::read_quant_cali_config(tmp / "config.json");
            kvcali::calibrator want(config), planted(config);
            for (const auto& n : names) {
                want.observe(n, n == onnx_name ? inside_k : inside_escape, shape);
                planted.observe(n, n == onnx_name ? inside_k : outside, shape);
            }
            BOOST_REQUIRE(!(want.records() == planted.records()));  // the planted file would show

            fs::remove(tmp / "record.txt");
            const auto r = kvcali_test::run_cli({"calibrate", "--config", (tmp / "config.json").string(), "--activations", act.string(),
                                                 "-o", (tmp / "record.txt").string()});
            BOOST_TEST_INFO(r.err);
            BOOST_REQUIRE_EQUAL(r.status, 0);
            // The summary line (issue 15; it was silent before).
            BOOST_TEST(r.out.rfind("wrote " + (tmp / "record.txt").string() + ": " + std::to_string(names.size()) + " layer", 0) == 0u,
                       r.out);
            const std::string record = kvcali_test::slurp(tmp / "record.txt");
            BOOST_TEST(record == want.record_text());
            // The record to stdout, with `-o -`: the same bytes, nothing else.
            const auto s =
                kvcali_test::run_cli({"calibrate", "--config", (tmp / "config.json").string(), "--activations", act.string(), "-o", "-"});
            BOOST_TEST(s.status == 0, s.err);
            BOOST_TEST(s.out == record);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 15: the header alone, the float64 hint, floats in messages.

BOOST_AUTO_TEST_CASE(npy_header_alone_is_read_and_checked) {
    kvcali_test::temp_dir tmp;
    const std::int64_t shape[2] = {3, 4};
    std::vector<unsigned char> raw(3 * 4 * 2, 0);
    const std::string f16 = kvcali::format_npy(kvcali::dtype::float16, shape, raw);
    kvcali_test::spit(tmp / "a.npy", f16);
    const kvcali::npy_header h = kvcali::read_npy_header(tmp / "a.npy");
    BOOST_TEST((h.type == kvcali::dtype::float16));
    BOOST_TEST(h.shape == (std::vector<std::int64_t>{3, 4}), boost::test_tools::per_element());
    BOOST_TEST(h.data_bytes == 24u);
    BOOST_TEST(h.data_offset + h.data_bytes == f16.size());
    BOOST_TEST(h.size() == 12u);
    // The same checks as the whole read: a short file, a missing one, a folder.
    kvcali_test::spit(tmp / "short.npy", f16.substr(0, f16.size() - 2));
    try {
        (void)kvcali::read_npy_header(tmp / "short.npy");
        BOOST_FAIL("a truncated file passed");
    } catch (const kvcali::error& e) {
        BOOST_TEST((e.code() == kvcali::errc::invalid_data));
        BOOST_TEST(std::string(e.what()).find("npy data has 22 bytes; the header's shape and dtype need 24") != std::string::npos,
                   e.what());
    }
    BOOST_TEST((error_of([&] { (void)kvcali::read_npy_header(tmp / "missing.npy"); }) == kvcali::errc::io_error));
    BOOST_TEST((error_of([&] { (void)kvcali::read_npy_header(tmp.path()); }) == kvcali::errc::io_error));
    kvcali_test::spit(tmp / "tiny.npy", "\x93NU");
    BOOST_TEST((error_of([&] { (void)kvcali::read_npy_header(tmp / "tiny.npy"); }) == kvcali::errc::invalid_data));
    // A header claiming more than the file holds.
    std::string lying = f16;
    lying[8] = '\xFF';
    kvcali_test::spit(tmp / "lying.npy", lying);
    BOOST_TEST((error_of([&] { (void)kvcali::read_npy_header(tmp / "lying.npy"); }) == kvcali::errc::invalid_data));
    // The header of a large array is read without its data: 16 MiB of float32 behind it.
    const std::int64_t big_shape[1] = {4 * 1024 * 1024};
    kvcali_test::spit(tmp / "big.npy", kvcali::format_npy(kvcali::dtype::float32, big_shape, std::vector<unsigned char>(16u << 20, 0)));
    BOOST_TEST(kvcali::read_npy_header(tmp / "big.npy").shape[0] == big_shape[0]);
}

BOOST_AUTO_TEST_CASE(unsupported_dtypes_say_how_to_fix_them) {
    const std::int64_t shape[1] = {2};
    const std::string f32 = kvcali::format_npy(kvcali::dtype::float32, shape, std::vector<unsigned char>(8, 0));
    const std::pair<std::string, std::string> cases[] = {
        {"<f8",
         "the array has dtype float64 ('<f8'); kvcali reads little-endian float32 ('<f4') or float16 ('<f2'): save it with "
         ".astype(np.float32)"},
        {">f4", "the array has dtype big-endian float32 ('>f4');"},
        {"<i8", "the array has dtype int64 ('<i8');"},
        {"|b1", "the array has dtype bool ('|b1');"},
        {"<V2", "the array has dtype '<V2';"},
    };
    for (const auto& [descr, message] : cases) {
        BOOST_TEST_CONTEXT(descr) {
            std::string npy = f32;
            npy.replace(npy.find("<f4"), 3, descr);
            try {
                (void)kvcali::parse_npy(npy, "a.npy");
                BOOST_FAIL("accepted");
            } catch (const kvcali::error& e) {
                BOOST_TEST((e.code() == kvcali::errc::invalid_data));
                BOOST_TEST(e.diagnostics()[0].message.rfind(message, 0) == 0u, e.diagnostics()[0].message);
                BOOST_TEST(e.diagnostics()[0].message.find(".astype(np.float32)") != std::string::npos);
            }
        }
    }
}

BOOST_AUTO_TEST_CASE(ifmr_messages_show_the_shortest_decimals) {
    kvcali::ifmr_options s;
    s.search_range_start = 1.5;
    s.search_range_end = 0.7;
    try {
        (void)kvcali::ifmr_ratios(s);
        BOOST_FAIL("an empty search was accepted");
    } catch (const kvcali::error& e) {
        BOOST_TEST(std::string(e.what()).find("the IFMR search range [1.5, 0.7] with step 0.01 holds no candidate") != std::string::npos,
                   e.what());
    }
}
