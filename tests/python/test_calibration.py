"""The 24 end-to-end calibration cases through kvcali.create_quant_cali_config and kvcali.calibrate
on a real nn.Module: each configured layer an identity nn.Linear(C, C, bias=False) fed its batch,
so that the hook sees exactly the case's activations (tests/calibration/data/generator.py)."""
import json
import math
import os
import struct
import sys
import tempfile

import torch
from torch import nn

import kvcali
from models import ROOT, build, layer_table

sys.path.insert(0, os.path.join(ROOT, "tests", "calibration", "data"))
import generator  # noqa: E402  (the reference generator, reused)

E2E = os.path.join(ROOT, "tests", "calibration", "data", "e2e")
CASE_COUNT = 24
MAX_OFF_BY_ONE = 2  # as tests/calibration/test_calibrator.cpp


class Feeder(nn.Module):
    """forward(*xs): the i-th configured layer (data.json's order) gets xs[i]."""

    def __init__(self, order):
        super().__init__()
        self._order = order

    def forward(self, *xs):
        for name, x in zip(self._order, xs):
            self.get_submodule(name)(x)


def identity(channels):
    m = nn.Linear(channels, channels, bias=False)
    with torch.no_grad():
        m.weight.copy_(torch.eye(channels))
    return m


def parse_record(text):
    out, key, scales, offsets = {}, None, [], []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("key:"):
            key, scales, offsets = json.loads(line[4:].strip()), [], []
            out[key] = (scales, offsets)
        elif line.startswith("scale:"):
            scales.append(float(line[6:]))
        elif line.startswith("offset:"):
            offsets.append(int(line[7:]))
    return out


def f32_bits(x):
    return struct.unpack("<i", struct.pack("<f", x))[0]


def ulps_apart(a, b):
    ia, ib = f32_bits(a), f32_bits(b)
    ia = ia if ia >= 0 else -(ia & 0x7FFFFFFF)
    ib = ib if ib >= 0 else -(ib & 0x7FFFFFFF)
    return abs(ia - ib)


def compare_records(got_text, want_text):
    """As test_calibrator.cpp compare_records: the off-by-one offsets count, or AssertionError."""
    got, want = parse_record(got_text), parse_record(want_text)
    assert list(got) == list(want), f"layers (in order) differ: {list(got)} vs {list(want)}"
    off = 0
    for key, (ws, wo) in want.items():
        gs, go = got[key]
        assert len(gs) == len(ws) and len(go) == len(wo), key
        for i, (a, b) in enumerate(zip(gs, ws)):
            a32, b32 = struct.unpack("<f", struct.pack("<f", a))[0], struct.unpack("<f", struct.pack("<f", b))[0]
            assert math.fabs(a - b) <= 1e-5 * math.fabs(b), f"{key} channel {i}: scale {a} vs {b}"
            d = abs(go[i] - wo[i])
            near_tie = a32 != b32 and ulps_apart(a32, b32) <= 4
            assert d == 0 or (d == 1 and near_tie), f"{key} channel {i}: offset {go[i]} vs {wo[i]} (scales {a} / {b})"
            off += d
    return off


def run_case(case, tmp):
    d = os.path.join(E2E, case)
    with open(os.path.join(d, "model.json"), encoding="utf-8") as f:
        table = layer_table(json.load(f))
    with open(os.path.join(d, "data.json"), encoding="utf-8") as f:
        data = json.load(f)  # keeps data.json's order
    order = list(data)
    special = {name: identity(spec["shape"][1]) for name, spec in data.items()}
    model = build(table, root=Feeder(order), special=special)
    config = os.path.join(tmp, "config.json")
    kvcali.create_quant_cali_config(config, model, config_defination=os.path.join(d, "quant.cfg"))
    with open(config, "rb") as f, open(os.path.join(d, "expected_config.json"), "rb") as g:
        assert f.read() == g.read(), "config.json differs from expected_config.json"
    batch_num = kvcali.read_quant_cali_config(config)["batch_num"]
    per_layer = [generator.batches(spec, batch_num) for spec in data.values()]
    batches = [tuple(torch.tensor(per_layer[i][k], dtype=torch.float32) for i in range(len(order))) for k in range(batch_num)]
    record = os.path.join(tmp, "record.txt")
    assert kvcali.calibrate(model, config, record, batches) == record
    assert not any(m._forward_hooks for m in model.modules()), "hooks left behind"
    with open(record, encoding="utf-8") as f, open(os.path.join(d, "expected_record.txt"), encoding="utf-8") as g:
        return len(order), compare_records(f.read(), g.read())


def main():
    cases = sorted(c for c in os.listdir(E2E) if os.path.isdir(os.path.join(E2E, c)))
    ran, layers, off, failed = 0, 0, 0, []
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                n, o = run_case(case, tmp)
                layers, off = layers + n, off + o
            except Exception as e:  # noqa: BLE001 (reported per case)
                failed.append(case)
                print(f"FAIL {case}: {type(e).__name__}: {e}", file=sys.stderr)
        ran += 1
    print(f"e2e calibration (python): {ran} cases ({layers} layers), {len(failed)} failed, offsets off by one: {off}")
    assert ran == CASE_COUNT, f"{ran} cases, expected {CASE_COUNT}"
    assert not failed
    assert off <= MAX_OFF_BY_ONE
    return 0


if __name__ == "__main__":
    sys.exit(main())
