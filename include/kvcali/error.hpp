// kvcali: error categories, diagnostics and the exception that carries them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "detail/config.hpp"

namespace kvcali {

/// The category of a problem. Every diagnostic has exactly one; the CLI prints it in brackets.
enum class errc {
    parse_error = 1,         ///< the simple config file's text
    unknown_layer,           ///< a named layer (or selector) that the model does not have
    unsupported_layer_type,  ///< a layer whose type cannot be KV-cache quantized
    duplicate_layer,         ///< a layer named twice in one list
    no_quant_layers,         ///< nothing to quantize
    invalid_value,           ///< a value outside its allowed range
    invalid_argument,        ///< a malformed argument of the call
    invalid_model,           ///< a model file that cannot be read as a model
    invalid_data,            ///< calibration input (dtype, non-finite values, shapes, npy)
    incomplete_calibration,  ///< a record requested while layers still lack batches
    io_error,                ///< a file that cannot be read or written
};

/// The stable identifier of a category, as printed by the CLI: `parse_error`, `unknown_layer`, ...
constexpr std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::parse_error: return "parse_error";
        case errc::unknown_layer: return "unknown_layer";
        case errc::unsupported_layer_type: return "unsupported_layer_type";
        case errc::duplicate_layer: return "duplicate_layer";
        case errc::no_quant_layers: return "no_quant_layers";
        case errc::invalid_value: return "invalid_value";
        case errc::invalid_argument: return "invalid_argument";
        case errc::invalid_model: return "invalid_model";
        case errc::invalid_data: return "invalid_data";
        case errc::incomplete_calibration: return "incomplete_calibration";
        case errc::io_error: return "io_error";
    }
    return "unknown";
}

namespace detail {
class kvcali_error_category final : public std::error_category {
public:
    const char* name() const noexcept override { return "kvcali"; }
    std::string message(int value) const override { return std::string(to_string(static_cast<errc>(value))); }
};
}  // namespace detail

/// The one `std::error_category` of kvcali's error codes.
inline const std::error_category& error_category() noexcept {
    static const detail::kvcali_error_category category;
    return category;
}

inline std::error_code make_error_code(errc code) noexcept { return {static_cast<int>(code), error_category()}; }

enum class severity { warning, error };

/// Where a diagnostic points: a file position (1-based line and byte column; 0 when unknown).
struct source_location {
    std::string file;
    std::uint32_t line = 0;
    std::uint32_t column = 0;

    bool has_position() const noexcept { return line != 0; }
    friend bool operator==(const source_location&, const source_location&) = default;
};

/// One problem found: its severity, category, message and where it is.
/// `layer` names the layer it concerns, `json_path` a position inside a JSON document, when any.
struct diagnostic {
    kvcali::severity severity = kvcali::severity::error;
    errc category = errc::invalid_argument;
    std::string message;
    source_location where;
    std::string layer;
    std::string json_path;

    bool is_error() const noexcept { return severity == kvcali::severity::error; }

    /// Compiler style: `file:line:column: error: message [category]` (the position only when known).
    KVCALI_COLD KVCALI_DECL std::string to_string() const;
};

/// Receives warnings as they are found (the library itself never prints).
using warning_sink = std::function<void(const diagnostic&)>;

/// Every error kvcali throws: the category of its first error diagnostic, and all diagnostics found.
class error : public std::runtime_error {
public:
    KVCALI_COLD error(errc code, std::vector<diagnostic> diagnostics)
        : std::runtime_error(summary(code, diagnostics)), code_(code), diagnostics_(std::move(diagnostics)) {}

    KVCALI_COLD explicit error(diagnostic single) : error(single.category, std::vector<diagnostic>{std::move(single)}) {}

    errc code() const noexcept { return code_; }
    std::error_code error_code() const noexcept { return make_error_code(code_); }
    const std::vector<diagnostic>& diagnostics() const noexcept { return diagnostics_; }

