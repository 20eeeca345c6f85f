// Runs a fuzz target's entry point over files, without libFuzzer: the seed corpus and every input
// a fuzzing run ever crashed on (tests/fuzz/regressions/<target>/) become an ordinary test.
// Usage: fuzz_replay_<target> PATH...   (a folder means every file in it, recursively).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int replay(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        std::fprintf(stderr, "cannot read %s\n", file.c_str());
        return 1;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // In a buffer of exactly the input's size, as libFuzzer passes it, so that under ASan a read
    // one byte past the end is caught (a std::string has a terminating NUL there).
    const std::unique_ptr<std::uint8_t[]> data(new std::uint8_t[bytes.size()]);
    std::memcpy(data.get(), bytes.data(), bytes.size());
    (void)LLVMFuzzerTestOneInput(data.get(), bytes.size());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t files = 0;
    int failures = 0;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::filesystem::path root = argv[i];
            if (std::filesystem::is_directory(root)) {
                std::vector<std::filesystem::path> all;
                for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
                    if (e.is_regular_file()) all.push_back(e.path());
                }
                for (const auto& p : all) {
                    failures += replay(p);
                    ++files;
                }
            } else {
                failures += replay(root);
                ++files;
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "replay: %s\n", e.what());
        return 1;
    }
    std::printf("replayed %zu inputs\n", files);
    if (files == 0) {
        std::fprintf(stderr, "no inputs found\n");
        return 1;
    }
    return failures == 0 ? 0 : 1;
}
