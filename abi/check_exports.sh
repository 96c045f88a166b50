#!/bin/sh
# check_exports.sh LIB EXPORTS [HEADER]
#
# Checks that the dynamic symbols LIB defines are exactly the names listed in
# EXPORTS (one per line, sorted), each bound to the version node LIBSLAY_0,
# and, when HEADER is given, that the header declares exactly those
# functions (every SLAY_API declaration names one export and vice versa).
# Exits 0 when all agree; prints the differences and exits 1 otherwise.
set -eu

lib=$1
exports=$2
header=${3:-}
export LC_ALL=C
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

if ! sort -c "$exports" 2>/dev/null; then
    echo "FAIL: $exports is not sorted (LC_ALL=C sort)"
    status=1
fi
sort -u "$exports" > "$tmp/expected"

# Defined dynamic symbols, minus the version node's own absolute symbol.
nm -D --defined-only "$lib" | awk '{print $NF}' | grep -vx 'LIBSLAY_0' > "$tmp/raw" || true
if grep -v '@@LIBSLAY_0$' "$tmp/raw" > "$tmp/unversioned"; then
    echo "FAIL: symbols not bound to version node LIBSLAY_0:"
    cat "$tmp/unversioned"
    status=1
fi
sed 's/@@LIBSLAY_0$//' "$tmp/raw" | sort -u > "$tmp/actual"

if ! diff -u "$tmp/expected" "$tmp/actual" > "$tmp/diff"; then
    echo "FAIL: exported symbols of $lib differ from $exports ('-' expected only, '+' exported only):"
    cat "$tmp/diff"
    status=1
fi

if [ -n "$header" ]; then
    grep '^SLAY_API' "$header" | grep -o 'slay_[a-z0-9_]*(' | tr -d '(' | sort -u > "$tmp/declared"
    if ! diff -u "$tmp/expected" "$tmp/declared" > "$tmp/hdiff"; then
        echo "FAIL: SLAY_API declarations of $header differ from $exports ('+' declared only):"
        cat "$tmp/hdiff"
        status=1
    fi
fi

[ $status -eq 0 ] && echo "OK: $(wc -l < "$tmp/actual") exports match $exports"
exit $status
