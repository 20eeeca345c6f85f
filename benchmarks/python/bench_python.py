#!/usr/bin/python3
"""kvcali.create_quant_cali_config on a LLaMA-shaped torch.nn.Module vs `kvcali generate` on the same
layer list (benchmarks/generate/synthetic_llama.hpp: 14 modules per decoder block, K and V
projections in quant.cfg, every other V projection overridden to HFMG).

    PYTHONPATH=build/adapters/python /usr/bin/python3 benchmarks/python/bench_python.py build/tools/kvcali [--kv-layers 20000] [--repeat 3]

Prints the best of --repeat runs of each, and the per-layer Python overhead: (Python call - CLI run)
divided by the model's layer count. The two configs must be the same bytes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from torch import nn

import kvcali


def llama_layer_list(blocks):
    out = [("model", "LlamaModel"), ("model.embed_tokens", "Embedding"), ("model.layers", "ModuleList")]
    for b in range(blocks):
        p = f"model.layers.{b}"
        out += [(p, "LlamaDecoderLayer"), (p + ".self_attn", "LlamaAttention")]
        out += [(p + ".self_attn." + n, "Linear") for n in ("q_proj", "k_proj", "v_proj", "o_proj")]
        out += [(p + ".self_attn.rotary_emb", "LlamaRotaryEmbedding"), (p + ".mlp", "LlamaMLP")]
        out += [(p + ".mlp." + n, "Linear") for n in ("gate_proj", "up_proj", "down_proj")]
        out += [(p + ".mlp.act_fn", "SiLUActivation"), (p + ".input_layernorm", "LlamaRMSNorm"),
                (p + ".post_attention_layernorm", "LlamaRMSNorm")]
    return out + [("model.norm", "LlamaRMSNorm"), ("lm_head", "Linear")]


def llama_quant_cfg(blocks):
    out = "batch_num: 4\nkv_cache_quant_config {\n"
    for b in range(blocks):
        p = f'    quant_layers: "model.layers.{b}.self_attn.'
        out += p + 'k_proj"\n' + p + 'v_proj"\n'
    out += "    calibration_config { ifmr_quantize { search_range_start: 0.7 search_range_end: 1.3 search_step: 0.01 } }\n}\n"
    for b in range(0, blocks, 2):
        out += (f'override_layers_configs {{\n    layer_name: "model.layers.{b}.self_attn.v_proj"\n'
                "    kv_data_quant_config { hfmg_quantize { num_of_bins: 2048 } }\n}\n")
    return out


def build_model(table):
    classes = {}
    root = nn.Module()
    modules = {"": root}
    for name, typ in table:
        if typ == "Linear":
            m = nn.Linear(1, 1)
        else:
            if typ not in classes:
                classes[typ] = type(typ, (nn.Module,), {})
            m = classes[typ]()
        parent, _, leaf = name.rpartition(".")
        modules[parent].add_module(leaf, m)
        modules[name] = m
    return root


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("cli", help="the kvcali command-line tool (build/tools/kvcali)")
    ap.add_argument("--kv-layers", type=int, default=20000, help="K and V projections (2 per decoder block)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    blocks = max(1, args.kv_layers // 2)
    table = llama_layer_list(blocks)
    t = time.perf_counter()
    model = build_model(table)
    built = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        model_json, qcfg = os.path.join(tmp, "model.json"), os.path.join(tmp, "quant.cfg")
        with open(model_json, "w") as f:
            json.dump([{"name": n, "type": ty} for n, ty in table], f, indent=0)
        with open(qcfg, "w") as f:
            f.write(llama_quant_cfg(blocks))
        py_out, cli_out = os.path.join(tmp, "py.json"), os.path.join(tmp, "cli.json")
        walk = best(lambda: kvcali.layers_of(model), args.repeat)
        py = best(lambda: kvcali.create_quant_cali_config(py_out, model, config_defination=qcfg), args.repeat)
        cmd = [args.cli, "generate", "--model", model_json, "--cfg", qcfg, "-o", cli_out, "--quiet"]
        cli = best(lambda: subprocess.run(cmd, check=True), args.repeat)
        with open(py_out, "rb") as f, open(cli_out, "rb") as g:
            same = f.read() == g.read()
    n = len(table)
    print(f"model: {blocks} decoder blocks, {n} layers ({2 * blocks} KV layers); nn.Module built in {built:.2f} s")
    print(f"python  kvcali.create_quant_cali_config: {py * 1e3:9.1f} ms  ({py / n * 1e6:.2f} us/layer; named_modules walk {walk * 1e3:.1f} ms)")
    print(f"cli     kvcali generate (model.json):    {cli * 1e3:9.1f} ms  ({cli / n * 1e6:.2f} us/layer)")
    print(f"python overhead vs cli: {(py - cli) / n * 1e6:+.2f} us/layer ({py / cli:.2f}x)")
    print(f"same bytes: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
