#!/bin/sh
# check_soname.sh LIB HEADER
#
# Checks that LIB's SONAME is libslay.so.0.<SLAY_VERSION_MINOR>, the minor
# version read from HEADER (before 1.0 every minor release is its own ABI).
set -eu

lib=$1
header=$2
minor=$(sed -n 's/^#define SLAY_VERSION_MINOR \([0-9][0-9]*\).*/\1/p' "$header")
expected="libslay.so.0.$minor"
actual=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ -z "$minor" ] || [ "$actual" != "$expected" ]; then
    echo "FAIL: SONAME of $lib is '$actual', expected '$expected'"
    exit 1
fi
echo "OK: SONAME $actual"
