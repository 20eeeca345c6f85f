// quant.cfg parsing throughput: kvcali (text -> located ptree document -> simple_config) against
// protobuf's C++ TextFormat (text -> AMCTQuantCaliConfig message, compiled from the same .proto),
// on one generated file for a 100k-layer model. Prints MB/s, wall and CPU time of both (alternating runs, medians) and the ratios.
//   cfg_parse_bench [layers=100000] [repeats=7]
#include <kvcali/quant_cfg.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cfg_generate.hpp"
#ifdef KVCALI_BENCH_PROTOBUF
#include <google/protobuf/text_format.h>

#include "quant_calibration_config.pb.h"
#endif

namespace {

/// Wall and CPU (user + system, getrusage) seconds of one call.
struct timing {
    double wall = 0.0;
    double cpu = 0.0;
};

double cpu_now() {
    struct rusage u {};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

template <class Fn>
timing measure_once(Fn&& fn) {
    const double c0 = cpu_now();
    const auto start = std::chrono::steady_clock::now();
    fn();
    return {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), cpu_now() - c0};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t layers = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 7;
    const std::string text = kvcali_bench::generated_quant_cfg(layers);
    const double mb = static_cast<double>(text.size()) / 1e6;
    std::printf("quant.cfg for %zu layers: %.2f MB, median of %d runs\n", layers, mb, repeats);

    // The two parsers alternate, so that a loaded machine slows both alike; medians of wall and
    // CPU time (the CPU time is the fairer figure on a shared machine).
    std::size_t checksum = 0;
    auto run_kvcali = [&] {
        kvcali::diagnostics diags;
        const kvcali::simple_config cfg = kvcali::parse_simple_config(text, "bench.cfg", kvcali::default_policies::algorithms, diags);
        if (diags.has_errors()) {
            std::fprintf(stderr, "kvcali rejected the generated file: %s\n", diags.items().front().to_string().c_str());
            std::exit(1);
        }
        checksum += cfg.quant_layers.size() + cfg.overrides.size();
    };
    std::vector<double> kv_wall, kv_cpu;
#ifdef KVCALI_BENCH_PROTOBUF
    auto run_protobuf = [&] {
        AMCTPytorchQuantCaliProto::AMCTQuantCaliConfig message;
        google::protobuf::TextFormat::Parser parser;
        parser.AllowFieldNumber(false);
        if (!parser.MergeFromString(text, &message)) {
            std::fprintf(stderr, "protobuf TextFormat rejected the generated file\n");
            std::exit(1);
        }
        checksum += static_cast<std::size_t>(message.kv_cache_quant_config().quant_layers_size() + message.override_layers_configs_size());
    };
    std::vector<double> pb_wall, pb_cpu;
#endif
    for (int i = 0; i < repeats; ++i) {
        const timing k = measure_once(run_kvcali);
        kv_wall.push_back(k.wall);
        kv_cpu.push_back(k.cpu);
#ifdef KVCALI_BENCH_PROTOBUF
        const timing p = measure_once(run_protobuf);
        pb_wall.push_back(p.wall);
        pb_cpu.push_back(p.cpu);
#endif
    }
    const double kvcali_s = median(kv_wall), kvcali_cpu = median(kv_cpu);
    std::printf("kvcali parse_simple_config: %8.1f MB/s (%.1f ms wall, %.1f ms CPU)\n", mb / kvcali_s, kvcali_s * 1e3, kvcali_cpu * 1e3);
#ifdef KVCALI_BENCH_PROTOBUF
    const double protobuf_s = median(pb_wall), protobuf_cpu = median(pb_cpu);
    std::printf("protobuf TextFormat::Merge: %8.1f MB/s (%.1f ms wall, %.1f ms CPU)\n", mb / protobuf_s, protobuf_s * 1e3,
                protobuf_cpu * 1e3);
    std::printf("ratio kvcali / TextFormat:  %8.2fx wall, %.2fx CPU %s\n", protobuf_s / kvcali_s, protobuf_cpu / kvcali_cpu,
                kvcali_cpu < protobuf_cpu ? "(faster)" : "(slower)");
#else
    std::printf("protobuf TextFormat: not built (protobuf or protoc not found)\n");
#endif
    return checksum == 0 ? 1 : 0;
}
