// kvcali: the layer-list reader (declared in layer_list.hpp): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
//
// One reader: the library's JSON parser (detail/json_reader.hpp) walks the top-level array one
// element at a time over a window of the text (a file is read in pieces, never whole), so no tree
// of the list is built; every problem, JSON syntax included, carries its line and column. Plain
// ASCII strings without escapes (names and types, nearly always) are scanned eight bytes at a time
// and viewed in the window, not copied.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "../detail/concat.hpp"
#include "../detail/input_file.hpp"
#include "../detail/json_reader.hpp"
#include "../detail/numbers.hpp"
#include "../detail/string_map.hpp"
#include "../detail/swar.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "../layer_list.hpp"
#include "../layer_table.hpp"
#include "../suggest.hpp"

namespace kvcali {

namespace detail {

/// The length of the common prefix of two strings.
inline std::size_t common_prefix(std::string_view a, std::string_view b) noexcept {
    const std::size_t n = std::min(a.size(), b.size());
    std::size_t i = 0;
    if constexpr (std::endian::native == std::endian::little) {
        for (; i + 8 <= n; i += 8) {
            std::uint64_t x, y;
            std::memcpy(&x, a.data() + i, 8);
            std::memcpy(&y, b.data() + i, 8);
            if (x != y) return i + static_cast<std::size_t>(std::countr_zero(x ^ y) / 8);
        }
    }
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

/// Asks a type predicate once per distinct type name.
class eligibility_cache {
public:
    explicit eligibility_cache(const type_predicate& predicate) : predicate_(predicate) {}
    eligibility_cache(const eligibility_cache&) = delete;  // (last_ points into the object itself)
    eligibility_cache& operator=(const eligibility_cache&) = delete;

    bool operator()(std::string_view type) {
        if (last_ != nullptr && *last_ == type) return last_answer_;
        if (!lookup(type)) remember(type, static_cast<bool>(predicate_(type)));
        return last_answer_;
    }

private:
    static constexpr std::size_t few_limit = 32;

    /// Makes `type`'s stored answer the last one; false when it has none.
    bool lookup(std::string_view type) {
        if (many_.empty()) {
            for (std::size_t i = 0; i < few_count_; ++i) {
                if (few_[i].first != type) continue;
                answer(few_[i].first, few_[i].second);
                return true;
            }
            return false;
        }
        const auto it = many_.find(type);
        if (it == many_.end()) return false;
        answer(it->first, it->second != 0);
        return true;
    }
    /// Stores a new type's answer (the names never move: `few_` is an array, `many_` a node map).
    void remember(std::string_view type, bool eligible) {
        if (many_.empty() && few_count_ < few_limit) {
            auto& e = few_[few_count_++];
            e = {std::string(type), eligible};
            answer(e.first, e.second);
            return;
        }
        if (many_.empty()) {
            for (std::size_t i = 0; i < few_count_; ++i)
                many_.emplace(std::move(few_[i].first), few_[i].second ? std::size_t{1} : std::size_t{0});
        }
        const auto& e = *many_.emplace(std::string(type), eligible ? std::size_t{1} : std::size_t{0}).first;
        answer(e.first, e.second != 0);
    }
    void answer(const std::string& type, bool eligible) {
        last_ = &type;
        last_answer_ = eligible;
    }

    const type_predicate& predicate_;
    const std::string* last_ = nullptr;  ///< the type of the last answer given (in `few_` or `many_`)
    bool last_answer_ = false;
    std::array<std::pair<std::string, bool>, few_limit> few_;
    std::size_t few_count_ = 0;
    detail::string_map<std::size_t> many_;  ///< 1: eligible (the map type the library already uses)
};

/// Builds a layer table entry by entry, adding each name's dotted prefixes as `Module`
/// containers just before it when they are new.
class layer_table_builder {
public:
    layer_table_builder(layer_table& table, const type_predicate& eligible) : table_(table), eligible_(eligible) {}

    void reserve(std::size_t entries) {
        table_.reserve(entries);
        explicit_.reserve(entries / 64 + 1);
    }

    /// Adds one entry of the list; false when its name was already listed (nothing changes then).
    bool add(std::string_view name, std::string_view type) { return add(name, type, layer_table::hash_of(name)); }
    /// As above, with the name's layer_table::hash_of() already computed.
    bool add(std::string_view name, std::string_view type, std::uint32_t name_hash) {
        // The dotted prefixes of the previous name are in the table already: look up only the
        // prefixes beyond what this name shares with it (in model order, usually none).
        const std::string_view previous = previous_ != layer_table::npos ? std::string_view(table_[previous_].name) : std::string_view();
        const std::size_t same = common_prefix(name, previous);
        for (std::size_t dot = name.find('.', same); dot != std::string_view::npos; dot = name.find('.', dot + 1)) {
            if (dot == 0 || dot < same || (dot == same && dot == previous.size())) continue;
            const std::string_view prefix = name.substr(0, dot);
            const std::uint32_t h = layer_table::hash_of(prefix);
            if (table_.find_hashed(prefix, h) != layer_table::npos) continue;
            table_.append_hashed(prefix, std::string_view("Module"), eligible_("Module"), h);
            mark_explicit(table_.size() - 1, false);
        }
        const std::size_t at = table_.find_hashed(name, name_hash);
        previous_ = at != layer_table::npos ? at : table_.size();
        if (at == layer_table::npos) {
            table_.append_hashed(name, type, eligible_(type), name_hash);
            mark_explicit(table_.size() - 1, true);
        } else if (!is_explicit(at)) {
            table_.retype(at, type, eligible_(type));
            mark_explicit(at, true);
        } else {
            return false;
        }
        return true;
    }

private:
    bool is_explicit(std::size_t row) const { return (explicit_[row / 64] >> (row % 64)) & 1u; }
    void mark_explicit(std::size_t row, bool listed) {
        if (row / 64 >= explicit_.size()) explicit_.resize(row / 64 + 1);
        if (listed) explicit_[row / 64] |= std::uint64_t{1} << (row % 64);
    }

    layer_table& table_;
    eligibility_cache eligible_;
    std::vector<std::uint64_t> explicit_;       ///< a bit per table row: listed itself, or only an implicit container so far
    std::size_t previous_ = layer_table::npos;  ///< the row of the last name added (it and its prefixes are in the table)
};

/// A layer list's text, held whole in memory or read from a file in pieces: the reader holds one
/// piece at a time (and the element it is reading), never the whole file. A problem reading the
/// file (or a file over the size limit) marks it failed: the caller then reads it with read_file,
/// which reports exactly.
class layer_list_source {
public:
    static constexpr std::size_t default_piece = std::size_t{1} << 16;

    /// The whole text, in memory (one window; more() has nothing to add).
    explicit layer_list_source(std::string_view text) noexcept
        : data_(text.data()), end_(text.size()), size_(text.size()), total_(text.size()), exhausted_(true), in_memory_(true) {}

    explicit layer_list_source(const std::filesystem::path& path, std::size_t piece = default_piece) : in_(path.c_str()), piece_(piece) {
        std::error_code ec;
        size_ = std::filesystem::file_size(path, ec);
        if (ec || !in_ || size_ > max_input_file_size) {
            failed_ = true;
            exhausted_ = true;
        }
    }
    /// The text not yet consumed (the reader's window), and its offset in the text.
    std::string_view window() const noexcept { return std::string_view(data_ + start_, end_ - start_); }
    std::size_t offset() const noexcept { return held_offset() + start_; }
    /// The bytes still held (from held_offset() on): the consumed ones stay until more() drops them.
    std::string_view held() const noexcept { return std::string_view(data_, end_); }
    std::size_t held_offset() const noexcept { return static_cast<std::size_t>(total_) - end_; }
    /// Drops the first `n` bytes of the window.
    void consume(std::size_t n) noexcept { start_ += n; }
    /// Drops the consumed bytes and reads more after the window; false at the end.
    bool more() {
        if (exhausted_) return false;
        // Keep what is not consumed yet, at the front (no more than a cut entry, usually), and
        // read at least as much again: an entry longer than a piece is read again O(log n) times.
        const std::size_t kept = end_ - start_;
        const std::size_t want = std::max(piece_, kept);
        if (kept + want > capacity_) {
            const std::size_t capacity = std::max(kept + want, 2 * capacity_);
            std::unique_ptr<char[]> bigger(new char[capacity]);
            if (kept != 0) std::memcpy(bigger.get(), buffer_.get() + start_, kept);
            buffer_ = std::move(bigger);
            capacity_ = capacity;
        } else if (kept != 0) {
            std::memmove(buffer_.get(), buffer_.get() + start_, kept);
        }
        data_ = buffer_.get();
        start_ = 0;
        end_ = kept;
        const std::size_t got = in_.read(buffer_.get() + end_, want);
        end_ += got;
        total_ += got;
        if (in_.failed() || total_ > max_input_file_size) failed_ = true;
        if (got == 0 || failed_) exhausted_ = true;
        return got != 0 && !failed_;
    }
    bool exhausted() const noexcept { return exhausted_; }
    bool failed() const noexcept { return failed_; }
    /// About how many objects the list holds: the `{` of the text in memory (`{` never occurs
    /// elsewhere in the usual shape but inside names, so at most a little high), or those of the
    /// window scaled to the file's size.
    std::size_t expected_objects() const noexcept {
        const std::string_view w = window();
        if (in_memory_) return static_cast<std::size_t>(std::count(w.begin(), w.end(), '{'));
        if (w.empty()) return 0;
        const auto seen = static_cast<double>(std::count(w.begin(), w.end(), '{'));
        const double scale = static_cast<double>(size_ > total_ ? size_ - (total_ - w.size()) : w.size()) / static_cast<double>(w.size());
        return static_cast<std::size_t>(seen * scale * 1.02) + 16;
    }

private:
    input_file in_;
    std::size_t piece_ = default_piece;
    std::unique_ptr<char[]> buffer_;                  ///< (not zero-filled: read into)
    const char* data_ = nullptr;                      ///< the text in memory, or buffer_
    std::size_t capacity_ = 0, start_ = 0, end_ = 0;  ///< the window is [start_, end_)
    std::uintmax_t size_ = 0, total_ = 0;
    bool exhausted_ = false, failed_ = false, in_memory_ = false;
};

/// Line and byte column of document offsets, for a text read window by window: newlines are
/// counted forward from the last position asked for (positions come in document order), and from
/// a base that moves as bytes are dropped.
class line_counter {
public:
    /// The 1-based line and column of `offset`, a byte still held by `source`.
    template <class Source>
    source_location at(std::size_t offset, const Source& source, const std::string& file) {
        if (offset < cursor_.offset) cursor_ = base_;
        advance(cursor_, offset, source.held(), source.held_offset());
        return {file, static_cast<std::uint32_t>(cursor_.line), static_cast<std::uint32_t>(offset - cursor_.line_start + 1)};
    }
    /// The held bytes before `offset` are about to be dropped: count them now.
    template <class Source>
    void drop_before(std::size_t offset, const Source& source) {
        position& from = cursor_.offset <= offset ? cursor_ : base_;
        advance(from, offset, source.held(), source.held_offset());
        base_ = from;
        cursor_ = from;
    }

private:
    struct position {
        std::size_t offset = 0, line = 1, line_start = 0;
    };
    static void advance(position& p, std::size_t to, std::string_view held, std::size_t held_offset) {
        const char* const from = held.data() + (p.offset - held_offset);
        const char* const end = held.data() + (to - held_offset);
        if (const std::size_t n = count_newlines(from, end); n != 0) {
            const char* last = end - 1;
            while (*last != '\n') --last;
            p.line += n;
            p.line_start = held_offset + static_cast<std::size_t>(last + 1 - held.data());
        }
        p.offset = to;
    }
    /// The newlines in [p, end): sixteen bytes at a time with SSE2 (x86-64's baseline), else eight.
    static std::size_t count_newlines(const char* p, const char* end) noexcept {
        std::size_t n = 0;
#if defined(__SSE2__)
        const __m128i newline = _mm_set1_epi8('\n');
        while (end - p >= 16) {
            // Per byte lane, up to 255 blocks' matches (each -1) before they are summed.
            __m128i lanes = _mm_setzero_si128();
            for (int block = 0; block < 255 && end - p >= 16; ++block, p += 16) {
                lanes = _mm_sub_epi8(lanes, _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), newline));
            }
            const __m128i sums = _mm_sad_epu8(lanes, _mm_setzero_si128());
            n += static_cast<std::size_t>(_mm_cvtsi128_si32(sums)) + static_cast<std::size_t>(_mm_extract_epi16(sums, 4));
        }
#else
        using namespace swar;
        constexpr std::uint64_t lows = ~highs;
        for (; end - p >= 8; p += 8) {
            const std::uint64_t t = load(p) ^ (ones * '\n');
            const std::uint64_t marks = ~(((t & lows) + lows) | t | lows);  // 0x80 in each newline byte (exact: no borrows)
            n += static_cast<std::size_t>(((marks >> 7) * ones) >> 56);     // (their sum, in the top byte)
        }
#endif
        for (; p != end; ++p) n += *p == '\n';
        return n;
    }
    position base_, cursor_;
};

/// One member of an element as last given (a repeated key: the last one counts, as in Boost.JSON).
struct layer_list_member {
    bool present = false;
    bool is_string = false;
    bool is_count = false;                       ///< a non-negative integer within 64 bits (`-0` included)
    bool decoded = false;                        ///< `text` is in a buffer of the reader (it had escapes or non-ASCII bytes)
    std::string_view text;                       ///< a string's value (in the window or in a buffer of the reader)
    std::size_t value_start = 0, value_end = 0;  ///< the value as written: its place in the element's window
    std::uint64_t count = 0;                     ///< when is_count
};

/// One element of the top-level array, as read.
struct layer_list_element {
    std::size_t index = 0;
    std::size_t offset = 0;         ///< its first character
    std::size_t window_offset = 0;  ///< the offset of the window it was read from
    std::string_view window;        ///< (which holds it until the next element)
    bool is_object = false;
    layer_list_member name, type, in, out;
    /// Keys other than name, type, in and out: the first `unknown_count` of `unknown`, in the
    /// order they first appear, each with the offset of its last occurrence in `unknown_offset`.
    std::vector<std::string> unknown;
    std::vector<std::size_t> unknown_offset;
    std::size_t unknown_count = 0;
};

/// Reads a layer list from `Source` (layer_list_source) with one JSON parser,
/// one element of the top-level array at a time, and checks each element as the layer list's
/// format demands. `Sink` gets each valid entry: `add(reader, element)` (its name and type view
/// the window or the reader's buffers: both change at the next element unless `flush(reader)` is
/// called first, which the reader does before it reports a problem or reads more text).
template <class Source>
class layer_list_reader {
public:
    layer_list_reader(Source& source, const std::string& file) : source_(source), file_(file), parser_({}, max_depth, false) {}

