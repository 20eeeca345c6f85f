// Test helpers: paths, temporary folders, files, and running the kvcali binary.
#pragma once

#include <fcntl.h>
#include <pty.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

extern char** environ;

namespace kvcali_test {

namespace fs = std::filesystem;

inline fs::path source_root() {
    const char* root = std::getenv("KVCALI_SOURCE_ROOT");
    if (root == nullptr) throw std::runtime_error("KVCALI_SOURCE_ROOT is not set (run the tests through meson test)");
    return root;
}

inline fs::path kvcali_exe() {
    const char* exe = std::getenv("KVCALI_EXE");
    if (exe == nullptr) throw std::runtime_error("KVCALI_EXE is not set (run the tests through meson test)");
    return exe;
}

/// True in a build under AddressSanitizer (the ASan+UBSan stage of scripts/test.sh, built at -O0,
/// where code runs 10-50 times slower). There the tests that feed one code path many random or very
/// large inputs take a smaller sample of them (`sample`): the sanitizers check the same paths in
/// minutes instead of a quarter of an hour. The g++ and clang stages run every sample in full.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

/// `n`, or `n / divisor` (at least 1) under the sanitizers (see `sanitized`).
constexpr std::size_t sample(std::size_t n, std::size_t divisor) { return sanitized ? (n / divisor > 0 ? n / divisor : 1) : n; }

/// `items`, or every `divisor`-th of them (the first included) under the sanitizers.
template <class T>
std::vector<T> sample_of(std::vector<T> items, std::size_t divisor) {
    if (!sanitized) return items;
    std::vector<T> out;
    for (std::size_t i = 0; i < items.size(); i += divisor) out.push_back(std::move(items[i]));
    return out;
}

inline fs::path conformance_cases() { return source_root() / "tests" / "conformance" / "cases"; }

inline std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline void spit(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + p.string());
    out << bytes;
}

/// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class temp_dir {
public:
    temp_dir() {
        std::random_device rd;
        for (int i = 0; i < 100; ++i) {
            path_ = fs::temp_directory_path() / ("kvcali-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
            if (fs::create_directory(path_)) return;
        }
        throw std::runtime_error("cannot create a temporary folder");
    }
    ~temp_dir() {
        std::error_code ec;
        fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const fs::path& path() const { return path_; }
    fs::path operator/(const std::string& name) const { return path_ / name; }

    /// Names of the entries in the folder (to check that nothing was written).
    std::vector<std::string> entries() const {
        std::vector<std::string> out;
        for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename().string());
        return out;
    }

private:
    fs::path path_;
};

struct process_result {
    int status = -1;  ///< exit status, or 128 + signal
    std::string out;
    std::string err;
};

/// How run_process runs a program.
struct run_mode {
    bool on_terminal = false;  ///< stdout and stderr on a pseudo-terminal (both read into `out`)
};

/// Runs `program args...` with stdout and stderr captured (through files, or a pseudo-terminal),
/// with environment changes: "NAME=VALUE" sets, "-NAME" removes.
inline process_result run_process(const std::vector<std::string>& argv, const std::vector<std::string>& env_changes = {},
                                  run_mode mode = {}) {
    temp_dir io;
    const fs::path out_path = io / "stdout", err_path = io / "stderr";
    int master = -1, slave = -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (mode.on_terminal) {
        if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) throw std::runtime_error("cannot open a pseudo-terminal");
        posix_spawn_file_actions_adddup2(&actions, slave, 1);
        posix_spawn_file_actions_adddup2(&actions, slave, 2);
        posix_spawn_file_actions_addclose(&actions, master);
        posix_spawn_file_actions_addclose(&actions, slave);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
    for (const auto& change : env_changes) {
        const bool remove = !change.empty() && change[0] == '-';
        const std::string name = remove ? change.substr(1) : change.substr(0, change.find('='));
        std::erase_if(env_store, [&](const std::string& e) { return e.compare(0, name.size() + 1, name + "=") == 0; });
        if (!remove) env_store.push_back(change);
    }
    std::vector<char*> env;
    for (auto& e : env_store) env.push_back(e.data());
    env.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    process_result r;
    if (mode.on_terminal) {
        ::close(slave);
        if (rc == 0) {
            char buf[4096];
            while (true) {  // until the child's side is closed (EIO)
                const ssize_t n = ::read(master, buf, sizeof buf);
                if (n > 0)
                    r.out.append(buf, static_cast<std::size_t>(n));
                else if (n < 0 && errno == EINTR)
                    continue;
                else
                    break;
            }
        }
        ::close(master);
    }
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0) {
    }
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    if (!mode.on_terminal) {
        r.out = slurp(out_path);
        r.err = slurp(err_path);
    }
    return r;
}

/// Runs the kvcali binary with `args`.
inline process_result run_cli(const std::vector<std::string>& args, const std::vector<std::string>& env_changes = {}, run_mode mode = {}) {
    std::vector<std::string> argv{kvcali_exe().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, env_changes, mode);
}

/// The categories of the error-severity diagnostics among `ds` (warnings left out: an expected error
/// category must come from an error).
template <class Diagnostics>
std::set<std::string> error_categories_of(const Diagnostics& ds) {
    std::set<std::string> out;
    for (const auto& d : ds) {
        if (d.is_error()) out.insert(std::string(to_string(d.category)));
    }
    return out;
}

/// The categories of the CLI's error lines on stderr (`[FILE:LINE:COL: ]error: MESSAGE [category]`);
/// warning lines are left out.
inline std::set<std::string> cli_error_categories(const std::string& err) {
    std::set<std::string> out;
    std::size_t start = 0;
    while (start < err.size()) {
        std::size_t end = err.find('\n', start);
        if (end == std::string::npos) end = err.size();
        const std::string line = err.substr(start, end - start);
        start = end + 1;
        const std::size_t e = line.find("error: "), w = line.find("warning: ");
        if (e == std::string::npos || (w != std::string::npos && w < e)) continue;
        if (line.empty() || line.back() != ']') continue;
        const std::size_t open = line.rfind(" [");
        if (open == std::string::npos || open < e) continue;
        out.insert(line.substr(open + 2, line.size() - open - 3));
    }
    return out;
}

}  // namespace kvcali_test
