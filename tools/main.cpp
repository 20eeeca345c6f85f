// kvcali: the command-line tool. Each command lives in its own cmd_*.cpp and registers itself.
#include <kvcali/version.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

void print_program_help() {
    std::string out =
        "Usage: kvcali COMMAND [OPTIONS]\n\n"
        "KV-cache quantization configs (AMCT-compatible) and calibration, for any model graph.\n\n"
        "Commands:\n";
    for (const auto& c : kvcali_cli::commands()) {
        std::string left = "  " + c.name;
        if (left.size() < 14) left.append(14 - left.size(), ' ');
        out += left + c.summary + "\n";
    }
    out +=
        "\nRun 'kvcali COMMAND --help' for a command's options. 'kvcali --version' prints the version.\n"
        "Exit status: 0 success, 1 any failure (invalid input, I/O), 2 command-line syntax.\n";
    std::fputs(out.c_str(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty()) {
        print_program_help();
        return 2;
    }
    const std::string& name = args[0];
    if (name == "--help" || name == "-h" || name == "help") {
        print_program_help();
        return 0;
    }
    if (name == "--version" || name == "-V") {
        std::printf("kvcali %s\n", kvcali::version_string);
        return 0;
    }
    const kvcali_cli::command* cmd = nullptr;
    for (const auto& c : kvcali_cli::commands()) {
        if (c.name == name) cmd = &c;
    }
    try {
        if (cmd == nullptr) throw kvcali_cli::usage_error("unknown command '" + name + "' (see 'kvcali --help')");
        std::vector<std::string> rest(args.begin() + 1, args.end());
        for (const auto& a : rest) {
            if (a == "--help" || a == "-h") {
                std::fputs(kvcali_cli::help_text(*cmd).c_str(), stdout);
                return 0;
            }
            if (a == "--") break;
        }
        const auto parsed = kvcali_cli::parse_args(*cmd, rest);
        return kvcali_cli::guarded([&] { return cmd->run(parsed); });
    } catch (const kvcali_cli::usage_error& e) {
        std::fprintf(stderr, "kvcali: %s\n", e.what());
        if (cmd != nullptr) std::fprintf(stderr, "usage: %s\n", cmd->usage.c_str());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kvcali: internal error: %s\n", e.what());
        return 1;
    }
}
