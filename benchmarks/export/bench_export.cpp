// Export: a record of many per-channel layers (default 1000 layers, C = 1024) through the whole
// export (read config.json and the record, check, build the tensors, write the folder), timed with
// its peak memory (each format in its own child process, so the peak is its own); then the
// safetensors reader on a large file (default 1 GiB, written sparse into the temp folder and
// deleted after): opening it and reading one tensor reads the header and that tensor's bytes only.
//
// Usage: bench_export [layers (1000)] [channels (1024)] [file MiB (1024)]
#include <kvcali/export.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

/// Runs `body` in a child; prints its wall time (measured in the child) and peak resident memory.
void measure(const char* what, const std::function<void()>& body) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) std::exit(2);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(pipefd[0]);
        const double t0 = now();
        try {
            body();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: %s\n", what, e.what());
            std::_Exit(1);
        }
        const double seconds = now() - t0;
        if (::write(pipefd[1], &seconds, sizeof seconds) != sizeof seconds) std::_Exit(3);
        std::_Exit(0);
    }
    ::close(pipefd[1]);
    double seconds = 0;
    const bool got = ::read(pipefd[0], &seconds, sizeof seconds) == sizeof seconds;
    ::close(pipefd[0]);
    int status = 0;
    struct rusage ru {};
    ::wait4(pid, &status, 0, &ru);
    if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::printf("%-44s FAILED\n", what);
        std::exit(1);
    }
    std::printf("%-44s %8.3f s   peak %7.1f MiB\n", what, seconds, static_cast<double>(ru.ru_maxrss) / 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
    const std::size_t layers = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 1000;
    const std::size_t channels = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1024;
    const std::uint64_t file_mib = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1024;
    const fs::path dir = fs::temp_directory_path() / ("kvcali-bench-export-" + std::to_string(::getpid()));
    fs::create_directories(dir);

    // config.json and the record: layers/2 decoder layers with K and V, per channel.
    std::mt19937 rng(17);
    std::uniform_real_distribution<float> scale(0.001f, 0.1f);
    std::uniform_int_distribution<int> offset(-128, 127);
    std::string config = "{\n    \"batch_num\":1,\n    \"activation_offset\":true";
    std::string record;
    for (std::size_t i = 0; i < layers; ++i) {
        const std::string name = "model.layers." + std::to_string(i / 2) + ".self_attn." + (i % 2 ? "v_proj" : "k_proj");
        config += ",\n    \"" + name + "\":{\"kv_data_quant_config\":{\"act_algo\":\"hfmg\",\"num_of_bins\":4096,\"quant_granularity\":1}}";
        record += "record {\n  key: \"" + name + "\"\n  kv_cache_value {\n";
        for (std::size_t c = 0; c < channels; ++c) record += "    scale: " + kvcali::float32_repr(scale(rng)) + "\n";
        for (std::size_t c = 0; c < channels; ++c) record += "    offset: " + std::to_string(offset(rng)) + "\n";
        record += "  }\n}\n";
    }
    config += "\n}";
    kvcali::write_file_atomic(dir / "config.json", config);
    kvcali::write_file_atomic(dir / "record.txt", record);
    std::printf("export of %zu layers x %zu channels (record %.1f MiB)\n", layers, channels,
                static_cast<double>(record.size()) / (1 << 20));
    // The texts are in their files now: the children measured below start without them.
    std::string().swap(record);
    std::string().swap(config);

    auto export_to = [&](kvcali::export_format format, const char* out) {
        const auto cfg = kvcali::read_quant_cali_config(dir / "config.json");
        const auto rec = kvcali::parse_record(kvcali::read_file(dir / "record.txt"), "record.txt");
        kvcali::export_options o;
        o.format = format;
        const auto plan = kvcali::plan_export(rec, cfg, o);
        kvcali::write_export(plan, dir / out, false);
    };
    measure("  ascend-c8 (float16)", [&] { export_to(kvcali::export_format::ascend_c8, "c8"); });
    measure("  compressed-tensors (fp8, per tensor)", [&] { export_to(kvcali::export_format::compressed_tensors, "ct"); });
    measure("  vllm-scales-json", [&] { export_to(kvcali::export_format::vllm_scales_json, "vllm"); });
    std::printf("  kv_cache_c8.safetensors: %.1f MiB\n",
                static_cast<double>(fs::file_size(dir / "c8" / "kv_cache_c8.safetensors")) / (1 << 20));

    // A large safetensors file: 16 big F32 tensors (sparse: never written) and a small one at the end.
    const std::uint64_t big_bytes = (file_mib << 20) / 16 / 4 * 4;
    std::vector<kvcali::raw_tensor> header_only;
    std::string header = "{";
    std::uint64_t at = 0;
    for (int i = 0; i < 16; ++i) {
        header += "\"big." + std::to_string(i) + "\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(big_bytes / 4) +
                  "],\"data_offsets\":[" + std::to_string(at) + "," + std::to_string(at + big_bytes) + "]},";
        at += big_bytes;
    }
    const std::uint64_t small = 1024;
    header += "\"small\":{\"dtype\":\"F32\",\"shape\":[" + std::to_string(small) + "],\"data_offsets\":[" + std::to_string(at) + "," +
              std::to_string(at + small * 4) + "]}}";
    header.append((8 - header.size() % 8) % 8, ' ');
    const fs::path big = dir / "big.safetensors";
    {
        const int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        std::string head;
        for (int i = 0; i < 8; ++i) head += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
        head += header;
        const std::uint64_t total = head.size() + at + small * 4;
        if (fd < 0 || ::write(fd, head.data(), head.size()) != static_cast<ssize_t>(head.size()) ||
            ::ftruncate(fd, static_cast<off_t>(total)) != 0) {
            std::perror("big.safetensors");
            return 1;
        }
        ::close(fd);
    }
    const auto file_size = fs::file_size(big);
    auto read_one = [&](const char* tensor) {
        const double t0 = now();
        kvcali::safetensors_file f(big);
        const auto values = f.read_floats(tensor);
        const double seconds = now() - t0;
        std::printf("  read \"%s\" (%zu values) of a %.1f MiB file: %llu bytes read (tensor %llu + header), %.6f s, %.1f MiB/s\n", tensor,
                    values.size(), static_cast<double>(file_size) / (1 << 20), static_cast<unsigned long long>(f.bytes_read()),
                    static_cast<unsigned long long>(f.entry(tensor).size()), seconds,
                    static_cast<double>(f.bytes_read()) / (1 << 20) / seconds);
        if (f.bytes_read() != f.header().data_start + f.entry(tensor).size()) {
            std::printf("  FAILED: the reader read more than the header and the tensor\n");
            std::exit(1);
        }
    };
    std::printf("safetensors reader\n");
    read_one("small");
    read_one("big.7");
    fs::remove_all(dir);
    return 0;
}
