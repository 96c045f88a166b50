#!/usr/bin/env python3
"""test_pip_install.py -- installs the Python package (abi/python) with pip
into a throwaway virtual environment and imports it from outside the source
tree, as a user would:
  python3 -m venv --system-site-packages VENV   (numpy and meson-python from the system)
  PKG_CONFIG_PATH=<builddir>/meson-uninstalled VENV/bin/pip install --no-build-isolation --no-deps abi/python
once as is (the wheel records the library's path) and once with
-Csetup-args=-Dlibslay=bundle (the wheel ships a copy of it); each time
`import slay` in a fresh interpreter must load the expected library and run
one attention call. Exit 77 (skipped) without meson-python, numpy or venv.
Usage: test_pip_install.py BUILDDIR/meson-uninstalled
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PACKAGE = os.path.join(REPO, "abi", "python")
PROBE = """
import os, sys, numpy as np, slay
assert not slay.__file__.startswith(sys.argv[1]), slay.__file__   # the installed copy, not the source tree
q = np.ones((1, 1, 4, 8), np.float32)
out = slay.attention(q, q, q, "linear")
assert np.allclose(out, 1), out
print(os.path.realpath(slay.library_path))
"""


def main():
    for module in ("mesonpy", "numpy", "venv", "ensurepip"):
        if importlib.util.find_spec(module) is None:
            print(f"skipped: {module} is not importable (install meson-python and numpy: .ci/install_deps.sh)")
            return 77
    uninstalled_pc_dir = sys.argv[1]
    env = dict(os.environ, PKG_CONFIG_PATH=uninstalled_pc_dir + os.pathsep + os.environ.get("PKG_CONFIG_PATH", ""))
    env.pop("SLAY_LIBRARY", None)   # the installed package must find the library itself
    env.pop("PYTHONPATH", None)     # and must not see the source tree
    built = os.path.realpath(subprocess.run(
        ["pkg-config", "--variable=prefix", "libslay"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip())
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "venv")
        made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], capture_output=True,
                              text=True)
        if made.returncode != 0:  # e.g. Debian's python3 without python3-venv
            print(f"skipped: python3 -m venv failed: {made.stderr.strip()[-500:]}")
            return 77
        python = os.path.join(venv, "bin", "python")
        for label, extra, expect_inside in (("recorded path", [], False),
                                            ("bundled copy", ["-Csetup-args=-Dlibslay=bundle"], True)):
            install = subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                                      "--no-input", "--disable-pip-version-check", *extra, PACKAGE],
                                     env=env, cwd=tmp, capture_output=True, text=True)
            if install.returncode != 0:
                print(f"FAIL pip install ({label}):\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}")
                failures += 1
                continue
            probe = subprocess.run([python, "-c", PROBE, PACKAGE], env=env, cwd=tmp, capture_output=True, text=True)
            loaded = probe.stdout.strip()
            good = probe.returncode == 0 and (loaded.startswith(venv) if expect_inside else
                                              loaded.startswith(built + os.sep))
            failures += 0 if good else 1
            print(f"{'ok  ' if good else 'FAIL'} pip install ({label}), import from {tmp}: loads {loaded or '-'}"
                  f"{probe.stderr[-2000:] if probe.returncode else ''}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
