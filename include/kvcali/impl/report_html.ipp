// kvcali: report/html.hpp's function (declared there): included at the end of that header
// (header-only use) or by <kvcali/src.hpp> (separate compilation).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "../report/build.hpp"
#include "../report/figures.hpp"
#include "../report/html.hpp"

namespace kvcali {

namespace detail {

inline void append_html_text(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default: out += c;
        }
    }
}

inline std::string html_text(std::string_view s) {
    std::string out;
    append_html_text(out, s);
    return out;
}

/// A number for reading: `%.*g`, "inf" / "n/a" for non-finite values.
inline std::string show_number(double v, int digits = 4) {
    if (std::isnan(v)) return "n/a";
    if (std::isinf(v)) return v > 0 ? "&#8734;" : "-&#8734;";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
}

/// A float value (a record's bounds, the data's extremes) shown as the double it is exactly.
inline std::string show_number(float v, int digits = 4) { return show_number(static_cast<double>(v), digits); }

/// A number for sorting (data-v): full precision; Infinity for +inf and for NaN (no error at all).
inline std::string sort_number(double v) {
    if (std::isnan(v) || (std::isinf(v) && v > 0)) return "Infinity";
    if (std::isinf(v)) return "-Infinity";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

inline std::string svg_coord(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

inline std::string_view method_title(std::string_view key) {
    if (key == "record") return "record";
    if (key == "minmax") return "min/max";
    if (key == "other_algorithm") return "other algorithm";
    return "FP8 E4M3";
}

inline std::string flag_title(std::string_view flag) {
    if (flag == flag_low_sqnr) return "SQNR &lt; 20 dB";
    if (flag == flag_clipping) return "&gt; 1% clipped";
    if (flag == flag_wide_channel) return "wide channel";
    return html_text(flag);
}

/// The histogram of a layer's values (log-scale counts) with the record's clip range drawn on it.
inline void append_histogram_svg(std::string& out, const layer_quality& l) {
    const value_histogram& h = l.histogram;
    constexpr double W = 520, H = 150, left = 40, right = 10, top = 10, bottom = 28;
    const double pw = W - left - right, ph = H - top - bottom;
    std::uint64_t peak = 1;
    for (auto c : h.counts) peak = std::max(peak, c);
    const double log_peak = std::log10(1.0 + static_cast<double>(peak));
    const double span = h.hi - h.lo;
    auto x_of = [&](float v) { return left + (span > 0 ? (static_cast<double>(v) - h.lo) / span : 0.5) * pw; };
    out +=
        "<svg class=\"hist\" viewBox=\"0 0 520 150\" role=\"img\" "
        "aria-label=\"histogram of ";
    append_html_text(out, l.name);
    out += "\"><rect x=\"40\" y=\"10\" width=\"" + svg_coord(pw) + "\" height=\"" + svg_coord(ph) + "\" class=\"plot\"/>";
    out += "<path class=\"bars\" d=\"";
    const double bw = pw / static_cast<double>(h.counts.size());
    for (std::size_t i = 0; i < h.counts.size(); ++i) {
        if (h.counts[i] == 0) continue;
        const double bh = std::log10(1.0 + static_cast<double>(h.counts[i])) / log_peak * ph;
        out += "M" + svg_coord(left + bw * static_cast<double>(i)) + " " + svg_coord(top + ph) + "h" + svg_coord(std::max(bw, 0.6)) + "v-" +
               svg_coord(bh) + "h-" + svg_coord(std::max(bw, 0.6)) + "z";
    }
    out += "\"/>";
    // The clip range: shaded outside, a line at each end.
    const double xl = x_of(l.record.all.lo), xh = x_of(l.record.all.hi);
    if (xl > left + 0.5)
        out += "<rect class=\"clipped\" x=\"40\" y=\"10\" width=\"" + svg_coord(xl - left) + "\" height=\"" + svg_coord(ph) + "\"/>";
    if (xh < left + pw - 0.5) {
        out += "<rect class=\"clipped\" x=\"" + svg_coord(xh) + "\" y=\"10\" width=\"" + svg_coord(left + pw - xh) + "\" height=\"" +
               svg_coord(ph) + "\"/>";
    }
    out += "<line class=\"clip\" x1=\"" + svg_coord(xl) + "\" x2=\"" + svg_coord(xl) + "\" y1=\"8\" y2=\"" + svg_coord(top + ph) + "\"/>";
    out += "<line class=\"clip\" x1=\"" + svg_coord(xh) + "\" x2=\"" + svg_coord(xh) + "\" y1=\"8\" y2=\"" + svg_coord(top + ph) + "\"/>";
    const double y_text = top + ph + 13;
    out += "<text x=\"40\" y=\"" + svg_coord(y_text) + "\">" + show_number(h.lo) + "</text>";
    out += "<text x=\"" + svg_coord(left + pw) + "\" y=\"" + svg_coord(y_text) + "\" text-anchor=\"end\">" + show_number(h.hi) + "</text>";
    out += "<text class=\"cliplabel\" x=\"" + svg_coord(left + pw / 2) + "\" y=\"" + svg_coord(y_text + 12) +
           "\" text-anchor=\"middle\">clip range [" + show_number(l.record.all.lo) + ", " + show_number(l.record.all.hi) + "]</text>";
    out += "<text x=\"34\" y=\"16\" text-anchor=\"end\">" + std::to_string(peak) + "</text>";
    out += "<text x=\"34\" y=\"" + svg_coord(top + ph) + "\" text-anchor=\"end\">0</text>";
    out += "<text x=\"10\" y=\"" + svg_coord(top + ph / 2) + "\" transform=\"rotate(-90 10 " + svg_coord(top + ph / 2) +
           ")\" text-anchor=\"middle\">count (log)</text>";
    out += "</svg>";
}

/// Each channel's [min, max] (dark) against its clip range [lo, hi] (band); channels whose data
/// reach outside their clip range in red.
inline void append_channel_svg(std::string& out, const layer_quality& l) {
    const std::size_t n = l.channels.size();
    constexpr double W = 520, H = 150, left = 40, right = 10, top = 10, bottom = 20;
    const double pw = W - left - right, ph = H - top - bottom;
    double lo = 0, hi = 0;
    for (std::size_t c = 0; c < n; ++c) {
        lo = std::min({lo, static_cast<double>(l.channels[c].data.min), static_cast<double>(l.channels[c].record.lo)});
        hi = std::max({hi, static_cast<double>(l.channels[c].data.max), static_cast<double>(l.channels[c].record.hi)});
    }
    if (hi == lo) hi = lo + 1;
    auto y_of = [&](float v) { return top + (hi - static_cast<double>(v)) / (hi - lo) * ph; };
    const double step = pw / static_cast<double>(n);
    const double band = std::max(step * 0.8, 0.5);
    std::string bands, inside, outside;
    for (std::size_t c = 0; c < n; ++c) {
        const channel_quality& ch = l.channels[c];
        const double x = left + step * (static_cast<double>(c) + 0.5);
        bands += "M" + svg_coord(x) + " " + svg_coord(y_of(ch.record.hi)) + "V" + svg_coord(y_of(ch.record.lo));
        std::string& line = (ch.data.min < ch.record.lo || ch.data.max > ch.record.hi) ? outside : inside;
        line += "M" + svg_coord(x) + " " + svg_coord(y_of(ch.data.max)) + "V" + svg_coord(y_of(ch.data.min));
    }
    out +=
        "<svg class=\"chan\" viewBox=\"0 0 520 150\" role=\"img\" "
        "aria-label=\"channel ranges of ";
    append_html_text(out, l.name);
    out += "\"><rect x=\"40\" y=\"10\" width=\"" + svg_coord(pw) + "\" height=\"" + svg_coord(ph) + "\" class=\"plot\"/>";
    out += "<path class=\"band\" stroke-width=\"" + svg_coord(band) + "\" d=\"" + bands + "\"/>";
    out += "<path class=\"inside\" d=\"" + inside + "\"/>";
    out += "<path class=\"outside\" d=\"" + outside + "\"/>";
    out += "<line class=\"zero\" x1=\"40\" x2=\"" + svg_coord(left + pw) + "\" y1=\"" + svg_coord(y_of(0)) + "\" y2=\"" +
           svg_coord(y_of(0)) + "\"/>";
    out += "<text x=\"34\" y=\"16\" text-anchor=\"end\">" + show_number(hi, 3) + "</text>";
    out += "<text x=\"34\" y=\"" + svg_coord(top + ph) + "\" text-anchor=\"end\">" + show_number(lo, 3) + "</text>";
    out += "<text x=\"40\" y=\"" + svg_coord(top + ph + 14) + "\">channel 0</text>";
    out += "<text x=\"" + svg_coord(left + pw) + "\" y=\"" + svg_coord(top + ph + 14) + "\" text-anchor=\"end\">" + std::to_string(n - 1) +
           "</text>";
    out += "</svg>";
}

inline void append_figures_row(std::string& out, std::string_view key, std::string_view label, const error_figures& f, bool best) {
    out += best ? "<tr class=\"best\"><th>" : "<tr><th>";
    out += method_title(key);
    if (!label.empty()) {
        out += " (";
        out += label;
        out += ")";
    }
    out += "</th><td>[" + show_number(f.lo) + ", " + show_number(f.hi) + "]</td><td>" + show_number(100.0 * f.clip_fraction, 3) +
           "%</td><td>" + show_number(f.mse) + "</td><td>" + show_number(f.sqnr_db) + "</td><td>" + show_number(f.max_abs_error) +
           "</td><td>" + show_number(f.cosine, 6) + "</td></tr>";
}

inline constexpr std::string_view report_css = R"(
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2430;background:#fff;margin:0}
main{max-width:1200px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px;border-bottom:1px solid #d8dde6;padding-bottom:4px}
h3{font-size:14px;margin:0 0 6px;overflow-wrap:anywhere}
.meta{color:#5a6472;margin:0 0 8px}.note{background:#fff6d6;border:1px solid #e9cf72;padding:6px 10px;border-radius:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{border:1px solid #d8dde6;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;width:100%}
th,td{padding:3px 6px;border-bottom:1px solid #eceff4;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}
#layers{table-layout:fixed;font-size:12px}
#layers td:first-child{overflow-wrap:anywhere}
#layers thead th{position:sticky;top:0;background:#f3f5f9;cursor:pointer;user-select:none;font-weight:600}
#layers thead th[aria-sort=ascending]::after{content:" \25B2"}#layers thead th[aria-sort=descending]::after{content:" \25BC"}
#layers tbody tr:hover{background:#f7f9fc}
tr.flagged td:first-child{border-left:3px solid #d9534f}
.flag{display:inline-block;background:#fde2e1;color:#9b1c1c;border-radius:3px;padding:0 4px;margin:1px;font-size:11px}
.layer{border:1px solid #d8dde6;border-radius:6px;padding:10px 12px;margin:12px 0}
.layer .grid{display:flex;flex-wrap:wrap;gap:12px}
.layer .grid>div{flex:1 1 480px;min-width:0}
.figs{font-size:12px}.figs tr.best th,.figs tr.best td{background:#e8f5e9}
svg{width:100%;height:auto;max-width:520px;display:block}
svg text{font-size:9px;fill:#5a6472}
svg .plot{fill:#fafbfd;stroke:#d8dde6}svg .bars{fill:#4c78a8}svg .clipped{fill:#d9534f;opacity:.08}
svg .clip{stroke:#d9534f;stroke-width:1.5;stroke-dasharray:4 2}svg .cliplabel{fill:#d9534f}
svg .band{stroke:#9ecae9;fill:none}svg .inside{stroke:#1d2430;stroke-width:1;fill:none}
svg .outside{stroke:#d9534f;stroke-width:1.2;fill:none}svg .zero{stroke:#999;stroke-width:.5}
.legend{font-size:11px;color:#5a6472}
)";

inline constexpr std::string_view report_script = R"(
(function () {
  var table = document.getElementById('layers');
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  function value(row, i) { return row.cells[i].getAttribute('data-v'); }
  function sortBy(i, descending) {
    var numeric = heads[i].getAttribute('data-type') === 'number';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, i), y = value(b, i), d;
      if (numeric) { x = parseFloat(x); y = parseFloat(y); d = x < y ? -1 : (x > y ? 1 : 0); }
      else { d = x.localeCompare(y); }
      if (d === 0) { d = parseInt(a.getAttribute('data-index'), 10) - parseInt(b.getAttribute('data-index'), 10); return d; }
      return descending ? -d : d;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    for (var k = 0; k < heads.length; k++) heads[k].removeAttribute('aria-sort');
    heads[i].setAttribute('aria-sort', descending ? 'descending' : 'ascending');
    table.setAttribute('data-sorted-by', heads[i].getAttribute('data-key') + (descending ? ':descending' : ':ascending'));
  }
  Array.prototype.forEach.call(heads, function (th, i) {
    th.addEventListener('click', function () { sortBy(i, th.getAttribute('aria-sort') === 'ascending'); });
  });
  // #sort=KEY clicks that column's header once at load (#sort=-KEY twice: descending).
  var m = /(?:^#|&)sort=(-?)([a-z0-9_]+)/.exec(location.hash);
  if (m) {
    Array.prototype.forEach.call(heads, function (th) {
      if (th.getAttribute('data-key') === m[2]) { th.click(); if (m[1] === '-') th.click(); }
    });
  }
})();
)";

}  // namespace detail

}  // namespace kvcali

namespace kvcali {

KVCALI_DECL std::string quality_report_html(const quality_report& r) {
    using namespace detail;
    std::string out;
    out.reserve(64 * 1024 + r.layers.size() * 8 * 1024);
    out +=
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, "
        "initial-scale=1\"><link rel=\"icon\" href=\"data:,\">"
        "<title>kvcali quality report</title><style>";
    out += report_css;
    out +=
        "</style></head><body><main>\n<h1>kvcali quality report</h1>\n<p "
        "class=\"meta\">";
    if (!r.config_file.empty()) out += "config <code>" + html_text(r.config_file) + "</code> &middot; ";
    out += "activations <code>" + html_text(r.activations_dir) + "</code> &middot; ";
    if (r.calibrated_here) {
        out += "no record given";
    } else {
        out += "record <code>" + html_text(r.record_file) + "</code>";
    }
    out += " &middot; batch_num " + std::to_string(r.batch_num) + "</p>\n";
    if (r.calibrated_here) {
        out +=
            "<p class=\"note\" id=\"calibrated-here\">No record was given: the "
            "scales and offsets shown as <b>record</b> were "
            "computed here by calibrating these activations, as <code>kvcali "
            "calibrate</code> does.</p>\n";
    }

    // Summary.
    std::size_t flagged = 0, per_channel = 0;
    std::size_t best_counts[4] = {0, 0, 0, 0};
    const char* best_keys[4] = {"record", "minmax", "other_algorithm", "fp8"};
    for (const auto& l : r.layers) {
        if (!l.flags.empty()) ++flagged;
        if (l.per_channel) ++per_channel;
        for (int k = 0; k < 4; ++k) {
            if (l.best == best_keys[k]) ++best_counts[k];
        }
    }
    std::vector<const layer_quality*> worst;
    for (const auto& l : r.layers) worst.push_back(&l);
    std::stable_sort(worst.begin(), worst.end(), [](const layer_quality* a, const layer_quality* b) {
        return sqnr_rank(a->record.all.sqnr_db) < sqnr_rank(b->record.all.sqnr_db);
    });
    if (worst.size() > 5) worst.resize(5);
    out +=
        "<h2>Summary</h2>\n<div class=\"cards\"><div class=\"card\" "
        "id=\"layer-count\"><b>" +
        std::to_string(r.layers.size()) + "</b>layers (" + std::to_string(per_channel) +
        " per channel)</div><div class=\"card\" id=\"flagged-count\"><b>" + std::to_string(flagged) + "</b>flagged</div>";
    for (int k = 0; k < 4; ++k) {
        out += "<div class=\"card\"><b>" + std::to_string(best_counts[k]) + "</b>best with " + std::string(method_title(best_keys[k])) +
               "</div>";
    }
    out += "</div>\n<p class=\"legend\">Flags: SQNR of the record below " + show_number(r.thresholds.min_sqnr_db) + " dB; more than " +
           show_number(100.0 * r.thresholds.max_clip_fraction) +
           "% of values outside the clip range; a channel whose range (max - "
           "min) is over " +
           show_number(r.thresholds.channel_range_factor) +
           "x the median channel's. <i>Best</i>: the highest SQNR among the "
           "record, min/max (no clipping), the other algorithm "
           "with its defaults (IFMR for an HFMG layer, HFMG for an IFMR layer) "
           "and FP8 E4M3 with scale amax/448.</p>\n";
    out += "<h3>Worst " + std::to_string(worst.size()) +
           " layers by SQNR</h3>\n<table class=\"figs\" "
           "id=\"worst\"><thead><tr><th>layer</th>"
           "<th>SQNR "
           "dB</th><th>clipped</th><th>cosine</th><th>best</th></tr></thead><tbody>";
    for (const auto* l : worst) {
        const std::size_t index = static_cast<std::size_t>(l - r.layers.data());
        out += "<tr><td><a href=\"#layer-" + std::to_string(index) + "\">" + html_text(l->name) + "</a></td><td>" +
               show_number(l->record.all.sqnr_db) + "</td><td>" + show_number(100.0 * l->record.all.clip_fraction, 3) + "%</td><td>" +
               show_number(l->record.all.cosine, 6) + "</td><td>" + std::string(method_title(l->best)) + "</td></tr>";
    }
    out += "</tbody></table>\n";

    // The table of all layers.
    struct column {
        const char* key;
        const char* title;
        const char* width;
        bool numeric;
    };
    static constexpr column columns[] = {
        {"name", "layer", "22%", false},
        {"act_algo", "algo", "5%", false},
        {"granularity", "gran.", "6%", false},
        {"count", "values", "6%", true},
        {"range", "range", "6%", true},
        {"clip_fraction", "clipped", "6%", true},
        {"sqnr_db", "SQNR dB", "6%", true},
        {"mse", "MSE", "6%", true},
        {"max_abs_error", "max err", "6%", true},
        {"cosine", "cosine", "6%", true},
        {"minmax_sqnr_db", "min/max dB", "6%", true},
        {"other_sqnr_db", "other dB", "6%", true},
        {"fp8_sqnr_db", "FP8 dB", "6%", true},
        {"flags", "flags", "7%", false},
    };
    out +=
        "<h2>Layers</h2>\n<p class=\"legend\">Figures of the record's scales "
        "and offsets unless the column says otherwise; "
        "click a header to sort.</p>\n<table id=\"layers\"><colgroup>";
    for (const auto& c : columns) out += std::string("<col style=\"width:") + c.width + "\">";
    out += "</colgroup><thead><tr>";
    for (const auto& c : columns) {
        out += std::string("<th data-key=\"") + c.key + "\" data-type=\"" + (c.numeric ? "number" : "text") + "\">" + c.title + "</th>";
    }
    out += "</tr></thead><tbody>\n";
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
        const layer_quality& l = r.layers[i];
        const error_figures& f = l.record.all;
        auto cell = [&](const std::string& sort, const std::string& shown) {
            out += "<td data-v=\"" + html_text(sort) + "\">" + shown + "</td>";
        };
        out += std::string("<tr data-index=\"") + std::to_string(i) + "\" data-name=\"" + html_text(l.name) + "\"" +
               (l.flags.empty() ? "" : " class=\"flagged\"") + ">";
        cell(l.name, "<a href=\"#layer-" + std::to_string(i) + "\">" + html_text(l.name) + "</a>");
        cell(l.act_algo, html_text(l.act_algo));
        cell(l.per_channel ? "per_channel" : "per_tensor", l.per_channel ? "channel" : "tensor");
        cell(sort_number(static_cast<double>(l.data.count)), std::to_string(l.data.count));
        const double range = static_cast<double>(l.data.max) - static_cast<double>(l.data.min);
        cell(sort_number(range), show_number(range, 3));
        cell(sort_number(f.clip_fraction), show_number(100.0 * f.clip_fraction, 3) + "%");
        cell(sort_number(f.sqnr_db), show_number(f.sqnr_db));
        cell(sort_number(f.mse), show_number(f.mse, 3));
        cell(sort_number(f.max_abs_error), show_number(f.max_abs_error, 3));
        cell(sort_number(f.cosine), show_number(f.cosine, 6));
        cell(sort_number(l.minmax.all.sqnr_db), show_number(l.minmax.all.sqnr_db));
        if (l.other_algorithm) {
            cell(sort_number(l.other_algorithm->all.sqnr_db),
                 show_number(l.other_algorithm->all.sqnr_db) + " <small>" + l.other_algo + "</small>");
        } else {
            cell("-Infinity", "&mdash;");
        }
        cell(sort_number(l.fp8.all.sqnr_db), show_number(l.fp8.all.sqnr_db));
        std::string flags_text, flags_shown;
        for (const auto& fl : l.flags) {
            flags_text += fl + " ";
            flags_shown += "<span class=\"flag\">" + flag_title(fl) + "</span>";
        }
        cell(std::to_string(l.flags.size()) + " " + flags_text, flags_shown);
        out += "</tr>\n";
    }
    out += "</tbody></table>\n";

    // Per layer.
    out +=
        "<h2>Per layer</h2>\n<p class=\"legend\">Histogram: the layer's "
        "values, counts on a log scale; dashed red lines: the "
        "record's clip range (shaded: clipped). Channel chart: each channel's "
        "[min, max] (dark; red when it leaves its clip "
        "range) against its clip range [lo, hi] (blue band).</p>\n";
    for (std::size_t i = 0; i < r.layers.size(); ++i) {
        const layer_quality& l = r.layers[i];
        out += "<section class=\"layer\" id=\"layer-" + std::to_string(i) + "\"><h3>" + html_text(l.name) + "</h3><p class=\"meta\">" +
               html_text(l.act_algo) + ", " +
               (l.per_channel ? "per channel (" + std::to_string(l.channels.size()) + " channels)" : std::string("per tensor")) + ", " +
               (l.with_offset ? "asymmetric" : "symmetric") + " &middot; " + std::to_string(l.data.count) + " values, min " +
               show_number(l.data.min) + ", max " + show_number(l.data.max) + ", mean " + show_number(l.data.mean) + ", std " +
               show_number(l.data.std) + " &middot; median channel range " + show_number(l.median_channel_range);
        for (const auto& fl : l.flags) out += " <span class=\"flag\">" + flag_title(fl) + "</span>";
        if (!l.wide_channels.empty()) {
            out += " (channels";
            for (std::size_t k = 0; k < l.wide_channels.size() && k < 10; ++k) out += " " + std::to_string(l.wide_channels[k]);
            if (l.wide_channels.size() > 10) out += " ...";
            out += ")";
        }
        out +=
            "</p><div class=\"grid\"><div><table "
            "class=\"figs\"><thead><tr><th>method</th><th>clip "
            "range</th><th>clipped</th>"
            "<th>MSE</th><th>SQNR dB</th><th>max "
            "err</th><th>cosine</th></tr></thead><tbody>";
        append_figures_row(out, "record", r.calibrated_here ? "calibrated here" : "", l.record.all, l.best == "record");
        append_figures_row(out, "minmax", "", l.minmax.all, l.best == "minmax");
        if (l.other_algorithm) {
            append_figures_row(out, "other_algorithm", l.other_algo + " defaults", l.other_algorithm->all, l.best == "other_algorithm");
        } else if (!l.other_algorithm_error.empty()) {
            out += "<tr><th>other algorithm</th><td colspan=\"6\">" + html_text(l.other_algo) +
                   " failed: " + html_text(l.other_algorithm_error) + "</td></tr>";
        }
        append_figures_row(out, "fp8", "", l.fp8.all, l.best == "fp8");
        out += "</tbody></table>";
        if (l.per_channel && !l.channels.empty()) {
            out +=
                "<p class=\"legend\">Per channel: figures over all values, each "
                "with its own channel's scale and offset; clip range: the widest "
                "channel's.</p>";
            // The channels with the lowest SQNR of the record.
            std::vector<std::size_t> order(l.channels.size());
            for (std::size_t c = 0; c < order.size(); ++c) order[c] = c;
            std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
                return sqnr_rank(l.channels[a].record.sqnr_db) < sqnr_rank(l.channels[b].record.sqnr_db);
            });
            if (order.size() > 5) order.resize(5);
            out += "<p class=\"legend worst-channels\">Lowest SQNR (record):";
            for (std::size_t c : order) {
                const channel_quality& ch = l.channels[c];
                out += " channel " + std::to_string(c) + " " + show_number(ch.record.sqnr_db) + " dB (" +
                       show_number(100.0 * ch.record.clip_fraction, 3) + "% clipped);";
            }
            out.back() = '.';
            out += "</p>";
        }
        out += "</div><div>";
        append_histogram_svg(out, l);
        if (l.per_channel && !l.channels.empty()) append_channel_svg(out, l);
        out += "</div></div></section>\n";
    }
    out += "</main><script>";
    out += report_script;
    out += "</script></body></html>\n";
    return out;
}

}  // namespace kvcali
