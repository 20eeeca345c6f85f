#!/usr/bin/env bash
# The main job on the bundled example: install what is missing, build the kvcali CLI, write the
# config of a LLaMA-shaped model from its quant.cfg, and print it; then the round trip to a serving
# engine's files: made-up activations, calibrate (the record file), export (MindIE's C8 layout).
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
# The round trip: activations (deterministic, made up) -> record -> ascend-c8 export.
q=build-quickstart
rm -rf "$q/act" "$q/export"
python3 examples/llama/make_activations.py "$q/act"
./$q/tools/kvcali calibrate --config $q/config.json -a $q/act -o $q/record.txt --quiet
./$q/tools/kvcali export --record $q/record.txt --config $q/config.json --format ascend-c8 -o $q/export
