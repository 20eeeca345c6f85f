"""`kvcali report --json` against an independent computation (numpy), on the 24 end-to-end
calibration cases (tests/calibration/data/e2e).

Written from the issue's text, not from kvcali's code: for every layer, the data statistics; for
the record's scales and offsets, for min/max, for the other algorithm (the scales and offsets
kvcali reports for it, themselves checked by calibrating a config that gives each layer that
algorithm with its defaults) and for FP8 E4M3 (scale amax / 448, rounded through a table of every
E4M3 value): the clip range, the clip fraction, MSE, SQNR, largest absolute error and cosine; per
channel for per-channel layers; the flags. Every number within 1e-6 relative (float32 quantities and
integers exactly). Also: the report without --record equals calibrate + report, and the JSON
follows schema/report.schema.json.

Usage: check_figures.py   (env KVCALI_EXE, KVCALI_SOURCE_ROOT; /usr/bin/python3 with numpy, jsonschema)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import jsonschema

ROOT = os.environ["KVCALI_SOURCE_ROOT"]
EXE = os.environ["KVCALI_EXE"]
E2E = os.path.join(ROOT, "tests", "calibration", "data", "e2e")
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(ROOT, "tests", "calibration", "data"))
import generator  # noqa: E402  (the reference data generator)

CASE_COUNT = 24
REL = 1e-6
F32 = np.float32
EPS = F32(2.0 ** -23)


def run(*args):
    p = subprocess.run([EXE, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"kvcali {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


def dir_name(layer):
    """The activation layout's folder name (README: Activation file layout)."""
    keep = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    if layer in (".", ".."):
        return "%2E" * len(layer)
    return "".join(chr(b) if b in keep else "%%%02X" % b for b in layer.encode("utf-8"))


def parse_record(text):
    out, key = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("key:"):
            key = json.loads(line[4:].strip())
            out[key] = ([], [])
        elif line.startswith("scale:"):
            out[key][0].append(F32(float(line[6:])))
        elif line.startswith("offset:"):
            out[key][1].append(int(line[7:]))
    return out


# --- quantizers, from the formulas, in float32 -------------------------------------------

def int8_dq(x, scale, offset):
    scale, off = F32(scale), F32(offset)
    q = np.clip(np.rint(x / scale) + off, F32(-128), F32(127)).astype(F32)
    return ((q - off) * scale).astype(F32)


def int8_range(scale, offset):
    return F32(F32(-128 - offset) * F32(scale)), F32(F32(127 - offset) * F32(scale))


def e4m3_table():
    """Every finite E4M3 (fn) value >= 0 with its code (bias 7, no infinities, S.1111.111 is NaN)."""
    vals = []
    for code in range(0x7F):  # 0x7F is NaN
        e, m = code >> 3, code & 7
        v = (m / 8.0) * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7)
        vals.append((v, code))
    return np.array([v for v, _ in vals]), np.array([c for _, c in vals])


E4M3_VALUES, E4M3_CODES = e4m3_table()


def e4m3_round(v):
    """Nearest E4M3 value, ties to the even code; saturating at 448."""
    a = np.minimum(np.abs(v.astype(np.float64)), 448.0)
    i = np.clip(np.searchsorted(E4M3_VALUES, a), 1, len(E4M3_VALUES) - 1)
    below, above = E4M3_VALUES[i - 1], E4M3_VALUES[i]
    pick_above = (above - a < a - below) | ((above - a == a - below) & (E4M3_CODES[i] % 2 == 0))
    r = np.where(pick_above, above, below)
    r = np.where(a <= 0, 0.0, r)
    return (np.sign(v) * r).astype(F32)


def fp8_scale(absmax):
    return F32(1) if absmax == 0 else F32(F32(absmax) / F32(448))


def fp8_dq(x, scale):
    return (e4m3_round((x / F32(scale)).astype(F32)) * F32(scale)).astype(F32)


def range_scale_offset(lo, hi, with_offset):
    """The spec's scale and offset of a clip range [lo, hi], float32."""
    lo, hi = F32(lo), F32(hi)
    if with_offset:
        hi, lo = max(hi, F32(0)), min(lo, F32(0))
        scale = F32((hi - lo) / F32(255))
        offset = -128 if hi == lo else int(np.rint(F32(F32(-128) - F32(lo / scale))))
    else:
        limit = F32(128) if abs(hi) < abs(lo) else F32(127)
        scale = F32(max(abs(hi), abs(lo)) / limit)
        offset = 0
    if scale < EPS:
        scale = F32(1)
        if with_offset:
            offset = -128
    return scale, offset


