// `kvcali calibrate` on a 7B-class activation dump: 64 layers (32 K, 32 V projections), batch_num 4,
// each batch a [2048, 1024] float16 .npy (1 GiB in all); half the layers IFMR and half HFMG (4096
// bins), half per tensor and half per channel. The dump is generated into a temporary folder, read
// once (so the files are in the page cache), calibrated by the real CLI (posix_spawn) with each
// --jobs given, and deleted. Prints wall and CPU time, values/s, GB/s and the child's peak RSS, checks
// that every --jobs wrote the same record, and measures per-channel IFMR (128 channels x 8192 values)
// in this process.
//
// Usage: bench_calibrate_dump --kvcali PATH [--layers 64] [--rows 2048] [--channels 1024]
//                             [--batches 4] [--jobs 1,2] [--dir TMPDIR] [--repeat 1] [--keep 1]
// (--repeat: runs per --jobs, the best wall time shown; --keep 1: leave the dump, for profiling)
#include <kvcali/calibration/ifmr.hpp>
#include <kvcali/calibration/npy.hpp>
#include <kvcali/calibration/scale.hpp>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct options {
    std::string kvcali;
    std::size_t layers = 64, rows = 2048, channels = 1024, batches = 4, repeat = 1;
    bool keep = false;
    std::vector<unsigned> jobs = {1, 2};
    fs::path dir = fs::temp_directory_path();
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
        const std::string v = argv[++i];
        if (a == "--kvcali") {
            o.kvcali = v;
        } else if (a == "--layers") {
            o.layers = std::stoul(v);
        } else if (a == "--rows") {
            o.rows = std::stoul(v);
        } else if (a == "--channels") {
            o.channels = std::stoul(v);
        } else if (a == "--batches") {
            o.batches = std::stoul(v);
        } else if (a == "--repeat") {
            o.repeat = std::max<std::size_t>(1, std::stoul(v));
        } else if (a == "--keep") {
            o.keep = v == "1";
        } else if (a == "--dir") {
            o.dir = v;
        } else if (a == "--jobs") {
            o.jobs.clear();
            for (std::size_t at = 0; at < v.size();) {
                const std::size_t comma = std::min(v.find(',', at), v.size());
                o.jobs.push_back(static_cast<unsigned>(std::stoul(v.substr(at, comma - at))));
                at = comma + 1;
            }
        } else {
            throw std::runtime_error("unknown option " + a);
        }
    }
    if (o.kvcali.empty()) throw std::runtime_error("--kvcali PATH is required");
    if (o.layers == 0 || o.layers % 4 != 0) throw std::runtime_error("--layers must be a positive multiple of 4");
    return o;
}

/// Layer j: K for even j, V for odd; IFMR for j % 4 < 2 else HFMG; per channel for odd j / 2.
std::string layer_name(std::size_t j) {
    std::string name = "model.layers.";
    name += std::to_string(j / 2);
    name += j % 2 ? ".self_attn.v_proj" : ".self_attn.k_proj";
    return name;
}
bool is_ifmr(std::size_t j) { return j % 4 < 2; }
bool per_channel(std::size_t j) { return (j / 4) % 2 == 1; }

std::string config_json(const options& o) {
    std::string s = "{\n    \"batch_num\":" + std::to_string(o.batches) + ",\n    \"activation_offset\":true";
    for (std::size_t j = 0; j < o.layers; ++j) {
        s += ",\n    \"" + layer_name(j) + "\":{\n        \"kv_data_quant_config\":{\n";
        if (is_ifmr(j)) {
            s += "            \"act_algo\":\"ifmr\",\n            \"max_percentile\":0.999999,\n            \"min_percentile\":0.999999,\n"
                 "            \"search_range\":[\n                0.7,\n                1.3\n            ],\n"
                 "            \"search_step\":0.01,\n";
        } else {
            s += "            \"act_algo\":\"hfmg\",\n            \"num_of_bins\":4096,\n";
        }
        s += "            \"quant_granularity\":";
        s += per_channel(j) ? "1" : "0";
        s += "\n        }\n    }";
    }
    return s + "\n}\n";
}

