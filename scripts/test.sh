#!/usr/bin/env bash
# The whole test suite, from a clean checkout on Debian 12: installs what is missing, builds with
# g++ (every feature on: torch and ONNX adapters), runs every test, builds and runs the core tests
# with clang 14 and the suite again under ASan+UBSan, and ends with the line "N passed, N failed"
# counting all three.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

failed_builds=0
logs=()
stage_times=()

run_suite() {  # run_suite NAME BUILD_DIR [meson setup args...]
  local name=$1 dir=$2; shift 2
  local t0=$SECONDS
  echo "== $name: configure and build ($dir)"
  if [ ! -f "$dir/build.ninja" ]; then
    if ! meson setup "$dir" "$@" >"$dir.setup.log" 2>&1; then
      cat "$dir.setup.log"; echo "!! $name: meson setup failed"; failed_builds=$((failed_builds + 1)); return
    fi
  fi
  if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
    tail -n 60 "$dir.build.log"; echo "!! $name: build failed"; failed_builds=$((failed_builds + 1)); return
  fi
  local t1=$SECONDS
  echo "== $name: test"
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 "${suite_args[@]}" 2>&1 | tail -n 60
  local t2=$SECONDS
  local count
  count=$(grep -c . "$dir/meson-logs/testlog.json" 2>/dev/null || echo 0)
  stage_times+=("$(printf '%-22s build %4d s, test %4d s, %3d tests' "$name" $((t1 - t0)) $((t2 - t1)) "$count")")
  logs+=("$dir/meson-logs/testlog.json")
}

# Stage 1: g++ 12, every feature (torch and ONNX adapters, the Python module, examples, benchmark
# smoke runs), -O2 without debug information (assertions stay on).
suite_args=()
run_suite "g++ 12, all features" build-test -Dtorch=enabled -Donnx=enabled -Dpython=enabled -Ddebug=false -Doptimization=2 -Db_ndebug=false

# Stage 2: clang 14 (libstdc++ 12) at -O1: the library headers, the CLI and the core, CLI, cfg,
# reader, calibration and hostile tests.
suite_args=(--suite core --suite cli --suite cfg --suite reader --suite calibration --suite export --suite hostile)
CXX=clang++ run_suite "clang 14, core" build-clang -Dtorch=disabled -Donnx=disabled -Dpython=disabled -Dbenchmarks=false \
  -Dexamples=false -Ddebug=false -Doptimization=1 -Db_ndebug=false

# Stage 3: g++ 12 under AddressSanitizer + UndefinedBehaviorSanitizer: every test of the first stage
# but the torch and ONNX adapter tests, the torch example, the Python module and the benchmarks
# (libtorch, libonnx and python3 are not built with the sanitizers); the first sanitizer report
# fails the test. -O0 with line tables only: the quickest build (at -O2 it took four times as long).
# There the tests that feed one path many random or very large inputs take a smaller sample
# (kvcali_test::sanitized in tests/support/test_support.hpp: the regex differential test, the 4M-field
# document, every fourth conformance case through the CLI, ...): the same code, minutes instead of
# a quarter of an hour; the first two stages run them in full. The compile-only checks of each
# header alone are not built there.
suite_args=(--timeout-multiplier 4)
ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1 \
UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
  run_suite "g++ 12, ASan+UBSan" build-asan -Db_sanitize=address,undefined -Db_lundef=false -Ddebug=false \
    -Doptimization=0 -Db_ndebug=false "-Dcpp_args=['-g1']" -Dtorch=disabled -Donnx=disabled -Dpython=disabled \
    -Dbenchmarks=false

echo "== stages (wall time, $(nproc) cores)"
for line in "${stage_times[@]}"; do echo "   $line"; done
echo "   total $SECONDS s"

/usr/bin/python3 - "$failed_builds" "${logs[@]}" <<'PY'
import json, sys
failed_builds = int(sys.argv[1])
passed = failed = skipped = 0
for path in sys.argv[2:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
failed += failed_builds
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
sys.exit(1 if failed or skipped else 0)
PY