# --- the figures --------------------------------------------------------------------------------

def sums(x, dq, lo, hi):
    xd, dd = x.astype(np.float64), dq.astype(np.float64)
    e = xd - dd
    return dict(n=len(x), clipped=int(np.count_nonzero((x < lo) | (x > hi))), sx2=float(np.sum(xd * xd)),
                sd2=float(np.sum(dd * dd)), sxd=float(np.sum(xd * dd)), se2=float(np.sum(e * e)),
                maxe=float(np.max(np.abs(e))) if len(e) else 0.0)


def merge(parts):
    out = dict(n=0, clipped=0, sx2=0.0, sd2=0.0, sxd=0.0, se2=0.0, maxe=0.0)
    for p in parts:
        for k in ("n", "clipped", "sx2", "sd2", "sxd", "se2"):
            out[k] += p[k]
        out["maxe"] = max(out["maxe"], p["maxe"])
    return out


def figures(s, lo, hi):
    if s["se2"] == 0:
        sqnr = None  # no error: infinite (or undefined) -> null in the JSON
    else:
        sqnr = 10.0 * np.log10(s["sx2"] / s["se2"]) if s["sx2"] > 0 else None
    if s["sx2"] == 0 and s["sd2"] == 0:
        cos = 1.0
    elif s["sx2"] == 0 or s["sd2"] == 0:
        cos = 0.0
    else:
        cos = s["sxd"] / np.sqrt(s["sx2"] * s["sd2"])
    return dict(lo=float(lo), hi=float(hi), clip_fraction=s["clipped"] / s["n"], mse=s["se2"] / s["n"], sqnr_db=sqnr,
                max_abs_error=s["maxe"], cosine=float(cos))


def stats(x):
    xd = x.astype(np.float64)
    return dict(count=len(x), min=float(x.min()), max=float(x.max()), absmax=float(np.abs(x).max()), mean=float(np.mean(xd)),
                std=float(np.std(xd)))


def method(cols, scales, offsets, fp8):
    """Figures of one method over channel columns `cols` (one column per tensor)."""
    parts, per, los, his = [], [], [], []
    for c, x in enumerate(cols):
        if fp8:
            lo, hi = F32(-448 * scales[c]), F32(448 * scales[c])
            dq = fp8_dq(x, scales[c])
        else:
            lo, hi = int8_range(scales[c], offsets[c])
            dq = int8_dq(x, scales[c], offsets[c])
        s = sums(x, dq, lo, hi)
        parts.append(s)
        per.append(figures(s, lo, hi))
        los.append(lo)
        his.append(hi)
    return figures(merge(parts), min(los), max(his)), per


# --- comparison ---------------------------------------------------------------------------------

class Checker:
    def __init__(self):
        self.numbers = 0
        self.failures = []

    def num(self, where, got, want, floor=0.0, exact=False):
        self.numbers += 1
        if want is None or got is None:
            if got is not want and not (got is None and want is None):
                self.failures.append(f"{where}: {got} vs {want}")
            return
        if exact:
            ok = F32(got) == F32(want) if isinstance(want, float) else got == want
        else:
            ok = abs(got - want) <= REL * max(abs(got), abs(want)) + floor
        if not ok:
            self.failures.append(f"{where}: kvcali {got!r}, numpy {want!r}")

    def figs(self, where, got, want, scale_of_x):
        for k in ("lo", "hi"):
            self.num(f"{where}.{k}", got[k], want[k], exact=True)
        self.num(f"{where}.clip_fraction", got["clip_fraction"], want["clip_fraction"])
        self.num(f"{where}.mse", got["mse"], want["mse"], floor=1e-300)
        self.num(f"{where}.sqnr_db", got["sqnr_db"], want["sqnr_db"], floor=1e-9)
        self.num(f"{where}.max_abs_error", got["max_abs_error"], want["max_abs_error"])
        self.num(f"{where}.cosine", got["cosine"], want["cosine"], floor=1e-12)

    def stats(self, where, got, want):
        for k in ("count", "min", "max", "absmax"):
            self.num(f"{where}.{k}", got[k], want[k], exact=True)
        # mean: sums of opposite signs cancel; allow the summation order's rounding (1e-12 of absmax).
        self.num(f"{where}.mean", got["mean"], want["mean"], floor=1e-12 * want["absmax"])
        self.num(f"{where}.std", got["std"], want["std"], floor=1e-12 * want["absmax"])


