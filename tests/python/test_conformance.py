"""Every conformance case through kvcali.create_quant_cali_config with a real nn.Module."""
import json
import os
import sys
import tempfile

import kvcali
from models import ROOT, build, layer_table

CASES = os.path.join(ROOT, "tests", "conformance", "cases")
CASE_COUNT = 326


def run_case(case_dir, out_dir):
    with open(os.path.join(case_dir, "model.json"), encoding="utf-8") as f:
        table = layer_table(json.load(f))
    assert table is not None, "model.json is not a plain layer list"
    model = build(table)
    cfg = os.path.join(case_dir, "quant.cfg")
    cfg = cfg if os.path.isfile(cfg) else None
    ql = os.path.join(case_dir, "quant_layers.json")
    layers = None
    if os.path.isfile(ql):
        with open(ql, encoding="utf-8") as f:
            layers = json.load(f)
    config_file = os.path.join(out_dir, "config.json")
    expected = os.path.join(case_dir, "expected.json")
    if os.path.isfile(expected):
        kvcali.create_quant_cali_config(config_file, model, layers, cfg)
        with open(config_file, "rb") as f, open(expected, "rb") as g:
            got, want = f.read(), g.read()
        assert got == want, "bytes differ:\n" + got.decode("utf-8", "replace")
        return
    with open(os.path.join(case_dir, "expected_error.json"), encoding="utf-8") as f:
        doc = json.load(f)
    accepted = {doc["category"], *doc.get("also_accept", [])}
    try:
        kvcali.create_quant_cali_config(config_file, model, layers, cfg)
    except kvcali.Error as e:
        assert isinstance(e, ValueError)
        got = {d.category for d in e.diagnostics if d.severity == "error"}
        assert got & accepted, f"expected {sorted(accepted)}, got {sorted(got)}:\n{e}"
        assert os.listdir(out_dir) == [], "something was written on error"
        return
    raise AssertionError(f"expected an error {sorted(accepted)}, but the call succeeded")


def main():
    import warnings
    warnings.simplefilter("ignore", kvcali.Warning)
    cases = sorted(c for c in os.listdir(CASES) if os.path.isdir(os.path.join(CASES, c)))
    passed, failed = 0, []
    for case in cases:
        with tempfile.TemporaryDirectory() as out:
            try:
                run_case(os.path.join(CASES, case), out)
                passed += 1
            except Exception as e:  # noqa: BLE001 (reported per case)
                failed.append(case)
                print(f"FAIL {case}: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"conformance (python): {len(cases)} ran, {passed} passed, {len(failed)} failed")
    assert len(cases) == CASE_COUNT, f"{len(cases)} cases, expected {CASE_COUNT}"
    assert passed == CASE_COUNT
    return 0


if __name__ == "__main__":
    sys.exit(main())
