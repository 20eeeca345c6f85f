#!/usr/bin/env bash
# The ways a downstream project consumes kvcali, each building and running tests/consumers/consumer.cpp
# (its own model graph type) and comparing the config it writes byte for byte with conformance cases'
# expected.json:
#   run_consumers.sh cmake            CMake find_package(kvcali 0.1) against a `meson install --destdir` tree
#   run_consumers.sh cmake-separate   the same with -DKVCALI_SEPARATE_COMPILATION=ON (libkvcali.a)
#   run_consumers.sh pkgconfig        pkg-config kvcali and kvcali-separate against the same kind of tree
#   run_consumers.sh meson            a Meson project with kvcali as a subproject: the overridden
#                                     dependencies, header-only and separate; nothing of kvcali installed
#   run_consumers.sh adapters         CMake kvcali::torch and kvcali::onnx, pkg-config kvcali-torch, kvcali-onnx
# Environment (tests/consumers/meson.build): KVCALI_SOURCE_ROOT, KVCALI_BUILD_ROOT (installed from, not
# rebuilt), KVCALI_CXX (the build's compiler), KVCALI_MODELS_DIR (the cases as .pt and .onnx, for adapters).
set -euo pipefail
mode=$1
src=${KVCALI_SOURCE_ROOT:?}
build=${KVCALI_BUILD_ROOT:?}
cxx=${KVCALI_CXX:-c++}
cases=(b100_0001 b100_0003 asymmetric_explicit_true_with_offset_false)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL ($mode): $*" >&2; exit 1; }

# Every install goes to a prefix other than /usr (the build's, /usr/local by default) under a destdir.
install_tree() {
  meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/dest" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log"; fail "meson install"; }
  prefix=$(/usr/bin/python3 -c 'import json,sys; print([o["value"] for o in json.load(open(sys.argv[1])) if o["name"]=="prefix"][0])' \
    "$build/meson-info/intro-buildoptions.json")
  root="$tmp/dest$prefix"
  [ -f "$root/include/kvcali/kvcali.hpp" ] || fail "no headers in $root/include"
}

# check_cases PROGRAM [EXT]: runs PROGRAM on each case (its model.json, or the case's model made as
# .EXT) and compares the output with expected.json.
check_cases() {
  local program=$1 ext=${2:-}
  for c in "${cases[@]}"; do
    local dir="$src/tests/conformance/cases/$c" model
    model="$dir/model.json"
    [ -n "$ext" ] && model="${KVCALI_MODELS_DIR:?}/$c.$ext"
    rm -f "$tmp/out.json"
    "$program" "$model" "$dir/quant.cfg" "$tmp/out.json" >"$tmp/run.out" 2>"$tmp/run.err" ||
      { cat "$tmp/run.err"; fail "$program on case $c"; }
    cmp "$tmp/out.json" "$dir/expected.json" || fail "$(basename "$program") on case $c: output differs from expected.json"
  done
  echo "$(basename "$program"): ${#cases[@]} cases byte-identical ($(cat "$tmp/run.out"))"
}

cmake_build() {  # cmake_build BUILD_DIR [cmake args...]
  local dir=$1; shift
  cmake -S "$src/tests/consumers/cmake" -B "$dir" -DCMAKE_PREFIX_PATH="$root" -DCMAKE_CXX_COMPILER="${cxx##* }" \
    -DCMAKE_BUILD_TYPE=Debug "$@" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; fail "cmake configure"; }
  cmake --build "$dir" -j 2 >"$tmp/cmake-build.log" 2>&1 || { cat "$tmp/cmake-build.log"; fail "cmake build"; }
}

case $mode in
cmake)
  install_tree
  cmake_build "$tmp/cm"
  check_cases "$tmp/cm/consumer"
  grep -q "header-only" "$tmp/run.out" || fail "the default kvcali::kvcali is not header-only"
  # Version checks: 0.1 is accepted (above), 1.0 is not.
  printf 'cmake_minimum_required(VERSION 3.20)\nproject(v CXX)\nfind_package(kvcali 1.0 REQUIRED)\n' >"$tmp/v.txt"
  mkdir -p "$tmp/v" && mv "$tmp/v.txt" "$tmp/v/CMakeLists.txt"
  if cmake -S "$tmp/v" -B "$tmp/v/b" -DCMAKE_PREFIX_PATH="$root" >"$tmp/v.log" 2>&1; then fail "find_package(kvcali 1.0) accepted 0.1"; fi
  grep -q "0.1.0" "$tmp/v.log" || { cat "$tmp/v.log"; fail "the version mismatch message does not name 0.1.0"; }
  ;;
cmake-separate)
  install_tree
  [ -f "$(dirname "$(find "$root" -name kvcaliConfig.cmake)")/../../libkvcali.a" ] || fail "libkvcali.a is not installed in libdir"
  cmake_build "$tmp/cm" -DKVCALI_SEPARATE_COMPILATION=ON
  check_cases "$tmp/cm/consumer"
  grep -q "separate compilation" "$tmp/run.out" || fail "KVCALI_SEPARATE_COMPILATION=ON did not define the macro"
  # It links libkvcali.a: the pipeline's definitions are not in the consumer's own object.
  obj=$(find "$tmp/cm/CMakeFiles/consumer.dir" -name 'consumer.cpp.o')
  nm -C "$obj" >"$tmp/nm.txt"
  grep -q " U kvcali::detail::resolve_table" "$tmp/nm.txt" ||
    fail "the consumer's object defines the pipeline itself"
  ;;
pkgconfig)
  install_tree
  pcdir=$(dirname "$(find "$root" -name kvcali.pc)")
  export PKG_CONFIG_PATH="$pcdir"
  pc() { pkg-config --define-variable=prefix="$root" "$@"; }
  for m in kvcali kvcali-separate; do
    grep -qi "example\|invalid\|URL:" "$pcdir/$m.pc" && fail "$m.pc has a placeholder field: $(cat "$pcdir/$m.pc")"
    [ "$(pc --modversion $m)" = "0.1.0" ] || fail "$m.pc: version $(pc --modversion $m)"
  done
  cp "$src/tests/consumers/consumer.cpp" "$tmp/"
  # shellcheck disable=SC2046
  $cxx -o "$tmp/consumer" "$tmp/consumer.cpp" $(pc --cflags --libs kvcali) -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror ||
    fail "building with pkg-config kvcali"
  check_cases "$tmp/consumer"
  # shellcheck disable=SC2046
  $cxx -o "$tmp/consumer_separate" "$tmp/consumer.cpp" $(pc --cflags --libs kvcali-separate) -Wall -Wextra -Werror ||
    fail "building with pkg-config kvcali-separate"
  check_cases "$tmp/consumer_separate"
  grep -q "separate compilation" "$tmp/run.out" || fail "kvcali-separate.pc did not define KVCALI_SEPARATE_COMPILATION"
  ;;
meson)
  proj="$tmp/proj"
  mkdir -p "$proj/subprojects"
  cp "$src/tests/consumers/meson/meson.build" "$src/tests/consumers/consumer.cpp" "$proj/"
  ln -s "$src" "$proj/subprojects/kvcali"
  meson setup "$proj/b" "$proj" --prefix=/opt/consumer >"$tmp/setup.log" 2>&1 ||
    { cat "$tmp/setup.log"; fail "meson setup of a project with kvcali as subproject"; }
  ninja -C "$proj/b" -j 2 consumer consumer_separate >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "build"; }
  check_cases "$proj/b/consumer"
  grep -q "header-only" "$tmp/run.out" || fail "dependency('kvcali') is not header-only"
  check_cases "$proj/b/consumer_separate"
  grep -q "separate compilation" "$tmp/run.out" || fail "dependency('kvcali-separate') is not the separate form"
  # Nothing of kvcali's is installed with the parent's: only its own program.
  meson introspect --installed "$proj/b" >"$tmp/installed.json"
  /usr/bin/python3 - "$tmp/installed.json" <<'PY' || fail "the subproject installs files"
import json, sys
installed = list(json.load(open(sys.argv[1])).values())
others = [p for p in installed if p != "/opt/consumer/bin/consumer"]
if others or not installed:
    print("installed besides the consumer:", others or installed, file=sys.stderr)
    sys.exit(1)
