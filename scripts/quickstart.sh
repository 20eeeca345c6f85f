#!/usr/bin/env bash
# The main job on the bundled example: install what is missing, build the kvcali CLI, write the
# config of a LLaMA-shaped model from its quant.cfg, and print it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --core
[ -f build-quickstart/build.ninja ] || meson setup build-quickstart -Dtorch=auto -Donnx=auto -Dtests=false \
    -Dbenchmarks=false -Dexamples=false --buildtype=release >/dev/null
ninja -C build-quickstart tools/kvcali >/dev/null
./build-quickstart/tools/kvcali generate --model examples/llama/model.json --cfg examples/llama/quant.cfg \
    -o build-quickstart/config.json
cat build-quickstart/config.json
echo
