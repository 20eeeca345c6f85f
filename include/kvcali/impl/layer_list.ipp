// kvcali: the layer-list reader (declared in layer_list.hpp): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <boost/json/value.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ios>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../detail/json_input.hpp"
#include "../detail/swar.hpp"
#include "../error.hpp"
#include "../io.hpp"
#include "../layer_list.hpp"
#include "../layer_table.hpp"
#include "../suggest.hpp"

namespace kvcali {

namespace detail {

/// The high bit of each of the eight bytes at `p` that is a quote, a backslash, a control or a
/// non-ASCII byte, in memory order from the lowest bit: exact up to the first such byte (a
/// borrow may mark some after it). Zero when there is none.
inline std::uint64_t special_bytes(const char* p) noexcept {
    using namespace swar;
    const std::uint64_t w = load(p);
    return non_ascii_bytes(w) | bytes_below(w, 0x20) | zero_bytes(w ^ (ones * '"')) | zero_bytes(w ^ (ones * '\\'));
}

/// The closing quote of a string of printable ASCII without escapes whose body starts at `p`;
/// null when a special byte comes first; `end` when the text ends before the quote.
inline const char* plain_string_end(const char* p, const char* end) noexcept {
    while (end - p >= 8) {
        if (const std::uint64_t special = special_bytes(p)) {
            p += std::countr_zero(special) / 8;
            return *p == '"' ? p : nullptr;
        }
        p += 8;
    }
    for (; p != end; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == '"') return p;
        if (c < 0x20 || c >= 0x80 || c == '\\') return nullptr;
    }
    return end;
}

/// `key == word` for a word of four letters.
inline bool is_key(std::string_view key, const char (&word)[5]) noexcept {
    return key.size() == 4 && std::memcmp(key.data(), word, 4) == 0;
}

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
    explicit eligibility_cache(const type_predicate& predicate) : predicate_(predicate) { few_.reserve(few_limit); }

    bool operator()(std::string_view type) {
        if (last_ != nullptr && last_->first == type) return last_->second;
        last_ = lookup(type);
        if (last_ == nullptr) last_ = remember(type, static_cast<bool>(predicate_(type)));
        return last_->second;
    }

private:
    using entry = std::pair<const std::string, bool>;
    static constexpr std::size_t few_limit = 32;

    const entry* lookup(std::string_view type) const {
        if (many_.empty()) {
            for (const auto& e : few_) {
                if (e.first == type) return &e;
            }
            return nullptr;
        }
        auto it = many_.find(type);
        return it == many_.end() ? nullptr : &*it;
    }
    /// Stores a new type's answer; the entries never move (`few_` never grows past its reserve).
    const entry* remember(std::string_view type, bool eligible) {
        if (many_.empty() && few_.size() < few_limit) return &few_.emplace_back(std::string(type), eligible);
        if (many_.empty()) {
            for (const auto& e : few_) many_.emplace(e.first, e.second);
        }
        return &*many_.emplace(std::string(type), eligible).first;
    }
    struct hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
    };

    const type_predicate& predicate_;
    const entry* last_ = nullptr;  ///< the last answer given (an entry of `few_` or `many_`)
    std::vector<entry> few_;
    std::unordered_map<std::string, bool, hash, std::equal_to<>> many_;
};

/// Builds a layer table entry by entry, adding each name's dotted prefixes as `Module`
/// containers just before it when they are new.
class layer_table_builder {
public:
    layer_table_builder(layer_table& table, const type_predicate& eligible) : table_(table), eligible_(eligible) {}

    void reserve(std::size_t entries) {
        table_.reserve(entries);
        is_explicit_.reserve(entries);
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
            is_explicit_.push_back(false);
        }
        const std::size_t at = table_.find_hashed(name, name_hash);
        previous_ = at != layer_table::npos ? at : table_.size();
        if (at == layer_table::npos) {
            table_.append_hashed(name, type, eligible_(type), name_hash);
            is_explicit_.push_back(true);
        } else if (!is_explicit_[at]) {
            table_.retype(at, type, eligible_(type));
            is_explicit_[at] = true;
        } else {
            return false;
        }
        return true;
    }

private:
    layer_table& table_;
    eligibility_cache eligible_;
    std::vector<bool> is_explicit_;             ///< per table row: listed itself, or only an implicit container so far
    std::size_t previous_ = layer_table::npos;  ///< the row of the last name added (it and its prefixes are in the table)
};

