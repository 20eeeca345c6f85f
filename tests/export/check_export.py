#!/usr/bin/python3
"""`kvcali export`, every format, on the 24 end-to-end calibration cases, read back by a reader of
its own written from ../shared/spec/export.md (struct + json, no kvcali code): names, dtypes,
shapes, offsets and values against the record file (parsed here too); float16 rounding against
numpy's, bfloat16 against round-to-nearest-even done here from the float32 bits.

Run by meson (suite 'export') with KVCALI_EXE and KVCALI_SOURCE_ROOT set."""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

EXE = os.environ["KVCALI_EXE"]
ROOT = os.environ["KVCALI_SOURCE_ROOT"]
CASES = sorted(glob.glob(os.path.join(ROOT, "tests", "calibration", "data", "e2e", "*")))
failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)


# ---------------------------------------------------------------------------------------------
# The record file (protobuf text of ScaleOffsetRecord) and config.json

def parse_record(path):
    """[(key, [scales as float32], [offsets])] in file order."""
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("key: "):
            key = line[len('key: "'):-1].replace('\\"', '"').replace("\\\\", "\\")
            out.append((key, [], []))
        elif line.startswith("scale: "):
            out[-1][1].append(np.float32(float(line[len("scale: "):])))
        elif line.startswith("offset: "):
            out[-1][2].append(int(line[len("offset: "):]))
    return out


def parse_config(path):
    """[(layer, quant_granularity)] in the file's order."""
    doc = json.load(open(path, encoding="utf-8"))
    return [(k, v["kv_data_quant_config"].get("quant_granularity", 0)) for k, v in doc.items()
            if isinstance(v, dict) and "kv_data_quant_config" in v]


# ---------------------------------------------------------------------------------------------
# safetensors, from the spec

SIZES = {"F32": 4, "F16": 2, "BF16": 2}


def read_safetensors(path):
    """(header dict in key order, {name: (dtype, shape, values as float32 array)})."""
    data = open(path, "rb").read()
    check(len(data) >= 8, f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    check(8 + n <= len(data), f"{path}: header length {n} beyond the file")
    check(n % 8 == 0, f"{path}: header length {n} not a multiple of 8")
    text = data[8:8 + n].decode("utf-8")
    check(text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))), f"{path}: padding is not spaces")
    header = json.loads(text)
    body = data[8 + n:]
    meta = header.get("__metadata__")
    check(isinstance(meta, dict) and meta.get("format") == "pt" and str(meta.get("producer", "")).startswith("kvcali "),
          f"{path}: __metadata__ {meta}")
    tensors = {}
    expected_begin = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        check(dtype in SIZES, f"{path}: {name}: dtype {dtype}")
        count = int(np.prod(shape)) if shape else 1
        check(end - begin == count * SIZES[dtype], f"{path}: {name}: {end - begin} bytes for shape {shape} {dtype}")
        check(begin == expected_begin, f"{path}: {name}: begins at {begin}, expected {expected_begin} (key order, no gaps)")
        expected_begin = end
        raw = body[begin:end]
        if dtype == "F32":
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif dtype == "F16":
            values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        else:
            values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        tensors[name] = (dtype, shape, values)
    check(expected_begin == len(body), f"{path}: data is {len(body)} bytes, tensors cover {expected_begin}")
    return header, tensors


