#!/bin/sh
# check_header.sh INCLUDE_DIR SOURCE
#
# Checks that the public header compiles standalone: SOURCE (a C file that
# includes <slay/slay.h> first and uses its types) is compiled as C99, C11
# and C17 with -pedantic -Wall -Wextra -Werror, and as C++17 with -pedantic
# -Werror. Also checks the header includes nothing but <stddef.h> and
# <stdint.h>. Compilers come from $SLAY_CC and $SLAY_CXX (meson passes its
# own compiler commands), else cc and c++.
set -eu

incdir=$1
src=$2
cc=${SLAY_CC:-cc}
cxx=${SLAY_CXX:-c++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

includes=$(grep '^[[:space:]]*#[[:space:]]*include' "$incdir/slay/slay.h" | tr -d ' ' | sort | tr '\n' ' ')
if [ "$includes" != "#include<stddef.h> #include<stdint.h> " ]; then
    echo "FAIL: slay.h includes [$includes]; only <stddef.h> and <stdint.h> are allowed"
    status=1
fi

compile() {  # label, then the compiler command and flags
    label=$1
    shift
    if "$@" -I"$incdir" -c "$src" -o "$tmp/out.o" > "$tmp/log" 2>&1; then
        echo "OK:   $label"
    else
        echo "FAIL: $label: $*"
        cat "$tmp/log"
        status=1
    fi
}

for std in c99 c11 c17; do
    # shellcheck disable=SC2086  # the compiler command may be several words
    compile "$std" $cc -std=$std -pedantic -Wall -Wextra -Werror
done
# shellcheck disable=SC2086
compile "c++17" $cxx -x c++ -std=c++17 -pedantic -Wall -Wextra -Werror

exit $status
