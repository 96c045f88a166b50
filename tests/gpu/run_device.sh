#!/usr/bin/env bash
# Runs on the GPU machine (device tool), in one call: builds libslay for sm_90
# with the carried doctest headers in a FRESH build directory (ninja does not
# rebuild .cu objects when an included .cuh changes), runs the test suite
# (the GPU suite included), compute-sanitizer memcheck and racecheck over the
# small cases named *sanitizer* of the GPU doctest binaries, the example and
# the compare_torch benchmarks. Logs go under $OUT (at most 8 files come back):
#   device.txt     GPU, driver, nvcc
#   tests.log      build + run_tests.sh output (ends with "N passed, N failed, N skipped"), then the example
#   testlog.txt    meson's full test log (the GPU tables: lines starting with '|')
#   gpu_tables.txt the table lines of the GPU suites, extracted from testlog.txt
#   gpu_tables_families.txt  the same for the single-family phases (linear, exact, ...), all of them
#   sanitizer.log  compute-sanitizer memcheck, racecheck and synccheck of the *sanitizer* cases
#   bench.log      compare_torch.py output (slay_anchor vs torch SDPA, default and FLASH backends)
#   bench.tar.gz   compare_torch JSON + Markdown of each benchmark shape
# Phases (SLAY_DEVICE_PHASES, comma-separated; default all):
#   build     configure + build (a fresh build directory; stops after SLAY_BUILD_LIMIT_S, default 540)
#   resume    goes on with the build directory a stopped build left on the same warm machine
#   suite     the whole meson test suite (run_tests.sh; SLAY_TEST_ARGS="--no-suite emu" leaves out the CPU
#             emulations, which CI runs: build,suite then fits one call)
#   linear    only the GPU linear suite (test_cuda_linear), when iterating on its kernels
#   linearpar the same with each test case in its own process, all at once (its longest case's
#             time instead of the sum; each case stopped after SLAY_LINEARPAR_S, default 500, its
#             table lines so far kept) -> linearpar.log, table lines in gpu_tables_families.txt
#   exact     only the GPU exact suite (test_cuda_exact), when iterating on its kernels
#   sampling  only the GPU sampling suite (test_cuda_sampling)
#   context_parallel  only gpu_cuda_context_parallel (ranks as threads on one device)
#   exactbench  compare_torch.py for standard, yat and yat_spherical (B4 H12 D64 and D128, T 16384, bf16,
#             fwd and fwd+bwd, causal) against both SDPA backends -> exact_*.json/md in bench.tar.gz;
#             SLAY_EXACTBENCH_ARGS adds options (e.g. --row-stats: the backward reads the forward's statistics)
#   exactlong the same three variants at B1 H8 D64 T 131072 (bf16, causal, fwd and fwd+bwd, with
#             compare_torch's peak memory) -> exact_long.json/md in bench.tar.gz
#   python    the Python package on CUDA: tests/python/test_torch.py --cuda (CUDA vs the CPU
#             backend for every variant, gradcheck, streams), then its CPU run and the Python
#             example -> python.log
#   arch80    compiles the library for sm_80 (A100) in build-sm80 (a build check; no A100 here)
#   sanitize  memcheck + racecheck + synccheck of the *sanitizer* cases (SLAY_SANITIZE_TESTS="exact ...":
#             only those suites)
#   bench     compare_torch.py at shape A (B4 H12 D64, T 4096 and 32768, bf16 and fp32) and the
#             paper shape (B1 H8 D32 T 131072, bf16), fwd and fwd+bwd, causal (builds the library
#             first when the call starts on a fresh machine)
#   quickbench  the same shapes, bf16 only, fewer iterations (a smoke timing)
#   densebench  compare_torch.py at the paper shape (B1 H8 D32 T 131072, bf16, causal, fwd and
#             fwd+bwd) for the positive maps of the dense tensor-core engine: the paper's
#             R=2 M=8 P=16 (slay_anchor F=256), then M=32 (slay_laplace, slay_hadamard F=64,
#             performer F=32: their registry defaults' R, M) -> dense_*.json/md in bench.tar.gz
#   varlen    compare_varlen.py: a packed batch of 64 sequences (1k-32k tokens) against the
#             padded batch, one call per sequence and torch's FlashAttention varlen, standard
#             and slay_anchor bf16 (geometric and linear length spacing; grouped heads H/H_kv = 4;
#             SLAY_VARLEN_SPECS picks the configurations)
#             -> varlen*.json/md in varlen.tar.gz
#   densebench_quick  the first densebench shape only, fewer iterations
#   densebench_m8  the first densebench shape only (R=2 M=8 P=16), the default iterations
#   mapsbench  the paper shape (bf16, causal, fwd and fwd+bwd) for the maps off the two tensor-core
#             engines' common path: slay_anchor at P=12 (F=192: the dense engine, as P % 8 != 0),
#             the signed maps at R=2 M=8 P=16, rff at its default M=64, slay_poly2 at budget 256 (F = 254)
#             -> maps_*.json/md in bench/
#   poly2bench issue 17's GPU bar: slay_anchor at F = 1024 (R2 M16 P32) and slay_poly2 at budget
#             1024 (d = 44, F = 991: the Kronecker kernels' pairs triangle) at B4 H12 D64 T32768,
#             bf16, causal, fwd and fwd+bwd -> poly2_big_{anchor,poly2}.json/md in bench/
#   kronbench  the paper shape (bf16, causal, fwd and fwd+bwd) for Kronecker maps: slay_anchor,
#             slay_nystrom, slay_random_maclaurin and slay_tensorsketch at R=2 M=8 P=16, slay_nystrom
#             at its registry defaults (R=1 M=8 P=64), slay_anchor at the big shape (B4 H12 D64 T32768)
#             -> kron_*.json/md in bench/ (a map's speed on whichever kernels its plan takes)
#   densepro  ncu (speed of light, warp states) of the dense engine's kernels, slay_laplace and
#             cosformer fwd+bwd at the paper shape, M = SLAY_DENSE_M (32: F = 64, issue 12's open
#             bar) -> densepro.txt
#   densesrc  a -lineinfo build of the library alone (build-lineinfo) and ncu's source page
#             (stall samples per CUDA line and per SASS instruction) of the dense forward and
#             backward query and key kernels, slay_laplace at the paper shape, M = SLAY_DENSE_M (32)
#             -> densesrc_*.csv, densesrc.ncu-rep (the sass view has the samples; compile the same
#             translation unit locally with -lineinfo and nvdisasm -g to map offsets to lines)
#   wgmma     the Hopper primitives alone (build-wgmma: no library): test_cuda_wgmma (wgmma SS/RS
#             products against fp64) and wgmma-throughput (TFLOP/s of wgmma m64n256k16, m64n128k16,
#             the RS m64n64k16 + HMUL2 form and mma.sync) -> wgmma.log, bench/wgmma_throughput.json
#   exactkernels  the exact kernels without the library (build-wgmma: exact-kernel-bench):
#             the wgmma and mma.sync forwards and backward sweeps checked against fp64 and each
#             other at small shapes, then timed at B4 H12 T16384 causal bf16, D 64 and 128 -> exactkernels.log,
#             bench/exact_kernels.json (iterations on the kernels; the GPU suite decides)
#   exactpro  ncu (speed of light, warp states, scheduler, instruction mix) of the Hopper exact kernels
#             at B4 H12 T16384 D64 causal bf16 (exact-kernel-bench --profile: the standard dK/dV and dQ
#             sweeps of standard and yat, the yat_spherical and yat forwards, two consumers, without and
#             with the pingpong candidate; every section's details, the warp stall reasons among them)
#             -> exactpro.txt
#   kronkernels issue 10's Hopper Kronecker kernels without the library (build-wgmma: kron-kernel-bench):
#             the forward and the backward's query and key passes checked against fp64 at small shapes,
#             then timed at B4 H12 T32768 F1024 causal bf16
#             -> kronkernels.log, bench/kron_kernels.json (SLAY_KRON_SANITIZERS: compute-sanitizer tools
#             over its checks -> kron_sanitize_<tool>.log, every report printed: tests/gpu/sanitizer_sources.py
#             maps its offsets to source lines; failed checks: --diagnose into the log), then
#             tests/gpu/sass_audit.py of the bench with the device's toolkit (PTX against SASS) into the log
#   kronpro   ncu (speed of light, warp states, scheduler, instruction mix) of the Hopper Kronecker kernels
#             at B4 H12 T32768 (kron-kernel-bench --profile: the forward, the fused-map forward, the query
#             and key passes) -> kronpro.txt
#   kronsrc   ncu's source counters of the same kernels: stall samples per SASS instruction of each
#             (kron-kernel-bench --profile) -> kronsrc_sass.csv.gz, kronsrc_details.txt, kronsrc_ncu.log
#             (tests/gpu/stall_sources.py maps the CSV to source functions, on any machine with nvcc)
#   kronwgmma the library built with meson's kron_wgmma option (build-kronwgmma): test_cuda_linear's
#             F = 1024 cases on 32 heads (the Hopper Kronecker kernels' calls) and the paper-configuration
#             ones, then compare_torch at issue 10's big shape (slay_anchor R2 M16 P32, B4 H12 D64 T32768,
#             bf16, causal, fwd and fwd+bwd) -> kronwgmma.log, bench/kron_wgmma_big.json/md
#   exactsanitize compute-sanitizer memcheck, racecheck and synccheck over exact-kernel-bench
#             --check-only --library-only (the library's exact forward and backward kernels at small shapes)
#             -> exact_sanitize_{memcheck,racecheck,synccheck}.log (SLAY_EXACT_SANITIZERS: which tools; racecheck
#             gets SLAY_RACECHECK_S seconds, default 540: on bce823b it ran past 335 s, so give it a call of its
#             own, or one a head dim: SLAY_EXACT_SANITIZE_DIM=64 then 128; the bench's hang watchdog x20 under
#             the sanitizers)
#   kronquick the library and three GPU test binaries alone: test_cuda_linear's slay_anchor cases,
#             test_cuda_context_parallel, test_cuda_exact, then slay_anchor at the paper shape
#             (compare_torch) -> kronquick*.log, kronquick_paper.json/md
#   profile   ncu (speed of light, warp states, launch stats) of the tensor-core slay_anchor kernels,
#             fwd+bwd at B4 H12 D64 T8192 bf16 and at the paper shape (causal) -> profile.txt
#   scanpro   the fp32 scans at the paper shape (rff R2 M8, bf16, causal): compare_torch fwd and
#             fwd+bwd (5 timed runs), then ncu (speed of light, warp states, occupancy, launch
#             stats) of their kernels' fwd+bwd, at each chunk of SLAY_SCANPRO_CHUNKS (default "0":
#             the library's choice; e.g. "64 32") -> scanpro.txt, scanpro_c*.md
#   cpbench   the context-parallel example (examples/cpp/context_parallel_nccl.cpp, one process per
#             GPU over the system NCCL): a --check run (fp32, T 65536, every rank count), then
#             slay_anchor bf16 B1 H8 D64 at T 1M and 4M tokens on 1, 2, 4, 8 ranks (as many as the
#             machine has GPUs) -> cp_N{ranks}_T{T}.json + cpbench.log in bench/
# carry: third_party   (third_party/doctest/doctest.h copied from Debian's doctest-dev)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/slay-out}
PHASES=${SLAY_DEVICE_PHASES:-build,suite,sanitize,bench}
BUILD=build-gpu
mkdir -p "$OUT"
export PATH="/usr/local/cuda/bin:$PATH"
has() { [[ ",$PHASES," == *",$1,"* ]]; }
# One compare_torch.py benchmark of the built library into $OUT/bench/STEM.{json,md},
# its output and "=== compare_torch LABEL rc=N" appended to $OUT/LOG:
#   bench_compare LOG TIMEOUT_S STEM LABEL compare_torch-arguments...
bench_compare() {
  local log=$1 limit=$2 stem=$3 label=$4
  shift 4
  mkdir -p "$OUT/bench"
  timeout "$limit" python3 tests/bench/compare_torch.py "$BUILD/libslay.so" "$@" \
    --json "$OUT/bench/$stem.json" --markdown "$OUT/bench/$stem.md" >> "$OUT/$log" 2>&1
  echo "=== compare_torch $label rc=$?" >> "$OUT/$log"
}
# Workbench targets of build-wgmma ($1, space-separated; configured when missing; no library build), output appended
# to the log $2; on failure "$3 BUILD FAILED" and the log's tail.
build_wgmma() {
  { [ -d build-wgmma ] || meson setup build-wgmma -Dgpu_archs=90 -Ddoctest_include="$PWD/third_party" -Dexamples=false >/dev/null;
    ninja -C build-wgmma $1; } >> "$2" 2>&1 || { echo "$3 BUILD FAILED"; tail -30 "$2"; }
}
# ncu (speed of light, warp states, scheduler, instruction mix, launch, occupancy) of the kernels matching
# $2 over workbench $1's --profile launches, into the log $3 (build failure label $4), then the lines that
# matter (kernel names starting with $5).
profile_wgmma() {
  : > "$3"
  build_wgmma "tests/bench/$1" "$3" "$4"
  timeout 300 ncu --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section InstructionStats \
    --section LaunchStats --section Occupancy --print-details all -k regex:"$2" \
    "build-wgmma/tests/bench/$1" --profile >> "$3" 2>&1
  echo "=== ncu $1 --profile rc=$?" >> "$3"
  grep -E "$5|Duration|Compute \(SM\) Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|Stall|No Eligible|rc=" \
    "$3" | cut -c1-150 | head -80
}
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; } \
  2>&1 | tee "$OUT/device.txt"
