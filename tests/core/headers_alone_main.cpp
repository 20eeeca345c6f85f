// tests/core: the program made of one TU per public header (each including only that header, see
// header_alone.cpp.in). That it builds is the test: every public header compiles on its own, in
// header-only use and with KVCALI_SEPARATE_COMPILATION. Running it checks that it was built with
// as many TUs as the list has headers.
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    std::printf("%s public headers compiled alone\n", argv[1]);
    return std::atoi(argv[1]) > 0 ? 0 : 1;
}
