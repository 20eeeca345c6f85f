// The quality report's time and peak memory: 64 layers of 4M values each (float16 files, 4 batches of
// [8192, 128] per layer: 512 MiB in all, written to a temporary folder and removed at the end),
// all per tensor (HFMG; the other algorithm IFMR) and all per channel (IFMR per channel; the other
// HFMG), each with a record and without one (calibrated first). Every run is its own child process,
// so its peak RSS (getrusage) is its own: it should stay near one layer's values (4M float32 =
// 16 MiB), far below the whole dump (1 GiB as float32).
//
// Usage: bench_report [--layers N] [--rows R] [--dir DIR]   (defaults 64, 8192; DIR: the system temp folder)
#include <kvcali/calibration/layout.hpp>
#include <kvcali/calibration/npy.hpp>
#include <kvcali/calibration/scale.hpp>
#include <kvcali/config_reader.hpp>
#include <kvcali/io.hpp>
#include <kvcali/report.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

constexpr std::size_t channels = 128;
constexpr std::uint32_t batches = 4;

/// Made-up activations: per channel a sum of uniforms (roughly normal) of a channel's width, a few
/// wide channels and rare outliers, as real K/V projections have. Deterministic (xorshift).
void write_layer(const fs::path& dir, const std::string& layer, std::size_t rows, std::uint64_t seed) {
    fs::create_directories(dir / kvcali::activation_dir_name(layer));
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    auto next = [&] {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return static_cast<float>(s >> 40) * 0x1p-24f;
    };
    std::vector<float> width(channels);
    for (std::size_t c = 0; c < channels; ++c) width[c] = (0.2f + next()) * (c % 32 == 0 ? 8.0f : 1.0f);
    std::vector<unsigned char> bytes(rows * channels * 2);
    for (std::uint32_t k = 0; k < batches; ++k) {
        for (std::size_t i = 0; i < rows * channels; ++i) {
            float x = (next() + next() + next() + next() - 2.0f) * width[i % channels];
            if (next() < 1e-4f) x *= 12.0f;
            const std::uint16_t h = kvcali::float_to_half(x);
            std::memcpy(bytes.data() + i * 2, &h, 2);
        }
        const std::int64_t shape[2] = {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(channels)};
        kvcali::write_file_atomic(kvcali::activation_file(dir, layer, k), kvcali::format_npy(kvcali::dtype::float16, shape, bytes));
    }
}

std::string config_text(std::size_t layers, bool per_channel) {
    std::string out = "{\"batch_num\":" + std::to_string(batches) + ",\"activation_offset\":true";
    for (std::size_t i = 0; i < layers; ++i) {
        out += ",\"model.layers." + std::to_string(i / 2) + ".self_attn." + (i % 2 ? "v" : "k") + "_proj\":{\"kv_data_quant_config\":";
        out +=
            per_channel
                ? R"({"act_algo":"ifmr","max_percentile":0.999999,"min_percentile":0.999999,"search_range":[0.7,1.3],"search_step":0.01,"quant_granularity":1}})"
                : R"({"act_algo":"hfmg","num_of_bins":4096}})";
    }
    return out + "}";
}

struct figure {
    double seconds = -1;
    double cpu_seconds = -1;
    long peak_kib = 0;
    int status = 0;
};

