// kvcali internals: the regular expressions of `re:` selectors. ECMAScript syntax on bytes, as
// std::regex (ECMAScript) reads it, matched against a whole layer name in time linear in the name
// (a Pike machine: every alive state advances one byte at a time; no backtracking, so no pattern
// can make a match take exponential time or deep recursion). Not supported, refused with an error:
// backreferences (\1), which no linear matcher can do.
//
// Syntax: literals; `.` (any byte but \n and \r); classes `[a-z_]`, `[^...]`, `\d \D \w \W \s \S`,
// `[:alpha:]`-style names inside classes; groups `(...)`, `(?:...)`; lookahead `(?=...)`,
// `(?!...)`; alternation `|`; quantifiers `* + ? {n} {n,} {n,m}`, each also lazy (`*?`: the same
// set of names matches); anchors `^ $`; word boundaries `\b \B`; escapes `\t \n \r \v \f \0`,
// `\xHH`, `\uHHHH` (at most FF), `\cX` (the control character X % 32, as ECMAScript says), and `\`
// before any other character for that character.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concat.hpp"
#include "config.hpp"
#include "numbers.hpp"

namespace kvcali::detail::regex {

/// A set of bytes, one bit each (std::bitset<256> less its range checks, which each call compiled
/// with a throw: every index here is a byte).
struct byte_set {
    std::uint64_t words[4] = {};

    void set(std::size_t b, bool in = true) noexcept {
        const std::uint64_t bit = std::uint64_t{1} << (b & 63);
        words[b >> 6] = in ? (words[b >> 6] | bit) : (words[b >> 6] & ~bit);
    }
    void set() noexcept {
        for (auto& w : words) w = ~std::uint64_t{0};
    }
    void reset(std::size_t b) noexcept { set(b, false); }
    void flip() noexcept {
        for (auto& w : words) w = ~w;
    }
    bool test(std::size_t b) const noexcept { return ((words[b >> 6] >> (b & 63)) & 1u) != 0; }
    byte_set& operator|=(const byte_set& other) noexcept {
        for (std::size_t i = 0; i < 4; ++i) words[i] |= other.words[i];
        return *this;
    }
};

/// One instruction of the compiled program.
struct instruction {
    enum class op : std::uint8_t { set, split, jump, line_start, line_end, word_boundary, not_word_boundary, lookahead, match };
    op code = op::match;
    bool negative = false;  ///< lookahead: (?!...)
    std::uint32_t x = 0;    ///< set: its index; split/jump: a target; lookahead: its first instruction
    std::uint32_t y = 0;    ///< split: the other target; lookahead: its index among the lookaheads
};

/// A compiled pattern; `full_match` is all it does.
class program {
public:
    /// Compiles `pattern`; on a syntax error, `error` says what and where (a byte offset).
    KVCALI_COLD static std::optional<program> compile(std::string_view pattern, std::string& error);

    /// Does the whole of `text` match? Safe to call from several threads at once (each thread
    /// keeps its own buffers, see match_scratch).
    bool full_match(std::string_view text) const { return *match(text, nullptr); }

    /// full_match, where each state the matcher visits costs one step from `budget`: nothing
    /// (and `budget` 0) when the match would need more steps than it holds.
    std::optional<bool> full_match(std::string_view text, std::uint64_t& budget) const { return match(text, &budget); }

private:
    friend class compiler;
    friend class machine;

    std::optional<bool> match(std::string_view text, std::uint64_t* budget) const;

