// quant.cfg parsing throughput: kvcali (text -> located ptree document -> simple_config) against
// protobuf's C++ TextFormat (text -> AMCTQuantCaliConfig message, compiled from the same .proto),
// on one generated file for a 100k-layer model. Prints MB/s of both and the ratio.
//   cfg_parse_bench [layers=100000] [repeats=7]
#include <kvcali/quant_cfg.hpp>

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

template <class Fn>
double best_seconds(int repeats, Fn&& fn) {
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
        const auto start = std::chrono::steady_clock::now();
        fn();
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];  // median
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t layers = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 7;
    const std::string text = kvcali_bench::generated_quant_cfg(layers);
    const double mb = static_cast<double>(text.size()) / 1e6;
    std::printf("quant.cfg for %zu layers: %.2f MB, median of %d runs\n", layers, mb, repeats);

    std::size_t checksum = 0;
    const double kvcali_s = best_seconds(repeats, [&] {
        kvcali::diagnostics diags;
        const kvcali::simple_config cfg =
            kvcali::parse_simple_config(text, "bench.cfg", kvcali::default_policies::algorithms, diags);
        if (diags.has_errors()) {
            std::fprintf(stderr, "kvcali rejected the generated file: %s\n", diags.items().front().to_string().c_str());
            std::exit(1);
        }
        checksum += cfg.quant_layers.size() + cfg.overrides.size();
    });
    std::printf("kvcali parse_simple_config: %8.1f MB/s (%.1f ms)\n", mb / kvcali_s, kvcali_s * 1e3);

#ifdef KVCALI_BENCH_PROTOBUF
    const double protobuf_s = best_seconds(repeats, [&] {
        AMCTPytorchQuantCaliProto::AMCTQuantCaliConfig message;
        google::protobuf::TextFormat::Parser parser;
        parser.AllowFieldNumber(false);
        if (!parser.MergeFromString(text, &message)) {
            std::fprintf(stderr, "protobuf TextFormat rejected the generated file\n");
            std::exit(1);
        }
        checksum += static_cast<std::size_t>(message.kv_cache_quant_config().quant_layers_size() + message.override_layers_configs_size());
    });
    std::printf("protobuf TextFormat::Merge: %8.1f MB/s (%.1f ms)\n", mb / protobuf_s, protobuf_s * 1e3);
    std::printf("ratio kvcali / TextFormat:  %8.2fx %s\n", protobuf_s / kvcali_s, kvcali_s < protobuf_s ? "(faster)" : "(slower)");
#else
    std::printf("protobuf TextFormat: not built (protobuf or protoc not found)\n");
#endif
    return checksum == 0 ? 1 : 0;
}