    /// Reads the whole list. Problems go to `problems`, in document order; on a JSON syntax error
    /// only that one is left there, and false is returned.
    template <class Sink>
    bool read(Sink& sink, std::vector<diagnostic>& problems) {
        problems_ = &problems;
        if (!read_units(sink)) {
            problems.clear();
            problems.push_back({.severity = severity::error,
                                .category = errc::invalid_model,
                                .message = concat({"the layer list is not valid JSON: ", parser_.error()}),
                                .where = locate(parser_.error_offset()),
                                .layer = {},
                                .json_path = {}});
            return false;
        }
        sink.flush(*this);
        return true;
    }

    source_location locate(std::size_t offset) { return lines_.at(offset, source_, file_); }
    KVCALI_COLD void report(std::string message, std::size_t offset, std::string layer, std::string json_path) {
        problems_->push_back({.severity = severity::error,
                              .category = errc::invalid_model,
                              .message = std::move(message),
                              .where = locate(offset),
                              .layer = std::move(layer),
                              .json_path = std::move(json_path)});
    }
    Source& source() noexcept { return source_; }

private:
    static constexpr std::size_t max_depth = 64;

    /// The parser reads the source's window as it is; the text read is consumed only when more is
    /// needed (the window is set once per piece, not per element). `keep_from`: the first byte of
    /// the window still needed.
    template <class Sink>
    void more(Sink& sink, std::size_t keep_from) {
        sink.flush(*this);  // (entries still pending view the window)
        source_.consume(keep_from);
        lines_.drop_before(source_.offset(), source_);
        source_.more();
        parser_.set_window(source_.window(), source_.offset());
    }
    /// Skips white space (a run of it reaching the window's end is dropped, so that it never piles
    /// up): false at the end of the text.
    template <class Sink>
    bool skip_space(Sink& sink) {
        for (;;) {
            parser_.skip_whitespace();
            if (!parser_.at_end()) return true;
            if (source_.exhausted()) return false;
            more(sink, parser_.position());
        }
    }
    /// Runs `unit` (one step of the grammar); when it fails so near the window's end that more
    /// text could help, reads more and runs it again from where it started.
    template <class Sink, class Unit>
    bool run(Sink& sink, Unit&& unit) {
        for (;;) {
            const std::size_t start = parser_.position();
            if (unit()) return true;
            if (source_.exhausted() || !parser_.stopped_near_end()) return false;
            more(sink, start);
        }
    }