def other_config(config):
    """config.json with each layer's algorithm replaced by the other one with its policy defaults."""
    out = {}
    for key, v in config.items():
        if not isinstance(v, dict):
            out[key] = v
            continue
        q = v["kv_data_quant_config"]
        keep = {k: q[k] for k in ("asymmetric", "quant_granularity") if k in q}
        if q["act_algo"] == "hfmg":
            new = {"act_algo": "ifmr", "max_percentile": 0.999999, "min_percentile": 0.999999, "search_range": [0.7, 1.3],
                   "search_step": 0.01}
        else:
            new = {"act_algo": "hfmg", "num_of_bins": 4096}
        new.update(keep)
        out[key] = {"kv_data_quant_config": new}
    return out


def e2e_inputs(case, work):
    """An end-to-end case: its model.json and quant.cfg, and each layer's batches from data.json."""
    src = os.path.join(E2E, case)
    config = generate(os.path.join(src, "model.json"), os.path.join(src, "quant.cfg"), work)
    with open(os.path.join(src, "data.json")) as f:
        data = json.load(f)
    return config, {layer: [np.array(b, dtype=F32) for b in generator.batches(d, config["batch_num"])] for layer, d in data.items()}


def generate(model, cfg, work):
    run("generate", "--model", model, "--cfg", cfg, "-o", os.path.join(work, "config.json"), "--quiet")
    with open(os.path.join(work, "config.json")) as f:
        return json.load(f)


def edge_inputs(work):
    """Values on FP8 E4M3's edges (amax 448: scale 1): ties between neighbours, subnormals, the
    smallest subnormal's half, saturation's neighbourhood; and INT8 ties, per tensor and per channel."""
    model = os.path.join(work, "model.json")
    with open(model, "w") as f:
        json.dump([{"name": "a.k_proj", "type": "Linear"}, {"name": "a.v_proj", "type": "Linear"}], f)
    cfg = os.path.join(work, "quant.cfg")
    with open(cfg, "w") as f:
        f.write("batch_num: 2\nactivation_offset: false\n"
                "kv_cache_quant_config { quant_layers: ['a.k_proj', 'a.v_proj'] calibration_config { hfmg_quantize { quant_granularity: per_channel } } }\n"
                "override_layers_configs { layer_name: 'a.v_proj' kv_data_quant_config { ifmr_quantize { quant_granularity: per_channel } } }\n")
    config = generate(model, cfg, work)
    sub = 2.0 ** -9
    # One channel per kind of edge, each with amax 448 (FP8 scale 1) and only small errors besides,
    # so that one wrong value shows in the channel's figures; zeros (no error anywhere) pad them.
    channels = [
        [448.0, 3 * sub / 2, 5 * sub / 2, sub / 2, sub / 4, 3 * sub / 4, -sub / 2, 2.0 ** -6 - sub / 2, 2.0 ** -6 + 2.0 ** -10],  # subnormals
        [448.0, 1.0625, 1.1875, -1.0625, 0.5 + 1 / 32, 0.5 + 3 / 32, 12.5, 13.0, -12.5],  # FP8 ties
        [448.0, 447.0, 440.0, 432.0, -436.0, 300.0, 272.0, -448.0],  # near saturation
        [-448.0, 441.0, 1.75 * 3.5, 0.5 * 3.5, 1.5 * 3.5, -0.5 * 3.5, 2.5 * 3.5, 100.5 * 3.5],  # INT8 ties (min/max scale 3.5): |error| is the same
        # either way, so no figure tells the rounding of a tie; test_report.cpp checks int8_round_trip's
    ]
    rows = 16
    k = np.zeros((rows, len(channels)), dtype=F32)
    for c, vals in enumerate(channels):
        k[:len(vals), c] = vals
    v = np.array([[c * 0.5 + r * 0.25 - 2.0 for c in range(4)] for r in range(16)], dtype=F32)
    return config, {"a.k_proj": [k[:8], k[8:]], "a.v_proj": [v[:8], v[8:]]}