    std::vector<instruction> code_;
    std::vector<byte_set> sets_;
    std::uint32_t lookaheads_ = 0;
};

/// Appends `i` to `v` (by reference, as the matcher's other appends are: one growth path for the type).
inline void push_index(std::vector<std::uint32_t>& v, const std::uint32_t i) { v.push_back(i); }

inline bool is_word_byte(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/// The pattern's syntax tree, then its program.
class compiler {
public:
    static constexpr std::size_t max_instructions = 100'000;
    static constexpr std::size_t max_nesting = 200;

    explicit compiler(std::string_view pattern) : p_(pattern) {}

    KVCALI_COLD bool run(program& out, std::string& error) {
        out_ = &out;
        const int root = disjunction(0);
        if (!error_.empty()) return fail_with(error);
        if (pos_ < p_.size()) {  // only ')' stops a disjunction early
            fail("')' without a matching '('");
            return fail_with(error);
        }
        emit(as_index(root));
        if (!error_.empty()) return fail_with(error);
        add({instruction::op::match, false, 0, 0});
        return true;
    }

private:
    enum class kind : std::uint8_t { empty, set, concat, alternation, repeat, assertion, lookahead };
    struct node {
        kind k = kind::empty;
        instruction::op assertion = instruction::op::match;
        bool negative = false;
        std::uint32_t set = 0;
        std::uint32_t min = 0, max = 0;       ///< repeat: max == unbounded for no limit
        std::vector<std::uint32_t> children;  ///< node indices
    };
    static constexpr std::uint32_t unbounded = 0xFFFFFFFF;

    KVCALI_COLD bool fail_with(std::string& error) {
        error = error_;
        return false;
    }
    KVCALI_COLD int fail(const std::string& message) {
        if (error_.empty()) error_ = concat({message, " at offset ", pos_});
        return -1;
    }
    /// fail() for the functions that answer whether they read what they should.
    KVCALI_COLD bool refuse(const std::string& message) {
        fail(message);
        return false;
    }
    bool at(char c) const noexcept { return pos_ < p_.size() && p_[pos_] == c; }
    /// A node made (the parsing functions answer -1 for none, never stored) as an index into nodes_.
    static std::uint32_t as_index(int index) noexcept { return static_cast<std::uint32_t>(index); }

    KVCALI_COLD int make(node n) {
        nodes_.push_back(std::move(n));
        return static_cast<int>(nodes_.size() - 1);
    }
    KVCALI_COLD std::uint32_t make_set(const byte_set& s) {
        out_->sets_.push_back(s);
        return static_cast<std::uint32_t>(out_->sets_.size() - 1);
    }
    int set_node(const byte_set& s) { return make({kind::set, {}, false, make_set(s), 0, 0, {}}); }

    KVCALI_COLD int disjunction(std::size_t depth) {
        if (depth > max_nesting) return fail(concat({"groups nested deeper than ", max_nesting, " levels"}));
        node alt{kind::alternation, {}, false, 0, 0, 0, {}};
        push_index(alt.children, as_index(alternative(depth)));
        while (error_.empty() && at('|')) {
            ++pos_;
            push_index(alt.children, as_index(alternative(depth)));
        }
        if (!error_.empty()) return -1;
        return alt.children.size() == 1 ? static_cast<int>(alt.children.front()) : make(std::move(alt));
    }

    KVCALI_COLD int alternative(std::size_t depth) {
        node seq{kind::concat, {}, false, 0, 0, 0, {}};
        while (error_.empty() && pos_ < p_.size() && !at('|') && !at(')')) {
            const int t = term(depth);
            if (t >= 0) push_index(seq.children, as_index(t));
        }
        return make(std::move(seq));
    }

    KVCALI_COLD int term(std::size_t depth) {
        const char c = p_[pos_];
        bool quantifiable = true;
        int atom = -1;
        switch (c) {
            case '^':
            case '$':
                ++pos_;
                atom = make({kind::assertion, c == '^' ? instruction::op::line_start : instruction::op::line_end, false, 0, 0, 0, {}});
                quantifiable = false;
                break;
            case '*':
            case '+':
            case '?':
            case '{': return fail(concat({"nothing to repeat before '", c, "'"}));
            case '.': {
                ++pos_;
                byte_set s;
                s.set();
                s.reset('\n');
                s.reset('\r');
                atom = set_node(s);
                break;
            }
            case '(': atom = group(depth, quantifiable); break;
            case '[': atom = bracket(); break;
            case '\\': {
                ++pos_;
                if (pos_ >= p_.size()) return fail("'\\' at the end of the pattern");
                if (p_[pos_] == 'b' || p_[pos_] == 'B') {
                    atom = make({kind::assertion,
                                 p_[pos_] == 'b' ? instruction::op::word_boundary : instruction::op::not_word_boundary,
                                 false,
                                 0,
                                 0,
                                 0,
                                 {}});
                    ++pos_;
                    quantifiable = false;
                    break;
                }
                byte_set s;
                if (!escape(s, false)) return -1;
                atom = set_node(s);
                break;
            }
            default: {
                ++pos_;
                byte_set s;
                s.set(static_cast<unsigned char>(c));
                atom = set_node(s);
                break;
            }
        }
        if (atom < 0) return -1;
        return quantifier(atom, quantifiable);
    }

    KVCALI_COLD int group(std::size_t depth, bool& quantifiable) {
        const std::size_t open = pos_;
        ++pos_;
        bool look = false, negative = false;
        if (at('?')) {
            ++pos_;
            if (at(':')) {
                ++pos_;
            } else if (at('=') || at('!')) {
                look = true;
                negative = at('!');
                ++pos_;
            } else {
                return fail("'(?' must be followed by ':', '=' or '!'");
            }
        }
        const int inner = disjunction(depth + 1);
        if (inner < 0) return -1;
        if (!at(')')) {
            pos_ = open;
            return fail("'(' without a matching ')'");
        }
        ++pos_;
        if (!look) return inner;
        quantifiable = false;
        return make({kind::lookahead, {}, negative, 0, 0, 0, {as_index(inner)}});
    }

    KVCALI_COLD bool number(std::uint32_t& out) {
        const std::size_t start = pos_;
        std::uint64_t v = 0;
        while (pos_ < p_.size() && p_[pos_] >= '0' && p_[pos_] <= '9') {
            v = v * 10 + static_cast<unsigned>(p_[pos_] - '0');
            if (v > 100'000) v = 100'001;  // (too large either way)
            ++pos_;
        }
        out = static_cast<std::uint32_t>(v);
        return pos_ > start;
    }

    /// The quantifiers after `atom`, each applied to what the ones before it made (`a+*`, as
    /// std::regex reads it).
    KVCALI_COLD int quantifier(int atom, bool quantifiable) {
        while (atom >= 0 && pos_ < p_.size() && (at('*') || at('+') || at('?') || at('{'))) {
            atom = one_quantifier(atom, quantifiable);
            quantifiable = true;
        }
        return atom;
    }

    KVCALI_COLD int one_quantifier(int atom, bool quantifiable) {
        std::uint32_t min = 0, max = 0;
        switch (p_[pos_]) {
            case '*': min = 0, max = unbounded; break;
            case '+': min = 1, max = unbounded; break;
            case '?': min = 0, max = 1; break;
            case '{': {
                ++pos_;
                if (!number(min)) return fail("expected a count after '{'");
                max = min;
                if (at(',')) {
                    ++pos_;
                    if (!number(max)) max = unbounded;
                }
                if (!at('}')) return fail("expected '}' to close the count");
                if (max < min) return fail("the counts of {n,m} are in the wrong order");
                if (max != unbounded && max > 100'000) return fail("a count above 100000");
                break;
            }
            default: return atom;
        }
        if (!quantifiable) return fail("nothing to repeat before a quantifier");
        ++pos_;
        if (at('?')) ++pos_;  // lazy: the same names match
        return make({kind::repeat, {}, false, 0, min, max, {as_index(atom)}});
    }

    static KVCALI_COLD byte_set class_of(char c) {
        byte_set s;
        for (int b = 0; b < 256; ++b) {
            const auto u = static_cast<unsigned char>(b);
            const bool in = c == 'd' || c == 'D'   ? (u >= '0' && u <= '9')
                            : c == 's' || c == 'S' ? (u == ' ' || u == '\t' || u == '\n' || u == '\v' || u == '\f' || u == '\r')
                                                   : is_word_byte(u);
            s.set(u, in);
        }
        if (c == 'D' || c == 'S' || c == 'W') s.flip();
        return s;
    }

    KVCALI_COLD bool hex(std::size_t digits, std::uint32_t& out) {
        out = 0;
        for (std::size_t i = 0; i < digits; ++i) {
            if (pos_ >= p_.size()) return refuse(concat({"expected ", digits, " hex digits"}));
            const int d = hex_digit_value(p_[pos_]);
            if (d < 0) return refuse(concat({"expected ", digits, " hex digits"}));
            out = out * 16 + static_cast<std::uint32_t>(d);
            ++pos_;
        }
        return true;
    }

    /// The escape after a backslash (at pos_) as a set of bytes; `in_class`: `\b` is a backspace.
    KVCALI_COLD bool escape(byte_set& s, bool in_class) {
        const char c = p_[pos_++];
        switch (c) {
            case 'd':
            case 'D':
            case 's':
            case 'S':
            case 'w':
            case 'W': s = class_of(c); return true;
            case 'f': s.set('\f'); return true;
            case 'n': s.set('\n'); return true;
            case 'r': s.set('\r'); return true;
            case 't': s.set('\t'); return true;
            case 'v': s.set('\v'); return true;
            case '0': s.set(0); return true;
            case 'b':
                if (in_class) {
                    s.set('\b');
                    return true;
                }
                break;
            case 'c': {
                if (pos_ >= p_.size() || !((p_[pos_] >= 'a' && p_[pos_] <= 'z') || (p_[pos_] >= 'A' && p_[pos_] <= 'Z'))) {
                    return refuse("expected a letter after \\c");
                }
                s.set(static_cast<unsigned char>(p_[pos_++]) % 32);
                return true;
            }
            case 'x':
            case 'u': {
                std::uint32_t v = 0;
                if (!hex(c == 'x' ? 2 : 4, v)) return false;
                if (v > 0xFF) {
                    return refuse(concat({"\\u", p_.substr(pos_ - 4, 4), " is not a byte (names are matched byte by byte, as UTF-8)"}));
                }
                s.set(v);
                return true;
            }
            default:
                if (c >= '1' && c <= '9') {
                    --pos_;
                    return refuse("backreferences (\\1) are not supported");
                }
                break;
        }
        s.set(static_cast<unsigned char>(c));
        return true;
    }

    /// `[:name:]` inside a class (pos_ at the first ':').
    KVCALI_COLD bool class_name(byte_set& s) {
        const std::size_t end = p_.find(":]", pos_ + 1);
        if (end == std::string_view::npos) return refuse("'[:' without ':]'");
        const std::string_view name = p_.substr(pos_ + 1, end - pos_ - 1);
        for (int b = 0; b < 256; ++b) {
            const auto u = static_cast<unsigned char>(b);
            const bool upper = u >= 'A' && u <= 'Z', lower = u >= 'a' && u <= 'z', digit = u >= '0' && u <= '9';
            const bool space = u == ' ' || (u >= '\t' && u <= '\r');
            const bool print = u >= 0x20 && u < 0x7F;
            bool in = false;
            if (name == "alpha")
                in = upper || lower;
            else if (name == "digit" || name == "d")
                in = digit;
            else if (name == "alnum")
                in = upper || lower || digit;
            else if (name == "upper")
                in = upper;
            else if (name == "lower")
                in = lower;
            else if (name == "space" || name == "s")
                in = space;
            else if (name == "blank")
                in = u == ' ' || u == '\t';
            else if (name == "punct")
                in = print && u != ' ' && !upper && !lower && !digit;
            else if (name == "xdigit")
                in = digit || (u >= 'a' && u <= 'f') || (u >= 'A' && u <= 'F');
            else if (name == "print")
                in = print;
            else if (name == "graph")
                in = print && u != ' ';
            else if (name == "cntrl")
                in = u < 0x20 || u == 0x7F;
            else if (name == "w")
                in = is_word_byte(u);
            else
                return refuse(concat({"unknown character class [:", name, ":]"}));
            if (in) s.set(u);
        }
        pos_ = end + 2;
        return true;
    }

    /// One member of a class: a byte (`single` set) or a whole class.
    KVCALI_COLD bool class_atom(byte_set& s, int& single) {
        single = -1;
        const char c = p_[pos_];
        if (c == '\\') {
            ++pos_;
            if (pos_ >= p_.size()) return refuse("'\\' at the end of the pattern");
            const char e = p_[pos_];
            if (e == 'B') return refuse("\\B (not a word boundary) inside a class");
            if (!escape(s, true)) return false;
            if (e != 'd' && e != 'D' && e != 's' && e != 'S' && e != 'w' && e != 'W') {
                for (int b = 0; b < 256 && single < 0; ++b) {
                    if (s.test(static_cast<std::size_t>(b))) single = b;
                }
            }
            return true;
        }
        if (c == '[' && pos_ + 1 < p_.size() && p_[pos_ + 1] == ':') {
            ++pos_;
            return class_name(s);
        }
        if (c == '[' && pos_ + 1 < p_.size() && (p_[pos_ + 1] == '.' || p_[pos_ + 1] == '=')) {
            const char mark = p_[pos_ + 1];
            if (pos_ + 4 < p_.size() && p_[pos_ + 3] == mark && p_[pos_ + 4] == ']') {
                single = static_cast<unsigned char>(p_[pos_ + 2]);
                s.set(static_cast<std::size_t>(single));
                pos_ += 5;
                return true;
            }
            return refuse(concat({"'[", mark, "' takes one character and '", mark, "]'"}));
        }
        ++pos_;
        single = static_cast<unsigned char>(c);
        s.set(static_cast<std::size_t>(single));
        return true;
    }

    KVCALI_COLD int bracket() {
        const std::size_t open = pos_;
        ++pos_;
        bool negated = false;
        if (at('^')) {
            negated = true;
            ++pos_;
        }
        byte_set s;
        while (true) {
            if (pos_ >= p_.size()) {
                pos_ = open;
                return fail("'[' without a matching ']'");
            }
            if (p_[pos_] == ']') {
                ++pos_;
                break;
            }
            byte_set first;
            int lo = -1;
            if (!class_atom(first, lo)) return -1;
            if (at('-') && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
                ++pos_;
                byte_set second;
                int hi = -1;
                if (!class_atom(second, hi)) return -1;
                if (lo < 0 || hi < 0) return fail("a range in a class must go from one character to another");
                if (hi < lo) return fail("a range in a class goes from a higher character to a lower one");
                for (int b = lo; b <= hi; ++b) s.set(static_cast<std::size_t>(b));
            } else {
                s |= first;
            }
        }
        if (negated) s.flip();
        return set_node(s);
    }

    // ---- emitting ----

    KVCALI_COLD std::uint32_t add(instruction i) {
        if (out_->code_.size() >= max_instructions) {
            if (error_.empty()) error_ = concat({"the regular expression is too large (more than ", max_instructions, " steps)"});
            return 0;
        }
        out_->code_.push_back(i);
        return static_cast<std::uint32_t>(out_->code_.size() - 1);
    }
    std::uint32_t here() const { return static_cast<std::uint32_t>(out_->code_.size()); }

    KVCALI_COLD void emit(std::uint32_t index) {
        if (!error_.empty()) return;
        const node& n = nodes_[index];
        switch (n.k) {
            case kind::empty: return;
            case kind::set: add({instruction::op::set, false, n.set, 0}); return;
            case kind::assertion: add({n.assertion, false, 0, 0}); return;
            case kind::concat:
                for (const std::uint32_t child : n.children) emit(child);
                return;
            case kind::alternation: {
                const std::vector<std::uint32_t>& children = n.children;
                std::vector<std::uint32_t> jumps;
                for (std::size_t i = 0; i + 1 < children.size() && error_.empty(); ++i) {
                    const std::uint32_t split = add({instruction::op::split, false, 0, 0});
                    out_->code_[split].x = here();
                    emit(children[i]);
                    push_index(jumps, add({instruction::op::jump, false, 0, 0}));
                    if (error_.empty()) out_->code_[split].y = here();
                }
                emit(children.back());
                if (error_.empty()) {
                    for (const std::uint32_t j : jumps) out_->code_[j].x = here();
                }
                return;
            }
            case kind::repeat: {
                const std::uint32_t child = n.children.front();
                const std::uint32_t min = n.min, max = n.max;
                for (std::uint32_t i = 0; i < min && error_.empty(); ++i) emit(child);
                if (max == unbounded) {
                    const std::uint32_t split = add({instruction::op::split, false, 0, 0});
                    if (!error_.empty()) return;
                    out_->code_[split].x = here();
                    emit(child);
                    add({instruction::op::jump, false, split, 0});
                    if (error_.empty()) out_->code_[split].y = here();
                    return;
                }
                std::vector<std::uint32_t> splits;
                for (std::uint32_t i = min; i < max && error_.empty(); ++i) {
                    push_index(splits, add({instruction::op::split, false, 0, 0}));
                    if (error_.empty()) out_->code_[splits.back()].x = here();
                    emit(child);
                }
                if (error_.empty()) {
                    for (const std::uint32_t s : splits) out_->code_[s].y = here();
                }
                return;
            }
            case kind::lookahead: {
                const std::uint32_t child = n.children.front();
                const bool negative = n.negative;
                const std::uint32_t look = add({instruction::op::lookahead, negative, 0, out_->lookaheads_++});
                const std::uint32_t skip = add({instruction::op::jump, false, 0, 0});
                if (!error_.empty()) return;
                out_->code_[look].x = here();
                emit(child);
                add({instruction::op::match, false, 0, 0});
                if (error_.empty()) out_->code_[skip].x = here();
                return;
            }
        }
    }

    std::string_view p_;
    std::size_t pos_ = 0;
    std::string error_;
    std::vector<node> nodes_;
    program* out_ = nullptr;
};

/// The lookaheads' answers for one text: (lookahead, position) -> bool, in an open-addressing table
/// that grows with the answers given (so its size is bounded by the work done, not by lookaheads x
/// positions). A slot holds key * 2 + answer + 2; 0 is empty. (Not a std::unordered_map: that
/// would be a hash table type of its own, compiled again in every TU that includes the library.)
class answer_memo {
public:
    /// The answer stored for `key`, if any.
    std::optional<bool> find(std::uint64_t key) const noexcept {
        if (count_ == 0) return std::nullopt;
        const std::size_t mask = slots_.size() - 1;
        for (std::size_t at = spread(key) & mask;; at = (at + 1) & mask) {
            const std::uint64_t s = slots_[at];
            if (s == 0) return std::nullopt;
            if ((s - 2) >> 1 == key) return ((s - 2) & 1) != 0;
        }
    }
    /// Stores the answer for a key that has none.
    void add(std::uint64_t key, bool answer) {
        if ((count_ + 1) * 2 > slots_.size()) grow();
        place(key * 2 + (answer ? 1 : 0) + 2);
        ++count_;
    }
    /// Forgets every answer (a table grown large by one long text is released, not cleared).
    void clear() noexcept {
        if (count_ == 0) return;
        if (slots_.size() > 8192) {
            std::vector<std::uint64_t>().swap(slots_);
        } else {
            std::fill(slots_.begin(), slots_.end(), 0);
        }
        count_ = 0;
    }

private:
    static std::size_t spread(std::uint64_t key) noexcept { return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 20); }
    void place(std::uint64_t slot) noexcept {
        const std::size_t mask = slots_.size() - 1;
        std::size_t at = spread((slot - 2) >> 1) & mask;
        while (slots_[at] != 0) at = (at + 1) & mask;
        slots_[at] = slot;
    }
    void grow() {
        std::vector<std::uint64_t> old(std::max<std::size_t>(16, slots_.size() * 2));
        old.swap(slots_);
        for (const std::uint64_t s : old) {
            if (s != 0) place(s);
        }
    }

    std::vector<std::uint64_t> slots_;  // a power of two in size, at most half full
    std::size_t count_ = 0;
};

/// What a match keeps between calls on one thread: each machine's state lists (one set per
/// lookahead level running at once), so that matching name after name allocates nothing once they
/// have grown, and the lookaheads' answers.
struct match_scratch {
    struct lists {
        std::vector<std::uint64_t> seen;  ///< instruction -> the stamp of the position it was last added at
        std::vector<std::uint32_t> current, next, stack;
    };
    std::vector<std::unique_ptr<lists>> levels;  ///< by pointer: a nested lookahead adding a level moves none of the others
    answer_memo answers;                         ///< (lookahead, position) -> its answer, for the current text
    std::uint64_t stamp = 1;                     ///< grows with every run: a stamp is never reused, so `seen` needs no clearing
};

inline match_scratch& thread_match_scratch() {
    thread_local match_scratch scratch;
    return scratch;
}

/// Runs a program: the states alive after each byte, each once (linear in the text). A lookahead
/// runs a machine of its own from its position; its answers are kept, one per position. Every
/// state visited counts one step against `budget`, when given; a run that would exceed it stops
/// and sets `exhausted`.
class machine {
public:
    machine(const program& prog, std::string_view text, match_scratch& scratch, std::size_t level, std::uint64_t* budget, bool& exhausted)
        : prog_(prog), text_(text), scratch_(scratch), level_(level), budget_(budget), exhausted_(exhausted) {
        while (scratch_.levels.size() <= level_) scratch_.levels.push_back(std::make_unique<lists>());
        l_ = scratch_.levels[level_].get();
        if (l_->seen.size() < prog_.code_.size()) l_->seen.resize(prog_.code_.size());  // (new entries 0: never a stamp)
    }

    /// From instruction `start` at byte `from`: with `whole`, does it reach `match` exactly at the
    /// end of the text; without, at any point (a lookahead)? False once `exhausted`.
    bool run(std::uint32_t start, std::size_t from, bool whole) {
        base_ = scratch_.stamp - from;  // stamp of position p: base_ + p, unique to this run
        scratch_.stamp += text_.size() - from + 1;
        lists& l = *l_;
        l.current.clear();
        if (add(l.current, start, from, whole) && !whole) return true;
        for (std::size_t pos = from; pos < text_.size() && !l.current.empty() && !exhausted_; ++pos) {
            if (!spend(l.current.size())) return false;
            const auto c = static_cast<unsigned char>(text_[pos]);
            l.next.clear();
            for (const std::uint32_t pc : l.current) {
                const instruction& i = prog_.code_[pc];
                if (i.code == instruction::op::set && prog_.sets_[i.x].test(c)) {
                    if (add(l.next, pc + 1, pos + 1, whole) && !whole) return true;
                }
            }
            l.current.swap(l.next);
        }
        if (!whole || exhausted_) return false;
        for (const std::uint32_t pc : l.current) {
            if (prog_.code_[pc].code == instruction::op::match) return true;
        }
        return false;
    }

private:
    using lists = match_scratch::lists;

    bool spend(std::size_t steps) {
        if (budget_ == nullptr) return true;
        if (*budget_ < steps) {
            *budget_ = 0;
            exhausted_ = true;
            return false;
        }
        *budget_ -= steps;
        return true;
    }

    /// Adds the states reachable from `pc` at `pos` without reading a byte; true when one is `match`.
    bool add(std::vector<std::uint32_t>& list, std::uint32_t pc, std::size_t pos, bool whole) {
        bool matched = false;
        lists& l = *l_;
        const std::uint64_t stamp = base_ + pos;
        l.stack.clear();
        l.stack.push_back(pc);
        while (!l.stack.empty() && !exhausted_) {
            const std::uint32_t at = l.stack.back();
            l.stack.pop_back();
            if (l.seen[at] == stamp) continue;
            l.seen[at] = stamp;
            if (!spend(1)) break;
            const instruction& i = prog_.code_[at];
            switch (i.code) {
                case instruction::op::set: list.push_back(at); break;
                case instruction::op::match:
                    if (!whole || pos == text_.size()) matched = true;
                    list.push_back(at);
                    break;
                case instruction::op::jump: l.stack.push_back(i.x); break;
                case instruction::op::split:
                    l.stack.push_back(i.y);
                    l.stack.push_back(i.x);
                    break;
                case instruction::op::line_start:
                    if (pos == 0) push_index(l.stack, at + 1);
                    break;
                case instruction::op::line_end:
                    if (pos == text_.size()) push_index(l.stack, at + 1);
                    break;
                case instruction::op::word_boundary:
                case instruction::op::not_word_boundary: {
                    const bool before = pos > 0 && is_word_byte(static_cast<unsigned char>(text_[pos - 1]));
                    const bool after = pos < text_.size() && is_word_byte(static_cast<unsigned char>(text_[pos]));
                    if ((before != after) == (i.code == instruction::op::word_boundary)) push_index(l.stack, at + 1);
                    break;
                }
                case instruction::op::lookahead:
                    // (its machine runs on the next level's lists)
                    if (lookahead(i, pos) != i.negative && !exhausted_) push_index(l.stack, at + 1);  // the jump past its body
                    break;
            }
        }
        return matched;
    }

    bool lookahead(const instruction& i, std::size_t pos) {
        const std::uint64_t key = static_cast<std::uint64_t>(i.y) * (text_.size() + 1) + pos;
        if (const std::optional<bool> known = scratch_.answers.find(key)) return *known;
        const bool answer = machine(prog_, text_, scratch_, level_ + 1, budget_, exhausted_).run(i.x, pos, false);
        if (!exhausted_) scratch_.answers.add(key, answer);
        return answer;
    }

    const program& prog_;
    std::string_view text_;
    match_scratch& scratch_;
    std::size_t level_;
    std::uint64_t* budget_;
    bool& exhausted_;
    lists* l_ = nullptr;  ///< this level's lists (stable: levels holds them by pointer)
    std::uint64_t base_ = 0;
};

inline std::optional<program> program::compile(std::string_view pattern, std::string& error) {
    program out;
    if (!compiler(pattern).run(out, error)) return std::nullopt;
    return out;
}

inline std::optional<bool> program::match(std::string_view text, std::uint64_t* budget) const {
    match_scratch& scratch = thread_match_scratch();
    if (lookaheads_ != 0) scratch.answers.clear();  // (answers are per text)
    bool exhausted = false;
    const bool matched = machine(*this, text, scratch, 0, budget, exhausted).run(0, 0, true);
    if (exhausted) return std::nullopt;
    return matched;
}

}  // namespace kvcali::detail::regex
