#!/usr/bin/env python3
"""Writes made-up activations for the bundled example (model.json, quant.cfg beside this file), in
the layout `kvcali calibrate --activations DIR` reads: DIR/<layer>/<k>.npy, batch k of the layer's
output, float16, shape [tokens, 4096]. Standard library only (meson already needs python3).

    python3 examples/llama/make_activations.py OUT_DIR [--tokens 32]

The values are deterministic (a fixed seed): per channel a normal distribution whose width varies
by channel (K projections: a few wide channels, as real keys have), plus rare outliers, so that the
algorithms have something to decide.
"""
import argparse
import os
import random
import struct
import sys

LAYERS = [f"model.layers.{i}.self_attn.{p}_proj" for i in range(4) for p in ("k", "v")]
CHANNELS = 4096
BATCHES = 4


def npy_bytes(values, tokens, channels):
    header = "{'descr': '<f2', 'fortran_order': False, 'shape': (%d, %d), }" % (tokens, channels)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + struct.pack(
        "<%de" % len(values), *values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    rng = random.Random(20261201)
    for layer in LAYERS:
        is_key = ".k_proj" in layer
        widths = [rng.uniform(0.2, 1.0) * (8.0 if is_key and c % 128 == 0 else 1.0) for c in range(CHANNELS)]
        means = [rng.uniform(-0.3, 0.3) for _ in range(CHANNELS)]
        folder = os.path.join(args.out_dir, layer)
        os.makedirs(folder, exist_ok=True)
        for k in range(BATCHES):
            values = []
            for _ in range(args.tokens):
                for c in range(CHANNELS):
                    x = rng.gauss(means[c], widths[c])
                    if rng.random() < 1e-4:
                        x *= 12.0
                    values.append(x)
            with open(os.path.join(folder, f"{k}.npy"), "wb") as f:
                f.write(npy_bytes(values, args.tokens, CHANNELS))
    print(f"wrote {len(LAYERS)} layers x {BATCHES} batches of [{args.tokens}, {CHANNELS}] float16 to {args.out_dir}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
