#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds and installs
# libslay (to /usr/local as root, else ~/.local) from build/, the build
# directory the test command reuses, then compiles the C example
# against the INSTALLED library through pkg-config (plus the CUDA runtime,
# which the example uses to put its tensors on the GPU) and runs it. The
# example runs on the CPU backend when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/install_deps.sh
export PATH="/usr/local/cuda/bin:$PATH"
prefix=/usr/local
[ "$(id -u)" -ne 0 ] && prefix="$HOME/.local"
# The same build directory as tests/run_tests.sh (the README's second
# command), tests included: the second command then only runs the tests
# instead of compiling the CUDA code a second time.
builddir=${SLAY_BUILD_DIR:-build}
if [ -f "$builddir/build.ninja" ]; then
  meson configure "$builddir" --prefix "$prefix" --libdir lib
else
  meson setup "$builddir" --prefix "$prefix" --libdir lib
fi
ninja -C "$builddir"
meson install -C "$builddir" --quiet
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:${PKG_CONFIG_PATH:-}"
export LD_LIBRARY_PATH="$prefix/lib:${LD_LIBRARY_PATH:-}"
cuda_root=$(dirname "$(dirname "$(command -v nvcc)")")
out=$(mktemp -d)
cc -std=c99 -D_POSIX_C_SOURCE=199309L examples/c/slay_example.c -o "$out/slay_example" \
   $(pkg-config --cflags --libs libslay) \
   -isystem "$cuda_root/include" -L"$cuda_root/lib64" -L"$cuda_root/lib" -lcudart -lm
"$out/slay_example" "$@"
