#!/usr/bin/python3
"""Checks schema/config.schema.json (JSON Schema draft 2020-12): the schema is itself valid, every
conformance expected.json conforms, and documents that break one rule each do not.
Usage: check_schema.py SCHEMA CASES_DIR   (needs python3-jsonschema)"""
import copy
import json
import pathlib
import sys

import jsonschema


def main():
    schema_path, cases_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    schema = json.loads(schema_path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = []

    documents = sorted(cases_dir.glob("*/expected.json"))
    if len(documents) < 150:
        failures.append(f"only {len(documents)} expected.json files under {cases_dir}")
    for path in documents:
        errors = list(validator.iter_errors(json.loads(path.read_text())))
        if errors:
            failures.append(f"{path}: {errors[0].message} at {list(errors[0].absolute_path)}")

    ifmr = {"act_algo": "ifmr", "max_percentile": 0.999999, "min_percentile": 0.999999,
            "search_range": [0.7, 1.3], "search_step": 0.01, "quant_granularity": 0}
    hfmg = {"act_algo": "hfmg", "num_of_bins": 4096, "quant_granularity": 0}
    good = {"batch_num": 1, "activation_offset": True,
            "k": {"kv_data_quant_config": ifmr}, "v": {"kv_data_quant_config": hfmg}}
    if list(validator.iter_errors(good)):
        failures.append("the base document of the negative cases is not valid")

    def broken(change):
        doc = copy.deepcopy(good)
        change(doc)
        return doc

    negative = {
        "batch_num 0": broken(lambda d: d.update(batch_num=0)),
        "batch_num above uint32": broken(lambda d: d.update(batch_num=4294967296)),
        "batch_num a string": broken(lambda d: d.update(batch_num="1")),
        "activation_offset 1": broken(lambda d: d.update(activation_offset=1)),
        "no batch_num": broken(lambda d: d.pop("batch_num")),
        "no layer": {"batch_num": 1, "activation_offset": True},
        "layer not an object": broken(lambda d: d.update(batch_nun=3)),
        "no kv_data_quant_config": broken(lambda d: d.update(k={})),
        "unknown key in a layer": broken(lambda d: d["k"].update(extra=1)),
        "no act_algo": broken(lambda d: d["k"]["kv_data_quant_config"].pop("act_algo")),
        "unknown act_algo": broken(lambda d: d["k"]["kv_data_quant_config"].update(act_algo="ifmx")),
        "max_percentile 1.5": broken(lambda d: d["k"]["kv_data_quant_config"].update(max_percentile=1.5)),
        "max_percentile 0.5": broken(lambda d: d["k"]["kv_data_quant_config"].update(max_percentile=0.5)),
        "search_step 0": broken(lambda d: d["k"]["kv_data_quant_config"].update(search_step=0.0)),
        "search_range of 3": broken(lambda d: d["k"]["kv_data_quant_config"].update(search_range=[0.7, 1.0, 1.3])),
        "quant_granularity 2": broken(lambda d: d["k"]["kv_data_quant_config"].update(quant_granularity=2)),
        "asymmetric 1": broken(lambda d: d["k"]["kv_data_quant_config"].update(asymmetric=1)),
        "num_of_bins in ifmr": broken(lambda d: d["k"]["kv_data_quant_config"].update(num_of_bins=4096)),
        "num_of_bins 100": broken(lambda d: d["v"]["kv_data_quant_config"].update(num_of_bins=100)),
        "hfmg without num_of_bins": broken(lambda d: d["v"]["kv_data_quant_config"].pop("num_of_bins")),
        "search_step in hfmg": broken(lambda d: d["v"]["kv_data_quant_config"].update(search_step=0.01)),
        "a top-level array": [good],
    }
    for name, doc in negative.items():
        if not list(validator.iter_errors(doc)):
            failures.append(f"the schema accepts an invalid document: {name}")

    for f in failures:
        print("FAIL:", f)
    print(f"{len(documents)} expected.json files checked, {len(negative)} invalid documents rejected"
          if not failures else f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