/// Activation-like float16 data: per channel a scale (a few channels 20x larger, as K/V outlier
/// channels are) times a roughly normal value (a sum of uniforms), rare outliers.
std::vector<unsigned char> batch_bytes(std::size_t layer, std::size_t batch, std::size_t rows, std::size_t channels) {
    std::vector<float> channel_scale(channels);
    std::uint64_t h = 0x9E3779B97F4A7C15ull * (layer + 1);
    auto next = [&h] {
        h ^= h << 13;
        h ^= h >> 7;
        h ^= h << 17;
        return h;
    };
    for (std::size_t c = 0; c < channels; ++c)
        channel_scale[c] = (c % 97 == 3 ? 20.0f : 1.0f) * (0.2f + static_cast<float>(next() % 1000) / 500.0f);
    h ^= 0xD1B54A32D192ED03ull * (batch + 1);
    std::vector<unsigned char> out(rows * channels * 2);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < channels; ++c) {
            const std::uint64_t u = next();
            float x = (static_cast<float>(u & 0xFFFF) + static_cast<float>((u >> 16) & 0xFFFF) + static_cast<float>((u >> 32) & 0xFFFF) -
                       1.5f * 65536.0f) /
                      37837.0f;  // mean 0, standard deviation 1
            if (((u >> 48) & 0x3FFF) == 7) x *= 8.0f;
            const std::uint16_t half = kvcali::float_to_half(x * channel_scale[c]);
            std::memcpy(out.data() + 2 * (r * channels + c), &half, 2);
        }
    }
    return out;
}

struct child_result {
    double wall = 0, cpu = 0;
    long peak_kib = 0;
    int status = -1;
};

child_result run_child(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    child_result out;
    const auto t0 = std::chrono::steady_clock::now();
    pid_t pid = 0;
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) throw std::runtime_error("cannot start " + args[0]);
    int status = 0;
    struct rusage usage {};
    ::wait4(pid, &status, 0, &usage);
    out.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
              static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
    out.peak_kib = usage.ru_maxrss;
    out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return out;
}

