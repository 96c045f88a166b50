#!/usr/bin/env bash
# CI smoke run of the libFuzzer harness (tests/fuzz/fuzz_abi.cpp) on a
# host-only ASan+UBSan build: builds libslay's internal archive with clang
# in build-fuzz (-Dgpu=disabled, coverage instrumentation), links the
# harness, fuzzes from a copy of tests/fuzz/corpus for SLAY_FUZZ_SECONDS
# (default 60) and prints the harness's figures. Exit status non-zero on any
# invariant violation, sanitizer report, crash or hang (-timeout per input).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${SLAY_FUZZ_SECONDS:-60}
dir=build-fuzz
cuda_lib=${CUDA_HOME:-/usr/local/cuda}/lib64
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$dir" -Dgpu=disabled -Dtests=false -Dexamples=false \
    -Dbuildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null
fi
ninja -C "$dir" src/libslay_internal.a >/dev/null
# The harness calls only the public ABI; it links the internal archive
# because the shared library's -Wl,--no-undefined rejects clang's ASan runtime.
clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iinclude tests/fuzz/fuzz_abi.cpp "$dir/src/libslay_internal.a" \
  -L"$cuda_lib" -Wl,-rpath,"$cuda_lib" -lcudart -lcurand -o "$dir/fuzz_abi"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/corpus/* "$work/"
cd "$work"  # crash-* artifacts land here and are printed by libFuzzer
"$OLDPWD/$dir/fuzz_abi" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$OLDPWD/$dir/" "$work" 2>&1 | grep -E "^fuzz figures|VIOLATION|ERROR|runtime error|SUMMARY|Done [0-9]+ runs|crash-|timeout-"
exit "${PIPESTATUS[0]}"
