// benchmarks/generate: `kvcali generate` at scale, and the compile time of the core header.
//
// For synthetic LLaMA-shaped models of about 1k, 10k, 100k and 1M layers (and one of exactly 20k
// KV-cache layers, the reference's 17.8 s figure), with a quant.cfg naming every K and V projection
// and overriding every other V projection: the time to load the layer list and to generate
// config.json (best of `repeats` runs), and the peak memory of a fresh child process doing it
// (getrusage via wait4), against the input and output sizes.
//
// Usage: bench_generate [--repeats N] [--layers N]... [--compile CXX ARGS... TU]
//        bench_generate --child MODEL CFG OUT   (one measured run; used by the above)
#include <kvcali/generate.hpp>
#include <kvcali/layer_list.hpp>

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "synthetic_llama.hpp"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) { return std::chrono::duration<double>(clock_type::now() - start).count(); }

/// CPU time of this process (user + system): on a shared machine it is the figure that does not
/// depend on how many other processes want the cores.
double cpu_seconds() {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

void write_text(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << bytes;
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

/// The child: load, generate, print "load_cpu_s generate_cpu_s layers wall_s".
int child(const char* model_path, const char* cfg_path, const char* out_path) {
    const auto start = clock_type::now();
    const double t0 = cpu_seconds();
    const kvcali::layer_table model = kvcali::load_layer_list(model_path);
    const double t1 = cpu_seconds();
    const auto doc = kvcali::create_quant_cali_config(out_path, model, std::nullopt, fs::path(cfg_path));
    const double t2 = cpu_seconds();
    std::printf("%.6f %.6f %zu %.6f\n", t1 - t0, t2 - t1, doc.layers.size(), seconds_since(start));
    return 0;
}

struct run_result {
    int status = -1;
    std::string out;
    long max_rss_kb = 0;
    double seconds = 0;
    double cpu = 0;  ///< user + system time of the child and its waited-for descendants
};

/// Runs `argv` with stdout captured, measuring wall time and peak RSS (the child and its waited-for descendants).
run_result run(const std::vector<std::string>& argv, const fs::path& scratch) {
    const fs::path out_file = scratch / "child.stdout";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    std::vector<std::string> store = argv;
    for (auto& a : store) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = 0;
    const auto start = clock_type::now();
    const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
    int wstatus = 0;
    rusage usage{};
    while (::wait4(pid, &wstatus, 0, &usage) < 0) {
        if (errno != EINTR) throw std::runtime_error("wait4 failed");
    }
    run_result r;
    r.seconds = seconds_since(start);
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    r.max_rss_kb = usage.ru_maxrss;
    r.cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
            static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
    std::ifstream in(out_file);
    r.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return r;
}

double mib(double bytes) { return bytes / 1048576.0; }

int bench_generate(const std::string& self, const std::vector<std::size_t>& sizes, int repeats, const fs::path& scratch) {
    // The memory of a child that does nothing, subtracted from each run.
    const run_result idle = run({self, "--idle"}, scratch);
    std::printf("generate on synthetic LLaMA-shaped models (best of %d; peak RSS of a fresh process, idle %.1f MiB)\n", repeats,
                idle.max_rss_kb / 1024.0);
    std::printf("%9s %8s %9s %9s %9s %9s %9s %9s %11s %9s %9s %8s\n", "layers", "KV", "model MB", "cfg MB", "out MB", "load s", "gen s",
                "cpu s", "us/KV layer", "wall s", "peak MiB", "peak/io");
    int failures = 0;
    for (const std::size_t requested : sizes) {
        // A size below 100 means "this many thousand KV-cache layers" (e.g. 20: the reference's 20k).
        const std::size_t blocks = requested < 100 ? requested * 500 : kvcali_bench::llama_blocks_for(requested);
        const fs::path model = scratch / "model.json", cfg = scratch / "quant.cfg", out = scratch / "config.json";
        std::size_t model_bytes = 0, cfg_bytes = 0;
        {
            const std::string m = kvcali_bench::llama_layer_list(blocks);
            const std::string c = kvcali_bench::llama_quant_cfg(blocks);
            model_bytes = m.size();
            cfg_bytes = c.size();
            write_text(model, m);
            write_text(cfg, c);
        }
        double best_load = 1e9, best_gen = 1e9, best_total = 1e9, best_wall = 1e9;
        long peak = 0;
        for (int i = 0; i < repeats; ++i) {
            const run_result r = run({self, "--child", model.string(), cfg.string(), out.string()}, scratch);
            double load = 0, gen = 0, wall = 0;
            std::size_t layers = 0;
            if (r.status != 0 || std::sscanf(r.out.c_str(), "%lf %lf %zu %lf", &load, &gen, &layers, &wall) != 4 || layers != 2 * blocks) {
                std::printf("run failed for %zu blocks: exit %d, output %s\n", blocks, r.status, r.out.c_str());
                ++failures;
                break;
            }
            best_load = std::min(best_load, load);
            best_gen = std::min(best_gen, gen);
            best_total = std::min(best_total, load + gen);
            best_wall = std::min(best_wall, wall);
            peak = std::max(peak, r.max_rss_kb);
        }
        const double out_bytes = static_cast<double>(fs::file_size(out));
        const double io = static_cast<double>(model_bytes + cfg_bytes) + out_bytes;
        const double above_idle = static_cast<double>(peak - idle.max_rss_kb) * 1024.0;
        std::printf("%9zu %8zu %9.2f %9.2f %9.2f %9.4f %9.4f %9.4f %11.3f %9.4f %9.1f %8.2f\n", kvcali_bench::llama_layer_count(blocks),
                    2 * blocks, mib(static_cast<double>(model_bytes)), mib(static_cast<double>(cfg_bytes)), mib(out_bytes), best_load,
                    best_gen, best_total, best_total / static_cast<double>(2 * blocks) * 1e6, best_wall, peak / 1024.0, above_idle / io);
        std::fflush(stdout);
    }
    std::printf(
        "(load s, gen s, cpu s: CPU time (user + system) of loading the layer list, of parsing quant.cfg + resolving + writing\n"
        " config.json atomically (fsync included), and their sum; wall s: elapsed time of both, which includes waiting for the\n"
        " disk and for a core; peak/io: peak RSS above idle / (model + cfg + output))\n");
    return failures;
}

/// Compiles the TU of `command` (CXX ARGS... TU) `repeats` times; prints the best CPU and wall time.
int bench_compile_once(const std::vector<std::string>& command, const char* mode, int repeats, const fs::path& scratch) {
    std::vector<std::string> argv = command;
    argv.push_back("-c");
    argv.push_back("-o");
    argv.push_back((scratch / "tu.o").string());
    double best = 1e9, best_cpu = 1e9;
    long peak = 0;
    for (int i = 0; i < repeats; ++i) {
        const run_result r = run(argv, scratch);
        if (r.status != 0) {
            std::printf("compile failed (exit %d): %s\n", r.status, argv.front().c_str());
            return 1;
        }
        best = std::min(best, r.seconds);
        best_cpu = std::min(best_cpu, r.cpu);
        peak = std::max(peak, r.max_rss_kb);
    }
    std::string shown;
    for (const auto& a : command) shown += (shown.empty() ? "" : " ") + fs::path(a).filename().string();
    std::printf(
        "compile time of one TU including <kvcali/kvcali.hpp> and calling the generator on its own graph type and on a layer list, %s: "
        "%.2f s CPU, %.2f s wall "
        "(best of %d), compiler peak RSS %.0f MiB\n  (%s)\n",
        mode, best_cpu, best, repeats, peak / 1024.0, shown.c_str());
    std::fflush(stdout);
    return 0;
}

/// The TU header-only (the default), then with KVCALI_SEPARATE_COMPILATION (the library's
/// non-template functions only declared; <kvcali/src.hpp> would define them in another TU, compiled once).
int bench_compile(const std::vector<std::string>& command, int repeats, const fs::path& scratch) {
    int failures = bench_compile_once(command, "header-only", repeats, scratch);
    std::vector<std::string> separate = command;
    separate.insert(separate.end() - 1, "-DKVCALI_SEPARATE_COMPILATION");
    failures += bench_compile_once(separate, "separate compilation", repeats, scratch);
    return failures;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (!args.empty() && args[0] == "--idle") return 0;
        if (args.size() == 4 && args[0] == "--child") return child(argv[2], argv[3], argv[4]);
        int repeats = 3;
        std::vector<std::size_t> sizes;
        std::vector<std::string> compile;
        for (std::size_t i = 0; i < args.size(); ++i) {
            if (args[i] == "--repeats" && i + 1 < args.size()) {
                repeats = std::max(1, std::atoi(args[++i].c_str()));
            } else if (args[i] == "--layers" && i + 1 < args.size()) {
                sizes.push_back(static_cast<std::size_t>(std::strtoull(args[++i].c_str(), nullptr, 10)));
            } else if (args[i] == "--compile") {
                compile.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
                break;
            } else {
                std::fprintf(stderr, "usage: bench_generate [--repeats N] [--layers N]... [--compile CXX ARGS... TU]\n");
                return 2;
            }
        }
        if (sizes.empty()) sizes = {1'000, 10'000, 20, 100'000, 1'000'000};
        std::random_device rd;
        const fs::path scratch = fs::temp_directory_path() / ("kvcali-bench-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        fs::create_directory(scratch);
        int failures = bench_generate(fs::canonical("/proc/self/exe").string(), sizes, repeats, scratch);
        if (!compile.empty()) failures += bench_compile(compile, repeats, scratch);
        fs::remove_all(scratch);
        return failures == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_generate: %s\n", e.what());
        return 1;
    }
}
