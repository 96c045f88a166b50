#!/usr/bin/env bash
# CI's sanitizer suites, on host-only builds (-Dgpu=disabled: no nvcc, a few
# minutes on 2 cores each):
#   build-asan  ASan + UBSan (gcc, -fno-sanitize-recover: any report fails
#               the test): the unit, integration and reference suites;
#   build-tsan  TSan (gcc): the multi-threaded stress test (unit-threads:
#               several plans on one handle, a shared plan probed meanwhile),
#               the bad-input catalogue (its PLAN_IN_USE case races two
#               threads on one plan) and the Hopper Kronecker kernels on the
#               CPU emulation (emu-kron: every CUDA thread a TSan fiber, the
#               barriers, mbarriers, collectives and wgmma waits annotated,
#               so races of the kernels' shared-memory protocols are reports;
#               emu-exact runs the same way by hand: ~10x its plain time).
# Prints one line per configuration and ends with "N passed, N failed"
# (meson tests summed); exit status non-zero when any test failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
passed=0 failed=0
run_config() {  # name, meson test selection, meson setup options...
  local dir=$1 select=$2
  shift 2
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dgpu=disabled -Dexamples=false -Dbuildtype=debugoptimized -Db_lundef=false "$@" \
      >"$dir.setup.log" 2>&1 || { echo "$dir: meson setup failed (see $dir.setup.log)"; failed=$((failed + 1)); return; }
  fi
  if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
    tail -20 "$dir.build.log"; echo "$dir: build failed"; failed=$((failed + 1)); return
  fi
  # shellcheck disable=SC2086
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$(nproc)" $select >"$dir.test.log" 2>&1
  local ok fail
  ok=$(grep -E '^Ok: ' "$dir.test.log" | awk '{print $2}')
  fail=$(grep -E '^(Fail|Timeout|Unexpected Pass): ' "$dir.test.log" | awk '{s += $NF} END {print s + 0}')
  [ -n "$ok" ] || { tail -30 "$dir.test.log"; ok=0; fail=$((fail + 1)); }
  [ "$fail" -eq 0 ] || grep -E "FAIL|TIMEOUT|ERROR: |runtime error|SUMMARY: " "$dir.test.log" | head -40
  echo "$dir: $ok passed, $fail failed"
  passed=$((passed + ok)) failed=$((failed + fail))
}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
# (by name: meson intersects names with --suite, and the reference tests have no suite of their own)
run_config build-asan "unit-status unit-descriptor unit-variant-names unit-plan unit-sampling unit-bad-inputs \
unit-lifecycle unit-threads unit-dtype unit-no-device-hidden unit-no-device cpu_backend_vs_reference \
reference-fd reference-pieces reference-mc reference-params" \
  -Db_sanitize=address,undefined -Dcpp_args=-fno-sanitize-recover=all -Dc_args=-fno-sanitize-recover=all
run_config build-tsan "unit-threads unit-bad-inputs emu-kron" -Db_sanitize=thread
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