PY
  # The adapters' dependencies are overridden where they are built (kvcali-onnx, kvcali-torch).
  for d in kvcali-separate kvcali-torch kvcali-onnx; do
    grep -q "Dependency $d found: YES" "$tmp/setup.log" || { cat "$tmp/setup.log"; fail "$d not found as an overridden dependency"; }
  done
  echo "meson subproject: consumer and consumer_separate built, nothing of kvcali installed"
  ;;
adapters)
  install_tree
  cmake_build "$tmp/cm" -DCONSUMER_ADAPTERS=ON
  check_cases "$tmp/cm/consumer_torch" pt
  check_cases "$tmp/cm/consumer_onnx" onnx
  pcdir=$(dirname "$(find "$root" -name kvcali.pc)")
  export PKG_CONFIG_PATH="$pcdir"
  pc() { pkg-config --define-variable=prefix="$root" "$@"; }
  cp "$src/tests/consumers/consumer_onnx.cpp" "$tmp/"
  # shellcheck disable=SC2046
  $cxx -o "$tmp/consumer_onnx" "$tmp/consumer_onnx.cpp" $(pc --cflags --libs kvcali-onnx) -Wall -Wextra -Werror ||
    fail "building with pkg-config kvcali-onnx"
  check_cases "$tmp/consumer_onnx" onnx
  [ "$(pc --modversion kvcali-torch)" = "0.1.0" ] || fail "kvcali-torch.pc missing"
  torch_flags=$(pc --cflags kvcali-torch)
  [[ $torch_flags == *"-isystem /usr/include/torch/csrc/api/include"* ]] || fail "kvcali-torch.pc: no libtorch API include"
  ;;
headers)
  # Every installed public header on its own, in a consumer's strict flags (pkg-config's, so not as a
  # system header), with -Werror: no warning from kvcali's own code. detail/ is internal; src.hpp
  # needs the separate-compilation macro.
  install_tree
  pcdir=$(dirname "$(find "$root" -name kvcali.pc)")
  export PKG_CONFIG_PATH="$pcdir"
  pc() { pkg-config --define-variable=prefix="$root" "$@"; }
  # (-Wdouble-promotion, -Wold-style-cast and the others after -Wconversion: flags that numeric and
  # embedded code bases build with; a header warning under them would break such a build.)
  strict=(-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wdouble-promotion -Wold-style-cast -Wcast-qual
    -Wnon-virtual-dtor -Woverloaded-virtual -Werror -fsyntax-only -x c++)
  n=0
  while IFS= read -r h; do
    rel=${h#"$root/include/"}
    case $rel in
      */detail/*) continue ;;
      kvcali/adapters/torch*) mod=kvcali-torch ;;
      kvcali/adapters/onnx_file.hpp) mod=kvcali-onnx ;;
      kvcali/src.hpp) mod=kvcali-separate ;;
      *) mod=kvcali ;;
    esac
    # shellcheck disable=SC2046
    echo "#include <$rel>" | $cxx "${strict[@]}" $(pc --cflags $mod) - 2>"$tmp/h.err" ||
      { cat "$tmp/h.err"; fail "<$rel> does not compile cleanly on its own"; }
    n=$((n + 1))
  done < <(find "$root/include/kvcali" -name '*.hpp' | sort)
  [ "$n" -ge 30 ] || fail "only $n public headers found"
  echo "$n public headers compile on their own with ${strict[*]}"
  # Header-only, a TU that includes everything and calls nothing compiles none of kvcali's functions
  # (a virtual function declared plain in its class and defined inline after it is a key function:
  # its class's vtable, and all it calls, would be compiled in every TU).
  # shellcheck disable=SC2046
  printf '#include <kvcali/kvcali.hpp>\nint main() { return 0; }\n' |
    $cxx -std=c++20 -O0 -c -x c++ $(pc --cflags kvcali) -o "$tmp/unused.o" - || fail "<kvcali/kvcali.hpp> does not compile"
  emitted=$(nm -C "$tmp/unused.o" | grep -E ' [TtWw] kvcali::' || true)
  [ -z "$emitted" ] || { echo "$emitted" | head -20; fail "a TU calling nothing compiled kvcali functions"; }
  echo "a TU that includes <kvcali/kvcali.hpp> and calls nothing compiles none of kvcali's functions"
  ;;
*) echo "unknown mode $mode" >&2; exit 2 ;;
esac
echo "PASS ($mode)"