rc=0
# The workbench phases' targets and the kron_wgmma library compile at once (each
# workbench is one translation unit: built one after the other they left most of
# the 16 cores idle); the phases below then find them built.
if has kronwgmma; then
  rm -rf build-kronwgmma
  ( { meson setup build-kronwgmma -Dgpu_archs=90 -Dkron_wgmma=true -Ddoctest_include="$PWD/third_party" \
        -Dexamples=false >/dev/null && ninja -C build-kronwgmma tests/gpu/test_cuda_linear; } > "$OUT/kronwgmma.log" 2>&1
    echo "=== kron_wgmma build rc=$? at $(date +%T)" >> "$OUT/kronwgmma.log" ) &
  kronwgmma_pid=$!
fi
bench_targets=""
has exactkernels && bench_targets+=" tests/bench/exact-kernel-bench"
has kronkernels && bench_targets+=" tests/bench/kron-kernel-bench"
if [ -n "$bench_targets" ]; then
  echo "=== workbenches ($bench_targets) build from $(date +%T)" > "$OUT/workbench_build.log"
  build_wgmma "$bench_targets" "$OUT/workbench_build.log" "WORKBENCHES"
  echo "=== workbenches built at $(date +%T)" >> "$OUT/workbench_build.log"
fi
if has build || has resume; then
  # a build stopped by SLAY_BUILD_LIMIT_S (default 540 s, inside the device's
  # 600 s a call) goes on in the next call's `resume` on the same warm machine
  has build && rm -rf "$BUILD"
  [ -d "$BUILD" ] || meson setup "$BUILD" -Dgpu_archs=90 -Ddoctest_include="$PWD/third_party" \
    > "$OUT/tests.log" 2>&1 || { echo "CONFIGURE FAILED"; tail -40 "$OUT/tests.log"; exit 1; }
  timeout "${SLAY_BUILD_LIMIT_S:-540}" ninja -C "$BUILD" >> "$OUT/tests.log" 2>&1
  build_rc=$?
  if [ "$build_rc" -eq 124 ]; then echo "BUILD INCOMPLETE (time limit): call again with SLAY_DEVICE_PHASES=resume,..."; exit 3; fi
  [ "$build_rc" -eq 0 ] || { echo "BUILD FAILED"; tail -40 "$OUT/tests.log"; exit 1; }
  echo "build ok ($(date +%T))"
