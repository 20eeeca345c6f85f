// Calibration test support: a minimal JSON reader (numbers correctly rounded via from_chars), the
// cases' data generator (PCG32, as data/generator.py), and resolved configs for single cases.
#pragma once

#include <kvcali/calibration/calibrator.hpp>
#include <kvcali/policy.hpp>
#include <kvcali/resolved_config.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cali_test {

// ---------------------------------------------------------------------------------------------
// JSON

struct json_member;

struct json {
    enum class kind { null, boolean, number, string, array, object } type = kind::null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<json> items;
    std::vector<json_member> members;  // in file order

    // A std::pair<std::string, json> member type would not compile with clang 14 and libstdc++ 12
    // (the pair's traits need json complete); json_member below is a plain aggregate.
    const json& operator[](std::string_view key) const;
    const json* find(std::string_view key) const;
    double num(std::string_view key, double fallback) const;
};

struct json_member {
    std::string first;  // the key
    json second;        // the value
};

inline const json* json::find(std::string_view key) const {
    for (const auto& member : members) {
        if (member.first == key) return &member.second;
    }
    return nullptr;
}

inline const json& json::operator[](std::string_view key) const {
    if (const json* v = find(key)) return *v;
    throw std::runtime_error("no key " + std::string(key));
}

inline double json::num(std::string_view key, double fallback) const {
    const json* v = find(key);
    return v ? v->number : fallback;
}

class json_parser {
public:
    explicit json_parser(std::string_view t) : t_(t) {}
    json parse() {
        json v = value();
        ws();
        if (i_ != t_.size()) throw std::runtime_error("trailing JSON text");
        return v;
    }

private:
    void ws() {
        while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
    }
    std::string str() {
        if (t_[i_] != '"') throw std::runtime_error("expected string");
        ++i_;
        std::string out;
        while (t_[i_] != '"') {
            if (t_[i_] == '\\') {
                ++i_;
                const char c = t_[i_];
                out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
            } else {
                out += t_[i_];
            }
            ++i_;
        }
        ++i_;
        return out;
    }
    json value() {
        ws();
        json v;
        const char c = t_[i_];
        if (c == '{') {
            v.type = json::kind::object;
            ++i_;
            ws();
            if (t_[i_] == '}') {
                ++i_;
                return v;
            }
            while (true) {
                ws();
                std::string k = str();
                ws();
                ++i_;  // ':'
                v.members.push_back(json_member{std::move(k), value()});
                ws();
                if (t_[i_++] == '}') break;
            }
        } else if (c == '[') {
            v.type = json::kind::array;
            ++i_;
            ws();
            if (t_[i_] == ']') {
                ++i_;
                return v;
            }
            while (true) {
                v.items.push_back(value());
                ws();
                if (t_[i_++] == ']') break;
            }
        } else if (c == '"') {
            v.type = json::kind::string;
            v.string = str();
        } else if (t_.substr(i_).starts_with("true") || t_.substr(i_).starts_with("false")) {
            v.type = json::kind::boolean;
            v.boolean = t_[i_] == 't';
            i_ += v.boolean ? 4 : 5;
        } else if (t_.substr(i_).starts_with("null")) {
            i_ += 4;
        } else {
            v.type = json::kind::number;
            const auto r = std::from_chars(t_.data() + i_, t_.data() + t_.size(), v.number);
            if (r.ec != std::errc{}) throw std::runtime_error("bad number");
            i_ = static_cast<std::size_t>(r.ptr - t_.data());
        }
        return v;
    }
    std::string_view t_;
    std::size_t i_ = 0;
};

inline json parse_json(std::string_view text) { return json_parser(text).parse(); }

// ---------------------------------------------------------------------------------------------
// The data generator (data/generator.py)

class pcg32 {
public:
    pcg32(std::uint64_t initstate, std::uint64_t initseq) : inc_((initseq << 1u) | 1u) {
        next();
        state_ += initstate;
        next();
    }
    std::uint32_t next() {
        const std::uint64_t old = state_;
        state_ = old * 6364136223846793005ULL + inc_;
        const auto xorshifted = static_cast<std::uint32_t>(((old >> 18u) ^ old) >> 27u);
        const auto rot = static_cast<std::uint32_t>(old >> 59u);
        return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
    }
    double u() { return static_cast<double>(next() >> 8) * (1.0 / 16777216.0); }

private:
    std::uint64_t state_ = 0;
    std::uint64_t inc_;
};

