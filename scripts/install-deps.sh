#!/usr/bin/env bash
# Installs what kvcali needs on Debian 12, and only what is missing. Run as root (or with sudo).
#   scripts/install-deps.sh          everything: library, CLI, adapters, tests, fuzzing
#   scripts/install-deps.sh --core   just enough to build the library and the CLI
set -euo pipefail

core=(g++ meson ninja-build pkg-config libboost1.81-dev libboost-json1.81-dev libboost-test1.81-dev)
full=("${core[@]}" clang libclang-rt-14-dev protobuf-compiler libprotobuf-dev python3 python3-protobuf
      python3-jsonschema python3-numpy libonnx-dev python3-onnx libtorch-dev python3-torch pybind11-dev cmake chromium)

wanted=("${full[@]}")
[ "${1:-}" = "--core" ] && wanted=("${core[@]}")

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