/// Runs `body` in a child process: its wall and CPU time, and its peak resident memory.
figure measure(const std::function<void()>& body) {
    std::fflush(stdout);
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        const auto t0 = std::chrono::steady_clock::now();
        const std::clock_t c0 = std::clock();
        try {
            body();
        } catch (const kvcali::error& e) {
            std::fprintf(stderr, "%s\n", e.what());
            std::_Exit(1);
        }
        const double s[2] = {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                             static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC};
        std::fflush(stdout);
        if (::write(fds[1], s, sizeof s) != static_cast<ssize_t>(sizeof s)) std::_Exit(2);
        std::_Exit(0);
    }
    ::close(fds[1]);
    figure f;
    double s[2] = {-1, -1};
    if (::read(fds[0], s, sizeof s) != static_cast<ssize_t>(sizeof s)) s[0] = s[1] = -1;
    ::close(fds[0]);
    struct rusage usage {};
    ::wait4(pid, &f.status, 0, &usage);
    f.seconds = s[0];
    f.cpu_seconds = s[1];
    f.peak_kib = usage.ru_maxrss;
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t layers = 64, rows = 8192;
    fs::path base = fs::temp_directory_path();
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--layers")
            layers = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--rows")
            rows = std::strtoull(argv[i + 1], nullptr, 10);
        else if (a == "--dir")
            base = argv[i + 1];
        else {
            std::fprintf(stderr, "usage: bench_report [--layers N] [--rows R] [--dir DIR]\n");
            return 2;
        }
    }
    const fs::path dir = base / ("kvcali-bench-report-" + std::to_string(::getpid()));
    const std::size_t per_layer = rows * channels * batches;
    const double layer_mib = static_cast<double>(per_layer) * 4.0 / (1 << 20);
    std::printf("report benchmark: %zu layers x %zu values ([%zu, %zu] x %u batches, float16 files: %.0f MiB in all)\n", layers, per_layer,
                rows, channels, batches, static_cast<double>(layers * per_layer * 2) / (1 << 20));
    std::printf("one layer's values as float32: %.1f MiB; the whole dump: %.1f MiB\n", layer_mib, layer_mib * static_cast<double>(layers));

    int failures = 0;
    try {
        const auto t0 = std::chrono::steady_clock::now();
        const kvcali::resolved_config tensor_doc = kvcali::parse_quant_cali_config(config_text(layers, false));
        const kvcali::resolved_config channel_doc = kvcali::parse_quant_cali_config(config_text(layers, true));
        for (std::size_t i = 0; i < layers; ++i) write_layer(dir, tensor_doc.layers[i].name, rows, i + 1);
        std::printf("data written in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        const figure baseline = measure([] {});

        for (const auto* doc : {&tensor_doc, &channel_doc}) {
            const bool per_channel = doc == &channel_doc;
            const char* what = per_channel ? "per channel (IFMR, other HFMG)" : "per tensor (HFMG, other IFMR)";
            // Without a record: calibrated first; its records then feed the run with a record.
            const fs::path records = dir / (per_channel ? "channel.txt" : "tensor.txt");
            const figure calibrated = measure([&] {
                const kvcali::quality_report r = kvcali::build_quality_report(*doc, dir, {});
                std::vector<kvcali::layer_record> out;
                std::size_t flagged = 0;
                for (const auto& l : r.layers) {
                    out.push_back({l.name, l.record.factors});
                    flagged += l.flags.empty() ? 0 : 1;
                }
                kvcali::write_record_file(records, out);
                const std::string page = kvcali::quality_report_html(r), json = kvcali::quality_report_json(r);
                std::printf("  %s: %zu flagged; page %.1f KiB, JSON %.1f KiB\n", what, flagged, static_cast<double>(page.size()) / 1024.0,
                            static_cast<double>(json.size()) / 1024.0);
            });
            const figure recorded = measure([&] {
                kvcali::report_request request;
                request.record = kvcali::parse_record(kvcali::read_file(records), records.string());
                request.record_file = records.string();
                const kvcali::quality_report r = kvcali::build_quality_report(*doc, dir, request);
                (void)kvcali::quality_report_html(r);
                (void)kvcali::quality_report_json(r);
            });
            for (const auto& [label, f] : {std::pair{"with a record", recorded}, std::pair{"without (calibrates first)", calibrated}}) {
                if (f.status != 0 || f.seconds < 0) {
                    std::printf("%-32s %-28s FAILED (status %d)\n", what, label, f.status);
                    ++failures;
                    continue;
                }
                const double values = static_cast<double>(per_layer * layers);
                std::printf(
                    "%-32s %-28s wall %7.2f s  cpu %7.2f s  %6.1f M values/s (cpu)  peak RSS %7.1f MiB (%.2fx one layer; process alone "
                    "%.1f MiB)\n",
                    what, label, f.seconds, f.cpu_seconds, values / f.cpu_seconds / 1e6, static_cast<double>(f.peak_kib) / 1024.0,
                    static_cast<double>(f.peak_kib) / 1024.0 / layer_mib, static_cast<double>(baseline.peak_kib) / 1024.0);
            }
        }
    } catch (const kvcali::error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        ++failures;
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    return failures == 0 ? 0 : 1;
}