fi
if has wgmma; then  # the Hopper primitives: two targets, no library build
  { rm -rf build-wgmma && meson setup build-wgmma -Dgpu_archs=90 -Ddoctest_include="$PWD/third_party" -Dexamples=false >/dev/null &&
    ninja -C build-wgmma tests/gpu/test_cuda_wgmma tests/bench/wgmma-throughput; } > "$OUT/wgmma.log" 2>&1 ||
    { echo "WGMMA BUILD FAILED"; tail -30 "$OUT/wgmma.log"; }
  timeout 60 build-wgmma/tests/gpu/test_cuda_wgmma >> "$OUT/wgmma.log" 2>&1
  echo "=== test_cuda_wgmma rc=$?" >> "$OUT/wgmma.log"
  mkdir -p "$OUT/bench"
  timeout 120 build-wgmma/tests/bench/wgmma-throughput --json "$OUT/bench/wgmma_throughput.json" >> "$OUT/wgmma.log" 2>&1
  echo "=== wgmma-throughput rc=$?" >> "$OUT/wgmma.log"
  grep -E "^\| |^=== |test cases|Device" "$OUT/wgmma.log"
fi
if has exactkernels; then  # the exact kernels alone: one target, no library build
  echo "=== exactkernels build from $(date +%T)" > "$OUT/exactkernels.log"
  build_wgmma tests/bench/exact-kernel-bench "$OUT/exactkernels.log" "EXACT KERNELS"
  echo "=== exact-kernel-bench from $(date +%T)" >> "$OUT/exactkernels.log"
  mkdir -p "$OUT/bench"
  timeout 360 build-wgmma/tests/bench/exact-kernel-bench --json "$OUT/bench/exact_kernels.json" >> "$OUT/exactkernels.log" 2>&1
  echo "=== exact-kernel-bench rc=$? at $(date +%T)" >> "$OUT/exactkernels.log"
  grep -E "^\| |^=== |failures|Device" "$OUT/exactkernels.log"
