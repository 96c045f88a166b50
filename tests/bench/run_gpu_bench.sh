#!/usr/bin/env bash
# Runs on the GPU machine (device tool), after tests/gpu/run_device.sh built
# build-gpu (it builds slay-bench there if needed): all four slay-bench modes
# at the issue's sizes on the CUDA backend (variants it lacks answer
# NOT_SUPPORTED and the sweep goes on), compare_torch.py for the key shapes
# (slay_anchor R=2 M=16 P=32 and standard, B=4 H=12 D=64, T in {4096, 32768},
# bf16 and fp32, causal, fwd and fwd+bwd), then the plots. Each step has a time
# limit so the whole run stays under 8 minutes.
# Writes under $OUT (at most 8 files):
#   bench_results.tar.gz   results/: every JSON, Markdown table and plot (SVG, PNG)
#   summary.md             all Markdown tables, device named
#   run.log                progress and messages of every step
#   device.txt             nvidia-smi and nvcc versions
# Usage: OUT=/some/dir bash tests/bench/run_gpu_bench.sh [build-dir]
#   SLAY_BENCH_LIMIT_PCT=25 scales every step's time limit (a quick smoke run).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/slay-bench-out}
BUILD=${1:-build-gpu}
RES=$OUT/results
mkdir -p "$RES"
export PATH="/usr/local/cuda/bin:$PATH"
LOG=$OUT/run.log
: >"$LOG"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; } \
  >"$OUT/device.txt" 2>&1
cat "$OUT/device.txt" >>"$LOG"
ninja -C "$BUILD" tests/bench/slay-bench >>"$LOG" 2>&1 || { echo "slay-bench build failed" | tee -a "$LOG"; exit 1; }
BENCH=$BUILD/tests/bench/slay-bench
SCALING_VARIANTS=standard,yat_spherical,slay_anchor,slay_laplace,performer,linear,cosformer

# step NAME LIMIT_S ARGS...: one slay-bench run with its own time limit (plus a hard stop).
limit_s() { echo $(($1 * ${SLAY_BENCH_LIMIT_PCT:-100} / 100)); }
step() {
  local name=$1 limit
  limit=$(limit_s "$2")
  shift 2
  echo "== $name (limit ${limit}s): $*" | tee -a "$LOG"
  timeout $((limit + 60)) "$BENCH" --backend cuda --time-limit-s "$limit" --json "$RES/$name.json" \
    --markdown "$RES/$name.md" "$@" >/dev/null 2>>"$LOG"
  echo "   exit $?" | tee -a "$LOG"
}

# Document 000's setup: causal, B=1, H=8, D=32, T = 128 .. 131072; SLAY = slay_anchor R=2 M=16 P=32.
step scaling_fwd_fp32 65 --mode scaling --variants $SCALING_VARIANTS --T 128:131072 --B 1 --H 8 --D 32 \
  --dtype fp32 --pass fwd --warmup 1 --repeats 3 --max-call-s 2
step scaling_fwdbwd_fp32 65 --mode scaling --variants $SCALING_VARIANTS --T 128:131072 --B 1 --H 8 --D 32 \
  --dtype fp32 --pass fwdbwd --warmup 1 --repeats 3 --max-call-s 3
step scaling_fwd_bf16 35 --mode scaling --variants $SCALING_VARIANTS --T 128:131072 --B 1 --H 8 --D 32 \
  --dtype bf16 --pass fwd --warmup 1 --repeats 3 --max-call-s 2
# Document 004's grid: seq_len x d_model, forward/backward/memory (H=1, B=8).
step grid_fwdbwd_fp32 25 --mode scaling --variants standard,slay_anchor --T 256,1024,4096,8192,16384 \
  --B 8 --H 1 --D 16,32,64,128 --dtype fp32 --pass fwdbwd --warmup 1 --repeats 3 --max-call-s 2
# SPEC §E.3 (a): Small/Medium/Large triples, over T and D.
step quality 45 --mode quality --T 128,256,512 --D 16,64 --B 1 --H 4 --rmp 2x8x8,2x16x16,2x32x32 \
  --warmup 1 --repeats 3
# SPEC §E.4: R x M x P for anchor and Laplace (T=256, B=4, H=4, D=16).
step budget 45 --mode budget --variants slay_anchor,slay_laplace --T 256 --B 4 --H 4 --D 16 \
  --R 1,2,4,8 --M 8,16,32,64 --P 8,16,32,64 --warmup 1 --repeats 5
# SPEC §E.5: longest T within a 4 GB budget, forward (inference), up to 2^20 tokens.
step max_context 45 --mode max-context --variants $SCALING_VARIANTS --T 1024 --B 1 --H 8 --D 32 \
  --budget-mb 4096 --T-max 1048576 --granularity 1024 --max-call-s 3

# libslay vs torch SDPA on the same tensors.
echo "== compare_torch" | tee -a "$LOG"
timeout $(($(limit_s 90) + 60)) python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants slay_anchor standard \
  --B 4 --H 12 --D 64 --T 4096 32768 --dtypes bf16 fp32 --passes fwd fwdbwd --R 2 --M 16 --P 32 \
  --time-limit-s "$(limit_s 90)" --json "$RES/compare_torch.json" --markdown "$RES/compare_torch.md" \
  >/dev/null 2>>"$LOG"
echo "   exit $?" | tee -a "$LOG"

echo "== plots" | tee -a "$LOG"
# The GPU machine reaches no package mirror: without gnuplot there, unpack the
# tarball elsewhere and run: python3 tests/bench/plot.py results/plots results/*.json
if command -v gnuplot >/dev/null; then
  python3 tests/bench/plot.py "$RES/plots" "$RES"/*.json >>"$LOG" 2>&1 || echo "   plotting failed (see run.log)" | tee -a "$LOG"
else
  echo "   no gnuplot here: run tests/bench/plot.py on the unpacked results" | tee -a "$LOG"
fi

{
  echo "# libslay GPU benchmark run"
  echo
  echo '```'
  cat "$OUT/device.txt"
  echo '```'
  for f in "$RES"/*.md; do echo; cat "$f"; done
} >"$OUT/summary.md"
tar -czf "$OUT/bench_results.tar.gz" -C "$OUT" results && rm -rf "$RES"
ls -la "$OUT" | tee -a "$LOG"