    template <class Sink>
    bool read_units(Sink& sink) {
        parser_.set_window(source_.window(), source_.offset());
        // The start: a byte order mark needs three bytes to be seen.
        while (source_.window().size() < 3 && !source_.exhausted()) more(sink, 0);
        if (source_.window().starts_with("\xEF\xBB\xBF") || !skip_space(sink)) {
            parser_.set_window(source_.window(), source_.offset());
            return parser_.document_start();  // (fails)
        }
        if (parser_.peek() != '[') return not_an_array(sink);
        if (!parser_.array_start(1)) return false;
        bool more_elements = true;
        if (skip_space(sink) && parser_.peek() == ']') parser_.array_separator(more_elements);  // `[]`
        for (std::size_t index = 0; more_elements; ++index) {
            if (!skip_space(sink)) {
                parser_.skip_value(scratch_value_, scratch_string_, 1);  // (the error: the end of the text)
                return false;
            }
            if (index == 0) sink.reserve(source_.expected_objects());
            element_.index = index;
            if (!run(sink, [&] { return read_element() && parser_.array_separator(more_elements); })) return false;
            check(sink);
        }
        return !skip_space(sink) || parser_.document_end();
    }

    /// A document that is not an array: valid JSON (read whole) is reported as the wrong shape.
    template <class Sink>
    bool not_an_array(Sink& sink) {
        const std::size_t start = source_.offset() + parser_.position();
        while (!source_.exhausted()) more(sink, parser_.position());  // (the window grows to the whole value)
        if (!parser_.skip_value(scratch_value_, scratch_string_, 0) || !parser_.document_end()) return false;
        report("a layer list must be a JSON array of layer objects", start, {}, "$");
        return true;
    }

