#!/bin/sh
# run_cargo.sh ARGS... -- runs `cargo ARGS...` for the meson tests of the Rust
# crate and example, or exits 77 (meson's "skipped") when cargo is not
# installed. The meson test sets SLAY_LIBRARY (the freshly built libslay) and
# CARGO_TARGET_DIR (inside the build dir) in the environment.
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: skipping (.ci/install_deps.sh installs Debian's cargo)"
    exit 77
fi
exec cargo "$@"