fi
if has kronkernels; then  # issue 10's Hopper Kronecker kernels alone: one target, no library build
  echo "=== kronkernels build from $(date +%T)" > "$OUT/kronkernels.log"
  build_wgmma tests/bench/kron-kernel-bench "$OUT/kronkernels.log" "KRON KERNELS"
  mkdir -p "$OUT/bench"
  timeout 120 build-wgmma/tests/bench/kron-kernel-bench --json "$OUT/bench/kron_kernels.json" >> "$OUT/kronkernels.log" 2>&1
  kron_rc=$?
  echo "=== kron-kernel-bench rc=$kron_rc at $(date +%T)" >> "$OUT/kronkernels.log"
  if [ "$kron_rc" -eq 1 ]; then  # failed checks: where the backward passes' factor gradients go wrong
    timeout 60 build-wgmma/tests/bench/kron-kernel-bench --diagnose >> "$OUT/kronkernels.log" 2>&1
    echo "=== kron-kernel-bench --diagnose rc=$?" >> "$OUT/kronkernels.log"
  fi
  # what this toolkit's ptxas kept of the kernels' PTX (a miscompile of one ptxas version shows here)
  timeout 120 python3 tests/gpu/sass_audit.py build-wgmma kron_kernel_bench.cu >> "$OUT/kronkernels.log" 2>&1
  echo "=== sass_audit rc=$?" >> "$OUT/kronkernels.log"
  for tool in ${SLAY_KRON_SANITIZERS:-}; do  # e.g. "memcheck racecheck synccheck": the checks only
    timeout 200 compute-sanitizer --tool $tool --error-exitcode 9 --print-limit 2000 build-wgmma/tests/bench/kron-kernel-bench \
      --check-only > "$OUT/kron_sanitize_$tool.log" 2>&1
    echo "=== compute-sanitizer $tool kron-kernel-bench rc=$?" >> "$OUT/kronkernels.log"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|check failures" "$OUT/kron_sanitize_$tool.log" >> "$OUT/kronkernels.log"
  done
  # (the passing check lines stay in the log: the call's output keeps its tail for the timing rows)
  grep -E "^\| time|^\| .*FAIL|^=== |failures|Device|HANG|SUMMARY|^diagnose|LOST|MISSING|SERIALIZED" "$OUT/kronkernels.log"
fi
if has exactsanitize; then  # compute-sanitizer over exact-kernel-bench's small checks (builds it when needed)
  : > "$OUT/exactsanitize.log"
  build_wgmma tests/bench/exact-kernel-bench "$OUT/exactsanitize.log" "EXACT KERNELS"
  for tool in ${SLAY_EXACT_SANITIZERS:-memcheck racecheck synccheck}; do
    limit=150; [ $tool = racecheck ] && limit=${SLAY_RACECHECK_S:-540}
    dims=${SLAY_EXACT_SANITIZE_DIM:+--dim $SLAY_EXACT_SANITIZE_DIM}  # e.g. 64: one head dim a call
    log="$OUT/exact_sanitize_$tool${SLAY_EXACT_SANITIZE_DIM:+_D$SLAY_EXACT_SANITIZE_DIM}.log"
    timeout $limit compute-sanitizer --tool $tool --error-exitcode 9 build-wgmma/tests/bench/exact-kernel-bench \
      --check-only --library-only $dims --hang-scale 20 > "$log" 2>&1
    echo "=== compute-sanitizer $tool exact-kernel-bench $dims rc=$?"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|check failures" "$log"
    grep -c "^| check" "$log" | sed 's/^/checks done: /'
  done
fi
if has exactpro; then  # ncu over exact-kernel-bench --profile (builds it when needed)
  profile_wgmma exact-kernel-bench "exact_(backward|forward)_wgmma_kernel" "$OUT/exactpro.txt" "EXACT KERNELS" exact_
fi
if has kronpro; then  # ncu over kron-kernel-bench --profile (builds it when needed)
  profile_wgmma kron-kernel-bench "kron_.*wgmma_kernel" "$OUT/kronpro.txt" "KRON KERNELS" kron_
fi
if has kronsrc; then  # ncu's stall samples per SASS instruction of the Hopper Kronecker kernels (the
  # workbench's --profile launches; its SASS is the build's own, so no -lineinfo build is needed)
  build_wgmma tests/bench/kron-kernel-bench "$OUT/kronsrc_ncu.log" "KRON KERNELS"
  timeout 300 ncu --section SourceCounters --section WarpStateStats --section SpeedOfLight -k regex:"kron_.*wgmma_kernel" \
    -o "$OUT/kronsrc" -f build-wgmma/tests/bench/kron-kernel-bench --profile >> "$OUT/kronsrc_ncu.log" 2>&1
  echo "=== ncu kronsrc rc=$?" | tee -a "$OUT/kronsrc_ncu.log"
  ncu -i "$OUT/kronsrc.ncu-rep" --page source --print-source sass --csv > "$OUT/kronsrc_sass.csv" 2>&1
  echo "=== source sass rc=$? $(wc -c < "$OUT/kronsrc_sass.csv") bytes"
  ncu -i "$OUT/kronsrc.ncu-rep" --page details --print-details all > "$OUT/kronsrc_details.txt" 2>&1
  grep -E "kron_|Duration|Compute \(SM\) Throughput|Stall|No Eligible|Warp Cycles Per Issued" "$OUT/kronsrc_details.txt" |
    cut -c1-150 | head -70
  gzip -f "$OUT/kronsrc_sass.csv"; rm -f "$OUT/kronsrc.ncu-rep"
