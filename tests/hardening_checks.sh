#!/usr/bin/env bash
# CI's hardening checks (issue 14), each on a host-only build (no nvcc):
#   sanitizers  tests/sanitize/run_sanitizers.sh (ASan+UBSan suites, TSan stress)
#   fuzz        tests/fuzz/run_smoke.sh (libFuzzer, SLAY_FUZZ_SECONDS, default 60)
#   abidiff     abi/check_abidiff.sh (the committed ABI baseline)
# Installs clang and abigail-tools from Debian when missing (apt-get update
# first). Prints one line per check and ends with "N passed, N failed", one
# count per check, which .ci/run adds to the test suite's final line.
set -uo pipefail
cd "$(dirname "$0")/.."
need=()
command -v clang++ >/dev/null || need+=(clang)
command -v abidiff >/dev/null || need+=(abigail-tools)
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH="/usr/local/cuda/bin:$PATH"
passed=0 failed=0
for check in "sanitizers:bash tests/sanitize/run_sanitizers.sh" "fuzz:bash tests/fuzz/run_smoke.sh" \
             "abidiff:bash abi/check_abidiff.sh"; do
  name=${check%%:*}
  echo "== $name"
  if ${check#*:}; then passed=$((passed + 1)); echo "== $name: passed"; else failed=$((failed + 1)); echo "== $name: FAILED"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
