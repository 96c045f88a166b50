#!/usr/bin/env python3
"""build_libslay.py -- run by abi/python/meson.build when pkg-config finds no
libslay: configures and builds libslay from the repository root (meson setup
with -Dtests=false -Dexamples=false, then meson compile) in a private build
directory and copies its shared library (the SONAME file, symlinks resolved)
to the path the package ships it under.

Usage: build_libslay.py REPO_ROOT BUILD_DIR OUTPUT   (OUTPUT ends in the SONAME)
"""
import os
import shutil
import subprocess
import sys


def main():
    repo, build_dir, output = sys.argv[1:4]
    env = dict(os.environ)
    # nvcc lives in /usr/local/cuda/bin on NVIDIA's installs (the repository's scripts add it too).
    env["PATH"] = os.pathsep.join(["/usr/local/cuda/bin", env.get("PATH", "")])
    meson = shutil.which("meson", path=env["PATH"])
    if meson is None:
        sys.exit("build_libslay.py: meson is not on PATH")
    if not os.path.isfile(os.path.join(build_dir, "build.ninja")):
        print(f"build_libslay.py: configuring libslay from {repo} in {build_dir}", flush=True)
        subprocess.run([meson, "setup", build_dir, repo, "-Dtests=false", "-Dexamples=false"], env=env, check=True)
    print("build_libslay.py: compiling libslay (the CUDA code takes minutes)", flush=True)
    subprocess.run([meson, "compile", "-C", build_dir], env=env, check=True)
    built = os.path.join(build_dir, os.path.basename(output))
    shutil.copyfile(built, output)  # follows the SONAME symlink to the real file
    print(f"build_libslay.py: {output}", flush=True)


if __name__ == "__main__":
    main()
