#!/bin/sh
# run_julia.sh ARGS... -- runs `julia --startup-file=no ARGS...` for the meson
# test of the Julia example, or exits 77 (meson's "skipped") when julia is not
# on PATH. The meson test sets SLAY_LIBRARY to the freshly built libslay.
if ! command -v julia >/dev/null 2>&1; then
    echo "julia not found on PATH: skipping the Julia example"
    exit 77
fi
exec julia --startup-file=no "$@"