fi
if has kronquick; then  # a quick check of slay_anchor's tensor-core kernels: the library and one test binary
  # (ninja has no target libslay.so: the versioned library's links come with the test binaries' build)
  rm -rf "$BUILD"
  { meson setup "$BUILD" -Dgpu_archs=90 -Ddoctest_include="$PWD/third_party" >/dev/null &&
    ninja -C "$BUILD" tests/gpu/test_cuda_linear tests/gpu/test_cuda_context_parallel \
      tests/gpu/test_cuda_exact; } > "$OUT/tests.log" 2>&1 ||
    { echo "BUILD FAILED"; tail -40 "$OUT/tests.log"; exit 1; }
  echo "build ok"
  timeout 150 "$BUILD/tests/gpu/test_cuda_linear" \
    -tc='*Kronecker*,*slay_anchor*,*initial/final*,*fp16*,*packed*' > "$OUT/kronquick.log" 2>&1
  echo "=== test_cuda_linear (slay_anchor cases) rc=$?" | tee -a "$OUT/kronquick.log"
  grep -E "FAIL|test cases|assertions" "$OUT/kronquick.log" | head -20
  for t in context_parallel exact; do
    timeout 60 "$BUILD/tests/gpu/test_cuda_$t" > "$OUT/kronquick_$t.log" 2>&1
    echo "=== test_cuda_$t rc=$?"; grep -E "test cases|assertions" "$OUT/kronquick_$t.log" | head -3
  done
  timeout 60 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants slay_anchor \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 16 \
    --json "$OUT/kronquick_paper.json" --markdown "$OUT/kronquick_paper.md" > "$OUT/kronquick_bench.log" 2>&1
  echo "=== compare_torch rc=$?"; grep -E "^\| (libslay|sdpa)" "$OUT/kronquick_paper.md" | cut -c1-100
fi
if has kronwgmma; then  # the library with meson's kron_wgmma option: its test case and issue 10's big shape
  wait "$kronwgmma_pid"  # started at the top
  grep -q "kron_wgmma build rc=0" "$OUT/kronwgmma.log" || { echo "KRON WGMMA BUILD FAILED"; tail -40 "$OUT/kronwgmma.log"; }
  timeout 150 build-kronwgmma/tests/gpu/test_cuda_linear -tc='*Hopper Kronecker*,*slay_anchor paper*' \
    >> "$OUT/kronwgmma.log" 2>&1
  echo "=== test_cuda_linear (kron_wgmma) rc=$?" | tee -a "$OUT/kronwgmma.log"
  grep -E "^\| slay_anchor|FAIL|test cases" "$OUT/kronwgmma.log" | cut -c1-160 | head -20
  mkdir -p "$OUT/bench"
  timeout 150 python3 tests/bench/compare_torch.py build-kronwgmma/libslay.so --variants slay_anchor --B 4 --H 12 \
    --D 64 --T 32768 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 16 --P 32 --causal --slow-call-s 3 \
    --json "$OUT/bench/kron_wgmma_big.json" --markdown "$OUT/bench/kron_wgmma_big.md" >> "$OUT/kronwgmma.log" 2>&1
  echo "=== compare_torch (kron_wgmma, big shape) rc=$?"
  grep -E "^\| (libslay|sdpa)" "$OUT/bench/kron_wgmma_big.md" | cut -c1-140
fi
if has arch80; then  # in the background (8 jobs) while the GPU phases run; waited for at the end
  rm -rf build-sm80
  ( { meson setup build-sm80 -Dgpu_archs=80 -Dtests=false -Dexamples=false >/dev/null &&
      ninja -C build-sm80 -j 8; } > "$OUT/arch80.log" 2>&1
    echo "=== sm_80 build rc=$?" >> "$OUT/arch80.log" ) &
  arch80_pid=$!
fi
if has suite; then
  SLAY_BUILD_DIR=$BUILD bash tests/run_tests.sh 2>&1 | tee -a "$OUT/tests.log" | tail -40
  rc=${PIPESTATUS[0]}
fi
for family in linear exact sampling context_parallel; do  # one GPU suite alone; a failure of any is kept
  if has $family; then
    meson test -C "$BUILD" --print-errorlogs gpu_cuda_$family 2>&1 | tee -a "$OUT/tests.log" | tail -15
    [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
    # each meson test run rewrites testlog.txt: keep every family's table lines
    grep -E '^\| ' "$BUILD/meson-logs/testlog.txt" >> "$OUT/gpu_tables_families.txt" 2>/dev/null
  fi
done
if has linearpar; then  # test_cuda_linear's test cases as parallel processes, one each: the suite in the time of its longest case
  bin="$BUILD/tests/gpu/test_cuda_linear"
  "$bin" -ltc 2>/dev/null | grep -E '^linear' > "$OUT/linearpar_cases.txt"
  i=0
  mkdir -p /tmp/linearpar
  while IFS= read -r tc; do  # doctest's -tc splits on commas: a comma matches as '?'
    i=$((i + 1))
    # each case's log joins linearpar.log as it ends (the tool returns at most 8 files)
    ( part=/tmp/linearpar/$i.log
      timeout "${SLAY_LINEARPAR_S:-500}" stdbuf -oL "$bin" -tc="${tc//,/?}" > "$part" 2>&1
      echo "=== rc=$? $tc" >> "$part"
      flock /tmp/linearpar/lock cat "$part" >> "$OUT/linearpar.log" ) &
  done < "$OUT/linearpar_cases.txt"
  wait
  rm -f "$OUT/linearpar_cases.txt"
  grep -E '^\| ' "$OUT/linearpar.log" >> "$OUT/gpu_tables_families.txt"
  grep -E '^=== rc=|test cases:' "$OUT/linearpar.log"
  grep -cE '^=== rc=0 ' "$OUT/linearpar.log" | sed 's/^/cases passed: /'
  grep -E '^\| .*FAIL' "$OUT/linearpar.log" | head -20
fi
if has python; then
  export SLAY_LIBRARY="$PWD/$BUILD/libslay.so" PYTHONPATH="$PWD/abi/python"
  { python3 tests/python/test_torch.py --cuda; echo "=== test_torch --cuda rc=$?"
    python3 tests/python/test_torch.py; echo "=== test_torch (CPU) rc=$?"
    python3 examples/python/slay_example.py; echo "=== slay_example.py rc=$?"; } > "$OUT/python.log" 2>&1
  grep -E "FAIL|^=== " "$OUT/python.log" | head -40
fi
cp "$BUILD/meson-logs/testlog.txt" "$OUT/testlog.txt" 2>/dev/null
grep -E '^\| ' "$BUILD/meson-logs/testlog.txt" > "$OUT/gpu_tables.txt" 2>/dev/null
grep -E 'FAIL' "$OUT/gpu_tables.txt" | head -20

if has sanitize; then
  # The sanitizers slow kernels ~100x: only the small *sanitizer* cases.
  : > "$OUT/sanitizer.log"
  for tool in memcheck racecheck synccheck; do
    for t in "$BUILD"/tests/gpu/test_cuda_*; do
      [ -x "$t" ] && [ -f "$t" ] || continue
      case "$t" in *test_cuda_handle|*test_cuda_large) continue ;; esac
      # SLAY_SANITIZE_TESTS (e.g. "exact linear"): only those suites' binaries
      [ -n "${SLAY_SANITIZE_TESTS:-}" ] && [[ " $SLAY_SANITIZE_TESTS " != *" ${t##*/test_cuda_} "* ]] && continue
      # racecheck/synccheck (shared-memory hazards, barrier misuse): the
      # tensor-core kernels of both families are the ones with shared memory
      # and warp-level sync; both tools are slow, so only there.
      [ "$tool" != memcheck ] && case "$t" in *test_cuda_linear|*test_cuda_exact) ;; *) continue ;; esac
      extra=""; [ "$tool" = memcheck ] && extra="--leak-check no"
      echo "=== compute-sanitizer $tool $t -tc=*sanitizer*" >> "$OUT/sanitizer.log"
      timeout 400 compute-sanitizer --tool "$tool" $extra --error-exitcode 99 \
        "$t" -tc='*sanitizer*' >> "$OUT/sanitizer.log" 2>&1
      echo "=== $t: rc=$? (0 clean, 99 $tool errors, 77 no device)" >> "$OUT/sanitizer.log"
    done
  done
  grep -E '^=== |ERROR SUMMARY|RACECHECK SUMMARY|SYNCCHECK SUMMARY' "$OUT/sanitizer.log"