    /// One element into `element_` (no problem reported yet: the step may run again).
    bool read_element() {
        layer_list_element& e = element_;
        e.window = source_.window();
        e.window_offset = source_.offset();
        e.offset = e.window_offset + parser_.position();
        e.name.present = e.type.present = e.in.present = e.out.present = false;
        e.unknown_count = 0;
        e.is_object = parser_.peek() == '{';
        if (!e.is_object) return parser_.skip_value(scratch_value_, scratch_string_, 1);
        json_parser::plain_member name, type;
        if (parser_.read_plain_pair(2, "name", "type", name, type)) {  // (the usual element, at once)
            set_plain(e.name, name);
            set_plain(e.type, type);
            return true;
        }
        // (Any other element: rare, so through the parser's shared callback type, not a read_object
        // of its own.)
        return parser_.read_object(2, json_parser::member_fn([&](std::string_view key, std::size_t key_offset) {
                                       if (key == "name") return read_text_member(e.name, name_buffer_);
                                       if (key == "type") return read_text_member(e.type, type_buffer_);
                                       if (key == "in") return read_count_member(e.in);
                                       if (key == "out") return read_count_member(e.out);
                                       remember_unknown(key, key_offset);
                                       return parser_.skip_value(scratch_value_, scratch_string_, 2);
                                   }));
    }
    /// "name" or "type": a string, or anything (then refused).
    bool read_text_member(layer_list_member& m, std::string& buffer) {
        m.present = true;
        m.value_start = parser_.position();
        m.is_string = parser_.peek() == '"';
        if (m.is_string) {
            if (!parser_.read_string(m.text, buffer)) return false;
            m.decoded = m.text.data() == buffer.data();
        } else if (!parser_.skip_value(scratch_value_, scratch_string_, 2)) {
            return false;
        }
        m.value_end = parser_.position();
        return true;
    }
    /// "name" or "type" as the parser's fast branch read it: a string without escapes.
    static void set_plain(layer_list_member& m, const json_parser::plain_member& p) noexcept {
        m.present = m.is_string = true;
        m.decoded = false;
        m.text = p.text;
        m.value_start = p.start;
        m.value_end = p.end;
    }
    /// "in" or "out": a non-negative integer, or anything (then refused).
    bool read_count_member(layer_list_member& m) {
        m.present = true;
        m.value_start = parser_.position();
        if (!parser_.skip_value(scratch_value_, scratch_string_, 2)) return false;
        m.is_count = is_count(scratch_value_, m.count);
        m.value_end = parser_.position();
        return true;
    }
    void remember_unknown(std::string_view key, std::size_t key_offset) {
        auto& unknown = element_.unknown;
        auto& offset = element_.unknown_offset;
        for (std::size_t i = 0; i < element_.unknown_count; ++i) {
            if (unknown[i] == key) {
                offset[i] = key_offset;
                return;
            }
        }
        if (element_.unknown_count == unknown.size()) {
            unknown.emplace_back();
            offset.push_back(0);
        }
        unknown[element_.unknown_count].assign(key);
        offset[element_.unknown_count] = key_offset;
        ++element_.unknown_count;
    }
    /// A non-negative integer within 64 bits, as written with integer syntax (Boost.JSON reads
    /// `-0` as the integer 0, anything beyond 2^64 - 1 as a double).
    static bool is_count(const json_scalar& v, std::uint64_t& out) {
        if (v.type != json_scalar::kind::number || !v.integer_syntax) return false;
        std::string_view digits = v.number;
        if (digits == "-0") {
            out = 0;
            return true;
        }
        return decimal_digits_to_u64(digits, out);
    }

