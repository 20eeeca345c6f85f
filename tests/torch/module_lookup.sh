#!/bin/sh
# `kvcali` opens its TorchScript module (libkvcali-torchscript.so) only for .pt models, and looks
# for it beside the executable, in <exe>/../<libdir>/kvcali, the install folder and
# $KVCALI_MODULE_DIR. A copy of the tool away from its module must say so (and name the variable);
# with KVCALI_MODULE_DIR it must read the model; laid out as an install tree (bin/ beside
# <libdir>/kvcali/) it must find the module there; a JSON model never needs the module.
# Usage: module_lookup.sh LIBDIR (meson's libdir option, e.g. lib/x86_64-linux-gnu)
set -u
libdir=${1:?usage: module_lookup.sh LIBDIR}
exe=$KVCALI_EXE
src=$KVCALI_SOURCE_ROOT
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$exe" "$tmp/kvcali"
fail() { echo "FAIL: $*"; exit 1; }

env -u KVCALI_MODULE_DIR "$tmp/kvcali" layers --model "$src/tests/torch/fixtures/llama_scripted.pt" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "without the module: exit $rc, expected 1"
grep -q "libkvcali-torchscript.so is not installed" "$tmp/err" || fail "without the module: $(cat "$tmp/err")"
grep -q "KVCALI_MODULE_DIR" "$tmp/err" || fail "the message does not name KVCALI_MODULE_DIR: $(cat "$tmp/err")"
grep -q "llama_scripted.pt: error:" "$tmp/err" || fail "the message does not name the model: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "without the module, something was printed on stdout"

KVCALI_MODULE_DIR=$(dirname "$exe") "$tmp/kvcali" layers --model "$src/tests/torch/fixtures/llama_scripted.pt" >"$tmp/out" 2>"$tmp/err" ||
  fail "with KVCALI_MODULE_DIR: $(cat "$tmp/err")"
grep -q "model.layers.0.self_attn.k_proj" "$tmp/out" || fail "with KVCALI_MODULE_DIR: no k_proj listed"

mkdir -p "$tmp/tree/bin" "$tmp/tree/$libdir/kvcali"
cp "$exe" "$tmp/tree/bin/kvcali"
cp "$(dirname "$exe")/libkvcali-torchscript.so" "$tmp/tree/$libdir/kvcali/"
env -u KVCALI_MODULE_DIR "$tmp/tree/bin/kvcali" layers --model "$src/tests/torch/fixtures/llama_scripted.pt" >"$tmp/out" 2>"$tmp/err" ||
  fail "installed as bin/ and $libdir/kvcali/: $(cat "$tmp/err")"
grep -q "model.layers.0.self_attn.k_proj" "$tmp/out" || fail "installed layout: no k_proj listed"

env -u KVCALI_MODULE_DIR "$tmp/kvcali" layers --model "$src/examples/llama/model.json" >"$tmp/out" 2>"$tmp/err" ||
  fail "a JSON model needed the module: $(cat "$tmp/err")"
echo "module lookup: 4 checks passed"
