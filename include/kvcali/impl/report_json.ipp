// kvcali: report/json.hpp's functions (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>

#include "../json_format.hpp"
#include "../report/build.hpp"
#include "../report/figures.hpp"
#include "../report/json.hpp"

namespace kvcali {

namespace detail {

class json_out {
public:
    explicit json_out(std::string& out) : out_(out) {}
    void key(std::string_view k) {
        comma();
        append_json_string(out_, k);
        out_ += ':';
        pending_value_ = true;
    }
    void open(char c) {
        comma();
        out_ += c;
        first_ = true;
    }
    void close(char c) {
        out_ += c;
        first_ = false;
    }
    void num(double v) {
        comma();
        append_json_double(out_, v);
    }
    void f32(float v) {
        comma();
        append_json_float(out_, v);
    }
    void integer(long long v) {
        comma();
        out_ += std::to_string(v);
    }
    void str(std::string_view s) {
        comma();
        append_json_string(out_, s);
    }
    void null() {
        comma();
        out_ += "null";
    }
    void boolean(bool b) {
        comma();
        out_ += b ? "true" : "false";
    }
    void raw_newline() { out_ += '\n'; }
    /// Starts an array element on its own line.
    void item_on_new_line() {
        comma();
        out_ += '\n';
        pending_value_ = true;
    }

private:
    void comma() {
        if (pending_value_) {
            pending_value_ = false;
            return;
        }
        if (!first_) out_ += ',';
        first_ = false;
    }
    std::string& out_;
    bool first_ = true;
    bool pending_value_ = false;
};

inline void write_stats(json_out& j, const value_stats& s) {
    j.key("count");
    j.integer(static_cast<long long>(s.count));
    j.key("min");
    j.f32(s.min);
    j.key("max");
    j.f32(s.max);
    j.key("absmax");
    j.f32(s.absmax);
    j.key("mean");
    j.num(s.mean);
    j.key("std");
    j.num(s.std);
}

inline void write_figures_body(json_out& j, const error_figures& f) {
    j.key("lo");
    j.f32(f.lo);
    j.key("hi");
    j.f32(f.hi);
    j.key("clip_fraction");
    j.num(f.clip_fraction);
    j.key("mse");
    j.num(f.mse);
    j.key("sqnr_db");
    j.num(f.sqnr_db);
    j.key("max_abs_error");
    j.num(f.max_abs_error);
    j.key("cosine");
    j.num(f.cosine);
}

inline void write_method(json_out& j, const method_quality& m) {
    j.open('{');
    j.key("scale");
    j.open('[');
    for (float s : m.factors.scale) j.f32(s);
    j.close(']');
    j.key("offset");
    j.open('[');
    for (auto o : m.factors.offset) j.integer(o);
    j.close(']');
    write_figures_body(j, m.all);
    j.close('}');
}

inline void write_channel_method(json_out& j, const method_quality& m, std::size_t c) {
    j.open('{');
    j.key("scale");
    j.f32(m.factors.scale[c]);
    j.key("offset");
    j.integer(m.factors.offset[c]);
    write_figures_body(j, m.channels[c]);
    j.close('}');
}

}  // namespace detail

}  // namespace kvcali

namespace kvcali {

namespace detail {

KVCALI_DECL void append_json_double(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

KVCALI_DECL void append_json_float(std::string& out, float v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

}  // namespace detail

KVCALI_DECL std::string quality_report_json(const quality_report& r) {
    std::string out;
    detail::json_out j(out);
    j.open('{');
    j.key("calibrated_here");
    j.boolean(r.calibrated_here);
    j.key("batch_num");
    j.integer(r.batch_num);
    j.key("thresholds");
    j.open('{');
    j.key("min_sqnr_db");
    j.num(r.thresholds.min_sqnr_db);
    j.key("max_clip_fraction");
    j.num(r.thresholds.max_clip_fraction);
    j.key("channel_range_factor");
    j.num(r.thresholds.channel_range_factor);
    j.close('}');
    j.key("layers");
    j.open('[');
    for (const auto& l : r.layers) {
        j.item_on_new_line();
        j.open('{');
        j.key("name");
        j.str(l.name);
        j.key("act_algo");
        j.str(l.act_algo);
        j.key("other_algo");
        if (l.other_algo.empty()) {
            j.null();
        } else {
            j.str(l.other_algo);
        }
        j.key("granularity");
        j.str(l.per_channel ? "per_channel" : "per_tensor");
        j.key("with_offset");
        j.boolean(l.with_offset);
        detail::write_stats(j, l.data);
        j.key("record");
        detail::write_method(j, l.record);
        j.key("minmax");
        detail::write_method(j, l.minmax);
        j.key("other_algorithm");
        if (l.other_algorithm) {
            detail::write_method(j, *l.other_algorithm);
        } else {
            j.null();
        }
        if (!l.other_algorithm_error.empty()) {
            j.key("other_algorithm_error");
            j.str(l.other_algorithm_error);
        }
        j.key("fp8");
        detail::write_method(j, l.fp8);
        j.key("best");
        j.str(l.best);
        j.key("flags");
        j.open('[');
        for (const auto& f : l.flags) j.str(f);
        j.close(']');
        j.key("wide_channels");
        j.open('[');
        for (auto c : l.wide_channels) j.integer(static_cast<long long>(c));
        j.close(']');
        j.key("median_channel_range");
        j.num(l.median_channel_range);
        if (!l.channels.empty()) {
            j.key("channels");
            j.open('[');
            for (std::size_t c = 0; c < l.channels.size(); ++c) {
                const channel_quality& ch = l.channels[c];
                j.open('{');
                j.key("index");
                j.integer(static_cast<long long>(c));
                detail::write_stats(j, ch.data);
                j.key("record");
                detail::write_channel_method(j, l.record, c);
                j.key("minmax");
                detail::write_channel_method(j, l.minmax, c);
                j.key("other_algorithm");
                if (l.other_algorithm) {
                    detail::write_channel_method(j, *l.other_algorithm, c);
                } else {
                    j.null();
                }
                j.key("fp8");
                detail::write_channel_method(j, l.fp8, c);
                j.close('}');
            }
            j.close(']');
        }
        j.close('}');
    }
    j.raw_newline();
    j.close(']');
    j.close('}');
    out += '\n';
    return out;
}

}  // namespace kvcali