def check_case(case, work, check, schema):
    config, batches_of = edge_inputs(work) if case == "fp8_edges" else e2e_inputs(case, work)
    act = os.path.join(work, "act")
    values = {}
    for layer, batches in batches_of.items():
        os.makedirs(os.path.join(act, dir_name(layer)), exist_ok=True)
        for k, b in enumerate(batches):
            np.save(os.path.join(act, dir_name(layer), f"{k}.npy"), b)
        values[layer] = np.concatenate(batches, axis=0)  # [tokens * batches, channels]
    cfg = os.path.join(work, "config.json")
    rec = os.path.join(work, "record.txt")
    run("calibrate", "--config", cfg, "-a", act, "-o", rec, "--quiet")
    run("report", "--config", cfg, "-a", act, "--record", rec, "-o", os.path.join(work, "r.html"), "--json",
        os.path.join(work, "r.json"), "--quiet")
    with open(os.path.join(work, "r.json")) as f:
        got = json.load(f)
    jsonschema.validate(got, schema, cls=jsonschema.Draft202012Validator)

    # Without --record: calibrated here, the same figures.
    p = run("report", "--config", cfg, "-a", act, "-o", os.path.join(work, "c.html"), "--json", os.path.join(work, "c.json"))
    assert "no --record given" in p.stderr, p.stderr
    with open(os.path.join(work, "c.json")) as f:
        here = json.load(f)
    with open(os.path.join(work, "c.html")) as f:
        assert 'id="calibrated-here"' in f.read(), f"{case}: the page does not say it calibrated"
    assert here["calibrated_here"] is True and got["calibrated_here"] is False
    here["calibrated_here"] = False
    assert here == got, f"{case}: report without --record differs from calibrate + report"

    # The other algorithm with its defaults, by calibrate on a config that gives it to every layer.
    other_cfg = os.path.join(work, "other.json")
    with open(other_cfg, "w") as f:
        json.dump(other_config(config), f, indent=4)
    run("calibrate", "--config", other_cfg, "-a", act, "-o", os.path.join(work, "other.txt"), "--quiet")
    with open(os.path.join(work, "other.txt")) as f:
        other_record = parse_record(f.read())
    with open(rec) as f:
        record = parse_record(f.read())

    layer_names = [k for k, v in config.items() if isinstance(v, dict)]
    assert [l["name"] for l in got["layers"]] == layer_names, f"{case}: layers or their order differ"
    for layer in got["layers"]:
        name = layer["name"]
        where = f"{case}/{name}"
        q = config[name]["kv_data_quant_config"]
        per_channel = q.get("quant_granularity", 0) == 1
        with_offset = q.get("asymmetric", config["activation_offset"])
        x2d = values[name]
        x = x2d.reshape(-1)
        channels = x2d.shape[1]
        cols = [x2d[:, c] for c in range(channels)] if per_channel and channels > 1 else [x]
        check.num(f"{where}.act_algo", layer["act_algo"], q["act_algo"], exact=True)
        check.num(f"{where}.granularity", layer["granularity"], "per_channel" if per_channel else "per_tensor", exact=True)
        check.num(f"{where}.with_offset", layer["with_offset"], with_offset, exact=True)
        check.stats(where, layer, stats(x))

        want = {}
        # record
        rs, ro = record[name]
        check.num(f"{where}.record.scale", [F32(s) for s in layer["record"]["scale"]], rs, exact=True)
        check.num(f"{where}.record.offset", layer["record"]["offset"], ro, exact=True)
        want["record"] = method(cols, rs, ro, False)
        # min/max
        mm = [range_scale_offset(c.min(), c.max(), with_offset) for c in cols]
        check.num(f"{where}.minmax.scale", [F32(s) for s in layer["minmax"]["scale"]], [s for s, _ in mm], exact=True)
        check.num(f"{where}.minmax.offset", layer["minmax"]["offset"], [o for _, o in mm], exact=True)
        want["minmax"] = method(cols, [s for s, _ in mm], [o for _, o in mm], False)
        # the other algorithm: kvcali's factors, which must be calibrate's on the swapped config
        other = layer["other_algorithm"]
        assert other is not None, f"{where}: no other algorithm"
        check.num(f"{where}.other_algo", layer["other_algo"], "ifmr" if q["act_algo"] == "hfmg" else "hfmg", exact=True)
        os_, oo = other_record[name]
        check.num(f"{where}.other_algorithm.scale", [F32(s) for s in other["scale"]], os_, exact=True)
        check.num(f"{where}.other_algorithm.offset", other["offset"], oo, exact=True)
        want["other_algorithm"] = method(cols, [F32(s) for s in other["scale"]], other["offset"], False)
        # FP8
        fs = [fp8_scale(np.abs(c).max()) for c in cols]
        check.num(f"{where}.fp8.scale", [F32(s) for s in layer["fp8"]["scale"]], fs, exact=True)
        check.num(f"{where}.fp8.offset", layer["fp8"]["offset"], [0] * len(fs), exact=True)
        want["fp8"] = method(cols, fs, [0] * len(fs), True)
        for m in ("record", "minmax", "other_algorithm", "fp8"):
            check.figs(f"{where}.{m}", layer[m], want[m][0], float(np.abs(x).max()))

        # per channel
        if per_channel and channels > 1:
            assert len(layer["channels"]) == channels, f"{where}: {len(layer['channels'])} channels"
            for c, ch in enumerate(layer["channels"]):
                cw = f"{where}.channels[{c}]"
                check.num(f"{cw}.index", ch["index"], c, exact=True)
                check.stats(cw, ch, stats(cols[c]))
                for m in ("record", "minmax", "other_algorithm", "fp8"):
                    check.num(f"{cw}.{m}.scale", F32(ch[m]["scale"]), F32(layer[m]["scale"][c]), exact=True)
                    check.num(f"{cw}.{m}.offset", ch[m]["offset"], layer[m]["offset"][c], exact=True)
                    check.figs(f"{cw}.{m}", ch[m], want[m][1][c], float(np.abs(cols[c]).max()))
        else:
            assert "channels" not in layer, f"{where}: a per-tensor layer lists channels"

        # flags
        ranges = x2d.max(axis=0).astype(np.float64) - x2d.min(axis=0).astype(np.float64)
        median = float(np.median(ranges))
        wide = [int(c) for c in np.nonzero(ranges > 100.0 * median)[0]]
        check.num(f"{where}.median_channel_range", layer["median_channel_range"], median)
        check.num(f"{where}.wide_channels", layer["wide_channels"], wide, exact=True)
        rec_fig = want["record"][0]
        flags = []
        if rec_fig["sqnr_db"] is not None and rec_fig["sqnr_db"] < 20.0:
            flags.append("sqnr_below_20db")
        if rec_fig["clip_fraction"] > 0.01:
            flags.append("clipped_over_1pct")
        if wide:
            flags.append("channel_range_100x_median")
        check.num(f"{where}.flags", layer["flags"], flags, exact=True)
        # best: the highest SQNR (None = no error = highest), the first of equals; only where not a near tie
        rank = [(float("inf") if want[m][0]["sqnr_db"] is None else want[m][0]["sqnr_db"], m)
                for m in ("record", "minmax", "other_algorithm", "fp8")]
        top = max(r for r, _ in rank)
        leaders = [m for r, m in rank if r == top or abs(r - top) <= 1e-9 * abs(top)]
        if len(leaders) == 1:
            check.num(f"{where}.best", layer["best"], leaders[0], exact=True)
        else:
            check.num(f"{where}.best", layer["best"] in leaders, True, exact=True)


def main():
    with open(os.path.join(ROOT, "schema", "report.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    cases = sorted(d for d in os.listdir(E2E) if os.path.isdir(os.path.join(E2E, d)))
    assert len(cases) == CASE_COUNT, f"expected {CASE_COUNT} cases, found {len(cases)}"
    cases.append("fp8_edges")
    check = Checker()
    per_channel_layers = 0
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="kvcali-report-") as work:
            check_case(case, work, check, schema)
            with open(os.path.join(work, "r.json")) as f:
                per_channel_layers += sum(1 for l in json.load(f)["layers"] if l["granularity"] == "per_channel")
    for f in check.failures[:40]:
        print("FAIL", f)
    print(f"{len(cases)} cases (24 end-to-end, 1 of FP8 and INT8 edges), {check.numbers} numbers compared ({per_channel_layers} per-channel layers), "
          f"{len(check.failures)} mismatches")
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