/// The whole text of a layer list, in memory.
class layer_list_text {
public:
    explicit layer_list_text(std::string_view text) : text_(text) {}
    /// The text not yet consumed (the reader's window).
    std::string_view window() const noexcept { return text_; }
    /// Drops the first `n` bytes of the window.
    void consume(std::size_t n) noexcept { text_.remove_prefix(n); }
    /// Appends more text to the window; false at the end (there is none here).
    bool more() noexcept { return false; }
    bool exhausted() const noexcept { return true; }
    bool failed() const noexcept { return false; }
    /// About how many objects the whole list holds, from the window (`{` never occurs elsewhere in
    /// the plain shape but inside names, so this is at most a little high).
    std::size_t expected_objects() const noexcept { return static_cast<std::size_t>(std::count(text_.begin(), text_.end(), '{')); }

private:
    std::string_view text_;
};

/// A layer-list file read in pieces: the reader holds one piece at a time, never the whole file.
/// Any problem reading it (or a file over the size limit) only marks it failed: the caller then
/// reads it whole with read_file, which reports exactly.
class layer_list_file {
public:
    static constexpr std::size_t default_piece = std::size_t{1} << 16;

    explicit layer_list_file(const std::filesystem::path& path, std::size_t piece = default_piece)
        : in_(path, std::ios::binary), piece_(piece) {
        std::error_code ec;
        size_ = std::filesystem::file_size(path, ec);
        if (ec || !in_ || size_ > max_input_file_size) {
            failed_ = true;
            exhausted_ = true;
        }
    }
    std::string_view window() const noexcept { return std::string_view(buffer_.get() + start_, end_ - start_); }
    void consume(std::size_t n) noexcept { start_ += n; }
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
        start_ = 0;
        end_ = kept;
        in_.read(buffer_.get() + end_, static_cast<std::streamsize>(want));
        const auto got = static_cast<std::size_t>(in_.gcount());
        end_ += got;
        total_ += got;
        if (in_.bad() || total_ > max_input_file_size) failed_ = true;
        if (got == 0 || failed_) exhausted_ = true;
        return got != 0 && !failed_;
    }
    bool exhausted() const noexcept { return exhausted_; }
    bool failed() const noexcept { return failed_; }
    /// About how many objects the file holds: those of the window, scaled to the file's size.
    std::size_t expected_objects() const noexcept {
        const std::string_view w = window();
        if (w.empty()) return 0;
        const auto seen = static_cast<double>(std::count(w.begin(), w.end(), '{'));
        const double scale = static_cast<double>(size_ > total_ ? size_ - (total_ - w.size()) : w.size()) / static_cast<double>(w.size());
        return static_cast<std::size_t>(seen * scale * 1.02) + 16;
    }

private:
    std::ifstream in_;
    std::size_t piece_;
    std::unique_ptr<char[]> buffer_;                  ///< (not zero-filled: read into)
    std::size_t capacity_ = 0, start_ = 0, end_ = 0;  ///< the window is [start_, end_)
    std::uintmax_t size_ = 0, total_ = 0;
    bool exhausted_ = false, failed_ = false;
};