def bf16_rne(x):
    """float32 -> bfloat16 (as float32) by round to nearest even on the bits."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def as_dtype(x, dtype):
    x = np.asarray(x, dtype=np.float32)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    if dtype == "bfloat16":
        return bf16_rne(x)
    return x


def amax_of(scales, offsets):
    s = np.asarray(scales, dtype=np.float32)
    o = np.asarray(offsets, dtype=np.int64)
    lo = (-128 - o).astype(np.float32) * s
    hi = (127 - o).astype(np.float32) * s
    return np.maximum(np.abs(lo), np.abs(hi)).astype(np.float32)


def same(a, b):
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and bool(np.all(a.view(np.uint32) == b.view(np.uint32)))


def run(args):
    return subprocess.run([EXE, "export"] + args, capture_output=True, text=True)


def module_of(name):
    return name.rsplit(".", 1)[0]


def role_of(name):
    last = name.rsplit(".", 1)[1]
    return {"k_proj": "k", "v_proj": "v"}[last]


# ---------------------------------------------------------------------------------------------

def check_case(case, work):
    rec_path = os.path.join(case, "expected_record.txt")
    cfg_path = os.path.join(case, "expected_config.json")
    record = {k: (s, o) for k, s, o in parse_record(rec_path)}
    config = parse_config(cfg_path)
    name = os.path.basename(case)
    check(sorted(record) == sorted(k for k, _ in config), f"{name}: record and config list different layers")
    base = ["--record", rec_path, "--config", cfg_path]

    # ascend-c8, every dtype
    for dtype in ("float16", "bfloat16", "float32"):
        out = os.path.join(work, f"{name}-c8-{dtype}")
        r = run(base + ["--format", "ascend-c8", "--dtype", dtype, "-o", out])
        check(r.returncode == 0, f"{name} ascend-c8 {dtype}: exit {r.returncode}: {r.stderr}")
        if r.returncode != 0:
            continue
        st = os.path.join(out, "kv_cache_c8.safetensors")
        check(r.stdout == f"wrote {st}: {2 * len(config)} tensors ({len(config)} layers), {dtype}; "
                         f"{os.path.join(out, 'quant_model_description.json')}\n", f"{name}: stdout {r.stdout!r}")
        check(r.stderr == "", f"{name}: stderr {r.stderr!r}")
        header, tensors = read_safetensors(st)
        expected_names = []
        for layer, gran in config:
            expected_names += [layer + ".kv_cache_scale", layer + ".kv_cache_offset"]
        check([k for k in header if k != "__metadata__"] == expected_names, f"{name}: tensor names/order {list(header)}")
        sdt = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}[dtype]
        for layer, gran in config:
            scales, offsets = record[layer]
            c = len(scales)
            check(gran == 1 or c == 1, f"{name}: {layer}: per-tensor layer with {c} values")
            for suffix, want in ((".kv_cache_scale", as_dtype(scales, dtype)),
                                 (".kv_cache_offset", np.asarray(offsets, dtype=np.float32))):
                dt, shape, values = tensors[layer + suffix]
                check(dt == sdt, f"{name}: {layer}{suffix}: dtype {dt}")
                check(shape == [c], f"{name}: {layer}{suffix}: shape {shape}, expected [{c}]")
                check(same(values, want), f"{name}: {layer}{suffix} ({dtype}): {values} != {want}")
        desc = json.load(open(os.path.join(out, "quant_model_description.json")))
        check(desc.get("kv_cache_type") == "C8" and desc.get("kv_quant_type") == "C8", f"{name}: description {desc}")
        check(all(desc.get(n) == "C8" for n in expected_names), f"{name}: description entries")

    # compressed-tensors: fp8 per tensor, fp8 per head, int8 (symmetric records only)
    symmetric = all(o == 0 for _, (s, offs) in record.items() for o in offs)
    channels = [len(record[layer][0]) for layer, _ in config if len(record[layer][0]) > 1]
    heads = 2 if all(c % 2 == 0 for c in channels) else 1
    runs = [("fp8", "tensor"), ("fp8", "attn_head"), ("int8", "tensor"), ("int8", "attn_head")]
    for kv_dtype, strategy in runs:
        out = os.path.join(work, f"{name}-ct-{kv_dtype}-{strategy}")
        args = base + ["--format", "compressed-tensors", "--kv-dtype", kv_dtype, "--strategy", strategy, "-o", out]
        if strategy == "attn_head":
            args += ["--kv-heads", str(heads)]
        r = run(args)
        if kv_dtype == "int8" and not symmetric:
            check(r.returncode == 1, f"{name}: asymmetric record into int8 must fail, exit {r.returncode}")
            check("[invalid_data]" in r.stderr and "activation_offset" in r.stderr, f"{name}: int8 message {r.stderr!r}")
            check(not os.path.exists(out), f"{name}: {out} written although the export failed")
            continue
        check(r.returncode == 0, f"{name} compressed-tensors {kv_dtype} {strategy}: exit {r.returncode}: {r.stderr}")
        if r.returncode != 0:
            continue
        header, tensors = read_safetensors(os.path.join(out, "kv_cache_scales.safetensors"))
        modules = []
        for layer, _ in config:
            m = module_of(layer)
            if m not in modules:
                modules.append(m)
        expected_names = []
        for m in modules:
            for role in ("k", "v"):
                if any(module_of(l) == m and role_of(l) == role for l, _ in config):
                    expected_names.append(f"{m}.{role}_scale")
        check([k for k in header if k != "__metadata__"] == expected_names, f"{name}: compressed-tensors names {list(header)}")
        top = np.float32(448.0 if kv_dtype == "fp8" else 127.0)
        for layer, _ in config:
            scales, offsets = record[layer]
            amax = amax_of(scales, offsets)
            dt, shape, values = tensors[f"{module_of(layer)}.{role_of(layer)}_scale"]
            check(dt == "F32", f"{name}: {layer}: dtype {dt}")
            if strategy == "tensor":
                want = np.array([amax.max() / top], dtype=np.float32)
                check(shape == [1], f"{name}: {layer}: shape {shape}")
            else:
                c = len(amax)
                per = c // heads
                want = np.array([(amax[0] if c == 1 else amax[h * per:(h + 1) * per].max()) / top for h in range(heads)],
                                dtype=np.float32)
                check(shape == [heads, 1, 1], f"{name}: {layer}: shape {shape}")
            check(same(values, want), f"{name}: {layer} {kv_dtype} {strategy}: {values} != {want}")
        scheme = json.load(open(os.path.join(out, "kv_cache_scheme.json")))
        check(scheme == {"num_bits": 8, "type": "float" if kv_dtype == "fp8" else "int", "symmetric": True,
                         "strategy": strategy, "dynamic": False}, f"{name}: scheme {scheme}")

    # vllm-scales-json
    out = os.path.join(work, f"{name}-vllm")
    r = run(base + ["--format", "vllm-scales-json", "--model-type", "llama", "-o", out])
    check(r.returncode == 0, f"{name} vllm-scales-json: exit {r.returncode}: {r.stderr}")
    if r.returncode == 0:
        doc = json.load(open(os.path.join(out, "kv_cache_scales.json")))
        per_layer = {}
        for layer, _ in config:
            i = int(layer.split(".")[2])
            a = amax_of(*record[layer]).max()
            per_layer[i] = max(per_layer.get(i, np.float32(0)), a)
        want = {str(i): per_layer[i] / np.float32(448.0) for i in sorted(per_layer)}
        check(doc["model_type"] == "llama" and doc["kv_cache"]["dtype"] == "float8_e4m3fn", f"{name}: vllm doc {doc}")
        got = doc["kv_cache"]["scaling_factor"]["0"]
        check(sorted(got) == sorted(want) and list(map(int, sorted(got, key=int))) == list(range(len(want))),
              f"{name}: vllm layers {sorted(got)}")
        check(all(np.float32(got[k]) == want[k] for k in want), f"{name}: vllm factors {got} != {want}")


def check_rounding():
    """float16 and bfloat16 rounding over hard values: ties, subnormals, near-overflow."""
    vals = np.array([1.0, 1.0009765625, 1.00048828125, 1.000732421875, 65504.0, 65519.0, 6.1035156e-05,
                     5.9604645e-08, 2.9802322e-08, 8.940697e-08, 0.1, 1.00390625, 1.005859375, 3.3895314e+38],
                    dtype=np.float32)
    rng = np.random.default_rng(17)
    vals = np.concatenate([vals, rng.uniform(1e-7, 1e4, 2000).astype(np.float32),
                           (rng.integers(0, 1 << 16, 2000, dtype=np.uint32) << 16 | 0x8000).view(np.float32)])
    vals = vals[np.isfinite(vals) & (vals > 0)]
    with tempfile.TemporaryDirectory() as work:
        names = [f"model.layers.0.self_attn.{r}_proj" for r in ("k", "v")]
        cfg = {"batch_num": 1, "activation_offset": True}
        for n in names:
            cfg[n] = {"kv_data_quant_config": {"act_algo": "hfmg", "num_of_bins": 4096, "quant_granularity": 1}}
        cfg_path = os.path.join(work, "config.json")
        json.dump(cfg, open(cfg_path, "w"))
        for dtype in ("float16", "bfloat16"):
            top = 65504.0 if dtype == "float16" else 3.38e38
            tiny = 2.0 ** -24 if dtype == "float16" else 1e-38
            v = vals[(as_dtype(vals, dtype) > 0) & np.isfinite(as_dtype(vals, dtype)) & (vals < top * 1.0001) & (vals > tiny)]
            rec_path = os.path.join(work, f"record-{dtype}.txt")
            with open(rec_path, "w") as f:
                for n in names:
                    f.write('record {\n  key: "%s"\n  kv_cache_value {\n' % n)
                    for x in v:
                        f.write(f"    scale: {repr(float(x))}\n")
                    for _ in v:
                        f.write("    offset: 0\n")
                    f.write("  }\n}\n")
            out = os.path.join(work, dtype)
            r = run(["--record", rec_path, "--config", cfg_path, "--format", "ascend-c8", "--dtype", dtype, "-o", out])
            check(r.returncode == 0, f"rounding {dtype}: exit {r.returncode}: {r.stderr}")
            if r.returncode != 0:
                continue
            _, tensors = read_safetensors(os.path.join(out, "kv_cache_c8.safetensors"))
            got = tensors[names[0] + ".kv_cache_scale"][2]
            want = as_dtype(v, dtype)
            bad = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
            check(len(bad) == 0, f"rounding {dtype}: {len(bad)} of {len(v)} differ, e.g. {v[bad[:3]]} -> {got[bad[:3]]} "
                                 f"expected {want[bad[:3]]}")
            if dtype == "float16":
                # numpy's own cast must agree with ours (and with the RNE done here) on ties
                check(same(np.float32(1.00048828125).astype(np.float16).astype(np.float32), np.float32(1.0)), "numpy tie")
        # A value that overflows float16 is an error naming the layer.
        rec_path = os.path.join(work, "big.txt")
        with open(rec_path, "w") as f:
            for n in names:
                f.write('record {\n  key: "%s"\n  kv_cache_value {\n    scale: 70000.0\n    offset: 0\n  }\n}\n' % n)
        cfg1 = dict(cfg)
        for n in names:
            cfg1[n] = {"kv_data_quant_config": {"act_algo": "hfmg", "num_of_bins": 4096, "quant_granularity": 0}}
        json.dump(cfg1, open(cfg_path, "w"))
        r = run(["--record", rec_path, "--config", cfg_path, "--format", "ascend-c8", "-o", os.path.join(work, "big")])
        check(r.returncode == 1 and "overflows" in r.stderr and "[invalid_data]" in r.stderr and names[0] in r.stderr,
              f"float16 overflow: exit {r.returncode} {r.stderr!r}")
        check(not os.path.exists(os.path.join(work, "big")), "float16 overflow: output written")


def main():
    check(len(CASES) == 24, f"expected 24 end-to-end cases, found {len(CASES)}")
    with tempfile.TemporaryDirectory() as work:
        for case in CASES:
            check_case(case, work)
    check_rounding()
    for f in failures[:40]:
        print("FAIL:", f)
    print(f"{len(CASES)} cases, {checks} checks, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
