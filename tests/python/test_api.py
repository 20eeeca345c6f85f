"""The Python module's own behaviour: argument forms, errors, warnings, strict, Calibrator inputs,
hooks removed on error."""
import os
import sys
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

import kvcali


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.q_proj = nn.Linear(c, c, bias=False)
        self.k_proj = nn.Linear(c, c, bias=False)
        self.v_proj = nn.Linear(c, c, bias=False)

    def forward(self, x):
        return self.q_proj(x) + self.k_proj(x) + self.v_proj(x)


class Tiny(nn.Module):
    def __init__(self, c=8, fail_at=None):
        super().__init__()
        self.attn = Attention(c)
        self.norm = nn.LayerNorm(c)
        self.calls, self.fail_at = 0, fail_at

    def forward(self, x):
        self.calls += 1
        y = self.attn(x)
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("forward failed")
        return self.norm(y)


KV = ["attn.k_proj", "attn.v_proj"]
checks = 0


def check(cond, what):
    global checks
    checks += 1
    assert cond, what


def hooks_left(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def expect_error(fn, category):
    try:
        fn()
    except kvcali.Error as e:
        check(isinstance(e, ValueError), "kvcali.Error is a ValueError")
        cats = [d.category for d in e.diagnostics if d.severity == "error"]
        check(category in cats, f"expected {category}, got {cats}: {e}")
        check(str(e) == "\n".join(d.text for d in e.diagnostics), "the message lists every diagnostic, one a line")
        return e
    raise AssertionError(f"expected kvcali.Error {category}")


def main():
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "config.json")
    model = Tiny()

    # The argument forms give the same bytes: AMCT's dict, a plain list, a tuple.
    kvcali.create_quant_cali_config(cfg, model, {"kv_cache_quant_layers": KV})
    want = open(cfg, "rb").read()
    for form in (list(KV), tuple(KV)):
        os.remove(cfg)
        kvcali.create_quant_cali_config(cfg, model, form)
        check(open(cfg, "rb").read() == want, f"{type(form).__name__} form")
    check(kvcali.layers_of(model)[0] == ("attn", "Attention"), "layers_of")

    # Errors: every diagnostic, with category, message, position and layer.
    e = expect_error(lambda: kvcali.create_quant_cali_config(os.path.join(tmp, "x.json"), model, ["attn.k_proj", "nope"]),
                     "unknown_layer")
    d = [d for d in e.diagnostics if d.category == "unknown_layer"][0]
    check(d.layer == "nope" and d["category"] == "unknown_layer" and isinstance(d.line, int), "diagnostic fields")
    check(not os.path.exists(os.path.join(tmp, "x.json")), "nothing written on error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kvcali.Warning)
        expect_error(lambda: kvcali.create_quant_cali_config(cfg, model, {"layers": KV}), "invalid_argument")
    expect_error(lambda: kvcali.create_quant_cali_config(cfg, model, {"kv_cache_quant_layers": [1]}), "invalid_argument")
    expect_error(lambda: kvcali.create_quant_cali_config(cfg, model, [object()]), "invalid_argument")
    expect_error(lambda: kvcali.create_quant_cali_config(cfg, model, None, os.path.join(tmp, "missing.cfg")), "io_error")

    # Warnings reach warnings.warn as kvcali.Warning; strict=True makes them errors.
    extra = {"kv_cache_quant_layers": KV, "other": 1}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kvcali.create_quant_cali_config(cfg, model, extra)
    got = [w for w in caught if issubclass(w.category, kvcali.Warning)]
    check(len(got) == 1 and "other" in str(got[0].message), f"one kvcali.Warning: {[str(w.message) for w in caught]}")
    check(issubclass(kvcali.Warning, UserWarning), "kvcali.Warning is a UserWarning")
    check(open(cfg, "rb").read() == want, "the warning changes nothing")
    os.remove(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expect_error(lambda: kvcali.create_quant_cali_config(cfg, model, extra, strict=True), "invalid_argument")
    check(not caught, "strict: no warning, an error")
    check(not os.path.exists(cfg), "strict: nothing written")
    with warnings.catch_warnings():
        warnings.simplefilter("error", kvcali.Warning)  # a warnings filter that raises goes through
        try:
            kvcali.create_quant_cali_config(cfg, model, extra)
            raise AssertionError("the warnings filter 'error' should raise")
        except kvcali.Warning:
            check(True, "warnings filter 'error'")

    # read_quant_cali_config: plain data.
    kvcali.create_quant_cali_config(cfg, model, KV)
    doc = kvcali.read_quant_cali_config(cfg)
    check([l["name"] for l in doc["layers"]] == KV and isinstance(doc["batch_num"], int), f"read: {doc}")
    check(doc["layers"][0]["act_algo"] == "ifmr" and isinstance(doc["layers"][0]["params"], dict), f"read: {doc}")
    # A quant.cfg (config_defination) with batch_num 4, for the calibration below.
    qcfg = os.path.join(tmp, "quant.cfg")
    with open(qcfg, "w") as f:
        f.write("batch_num: 4\nkv_cache_quant_config {\n  quant_layers: 'attn.k_proj'\n  quant_layers: 'attn.v_proj'\n}\n")
    kvcali.create_quant_cali_config(cfg, model, config_defination=qcfg)
    bn = kvcali.read_quant_cali_config(cfg)["batch_num"]
    check(bn == 4, "batch_num from quant.cfg")

    # Calibrator: torch tensors (float32, float16, bfloat16, strided), numpy (float32, float16,
    # transposed, reversed); a wrong dtype is kvcali.Error naming the layer.
    cal = kvcali.Calibrator(cfg)
    x = torch.randn(16, 8)
    e = expect_error(lambda: cal.observe("attn.k_proj", x.double()), "invalid_data")
    check(any(d.layer == "attn.k_proj" for d in e.diagnostics) and "attn.k_proj" in str(e), "the error names the layer")
    e = expect_error(lambda: cal.observe("attn.v_proj", x.to(torch.int32)), "invalid_data")
    check("attn.v_proj" in str(e), "int: names the layer")
    e = expect_error(lambda: cal.observe("attn.v_proj", np.zeros((4, 8), dtype=np.float64)), "invalid_data")
    check("attn.v_proj" in str(e), "numpy float64: names the layer")
    expect_error(lambda: cal.observe("nope", x), "unknown_layer")
    outs = []
    for k in range(bn):
        outs.append(cal.observe("attn.k_proj", [x, x.half(), x.bfloat16(), x.t().contiguous().t()][k % 4]))
        a = x.numpy()
        outs.append(cal.observe("attn.v_proj", [a, a.astype(np.float16), np.asfortranarray(a), a[::-1]][k % 4]))
    check(outs[-2:] == ["finished", "finished"] and set(outs[:-2]) <= {"accepted"}, f"outcomes {outs}")
    check(cal.observe("attn.k_proj", x) == "ignored", "past batch_num: ignored")
    check(cal.complete(), "complete")
    rec = os.path.join(tmp, "record.txt")
    cal.write_record(rec)
    check("attn.k_proj" in open(rec).read(), "record written")

    # calibrate: hooks on the configured layers, removed after the run and after an error.
    rec2 = os.path.join(tmp, "record2.txt")
    batches = [torch.randn(4, 8) for _ in range(bn)]
    check(kvcali.calibrate(model, cfg, rec2, batches) == rec2 and os.path.isfile(rec2), "calibrate")
    check(hooks_left(model) == 0, "hooks removed after a run")
    failing = Tiny(fail_at=1)
    try:
        kvcali.calibrate(failing, cfg, os.path.join(tmp, "r3.txt"), batches)
        raise AssertionError("the model's exception should propagate")
    except RuntimeError as err:
        check("forward failed" in str(err), "the model's own exception")
    check(hooks_left(failing) == 0, "hooks removed after the model raised")
    check(not os.path.exists(os.path.join(tmp, "r3.txt")), "no record after an error")
    # A hook that raises (wrong dtype reaching a layer) also leaves no hook behind.
    half = Tiny().double()
    expect_error(lambda: kvcali.calibrate(half, cfg, os.path.join(tmp, "r4.txt"), [torch.randn(4, 8, dtype=torch.float64)]),
                 "invalid_data")
    check(hooks_left(half) == 0, "hooks removed after kvcali.Error in a hook")
    # Too few batches: incomplete_calibration; tuple batches are unpacked.
    expect_error(lambda: kvcali.calibrate(Tiny(), cfg, os.path.join(tmp, "r5.txt"), [(torch.randn(4, 8),)] * (bn - 1)),
                 "incomplete_calibration")

    print(f"python api: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
