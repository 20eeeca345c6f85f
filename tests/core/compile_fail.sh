#!/bin/sh
# compile_fail.sh EXPECTED SOURCE COMPILER [ARGS...]: SOURCE must fail to compile with EXPECTED in the messages.
expected=$1; source=$2; shift 2
out=$("$@" -fsyntax-only "$source" 2>&1) && { echo "compiled, but must not: $source"; exit 1; }
printf '%s\n' "$out" | grep -qF -- "$expected" || { printf '%s\n' "$out" | head -40; echo "message lacks: $expected"; exit 1; }
echo "fails to compile as expected, with: $expected"