fi

[ -x "$BUILD/examples/slay_example" ] && "$BUILD/examples/slay_example" 1024 4 64 >> "$OUT/tests.log" 2>&1

if (has bench || has quickbench || has varlen || has densebench || has densebench_quick || has densebench_m8 || has mapsbench || has kronbench || has poly2bench || has profile || has scanpro) && [ ! -f "$BUILD/libslay.so" ]; then
  # a bench-only call on a fresh machine: the library alone
  { meson setup "$BUILD" -Dgpu_archs=90 -Dtests=false -Dexamples=false >/dev/null &&
    ninja -C "$BUILD"; } > "$OUT/build.log" 2>&1 || { echo "BUILD FAILED"; tail -40 "$OUT/build.log"; exit 1; }
fi
if has profile; then
  timeout 300 ncu --section SpeedOfLight --section WarpStateStats --section LaunchStats --section Occupancy \
    -k regex:kron -c 4 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants slay_anchor \
    --B 4 --H 12 --D 64 --T 8192 --dtypes bf16 --passes fwdbwd --R 2 --M 16 --P 32 --iters 1 --warmup 0 --causal \
    > "$OUT/profile.txt" 2>&1
  echo "=== ncu rc=$?" >> "$OUT/profile.txt"
  timeout 200 ncu --section SpeedOfLight --section WarpStateStats --section LaunchStats --section Occupancy \
    -k regex:kron -c 8 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants slay_anchor \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwdbwd --R 2 --M 8 --P 16 --iters 1 --warmup 0 \
    --causal >> "$OUT/profile.txt" 2>&1
  echo "=== ncu paper shape rc=$?" >> "$OUT/profile.txt"
  grep -E "kron_|Duration|Compute \(SM\) Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|Stall|rc=" "$OUT/profile.txt" | head -60
fi

if has scanpro; then
  : > "$OUT/scanpro.txt"
  for chunk in ${SLAY_SCANPRO_CHUNKS:-0}; do
    chunk_arg=""; [ "$chunk" != 0 ] && chunk_arg="--chunk $chunk"
    timeout 150 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants rff \
      --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 16 $chunk_arg \
      --causal --slow-call-s 1 --iters 5 --warmup 2 --markdown "$OUT/scanpro_c$chunk.md" >> "$OUT/scanpro.txt" 2>&1
    echo "=== compare_torch rff chunk $chunk rc=$?" >> "$OUT/scanpro.txt"
    grep -E "^\| libslay" "$OUT/scanpro_c$chunk.md" | cut -c1-90
    timeout 150 ncu --section SpeedOfLight --section WarpStateStats --section LaunchStats --section Occupancy \
      -k regex:"linear_(forward|backward|segment)" -c 6 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" \
      --variants rff --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwdbwd --R 2 --M 8 --P 16 \
      $chunk_arg --iters 1 --warmup 0 --causal >> "$OUT/scanpro.txt" 2>&1
    echo "=== ncu rff chunk $chunk rc=$?" >> "$OUT/scanpro.txt"
  done
  grep -E "linear_|Duration|Compute \(SM\) Throughput|Registers Per|Achieved Occupancy|Theoretical Occ|Block Limit|No Eligible|rc=" \
    "$OUT/scanpro.txt" | cut -c1-150 | head -90
fi

if has exactbench && python3 -c 'import torch' 2>/dev/null; then
  mkdir -p "$OUT/bench"
  for D in 64 128; do
    timeout 280 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants standard yat yat_spherical \
      --B 4 --H 12 --D $D --T 16384 --dtypes bf16 --passes fwd fwdbwd --causal --slow-call-s 3 \
      ${SLAY_EXACTBENCH_ARGS:-} --json "$OUT/bench/exact_D$D.json" --markdown "$OUT/bench/exact_D$D.md" >> "$OUT/exactbench.log" 2>&1
    echo "=== compare_torch exact D=$D rc=$?" >> "$OUT/exactbench.log"
  done
  has bench || has quickbench || has exactlong || { tar -czf "$OUT/bench.tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"; }
  grep -vE '^\s*$' "$OUT/exactbench.log" | tail -40
fi
if has exactlong && python3 -c 'import torch' 2>/dev/null; then
  # issue 11's memory bar: O(T) memory, forward and backward at T = 131072
  bench_compare exactlong.log 240 exact_long "exact T=131072" --variants standard yat yat_spherical \
    --B 1 --H 8 --D 64 --T 131072 --dtypes bf16 --passes fwd fwdbwd --causal --slow-call-s 3 --warmup 2 \
    ${SLAY_EXACTBENCH_ARGS:-}
  has bench || has quickbench || { tar -czf "$OUT/bench.tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"; }
  grep -vE '^\s*$' "$OUT/exactlong.log" | tail -20
