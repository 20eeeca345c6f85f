#!/usr/bin/python3
"""Turns every conformance case's model.json into a real model file, at test time:

    /usr/bin/python3 tests/models/make_models.py CASES_DIR OUT_DIR [--torchscript] [--onnx]

For each case directory CASES_DIR/<case> holding a model.json it writes OUT_DIR/<case>.pt
(TorchScript, torch.jit.script of an nn.Module tree) and/or OUT_DIR/<case>.onnx (a graph of one node
per layer), then OUT_DIR/models.stamp. A case whose model.json is not a plain layer list (the cases
about bad model files) gets no model file; the runners read those from model.json as they are.

The layer table is the layer list's (README: "layer list"): the dotted prefixes of every name are
containers of type `Module`, each placed just before its first descendant; an entry naming such a
prefix later sets its type and keeps that place.

TorchScript: `Linear` is torch.nn.Linear; `MyLinear` a subclass of it (another class name, so not
eligible); `Module` is torch.nn.Module; every other type is an nn.Module subclass of that name. The
file's modules are the table's rows, in its order, each registered under its parent.

ONNX: one node per table row in table order, named as the layer; `Linear` becomes a `MatMul` node,
every other type a node whose op_type is the type (not eligible).
"""
import json
import os
import sys


def layer_table(entries):
    """[(name, type)] in table order, or None when the file is not a plain layer list."""
    if not isinstance(entries, list):
        return None
    order, types, explicit = [], {}, set()
    for e in entries:
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not isinstance(e.get("type"), str):
            return None
        name, typ = e["name"], e["type"]
        if name == "" or name in explicit:
            return None  # not a valid layer list: the runners expect the layer list's own error
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix and prefix not in types:
                types[prefix] = "Module"
                order.append(prefix)
        if name not in types:
            order.append(name)
        types[name] = typ
        explicit.add(name)
    return [(n, types[n]) for n in order]


def dims(entries):
    out = {}
    for e in entries:
        i, o = e.get("in"), e.get("out")
        out[e["name"]] = (i if isinstance(i, int) and i > 0 else 4, o if isinstance(o, int) and o > 0 else 4)
    return out


def write_torchscript(table, sizes, path, classes):
    import torch
    from torch import nn

    def make(typ, name):
        i, o = sizes.get(name, (4, 4))
        i, o = min(i, 64), min(o, 64)  # the weights' size does not matter, only the module tree
        if typ == "Linear":
            return nn.Linear(i, o, bias=False)
        if typ == "Module":
            return nn.Module()
        if typ not in classes:
            base = nn.Linear if typ == "MyLinear" else nn.Module
            classes[typ] = type(typ, (base,), {"__module__": "kvcali_models"})
        return classes[typ](i, o, bias=False) if typ == "MyLinear" else classes[typ]()

    root = nn.Module()
    modules = {"": root}
    for name, typ in table:
        parent, _, leaf = name.rpartition(".")
        m = make(typ, name)
        modules[parent].add_module(leaf, m)
        modules[name] = m
    torch.jit.save(torch.jit.script(root), path)


def write_onnx(table, path):
    import onnx
    from onnx import helper

    nodes = []
    for k, (name, typ) in enumerate(table):
        op = "MatMul" if typ == "Linear" else typ
        nodes.append(helper.make_node(op, [f"x{k}", f"w{k}"] if op == "MatMul" else [f"x{k}"], [f"y{k}"], name=name))
    graph = helper.make_graph(nodes, "model", [], [])
    model = helper.make_model(graph, producer_name="kvcali-tests")
    onnx.save(model, path)


def main(argv):
    cases, out = argv[1], argv[2]
    kinds = [a for a in argv[3:]] or ["--torchscript", "--onnx"]
    os.makedirs(out, exist_ok=True)
    classes = {}
    made = {"pt": 0, "onnx": 0, "skipped": 0}
    for case in sorted(os.listdir(cases)):
        model_json = os.path.join(cases, case, "model.json")
        if not os.path.isfile(model_json):
            continue
        try:
            with open(model_json, encoding="utf-8") as f:
                entries = json.load(f)
        except (ValueError, UnicodeDecodeError):
            entries = None
        table = layer_table(entries)
        if table is None:
            made["skipped"] += 1
            continue
        if "--torchscript" in kinds:
            write_torchscript(table, dims(entries), os.path.join(out, case + ".pt"), classes)
            made["pt"] += 1
        if "--onnx" in kinds:
            write_onnx(table, os.path.join(out, case + ".onnx"))
            made["onnx"] += 1
    with open(os.path.join(out, "models.stamp"), "w") as f:
        json.dump(made, f)
    print(f"models: {made['pt']} TorchScript, {made['onnx']} ONNX, {made['skipped']} cases without a plain layer list")


if __name__ == "__main__":
    main(sys.argv)
