// kvcali: reading files whole and writing them atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "detail/config.hpp"
#include "error.hpp"

namespace kvcali {

/// Files larger than this are refused (a config or model description is never near it).
inline constexpr std::uintmax_t max_input_file_size = std::uintmax_t{1} << 31;

namespace detail {
/// The system's text for an errno value (strerror).
KVCALI_DECL std::string errno_text(int e);

/// Throws `kvcali::error` with one io_error diagnostic: `message`, located at `file` (no line).
[[noreturn]] KVCALI_COLD KVCALI_DECL void throw_io_error(const std::string& file, std::string message);
}  // namespace detail

/// Reads a whole file; throws `kvcali::error` (io_error) naming the path and the reason.
KVCALI_COLD KVCALI_DECL std::string read_file(const std::filesystem::path& path, std::uintmax_t max_size = max_input_file_size);

/// Writes a file in pieces, atomically: a temporary file beside the target receives the bytes,
/// commit() flushes it to disk and renames it over the target. A symbolic link (a chain of them,
/// or one whose target does not exist yet) is followed: the temporary goes beside the file the
/// last link names and replaces that file, so the link stays a link, leading to the new bytes. A
/// FIFO or a character device (`/dev/stdout` on a pipe or a terminal, `/dev/null`) is opened and
/// written as it is, with no temporary and no rename: bytes written there are gone (commit()
/// only closes it).
/// Requires: `path` names a regular file or none yet (in a folder that exists), a FIFO or a
/// character device, directly or through symbolic links.
/// Errors: throws `kvcali::error` (io_error) naming `path` and saying why: a folder, a socket or a
/// block device as the target, a missing folder, a failed write. On any failure (or when
/// destroyed without commit()) the target is untouched and the temporary removed. A new file gets
/// the usual mode (0666 less the umask); an existing one keeps its mode.
/// Example: `atomic_file_writer f("config.json"); f.write(head); f.write(body); f.commit();`
class atomic_file_writer {
public:
    KVCALI_COLD KVCALI_DECL explicit atomic_file_writer(const std::filesystem::path& path);
    atomic_file_writer(const atomic_file_writer&) = delete;
    atomic_file_writer& operator=(const atomic_file_writer&) = delete;
    KVCALI_DECL ~atomic_file_writer();

    /// Appends bytes to the temporary file (or to the FIFO or device).
    KVCALI_DECL void write(std::string_view bytes);

    /// Flushes the temporary file to disk and renames it over the target (a FIFO or device: closes it).
    KVCALI_DECL void commit();

private:
    [[noreturn]] KVCALI_COLD KVCALI_DECL void fail(const std::string& why) const;
    [[noreturn]] KVCALI_COLD KVCALI_DECL void abandon(const std::string& why);
    /// The path at the end of the chain of symbolic links starting at `path` (`path` itself when
    /// it is no link). Relative links are read against the folder of the link that holds them.
    KVCALI_COLD KVCALI_DECL std::filesystem::path final_target(std::filesystem::path path) const;
    /// A FIFO or character device: opened for writing as it is (a FIFO waits for its reader).
    KVCALI_COLD KVCALI_DECL void open_as_it_is(const std::filesystem::path& path);
    /// The temporary file beside target_, with `mode` (permission bits) when the target exists.
    KVCALI_COLD KVCALI_DECL void create_temporary(std::optional<unsigned> mode);

    std::string name_;
    std::filesystem::path target_;  ///< the file renamed over: the path, or the end of its links
    std::filesystem::path temp_;    ///< empty when writing a FIFO or device as it is
    int fd_ = -1;
};

/// Writes `bytes` to `path` atomically with `atomic_file_writer`: a temporary file beside the target
/// (the file at the end of `path`'s symbolic links), flushed to disk, then renamed over it; a FIFO
/// or character device is written as it is.
/// Errors: `kvcali::error` (io_error) saying why; on any failure the target is untouched and the
/// temporary removed. A new file gets the usual mode (0666 less the umask); an existing one keeps
/// its mode. Example: `kvcali::write_file_atomic("out/record.txt", text);`
KVCALI_DECL void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace kvcali

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/io.ipp"  // IWYU pragma: export
#endif