/// Reads a layer list without building a JSON DOM, for the common shape: an array of objects
/// whose members are ASCII strings without escapes, plain numbers, true, false or null, each
/// with a non-empty "name" string and a "type" string, no name listed twice, no key repeated.
/// Anything else (including every error) returns false with nothing reported; the caller then
/// reads the text with the DOM, which reports problems exactly. `source` is a layer_list_text or
/// a layer_list_file: the text is read in units (the opening bracket, one entry with the comma or
/// bracket after it, the end), and a unit cut by the end of the window is read again with more.
template <class Source>
bool read_plain_layer_list(Source& source, layer_table& table, const type_predicate& eligible) {
    const char* p = nullptr;
    const char* end = nullptr;
    bool hit_end = false;  // the unit being read reached the end of the window (more text may help)
    auto at_end = [&] {
        if (p != end) return false;
        hit_end = true;
        return true;
    };
    auto skip_space = [&] {
        const char* q = p;
        while (q != end && static_cast<unsigned char>(*q) <= ' ' && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t')) ++q;
        if (q == end) hit_end = true;
        p = q;
    };
    auto at = [&](char c) { return !at_end() && *p == c; };
    // A string of printable ASCII without escapes; `out` views its body.
    auto read_string = [&](std::string_view& out) {
        if (!at('"')) return false;
        const char* const body = p + 1;
        const char* const quote = plain_string_end(body, end);
        if (quote == nullptr) return false;
        if (quote == end) {
            hit_end = true;
            return false;
        }
        out = std::string_view(body, static_cast<std::size_t>(quote - body));
        p = quote + 1;
        return true;
    };
    auto digits = [&] {
        const char* q = p;
        while (q != end && *q >= '0' && *q <= '9') ++q;
        if (q == end) hit_end = true;
        const auto n = static_cast<std::size_t>(q - p);
        p = q;
        return n;
    };
    // Another member's value: a string, a short plain number, true, false or null.
    auto skip_value = [&] {
        if (at_end()) return false;
        if (*p == '"') {
            std::string_view ignored;
            return read_string(ignored);
        }
        for (const std::string_view word : {std::string_view("true"), std::string_view("false"), std::string_view("null")}) {
            const auto left = static_cast<std::size_t>(end - p);
            if (left < word.size()) hit_end = true;
            if (left >= word.size() && std::string_view(p, word.size()) == word) {
                p += word.size();
                return true;
            }
        }
        if (at('-')) ++p;
        if (at('0')) {
            ++p;
        } else {
            const std::size_t n = digits();
            if (n == 0 || n > 15) return false;
        }
        if (at('.')) {
            ++p;
            const std::size_t n = digits();
            if (n == 0 || n > 15) return false;
        }
        if (at('e') || at('E')) {
            ++p;
            if (at('+') || at('-')) ++p;
            const std::size_t n = digits();
            if (n == 0 || n > 2) return false;
        }
        // A number must end here (the caller checks what follows).
        return at_end() || !((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' || *p == '-');
    };

    layer_table_builder builder(table, eligible);
    // Entries are added a few at a time, their index slots prefetched when read: the index is
    // larger than the caches, and a miss per name would cost more than reading the entry.
    struct pending_entry {
        std::string_view name, type;
        std::uint32_t hash;
    };
    constexpr std::size_t batch_size = 8;
    pending_entry batch[batch_size]{};
    std::size_t pending = 0;
    auto add_pending = [&] {
        for (std::size_t i = 0; i < pending; ++i) {
            if (!builder.add(batch[i].name, batch[i].type, batch[i].hash)) return false;
        }
        pending = 0;
        return true;
    };

    enum class stage { open, first, entries, close };  // before '[', just after it, entries, after ']'
    stage next = stage::open;
    bool reserved = false;
    // The layout json.dumps writes by default, `{"name": "NAME", "type": "TYPE"}`, matched as a
    // whole (anything else, or a cut entry, is read by the general code below).
    auto read_usual_object = [&](std::string_view& name, std::string_view& type) {
        constexpr std::string_view open = "{\"name\": \"", middle = "\", \"type\": \"", close = "\"}";
        auto literal = [&](const char* from, std::string_view word) {
            return static_cast<std::size_t>(end - from) >= word.size() && std::memcmp(from, word.data(), word.size()) == 0;
        };
        if (!literal(p, open)) return false;
        const char* const name_begin = p + open.size();
        // (A string cut by the end of the window ends at `end`, where no literal follows.)
        const char* const name_end = plain_string_end(name_begin, end);
        if (name_end == nullptr || name_end == name_begin || !literal(name_end, middle)) return false;
        const char* const type_begin = name_end + middle.size();
        const char* const type_end = plain_string_end(type_begin, end);
        if (type_end == nullptr || !literal(type_end, close)) return false;
        name = std::string_view(name_begin, static_cast<std::size_t>(name_end - name_begin));
        type = std::string_view(type_begin, static_cast<std::size_t>(type_end - type_begin));
        p = type_end + close.size();
        return true;
    };
    // An object: its name and type; false when it does not read (or is cut).
    auto read_object = [&](std::string_view& name, std::string_view& type) {
        if (read_usual_object(name, type)) return true;
        if (!at('{')) return false;
        ++p;
        skip_space();
        bool has_name = false, has_type = false;
        for (;;) {
            std::string_view key;
            if (!read_string(key)) return false;
            skip_space();
            if (!at(':')) return false;
            ++p;
            skip_space();
            if (is_key(key, "name")) {
                if (has_name || !read_string(name)) return false;
                has_name = true;
            } else if (is_key(key, "type")) {
                if (has_type || !read_string(type)) return false;
                has_type = true;
            } else if (key == "in" || key == "out") {
                // A non-negative integer (anything else is reported by the DOM reader).
                if (at('0')) {
                    ++p;
                } else {
                    const std::size_t n = digits();
                    if (n == 0 || n > 15) return false;
                }
                if (!at_end() && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E')) return false;
            } else if (!skip_value()) {
                return false;
            }
            skip_space();
            if (at(',')) {
                ++p;
                skip_space();
                continue;
            }
            if (!at('}')) return false;
            ++p;
            break;
        }
        return has_name && has_type && !name.empty();
    };
    // One entry `{...}` and the `,` or `]` after it; false when it does not read (or is cut).
    auto read_entry = [&](bool& duplicate) {
        skip_space();  // (space after the comma may run past the end of the previous window)
        std::string_view name, type;
        if (!read_object(name, type)) return false;
        skip_space();
        if (at(',')) {
            ++p;
            skip_space();
        } else if (at(']')) {
            ++p;
            next = stage::close;
        } else {
            return false;
        }
        const std::uint32_t h = layer_table::hash_of(name);
        table.prefetch(h);
        batch[pending++] = {name, type, h};
        if (pending == batch_size && !add_pending()) {
            duplicate = true;
            return false;
        }
        return true;
    };

    for (;;) {
        std::string_view window = source.window();
        p = window.data();
        end = p + window.size();
        hit_end = false;
        // Space between units is consumed as it is read: a long run never piles up in the window.
        skip_space();
        if (p != window.data()) {
            source.consume(static_cast<std::size_t>(p - window.data()));
            window = source.window();
            p = window.data();
            end = p + window.size();
        }
        if (p == end) {
            if (source.exhausted()) return next == stage::close && add_pending() && !source.failed();
            if (!add_pending()) return false;  // (the pending entries view the window)
            source.more();
            continue;
        }
        bool ok = false, duplicate = false;
        switch (next) {
            case stage::open:
                ok = at('[');
                if (ok) {
                    ++p;
                    next = stage::first;
                }
                break;
            case stage::first:
                ok = true;
                if (*p == ']') {
                    ++p;
                    next = stage::close;
                } else {
                    next = stage::entries;
                }
                break;
            case stage::entries:
                if (!reserved) {
                    // Room for one row per object (a name's new prefixes may add more).
                    builder.reserve(source.expected_objects());
                    reserved = true;
                }
                ok = read_entry(duplicate);
                break;
            case stage::close: return false;  // something after the closing bracket
        }
        if (ok) {
            source.consume(static_cast<std::size_t>(p - window.data()));
            continue;
        }
        if (duplicate || !hit_end || source.exhausted()) return false;
        // The unit is cut by the end of the window: add what is read (it views the window), then
        // read it again with more text.
        if (!add_pending()) return false;
        source.more();
    }
}

/// Where things are in a layer list that parsed as JSON (Boost.JSON's DOM keeps no positions):
/// the top-level array's elements, found in one pass when the first problem is reported, and the
/// members of one element, found when asked for.
class layer_list_positions {
public:
    layer_list_positions(std::string_view text, const std::string& file) : text_(text), file_(file) {}

    /// The first character of the document.
    source_location start() { return at(skip_space(0)); }
    /// The first character of element `i` of the top-level array.
    source_location element(std::size_t i) {
        index();
        return i < elements_.size() ? at(elements_[i]) : start();
    }
    /// The key `key` of element `i` (an object), or the element when it has no such key (a key
    /// written with escapes is not matched).
    source_location key(std::size_t i, std::string_view key) {
        const member* m = find(i, key);
        return m != nullptr ? at(m->key_offset) : element(i);
    }
    /// The value of member `key` of element `i`, or the element.
    source_location value(std::size_t i, std::string_view key) {
        const member* m = find(i, key);
        return m != nullptr ? at(m->value_offset) : element(i);
    }
    /// The text of the value of member `key` of element `i` (`-1`, `"8"`, `null`), for messages.
    std::string_view value_text(std::size_t i, std::string_view key) {
        const member* m = find(i, key);
        if (m == nullptr) return {};
        const std::size_t end = skip_value(m->value_offset);
        return text_.substr(m->value_offset, end - m->value_offset);
    }

private:
    struct member {
        std::string_view raw_key;  ///< as written, between the quotes
        std::size_t key_offset = 0, value_offset = 0;
    };

    /// 1-based line and byte column of `offset` (by binary search over the line starts).
    source_location at(std::size_t offset) {
        if (line_starts_.empty()) {
            line_starts_.push_back(0);
            for (std::size_t i = 0; i < text_.size(); ++i) {
                if (text_[i] == '\n') line_starts_.push_back(i + 1);
            }
        }
        offset = std::min(offset, text_.size());
        const auto line =
            static_cast<std::size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin());
        return {file_, static_cast<std::uint32_t>(line), static_cast<std::uint32_t>(offset - line_starts_[line - 1] + 1)};
    }
    std::size_t skip_space(std::size_t i) const {
        while (i < text_.size() && (text_[i] == ' ' || text_[i] == '\t' || text_[i] == '\n' || text_[i] == '\r')) ++i;
        return i;
    }
    /// Past the string starting at `i` (its opening quote).
    std::size_t skip_string(std::size_t i) const {
        for (++i; i < text_.size(); ++i) {
            if (text_[i] == '\\') {
                ++i;
            } else if (text_[i] == '"') {
                return i + 1;
            }
        }
        return text_.size();
    }
    /// Past the value starting at `i` (the text is valid JSON: no checks).
    std::size_t skip_value(std::size_t i) const {
        if (i >= text_.size()) return i;
        if (text_[i] == '"') return skip_string(i);
        if (text_[i] == '{' || text_[i] == '[') {
            std::size_t depth = 0;
            while (i < text_.size()) {
                const char c = text_[i];
                if (c == '"') {
                    i = skip_string(i);
                    continue;
                }
                ++i;
                if (c == '{' || c == '[') ++depth;
                if ((c == '}' || c == ']') && --depth == 0) return i;
            }
            return i;
        }
        while (i < text_.size() && text_[i] != ',' && text_[i] != ']' && text_[i] != '}' && text_[i] != ' ' && text_[i] != '\t' &&
               text_[i] != '\n' && text_[i] != '\r') {
            ++i;
        }
        return i;
    }
    void index() {
        if (indexed_) return;
        indexed_ = true;
        std::size_t i = skip_space(0);
        if (i >= text_.size() || text_[i] != '[') return;
        i = skip_space(i + 1);
        while (i < text_.size() && text_[i] != ']') {
            elements_.push_back(i);
            i = skip_space(skip_value(i));
            if (i < text_.size() && text_[i] == ',') i = skip_space(i + 1);
        }
    }
    const member* find(std::size_t i, std::string_view key) {
        index();
        if (i >= elements_.size()) return nullptr;
        if (members_of_ != i) {
            members_of_ = i;
            members_.clear();
            std::size_t j = elements_[i];
            if (text_[j] != '{') return nullptr;
            j = skip_space(j + 1);
            while (j < text_.size() && text_[j] == '"') {
                member m;
                m.key_offset = j;
                const std::size_t after = skip_string(j);
                m.raw_key = text_.substr(j + 1, after - j - 2);
                j = skip_space(after);
                if (j < text_.size() && text_[j] == ':') j = skip_space(j + 1);
                m.value_offset = j;
                members_.push_back(m);
                j = skip_space(skip_value(j));
                if (j < text_.size() && text_[j] == ',') j = skip_space(j + 1);
            }
        }
        // The last one: as Boost.JSON keeps the last of a repeated key.
        for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
            if (it->raw_key == key) return &*it;
        }
        return nullptr;
    }

    std::string_view text_;
    const std::string& file_;
    std::vector<std::size_t> line_starts_;
    bool indexed_ = false;
    std::vector<std::size_t> elements_;
    std::size_t members_of_ = static_cast<std::size_t>(-1);
    std::vector<member> members_;
};

/// parse_layer_list through the JSON DOM: for any text, reporting every problem with its line and
/// column, the layer it concerns, and a did-you-mean for a misspelt key.
inline layer_table parse_layer_list_dom(std::string_view text, const std::string& file, diagnostics& diags,
                                        const type_predicate& eligible) {
    layer_table table;
    boost::json::value doc;
    if (!detail::parse_json(text, file, errc::invalid_model, "the layer list", doc, diags)) return table;
    layer_list_positions where(text, file);
    const auto* array = doc.if_array();
    if (array == nullptr) {
        diags.add({.severity = severity::error,
                   .category = errc::invalid_model,
                   .message = "a layer list must be a JSON array of layer objects",
                   .where = where.start(),
                   .layer = {},
                   .json_path = "$"});
        return table;
    }
    static constexpr std::string_view known_keys[] = {"name", "type", "in", "out"};
    detail::layer_table_builder builder(table, eligible);
    builder.reserve(array->size());
    for (std::size_t i = 0; i < array->size(); ++i) {
        const std::string path = "[" + std::to_string(i) + "]";
        const auto* object = (*array)[i].if_object();
        if (object == nullptr) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = path + " must be an object {\"name\", \"type\"}",
                       .where = where.element(i),
                       .layer = {},
                       .json_path = path});
            continue;
        }
        // A required key that is missing: point at a misspelt key standing for it, when there is one.
        auto missing = [&](std::string_view key) {
            std::vector<std::string_view> unknown;
            for (const auto& kv : *object) {
                const std::string_view k = kv.key();
                if (std::find(std::begin(known_keys), std::end(known_keys), k) == std::end(known_keys)) unknown.push_back(k);
            }
            std::string message = path + " has no \"" + std::string(key) + "\" (a layer is {\"name\": string, \"type\": string})";
            source_location at = where.element(i);
            const auto near = closest_names(
                key, unknown, [](std::string_view k) { return k; }, 1);
            if (!near.empty()) {
                message = path + ": unknown key \"" + near.front() + "\"" + did_you_mean({std::string(key)});
                at = where.key(i, near.front());
            }
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = std::move(message),
                       .where = std::move(at),
                       .layer = {},
                       .json_path = path});
        };
        const auto* name_value = object->if_contains("name");
        const auto* type_value = object->if_contains("type");
        if (name_value == nullptr || type_value == nullptr) {
            if (name_value == nullptr) missing("name");
            if (type_value == nullptr) missing("type");
            continue;
        }
        if (!name_value->is_string()) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = path + ".name must be a string, not " + std::string(where.value_text(i, "name")),
                       .where = where.value(i, "name"),
                       .layer = {},
                       .json_path = path + ".name"});
            continue;
        }
        const std::string_view name(name_value->get_string());
        if (!type_value->is_string()) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = path + ".type of layer \"" + std::string(name) + "\" must be a string, not " +
                                  std::string(where.value_text(i, "type")),
                       .where = where.value(i, "type"),
                       .layer = std::string(name),
                       .json_path = path + ".type"});
            continue;
        }
        const std::string_view type(type_value->get_string());
        if (name.empty()) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = path + ".name is empty (the root module is not a layer)",
                       .where = where.value(i, "name"),
                       .layer = {},
                       .json_path = path + ".name"});
            continue;
        }
        for (const std::string_view key : {std::string_view("in"), std::string_view("out")}) {
            const auto* v = object->if_contains(key);
            if (v == nullptr || v->is_uint64() || (v->is_int64() && v->get_int64() >= 0)) continue;
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = path + "." + std::string(key) + " of layer \"" + std::string(name) +
                                  "\" must be a non-negative integer, not " + std::string(where.value_text(i, key)),
                       .where = where.value(i, key),
                       .layer = std::string(name),
                       .json_path = path + "." + std::string(key)});
        }
        if (!builder.add(name, type)) {
            diags.add({.severity = severity::error,
                       .category = errc::invalid_model,
                       .message = path + ".name: layer \"" + std::string(name) + "\" is listed twice",
                       .where = where.value(i, "name"),
                       .layer = std::string(name),
                       .json_path = path + ".name"});
        }
    }
    return table;
}

}  // namespace detail

KVCALI_DECL layer_table parse_layer_list(std::string_view text, const std::string& file, diagnostics& diags,
                                         const type_predicate& eligible) {
    {
        layer_table table;
        detail::layer_list_text source(text);
        if (detail::read_plain_layer_list(source, table, eligible)) return table;
    }
    return detail::parse_layer_list_dom(text, file, diags, eligible);
}

KVCALI_DECL layer_table load_layer_list(const std::filesystem::path& path, const type_predicate& eligible) {
    // A regular file is read in pieces by the plain reader; anything else, or a file it does not
    // read, is read whole (reporting why it cannot be) and parsed with the DOM.
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) {
        layer_table table;
        detail::layer_list_file source(path);
        if (detail::read_plain_layer_list(source, table, eligible)) return table;
    }
    const std::string text = read_file(path);
    diagnostics diags;
    layer_table table = detail::parse_layer_list_dom(text, path.string(), diags, eligible);
    diags.throw_if_errors();
    return table;
}

}  // namespace kvcali