    /// The checks of an element, read whole; a valid one goes to the sink.
    template <class Sink>
    void check(Sink& sink) {
        const layer_list_element& e = element_;
        if (e.is_object && e.name.present && e.type.present && e.name.is_string && e.type.is_string && !e.name.text.empty() &&
            (!e.in.present || e.in.is_count) && (!e.out.present || e.out.is_count)) {
            sink.add(*this, e);  // (the usual case, checked at once)
            return;
        }
        check_unusual(sink);
    }

    /// check's other cases: an element with a problem, or a valid one written unusually (rare:
    /// compiled for size).
    template <class Sink>
    KVCALI_COLD void check_unusual(Sink& sink) {
        const layer_list_element& e = element_;
        const std::string path = concat({"[", e.index, "]"});
        auto raw = [&](const layer_list_member& m) { return std::string(e.window.substr(m.value_start, m.value_end - m.value_start)); };
        auto at = [&](const layer_list_member& m) { return e.window_offset + m.value_start; };
        auto problem = [&](std::string message, std::size_t offset, std::string layer, std::string json_path) {
            sink.flush(*this);  // (problems in document order)
            report(std::move(message), offset, std::move(layer), std::move(json_path));
        };
        if (!e.is_object) {
            problem(concat({path, " must be an object {\"name\", \"type\"}"}), e.offset, {}, path);
            return;
        }
        if (!e.name.present || !e.type.present) {
            // A required key that is missing: point at a misspelt key standing for it, when there is one.
            for (const std::string_view key : {std::string_view("name"), std::string_view("type")}) {
                if ((key == "name" ? e.name : e.type).present) continue;
                std::string message = concat({path, " has no \"", key, "\" (a layer is {\"name\": string, \"type\": string})"});
                std::size_t where = e.offset;
                const auto near = closest_names(
                    key, std::span(e.unknown.data(), e.unknown_count), [](const std::string& k) { return std::string_view(k); }, 1);
                if (!near.empty()) {
                    message = concat({path, ": unknown key \"", near.front(), "\"", did_you_mean({std::string(key)})});
                    for (std::size_t i = 0; i < e.unknown_count; ++i) {
                        if (e.unknown[i] == near.front()) where = e.unknown_offset[i];
                    }
                }
                problem(std::move(message), where, {}, path);
            }
            return;
        }
        if (!e.name.is_string) {
            problem(concat({path, ".name must be a string, not ", raw(e.name)}), at(e.name), {}, concat({path, ".name"}));
            return;
        }
        if (!e.type.is_string) {
            problem(concat({path, ".type of layer \"", e.name.text, "\" must be a string, not ", raw(e.type)}), at(e.type),
                    std::string(e.name.text), concat({path, ".type"}));
            return;
        }
        if (e.name.text.empty()) {
            problem(concat({path, ".name is empty (the root module is not a layer)"}), at(e.name), {}, concat({path, ".name"}));
            return;
        }
        for (const layer_list_member* m : {&e.in, &e.out}) {
            if (!m->present || m->is_count) continue;
            const std::string_view key = m == &e.in ? "in" : "out";
            problem(concat({path, ".", key, " of layer \"", e.name.text, "\" must be a non-negative integer, not ", raw(*m)}), at(*m),
                    std::string(e.name.text), concat({path, ".", key}));
        }
        sink.add(*this, e);
    }