/// Removes the dump however the benchmark ends.
struct dump_dir {
    fs::path path;
    bool keep = false;
    ~dump_dir() {
        std::error_code ec;
        if (keep) {
            std::printf("kept the dump in %s\n", path.c_str());
        } else {
            fs::remove_all(path, ec);
        }
    }
};

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Per-channel IFMR, 128 channels x 8192 values, in this process: best of 5 (CPU time).
void per_channel_ifmr() {
    constexpr std::size_t rows = 8192, channels = 128;
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.1f, 1.5f);
    std::vector<float> matrix(rows * channels);
    for (std::size_t i = 0; i < matrix.size(); ++i) matrix[i] = normal(rng) * (i % 9973 == 0 ? 12.0f : 1.0f);
    double best = 1e300;
    for (int rep = 0; rep < 5; ++rep) {
        const std::clock_t c0 = std::clock();
        kvcali::ifmr_accumulator acc(kvcali::ifmr_options{}, true);
        acc.add_batch(matrix, channels);
        const auto q = acc.finish();
        const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
        if (q.scale.size() != channels) throw std::runtime_error("per-channel IFMR gave the wrong channel count");
        best = std::min(best, cpu);
    }
    std::printf("IFMR per channel, %zu channels x %zu values (61 candidates): %.1f ms CPU (best of 5), %.1f M values/s\n", channels, rows,
                best * 1e3, static_cast<double>(rows * channels) / best / 1e6);
}

}  // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    const std::uint64_t values = static_cast<std::uint64_t>(o.layers) * o.batches * o.rows * o.channels;
    const double gib = static_cast<double>(values) * 2.0 / (1024.0 * 1024.0 * 1024.0);
    std::printf(
        "calibrate dump: %zu layers (IFMR/HFMG x per tensor/per channel), batch_num %zu, [%zu, %zu] float16 per batch: %.3f GiB, %llu "
        "values\n",
        o.layers, o.batches, o.rows, o.channels, gib, static_cast<unsigned long long>(values));
    std::fflush(stdout);

    dump_dir dump{o.dir / ("kvcali-bench-dump-" + std::to_string(::getpid())), o.keep};
    fs::create_directories(dump.path / "act");
    const auto g0 = std::chrono::steady_clock::now();
    std::ofstream(dump.path / "config.json", std::ios::binary) << config_json(o);
    const std::int64_t shape[2] = {static_cast<std::int64_t>(o.rows), static_cast<std::int64_t>(o.channels)};
    for (std::size_t j = 0; j < o.layers; ++j) {
        fs::create_directories(dump.path / "act" / layer_name(j));
        for (std::size_t k = 0; k < o.batches; ++k) {
            const auto raw = batch_bytes(j, k, o.rows, o.channels);
            std::ofstream(dump.path / "act" / layer_name(j) / (std::to_string(k) + ".npy"), std::ios::binary)
                << kvcali::format_npy(kvcali::dtype::float16, shape, raw);
        }
    }
    // Read every file once: the runs below find them in the page cache.
    const auto r0 = std::chrono::steady_clock::now();
    std::uint64_t checksum = 0;
    for (std::size_t j = 0; j < o.layers; ++j) {
        for (std::size_t k = 0; k < o.batches; ++k) {
            const auto a = kvcali::map_npy(dump.path / "act" / layer_name(j) / (std::to_string(k) + ".npy"));
            for (std::size_t i = 0; i < a.size_bytes(); i += 4096) checksum += a.data()[i];
        }
    }
    const auto r1 = std::chrono::steady_clock::now();
    std::printf("generated in %.1f s; touching every page of the mapped files: %.2f s (checksum %llu)\n",
                std::chrono::duration<double>(r0 - g0).count(), std::chrono::duration<double>(r1 - r0).count(),
                static_cast<unsigned long long>(checksum % 1000));

    std::string first_record;
    int failures = 0;
    for (unsigned jobs : o.jobs) {
        child_result best;
        best.wall = 1e300;
        for (std::size_t rep = 0; rep < o.repeat; ++rep) {
            const fs::path record = dump.path / ("record-" + std::to_string(jobs) + ".txt");
            const auto r = run_child({o.kvcali, "calibrate", "--config", (dump.path / "config.json").string(), "--activations",
                                      (dump.path / "act").string(), "-o", record.string(), "--jobs", std::to_string(jobs), "--quiet"});
            if (r.status != 0) {
                std::printf("kvcali calibrate --jobs %u failed (status %d)\n", jobs, r.status);
                ++failures;
                break;
            }
            const std::string text = slurp(record);
            if (first_record.empty()) first_record = text;
            if (text != first_record) {
                std::printf("kvcali calibrate --jobs %u wrote another record than --jobs %u\n", jobs, o.jobs.front());
                ++failures;
            }
            if (r.wall < best.wall) best = r;
        }
        if (best.status != 0) continue;
        std::printf("kvcali calibrate --jobs %-2u wall %6.2f s  cpu %6.2f s  %7.1f M values/s  %5.2f GB/s  peak RSS %7.1f MiB%s\n", jobs,
                    best.wall, best.cpu, static_cast<double>(values) / best.wall / 1e6, static_cast<double>(values) * 2.0 / best.wall / 1e9,
                    static_cast<double>(best.peak_kib) / 1024.0, o.repeat > 1 ? "  (best wall of the runs)" : "");
        std::fflush(stdout);
    }
    if (!first_record.empty()) std::printf("records: %zu bytes, the same for every --jobs\n", first_record.size());
    per_channel_ifmr();
    return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench_calibrate_dump: %s\n", e.what());
    return 2;
}
