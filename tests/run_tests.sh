#!/usr/bin/env bash
# The README's test command: configures (once) and builds libslay in build/,
# runs every meson test suite, and ends with the line
#   N passed, N failed[, N skipped]
# GPU tests exit 77 (skipped) on machines without a device.
# Usage: bash tests/run_tests.sh [extra meson setup options]
# SLAY_TEST_ARGS: extra `meson test` options, e.g. "--no-suite emu" (the GPU
# machine's suite call: the CPU emulations run in CI, and emu-exact alone
# outlasted the call's time limit there).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/cuda/bin:$PATH"
builddir=${SLAY_BUILD_DIR:-build}
if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" "$@" || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$builddir" || { echo "0 passed, 1 failed"; exit 1; }
# shellcheck disable=SC2086  # SLAY_TEST_ARGS is a list of options
meson test -C "$builddir" --print-errorlogs --num-processes "$(nproc)" ${SLAY_TEST_ARGS:-}
rc=$?
python3 - "$builddir/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc
