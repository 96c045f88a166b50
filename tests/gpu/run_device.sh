#!/usr/bin/env bash
# Runs on the GPU machine (device tool), in one call: builds libslay for sm_90
# with the carried doctest headers, runs the whole test suite (the GPU suite
# included), a compute-sanitizer memcheck over the small cases named
# *sanitizer* of each GPU doctest binary, the example and the benchmarks if
# present. Logs go under $OUT (at most 8 files come back):
#   device.txt     GPU, driver, nvcc
#   tests.log      run_tests.sh output (ends with "N passed, N failed, N skipped")
#   testlog.txt    meson's full test log (the GPU tables: lines starting with '|')
#   gpu_tables.txt the table lines of the GPU suites, extracted from testlog.txt
#   sanitizer.log  compute-sanitizer memcheck of the *sanitizer* cases
#   example.log    the C example
#   bench.log      quick benchmark: compare_torch.py, slay_anchor (R=2 M=16 P=32)
#                  vs torch SDPA at B=4 H=12 D=64 causal, T 4096 and 32768,
#                  bf16 and fp32, forward and forward+backward (when torch is there)
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
rc=${PIPESTATUS[0]}
cp build-gpu/meson-logs/testlog.txt "$OUT/testlog.txt" 2>/dev/null
grep -E '^\| ' build-gpu/meson-logs/testlog.txt > "$OUT/gpu_tables.txt" 2>/dev/null

# Memcheck over small cases only (the sanitizer slows kernels ~100x): every
# GPU doctest binary runs its test cases named *sanitizer*.
: > "$OUT/sanitizer.log"
for t in build-gpu/tests/gpu/test_cuda_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  case "$t" in *test_cuda_handle) continue ;; esac
  echo "=== compute-sanitizer memcheck $t -tc=*sanitizer*" >> "$OUT/sanitizer.log"
  timeout 600 compute-sanitizer --tool memcheck --leak-check no --error-exitcode 99 \
    "$t" -tc='*sanitizer*' >> "$OUT/sanitizer.log" 2>&1
  echo "=== $t: rc=$? (0 clean, 99 memcheck errors, 77 no device)" >> "$OUT/sanitizer.log"
done
grep -E '^=== |ERROR SUMMARY' "$OUT/sanitizer.log"

[ -x build-gpu/examples/slay_example ] && build-gpu/examples/slay_example 1024 4 64 2>&1 | tee "$OUT/example.log"
: > "$OUT/bench.log"
if python3 -c 'import torch' 2>/dev/null; then
  timeout 240 python3 tests/bench/compare_torch.py build-gpu/libslay.so --variants slay_anchor \
    --B 4 --H 12 --D 64 --T 4096 32768 --dtypes bf16 fp32 --passes fwd fwdbwd --R 2 --M 16 --P 32 \
    --causal --iters 5 --warmup 2 --slow-call-s 3 >> "$OUT/bench.log" 2>&1
  echo "=== compare_torch rc=$?" >> "$OUT/bench.log"
  tail -14 "$OUT/bench.log"
fi
exit $rc  # the test suite's status
