#!/usr/bin/env bash
# ABI baseline check (CI): builds libslay host-only with debug info in
# build-abi (-Dgpu=disabled: the exported functions and public types are the
# same in every build) and compares it with the committed baseline
# abi/libslay.abi.xml (abidw of the released library) using abidiff from
# abigail-tools. Types defined outside include/slay (the opaque handles'
# internals) are private and ignored; added functions are allowed
# (--no-added-syms); anything else abidiff reports (a changed function
# signature, a removed function, a changed public struct or enum value)
# fails the check. After an intended ABI addition (abi/POLICY.md), refresh
# the baseline:   bash abi/check_abidiff.sh --update
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-abi
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" -Dgpu=disabled -Dtests=false -Dexamples=false -Dbuildtype=debugoptimized >/dev/null
fi
ninja -C "$dir" >/dev/null
lib=$(ls "$dir"/libslay.so.*.*.* | head -1)
if [ "${1:-}" = "--update" ]; then
  abidw --no-corpus-path --no-show-locs --headers-dir include/slay --drop-private-types "$lib" > abi/libslay.abi.xml
  echo "abi/libslay.abi.xml updated from $lib"
  exit 0
fi
set +e
abidiff --no-added-syms --headers-dir2 include/slay --drop-private-types abi/libslay.abi.xml "$lib"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  echo "abidiff: $lib differs from the baseline abi/libslay.abi.xml (exit $rc: 4 = change, 8 = incompatible)"
  exit 1
fi
echo "abidiff: $lib matches the baseline abi/libslay.abi.xml"