fi
if (has bench || has quickbench) && python3 -c 'import torch' 2>/dev/null; then
  : > "$OUT/bench.log"
  mkdir -p "$OUT/bench"
  dtypes="bf16 fp32"; iters=""
  has quickbench && { dtypes="bf16"; iters="--iters 5 --warmup 2"; }
  export PYTHONUNBUFFERED=1
  timeout 300 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants slay_anchor \
    --B 4 --H 12 --D 64 --T 4096 32768 --dtypes $dtypes --passes fwd fwdbwd --R 2 --M 16 --P 32 \
    --causal --slow-call-s 3 $iters --json "$OUT/bench/compare_A.json" --markdown "$OUT/bench/compare_A.md" \
    >> "$OUT/bench.log" 2>&1
  echo "=== compare_torch shape A rc=$?" >> "$OUT/bench.log"
  bench_compare bench.log 200 compare_paper "paper shape" --variants slay_anchor \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 16 \
    --causal --slow-call-s 3 $iters
  tar -czf "$OUT/bench.tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"
  grep -vE '^\s*$' "$OUT/bench.log" | tail -30
fi
if has densepro; then
  for v in slay_laplace cosformer; do
    timeout 150 ncu --section SpeedOfLight --section WarpStateStats --section LaunchStats --section Occupancy \
      -k regex:dense_ -c 6 python3 tests/bench/compare_torch.py "$BUILD/libslay.so" --variants $v \
      --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwdbwd --R 2 --M "${SLAY_DENSE_M:-32}" --P 16 \
      --iters 1 --warmup 0 >> "$OUT/densepro.txt" 2>&1
    echo "=== ncu $v rc=$?" >> "$OUT/densepro.txt"
  done
  grep -E "dense_|Duration|Compute \(SM\) Throughput|Issue Slots Busy|Registers Per|Achieved Occupancy|Stall|No Eligible|rc=" "$OUT/densepro.txt" | cut -c1-150 | head -70
fi
if has densesrc; then
  { meson setup build-lineinfo -Dgpu_archs=90 -Dtests=false -Dexamples=false -Dcuda_args=-lineinfo >/dev/null &&
    ninja -C build-lineinfo; } > "$OUT/densesrc_build.log" 2>&1 || { echo "LINEINFO BUILD FAILED"; tail -20 "$OUT/densesrc_build.log"; }
  timeout 300 ncu --section SourceCounters --section WarpStateStats --section InstructionStats \
    -k regex:"dense_(forward|backward_query|backward_key)_kernel" -c 3 -o "$OUT/densesrc" -f \
    python3 tests/bench/compare_torch.py build-lineinfo/libslay.so --variants slay_laplace \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwdbwd --R 2 --M "${SLAY_DENSE_M:-32}" --P 16 \
    --iters 1 --warmup 0 \
    > "$OUT/densesrc_ncu.log" 2>&1
  echo "=== ncu rc=$?" >> "$OUT/densesrc_ncu.log"
  for view in cuda sass; do
    ncu -i "$OUT/densesrc.ncu-rep" --page source --print-source $view --csv > "$OUT/densesrc_$view.csv" 2>&1
    echo "=== source $view rc=$? $(wc -c < "$OUT/densesrc_$view.csv") bytes"
  done
  gzip -f "$OUT"/densesrc_*.csv
fi
if (has densebench || has densebench_quick || has densebench_m8) && python3 -c 'import torch' 2>/dev/null; then
  mkdir -p "$OUT/bench"
  export PYTHONUNBUFFERED=1
  iters=""; has densebench_quick && iters="--iters 5 --warmup 2"
  bench_compare densebench.log 240 dense_paper_M8 "dense paper M=8" \
    --variants slay_anchor slay_laplace slay_hadamard performer linear cosformer \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 16 \
    --causal --slow-call-s 3 $iters
fi
if has densebench && python3 -c 'import torch' 2>/dev/null; then
  bench_compare densebench.log 200 dense_paper_M32 "dense paper M=32" \
    --variants slay_laplace slay_hadamard performer \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 32 --P 16 \
    --causal --slow-call-s 3
  has bench || has quickbench || { tar -czf "$OUT/bench.tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"; }
  grep -E '^\| (libslay|sdpa) |^=== ' "$OUT/densebench.log" | cut -c1-200 | tail -40
fi
if has mapsbench && python3 -c 'import torch' 2>/dev/null; then
  mkdir -p "$OUT/bench"
  export PYTHONUNBUFFERED=1
  bench_compare mapsbench.log 120 maps_anchor_P12 "anchor P=12" --variants slay_anchor \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 12 \
    --causal --slow-call-s 3
  bench_compare mapsbench.log 240 maps_signed "signed maps" \
    --variants slay_random_maclaurin slay_nystrom slay_tensorsketch rff slay_poly2 \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 16 \
    --causal --slow-call-s 1
  # rff at its registry default M = 64 (F = 64; the fp32 scans with the sequence split)
  bench_compare mapsbench.log 120 maps_rff_M64 "rff M=64" --variants rff \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 1 --M 64 --P 1 \
    --causal --slow-call-s 3
  # slay_poly2 reads NUM_FEATURES (--M) as its budget: 256 at D = 32 is d = 22
  # with the constant feature, F = 254 (the dense engine's range).
  bench_compare mapsbench.log 120 maps_poly2_F254 "slay_poly2 budget 256" --variants slay_poly2 \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 1 --M 256 --P 1 \
    --causal --slow-call-s 3
  grep -E '^\| (libslay|sdpa) |^=== ' "$OUT/mapsbench.log" | cut -c1-200 | tail -34
