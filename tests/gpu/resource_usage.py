#!/usr/bin/env python3
"""Registers, spills and stack of the kernels in CUDA translation units, without a GPU.

Recompiles the named .cu files of a configured build directory (its
compile_commands.json) with `nvcc --resource-usage` into a scratch object and
prints one line per kernel entry: registers, spill stores / loads (bytes),
stack frame (bytes), demangled where c++filt exists. Use it to check a
__launch_bounds__ change (e.g. two CTAs an SM need <= 128 registers at 256
threads) before spending device time.

  python3 tests/gpu/resource_usage.py BUILD_DIR linear_forward_mma_kron.cu [more.cu ...]
      [--filter REGEX]    only kernels whose (mangled or demangled) name matches

Exit status 1 if a compile fails (its errors are printed).
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ENTRY = re.compile(r"Compiling entry function '([^']+)'")
SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
REGS = re.compile(r"Used (\d+) registers")


def build_arguments(entry, drop_targets=False):
    """The build's command for one TU without its output and dependency
    files; with drop_targets also without -c and its code generation targets."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    valued = ("-o", "-MQ", "-MT", "-MF", "-odir") + (("-gencode", "--generate-code", "-arch", "-code") if drop_targets else ())
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in valued:
            skip = True
            continue
        if a.startswith("-MD") or (drop_targets and (a == "-c" or a.startswith(
                ("-gencode=", "--generate-code=", "-arch=", "-code=")))):
            continue
        out.append(a)
    return out


def compile_command(entry, obj):
    """The build's command for one TU, writing `obj` and ptxas's resource usage."""
    return build_arguments(entry) + ["--resource-usage", "-o", obj]


def demangle(names):
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, r.stdout.splitlines())) if r.returncode == 0 else {n: n for n in names}


def unit_parser(description):
    """The command line both tools share: a build directory, translation units, --filter."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("build_dir")
    ap.add_argument("units", nargs="+", help="file names (or path suffixes) of .cu translation units")
    ap.add_argument("--filter", default=None, help="only kernels whose (mangled or demangled) name matches")
    return ap


def unit_entries(build_dir, units, missing):
    """(unit, its compile_commands.json entry) of each unit found; the others
    are appended to `missing`, each with a message."""
    with open(os.path.join(build_dir, "compile_commands.json")) as f:
        commands = json.load(f)
    for unit in units:
        entries = [e for e in commands if e["file"].endswith(unit)]
        if entries:
            yield unit, entries[0]
        else:
            print(f"{unit}: not in {build_dir}/compile_commands.json", file=sys.stderr)
            missing.append(unit)


def kernel_resources(log):
    """{kernel: (registers, (stack, spill stores, spill loads))} of ptxas's --resource-usage log."""
    out, name, spill = {}, None, None
    for line in log.splitlines():
        m = ENTRY.search(line)
        if m:
            name, spill = m.group(1), None
            continue
        m = SPILL.search(line)
        if m and name:
            spill = tuple(int(x) for x in m.groups())
            continue
        m = REGS.search(line)
        if m and name:
            out[name] = (int(m.group(1)), spill or (0, 0, 0))
            name = None
    return out


def wanted(kernel, pretty, pattern):
    return not pattern or bool(re.search(pattern, kernel) or re.search(pattern, pretty))


def main():
    opt = unit_parser(__doc__.splitlines()[0]).parse_args()
    status, missing = 0, []
    with tempfile.TemporaryDirectory() as scratch:
        for unit, entry in unit_entries(opt.build_dir, opt.units, missing):
            obj = os.path.join(scratch, "unit.o")
            r = subprocess.run(compile_command(entry, obj), cwd=entry["directory"], capture_output=True, text=True)
            log = r.stdout + r.stderr
            if r.returncode != 0:
                print(f"{unit}: compile failed\n{log}", file=sys.stderr)
                status = 1
                continue
            rows = kernel_resources(log)
            pretty = demangle(list(rows))
            print(f"== {entry['file']}")
            for n, (regs, (stack, stores, loads)) in rows.items():
                if wanted(n, pretty[n], opt.filter):
                    print(f"{regs:4d} regs  spill {stores:4d}/{loads:4d} B  stack {stack:4d} B  {pretty[n]}")
    return 1 if missing else status


if __name__ == "__main__":
    sys.exit(main())