    Source& source_;
    const std::string& file_;
    json_parser parser_;
    line_counter lines_;
    std::vector<diagnostic>* problems_ = nullptr;
    layer_list_element element_;
    json_scalar scratch_value_;              ///< the last value not kept (checked, skipped)
    std::string scratch_string_;             ///< its decoded string, if it was one
    std::string name_buffer_, type_buffer_;  ///< a name or type with escapes or non-ASCII, decoded
};

/// Builds the layer table from a reader's entries; `each` (when set) sees every entry added.
/// Entries are added a few at a time, their index slots prefetched when read: the index is
/// larger than the caches, and a miss per name would cost more than reading the entry.
class layer_table_sink {
public:
    layer_table_sink(layer_table& table, const type_predicate& eligible, const std::function<void(const layer_list_entry&)>& each)
        : table_(table), builder_(table, eligible), each_(each) {}

    void reserve(std::size_t entries) { builder_.reserve(entries); }

    template <class Reader>
    void add(Reader& reader, const layer_list_element& e) {
        const std::uint32_t h = layer_table::hash_of(e.name.text);
        table_.prefetch(h);
        batch_[pending_++] = {
            e.name.text, e.type.text, e.out.present && e.out.is_count ? std::optional<std::uint64_t>(e.out.count) : std::nullopt,
            h,           e.index,     e.window_offset + e.name.value_start};
        // A name or type decoded into the reader's buffers is overwritten by the next element.
        if (pending_ == batch_size || e.name.decoded || e.type.decoded) flush(reader);
    }