/// The batches of a data description: `batch_num` tensors of shape [tokens, channels], row-major.
inline std::vector<std::vector<float>> generate_batches(const json& d, std::uint32_t batch_num) {
    pcg32 rng(static_cast<std::uint64_t>(d["seed"].number), static_cast<std::uint64_t>(d.num("stream", 54)));
    const auto tokens = static_cast<std::size_t>(d["shape"].items[0].number);
    const auto channels = static_cast<std::size_t>(d["shape"].items[1].number);
    const std::string& kind = d["dist"].string;
    const double mu = d.num("mu", 0.0), sigma0 = d.num("sigma", 1.0), spread = d.num("channel_spread", 0.0);
    std::vector<std::vector<float>> out;
    for (std::uint32_t b = 0; b < batch_num; ++b) {
        std::vector<float> batch;
        batch.reserve(tokens * channels);
        for (std::size_t t = 0; t < tokens; ++t) {
            for (std::size_t c = 0; c < channels; ++c) {
                const double sigma = sigma0 * (1.0 + static_cast<double>(c) * spread);
                double v = 0.0;
                if (kind == "constant") {
                    v = d["value"].number;
                } else if (kind == "uniform") {
                    v = d["lo"].number + (d["hi"].number - d["lo"].number) * rng.u();
                } else {
                    double z = 0.0;
                    for (int k = 0; k < 12; ++k) z += rng.u();
                    z -= 6.0;
                    const double x = mu + sigma * z;
                    if (kind == "normal") {
                        v = x;
                    } else if (kind == "outliers") {
                        v = rng.u() < d["p"].number ? x * d["factor"].number : x;
                    } else if (kind == "relu") {
                        v = std::max(0.0, x);
                    } else if (kind == "skew") {
                        v = x > 0 ? x : 0.25 * x;
                    } else if (kind == "sparse") {
                        v = rng.u() < d["zero_fraction"].number ? 0.0 : x;
                    } else {
                        throw std::runtime_error("unknown dist " + kind);
                    }
                }
                batch.push_back(static_cast<float>(v));
            }
        }
        out.push_back(std::move(batch));
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Resolved configs from `kv_data_quant_config` JSON objects

/// A layer resolved from its `kv_data_quant_config` object (as config.json or cases.json hold it).
inline kvcali::resolved_layer layer_from_params(const std::string& name, const json& params, kvcali::algorithm_registry algos) {
    kvcali::resolved_layer layer;
    layer.name = name;
    const std::string& algo = params["act_algo"].string;
    for (std::size_t a = 0; a < algos.size(); ++a) {
        if (algos[a].act_algo == algo) layer.algorithm = a;
    }
    const auto& desc = algos[layer.algorithm];
    for (const auto& p : desc.params) {
        std::optional<kvcali::param_value> v;
        if (const json* j = params.find(p.json_name)) {
            const json& x = p.json_slot >= 0 ? j->items[static_cast<std::size_t>(p.json_slot)] : *j;
            switch (p.type) {
                case kvcali::param_type::boolean: v = kvcali::param_value::of_bool(x.boolean); break;
                case kvcali::param_type::uint32: v = kvcali::param_value::of_uint(static_cast<std::uint32_t>(x.number)); break;
                case kvcali::param_type::float32: v = kvcali::param_value::of_float(static_cast<float>(x.number)); break;
                case kvcali::param_type::enumeration: v = kvcali::param_value::of_enum(static_cast<std::int32_t>(x.number)); break;
            }
        } else {
            v = p.default_value;
        }
        layer.values.push_back(v);
        layer.sources.emplace_back();
    }
    return layer;
}

/// A one-layer resolved config for a case of cases.json.
inline kvcali::resolved_config config_for_case(const json& c, const std::string& layer = "layer") {
    kvcali::resolved_config cfg;
    cfg.algorithms = kvcali::default_policies::algorithms;
    cfg.batch_num = static_cast<std::uint32_t>(c["batch_num"].number);
    cfg.activation_offset = c["with_offset"].boolean;
    cfg.layers.push_back(layer_from_params(layer, c["params"], cfg.algorithms));
    return cfg;
}

}  // namespace cali_test