fi
if has poly2bench && python3 -c 'import torch' 2>/dev/null; then
  mkdir -p "$OUT/bench"
  export PYTHONUNBUFFERED=1
  bench_compare poly2bench.log 150 poly2_big_anchor "slay_anchor F=1024 big shape" --variants slay_anchor \
    --B 4 --H 12 --D 64 --T 32768 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 16 --P 32 \
    --causal --slow-call-s 3
  # slay_poly2 reads NUM_FEATURES (--M) as its budget
  bench_compare poly2bench.log 150 poly2_big_poly2 "slay_poly2 budget 1024 big shape" --variants slay_poly2 \
    --B 4 --H 12 --D 64 --T 32768 --dtypes bf16 --passes fwd fwdbwd --R 1 --M 1024 --P 1 \
    --causal --slow-call-s 3
  grep -E '^\| (libslay|sdpa) |^=== ' "$OUT/poly2bench.log" | cut -c1-200 | tail -14
fi
if has kronbench && python3 -c 'import torch' 2>/dev/null; then
  mkdir -p "$OUT/bench"
  export PYTHONUNBUFFERED=1
  bench_compare kronbench.log 200 kron_paper "Kronecker maps, paper R/M/P" \
    --variants slay_anchor slay_nystrom slay_random_maclaurin slay_tensorsketch \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 2 --M 8 --P 16 \
    --causal --slow-call-s 3
  bench_compare kronbench.log 100 kron_paper_nystrom_defaults "slay_nystrom registry defaults (R=1 M=8 P=64)" --variants slay_nystrom \
    --B 1 --H 8 --D 32 --T 131072 --dtypes bf16 --passes fwd fwdbwd --R 1 --M 8 --P 64 \
    --causal --slow-call-s 3
  # slay_anchor at the big shape (issue 10's): the backward's factor gradients from the state copy
  bench_compare kronbench.log 100 kron_big_anchor "slay_anchor big shape (B4 H12 D64 T32768, registry R/M/P)" --variants slay_anchor \
    --B 4 --H 12 --D 64 --T 32768 --dtypes bf16 --passes fwd fwdbwd \
    --causal --slow-call-s 3
  grep -E '^\| (libslay|sdpa) |^=== ' "$OUT/kronbench.log" | cut -c1-200 | tail -30
fi
if has varlen && python3 -c 'import torch' 2>/dev/null; then
  mkdir -p "$OUT/varlen"
  export PYTHONUNBUFFERED=1
  # SLAY_VARLEN_SPECS: "spacing kv_heads" pairs separated by ';'
  IFS=';' read -ra specs <<< "${SLAY_VARLEN_SPECS:-geometric 0;linear 0;geometric 2}"
  for spec in "${specs[@]}"; do
    set -- $spec
    name="varlen_$1_kv$2"
    timeout 240 python3 tests/bench/compare_varlen.py "$BUILD/libslay.so" --variants standard slay_anchor \
      --N 64 --min-len 1024 --max-len 32768 --H 8 --kv-heads $2 --D 64 --spacing $1 \
      --json "$OUT/varlen/$name.json" --markdown "$OUT/varlen/$name.md" >> "$OUT/varlen.log" 2>&1
    echo "=== compare_varlen $name rc=$?" >> "$OUT/varlen.log"
  done
  tar -czf "$OUT/varlen.tar.gz" -C "$OUT" varlen && rm -rf "$OUT/varlen"
  grep -E '^\| |^=== ' "$OUT/varlen.log" | tail -40
fi
if has cpbench; then
  mkdir -p "$OUT/bench"
  cp_bin="$BUILD/examples/slay_context_parallel"
  gpus=$(nvidia-smi -L | wc -l)
  if [ ! -x "$cp_bin" ]; then
    echo "cpbench: $cp_bin was not built (no NCCL found)" | tee "$OUT/bench/cpbench.log"
  else
    export NCCL_NVLS_ENABLE=0
    run_ranks() {  # ranks, then the example's arguments
      local n=$1; shift
      local id="/tmp/slay_cp_${n}_$RANDOM.id" pids=() r st=0
      rm -f "$id"
      for ((r = 0; r < n; ++r)); do "$cp_bin" --rank $r --ranks $n --id-file "$id" "$@" & pids+=($!); done
      for p in "${pids[@]}"; do wait "$p" || st=1; done
      return $st
    }
    for n in 1 2 4 8; do
      [ "$n" -le "$gpus" ] || break
      timeout 300 bash -c "$(declare -f run_ranks); cp_bin=$cp_bin; run_ranks $n --T 65536 --iters 2 --check" \
        >> "$OUT/bench/cpbench.log" 2>&1
      echo "=== cp check ranks=$n rc=$?" >> "$OUT/bench/cpbench.log"
      for T in 1048576 4194304; do
        timeout 300 bash -c "$(declare -f run_ranks); cp_bin=$cp_bin; run_ranks $n --T $T --iters 5 --json $OUT/bench/cp_N${n}_T$T.json" \
          >> "$OUT/bench/cpbench.log" 2>&1
        echo "=== cp bench ranks=$n T=$T rc=$?" >> "$OUT/bench/cpbench.log"
      done
    done
  fi
  tail -30 "$OUT/bench/cpbench.log"
fi
if has arch80; then
  wait "$arch80_pid"
  tail -3 "$OUT/arch80.log"
  # This device is not sm_80: a CUDA handle from the sm_80-only build must fail
  # at creation with NOT_SUPPORTED (200) and say why.
  python3 - build-sm80/libslay.so <<'PY' 2>&1 | tee -a "$OUT/arch80.log"
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.slay_last_error_message.restype = ctypes.c_char_p
handle = ctypes.c_void_p()
status = lib.slay_handle_create(ctypes.byref(handle), 1, 0)  # SLAY_BACKEND_CUDA, device 0
print(f"sm_80 build on this GPU: slay_handle_create -> {status} ({'ok' if status == 200 else 'UNEXPECTED'}): "
      f"{lib.slay_last_error_message().decode()}")
PY
fi
# At most 8 files come back: what the phases left under bench/ travels as one archive.
if [ -d "$OUT/bench" ]; then tar -czf "$OUT/bench_files.tar.gz" -C "$OUT" bench && rm -rf "$OUT/bench"; fi
exit $rc  # the test suite's status
