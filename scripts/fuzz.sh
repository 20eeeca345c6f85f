#!/usr/bin/env bash
# Bounded fuzzing of kvcali's input readers with libFuzzer (clang 14, ASan + UBSan).
#   scripts/fuzz.sh                 every target, about a minute each
#   scripts/fuzz.sh npy quant_cfg   only these targets
#   FUZZ_SECONDS=300 scripts/fuzz.sh   longer runs
# Targets (tests/fuzz/fuzz_<target>.cpp): quant_cfg (text format and JSON form), layer_list,
# config_json, npy, safetensors. Seeds: the conformance cases and calibration data (tests/conformance,
# tests/calibration/data), tests/fuzz/seeds/<target>, tests/fuzz/regressions/<target>.
# Binaries, corpora and logs go to build-fuzz/. A crash leaves build-fuzz/<target>/crash-*; copy it
# into tests/fuzz/regressions/<target>/ once fixed, and the test suite replays it from then on.
# Exit status: 0 when no target found anything.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_DIR:-$root/build-fuzz}
cxx=${FUZZ_CXX:-clang++-14}
command -v "$cxx" >/dev/null || cxx=clang++
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(quant_cfg layer_list config_json npy safetensors)

# libFuzzer's runtime ships in libclang-rt-14-dev.
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }' |
     "$cxx" -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  echo "fuzz.sh: $cxx cannot link -fsanitize=fuzzer: install libclang-rt-14-dev" >&2
  exit 2
fi

seed() {  # seed TARGET DIR: the starting corpus
  local target=$1 dir=$2
  mkdir -p "$dir"
  case $target in
    quant_cfg)
      for f in tests/conformance/cases/*/quant.cfg tests/calibration/data/e2e/*/quant.cfg; do
        cp "$f" "$dir/$(basename "$(dirname "$f")").cfg"
      done ;;
    layer_list)
      for f in tests/conformance/cases/*/model.json tests/calibration/data/e2e/*/model.json; do
        cp "$f" "$dir/$(basename "$(dirname "$f")").json"
      done ;;
    config_json)
      for f in tests/conformance/cases/*/expected.json tests/calibration/data/e2e/*/expected_config.json; do
        cp "$f" "$dir/$(basename "$(dirname "$f")").json"
      done ;;
  esac
  [ -d "tests/fuzz/seeds/$target" ] && cp tests/fuzz/seeds/"$target"/* "$dir/" 2>/dev/null
  find "tests/fuzz/regressions/$target" -type f ! -name .keep -exec cp {} "$dir/" \; 2>/dev/null
  return 0
}

failed=0
summary=()
for target in "${targets[@]}"; do
  src=tests/fuzz/fuzz_$target.cpp
  if [ ! -f "$src" ]; then echo "fuzz.sh: no target $target ($src)" >&2; exit 2; fi
  work=$out/$target
  mkdir -p "$work/corpus"
  exe=$work/fuzz_$target
  echo "== $target: build"
  if ! "$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
       -fno-sanitize-recover=undefined -Iinclude "$src" -lboost_json -o "$exe" 2>"$work/build.log"; then
    cat "$work/build.log"; failed=1; summary+=("$target: build failed"); continue
  fi
  seed "$target" "$work/seeds"
  echo "== $target: fuzz for ${seconds}s ($(ls "$work/seeds" | wc -l) seeds)"
  ( cd "$work" && UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ./fuzz_"$target" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 corpus seeds ) >"$work/fuzz.log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz.log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -1)
  crashes=$(find "$work" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  line="$target: ${execs:-0} execs in ${seconds}s, ${cov:-cov: ?}, corpus $(ls "$work/corpus" | wc -l) files, $crashes findings (exit $rc)"
  echo "$line"
  summary+=("$line")
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    grep -m1 -A30 'ERROR\|runtime error\|deadly signal' "$work/fuzz.log" | head -40
  fi
done
echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
exit $failed