    /// True when any diagnostic (of either severity) has this category.
    bool has(errc category) const noexcept {
        for (const auto& d : diagnostics_) {
            if (d.category == category) return true;
        }
        return false;
    }

private:
    KVCALI_COLD KVCALI_DECL static std::string summary(errc code, const std::vector<diagnostic>& diagnostics);

    errc code_;
    std::vector<diagnostic> diagnostics_;
};

/// Collects diagnostics of one operation. In strict mode warnings are recorded as errors.
/// Warnings also go to the sink, when one is given, as they are found.
class diagnostics {
public:
    diagnostics() = default;
    explicit diagnostics(bool strict, warning_sink sink = {}) : strict_(strict), sink_(std::move(sink)) {}

    bool strict() const noexcept { return strict_; }

    /// Records `d` (an error, or a warning that also goes to the sink). Out of line, as below.
    KVCALI_COLD KVCALI_DECL void add(diagnostic d);

    /// add() of an error or a warning without a JSON path. Out of line: a call passes references,
    /// and the diagnostic is built once, here, not at each of the places that report.
    KVCALI_COLD KVCALI_DECL void error(errc category, std::string message, const source_location& where = {}, std::string_view layer = {});
    KVCALI_COLD KVCALI_DECL void warning(errc category, std::string message, const source_location& where = {},
                                         std::string_view layer = {});
    /// Either of the above, by `level`.
    KVCALI_COLD KVCALI_DECL void report(kvcali::severity level, errc category, std::string message, const source_location& where,
                                        std::string_view layer = {});

    bool has_errors() const noexcept { return errors_ != 0; }
    std::size_t error_count() const noexcept { return errors_; }
    const std::vector<diagnostic>& items() const noexcept { return items_; }

    /// Moves the collected diagnostics out (the collector is left empty).
    std::vector<diagnostic> take() {
        errors_ = 0;
        return std::exchange(items_, {});
    }

    /// Throws `kvcali::error` with every diagnostic when any error was recorded.
    void throw_if_errors() {
        if (has_errors()) throw_errors();
    }

private:
    [[noreturn]] KVCALI_COLD KVCALI_DECL void throw_errors();

    bool strict_ = false;
    warning_sink sink_;
    std::size_t errors_ = 0;
    std::vector<diagnostic> items_;
};

/// The value of a call that does not throw (`try_*`), or the diagnostics that stopped it. Read
/// like `kvcali::error`: `diagnostics()` and `code()` are functions on both.
/// Requires: nothing. Errors: none (it is what a `try_*` call returns instead of throwing).
/// Example: `if (auto r = kvcali::try_read_quant_cali_config("config.json"); !r) print(r.diagnostics());`
template <class T>
class outcome {
public:
    std::optional<T> value;  ///< the result, when the call succeeded

    /// An empty outcome (neither value nor diagnostics).
    outcome() = default;
    /// A success: the value and the warnings found on the way.
    outcome(T result, std::vector<diagnostic> warnings) : value(std::move(result)), diagnostics_(std::move(warnings)) {}
    /// A failure: the category and every diagnostic of the error that stopped the call.
    explicit outcome(const error& failure) : diagnostics_(failure.diagnostics()), code_(failure.code()) {}

    explicit operator bool() const noexcept { return value.has_value(); }
    /// Every diagnostic (warnings too), as `error::diagnostics()`.
    const std::vector<diagnostic>& diagnostics() const noexcept { return diagnostics_; }
    /// Set on failure: the category of the first error, as `error::code()`.
    std::optional<errc> code() const noexcept { return code_; }

private:
    std::vector<diagnostic> diagnostics_;
    std::optional<errc> code_;
};

}  // namespace kvcali

template <>
struct std::is_error_code_enum<kvcali::errc> : std::true_type {};

#if !defined(KVCALI_SEPARATE_COMPILATION)
#include "impl/error.ipp"  // IWYU pragma: export
#endif
