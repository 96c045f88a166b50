#!/usr/bin/env bash
# Runs on the GPU machine (device tool): builds libslay for sm_90 with the
# carried doctest headers, runs the whole test suite (the GPU suite included)
# and the example, and writes logs under $OUT.
#   carry: third_party   (third_party/doctest/doctest.h copied from Debian's doctest-dev)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/slay-out}
mkdir -p "$OUT"
export PATH="/usr/local/cuda/bin:$PATH"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; } \
  2>&1 | tee "$OUT/device.txt"
SLAY_BUILD_DIR=build-gpu bash tests/run_tests.sh -Dgpu_archs=90 -Ddoctest_include="$PWD/third_party" \
  2>&1 | tee "$OUT/tests.log"
cp build-gpu/meson-logs/testlog.txt "$OUT/testlog.txt" 2>/dev/null
build-gpu/examples/slay_example 1024 4 64 2>&1 | tee "$OUT/example.log"