    template <class Reader>
    void flush(Reader& reader) {
        for (std::size_t i = 0; i < pending_; ++i) {
            const pending_entry& p = batch_[i];
            if (builder_.add(p.name, p.type, p.hash)) {
                if (each_) each_(layer_list_entry{.name = p.name, .type = p.type, .out = p.out});
                continue;
            }
            const std::string path = concat({"[", p.index, "].name"});
            reader.report(concat({path, ": layer \"", p.name, "\" is listed twice"}), p.name_offset, std::string(p.name), path);
        }
        pending_ = 0;
    }

private:
    struct pending_entry {
        std::string_view name, type;
        std::optional<std::uint64_t> out;
        std::uint32_t hash = 0;
        std::size_t index = 0, name_offset = 0;
    };
    static constexpr std::size_t batch_size = 8;

    layer_table& table_;
    layer_table_builder builder_;
    const std::function<void(const layer_list_entry&)>& each_;
    pending_entry batch_[batch_size]{};
    std::size_t pending_ = 0;
};

/// Reads a whole layer list (set-up and hand-over, once per call: compiled for size; the reading
/// itself is in the reader's functions).
template <class Source>
KVCALI_COLD layer_table read_layer_list(Source& source, const std::string& file, diagnostics& diags, const type_predicate& eligible,
                                        const std::function<void(const layer_list_entry&)>& each) {
    layer_table table;
    std::vector<diagnostic> problems;
    layer_table_sink sink(table, eligible, each);
    layer_list_reader<Source> reader(source, file);
    if (!reader.read(sink, problems)) table = layer_table();
    for (auto& d : problems) diags.add(std::move(d));
    return table;
}

KVCALI_DECL layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible,
                                        const std::function<void(const layer_list_entry&)>& each) {
    // A regular file is read in pieces; anything else, or a file that does not read, is read whole
    // with read_file (which reports why it cannot be).
    diagnostics diags;
    layer_table table;
    std::error_code ec;
    bool read = false;
    if (std::filesystem::is_regular_file(path, ec)) {
        detail::layer_list_source source(path);
        if (!source.failed()) {
            table = read_layer_list(source, path.string(), diags, eligible, each);
            read = !source.failed();
        }
    }
    if (!read) {
        diags = diagnostics();
        const std::string text = read_file(path);
        detail::layer_list_source source{std::string_view(text)};
        table = read_layer_list(source, path.string(), diags, eligible, each);
    }
    diags.throw_if_errors();
    return table;
}

}  // namespace detail

KVCALI_DECL layer_table parse_layer_list(std::string_view text, const std::string& file, diagnostics& diags,
                                         const type_predicate& eligible) {
    detail::layer_list_source source{std::string_view(text)};
    return detail::read_layer_list(source, file, diags, eligible, {});
}

KVCALI_DECL layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible) {
    return detail::load_layer_list(path, eligible, {});
}

}  // namespace kvcali
