#!/usr/bin/env bash
# Installs libslay's build dependencies from Debian (meson, ninja, a C/C++
# compiler, pkg-config, doctest) and checks for the CUDA toolkit (nvcc,
# cuRAND), which libslay needs even for its CPU backend (cuRAND's host
# generator draws the feature parameters). Safe to run twice.
set -euo pipefail
need=()
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v c++ >/dev/null || need+=(g++)
[ -f /usr/include/doctest/doctest.h ] || need+=(doctest-dev)
command -v python3 >/dev/null || need+=(python3)
command -v readelf >/dev/null || need+=(binutils)
# Rust: cargo (and rustc) for the crate abi/rust and examples/rust; Debian's
# rustc 1.63 is enough (std only, no crates.io). A rustup install also counts.
command -v cargo >/dev/null || need+=(cargo)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# --- Python package (abi/python): numpy for its tests and example, and
# meson-python for the test that pip-installs it. Debian's own python3 is
# externally managed (PEP 668), so it gets Debian's packages; any other python3
# (e.g. pyenv's) gets them from PyPI, meson-python with --no-deps so that pip's
# `meson` does not shadow Debian's meson for the whole build. Not fatal: the
# Python tests skip (77) without them.
if ! python3 -c "import numpy, mesonpy" 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if [ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        python3-numpy python3-mesonpy python3-venv >/dev/null; } || echo "warning: numpy/meson-python not installed"
  else
    python3 -m pip install -q --disable-pip-version-check numpy \
      && python3 -m pip install -q --disable-pip-version-check --no-deps meson-python pyproject-metadata \
           packaging 'tomli; python_version < "3.11"' \
      || echo "warning: numpy/meson-python not installed"
  fi
fi
# --- end Python package
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  echo "note: add /usr/local/cuda/bin to PATH (the scripts here do it themselves)"
fi
if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "error: the CUDA toolkit (nvcc, cuRAND) was not found; install CUDA >= 12 from NVIDIA" >&2
  exit 1
fi
