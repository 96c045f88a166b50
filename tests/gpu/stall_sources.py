#!/usr/bin/env python3
"""Where a kernel's warps stall, by source function: ncu's per-instruction stall samples mapped to source.

ncu's source page (`ncu -i REPORT --page source --print-source sass --csv`,
run_device.sh's kronsrc phase writes it as kronsrc_sass.csv.gz) gives stall
samples per SASS instruction of a build without line information. This
recompiles the kernel's translation unit from a configured build directory
(its compile_commands.json) with -lineinfo for the same architecture, whose
SASS is the same instruction for instruction (checked: every offset's opcode
must agree, else the numbers are refused), disassembles it (nvdisasm -gi) and
charges each instruction's samples to its innermost source line in this
repository (through the inlining chain) and to the function around that line. Prints the functions by samples with their main
stall reasons, then the instructions with the most samples.

  python3 tests/gpu/stall_sources.py BUILD_DIR kron_kernel_bench.cu kronsrc_sass.csv.gz \\
      --kernel 'kron_forward_wgmma_kernel<__nv_bfloat16, true, false>' [--arch 90a] [--top 25]

--kernel is a regular expression over the demangled name (ncu's "(bool)1" read
as "true", "(int)3" as "3"); it must match exactly one kernel of the CSV and
of the cubin. A sample sits on the instruction a warp waits to issue, so a
stall on a slow result (short_sb, long_sb, wait) is charged to its consumer,
and warps parked at a barrier (an idle producer warpgroup at the exit's
cluster barrier, for one) collect samples without costing issue slots.
Exit status 77 without nvdisasm (PATH or an NVIDIA wheel), 1 on a mismatch.
"""
import argparse
import collections
import csv
import gzip
import os
import re
import subprocess
import sys
import tempfile

from resource_usage import build_arguments, demangle, unit_entries
from sass_audit import find_tool

LINE_INFO = re.compile(r'//## File "([^"]+)", line (\d+)')
# a kernel's text section (its instructions and the subroutines it calls, as ncu lists them)
SECTION = re.compile(r"^\.text\.(\S+):")
SASS_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
# a function definition in the kernels' headers: the device functions (a struct's
# static ones too: PackedRounds::wait_round is `wait_round`) and macros (a lambda's
# lines belong to the function that defines it)
DEFINITION = [re.compile(p) for p in (
    r"^\s*(?:template <.*>\s*)?__device__ __forceinline__ (?:static )?[\w:<>,\s&*]*?\b(\w+)\(",
    r"^__global__ .*?\b(\w+)\(",
    r"^\s*(\w+_kernel)\(",
    r"^#define (\w+)",
)]


def normalized(name):
    name = re.sub(r"\(bool\)1", "true", name)
    name = re.sub(r"\(bool\)0", "false", name)
    return re.sub(r"\((?:int|unsigned int)\)(-?\d+)", r"\1", name)


def csv_kernels(path):
    """{kernel name: [row dicts]} of ncu's source CSV (the first table of each kernel)."""
    opener = gzip.open if path.endswith(".gz") else open
    tables, name, header = {}, None, None
    with opener(path, "rt", newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            if row[0] == "Kernel Name":
                name = normalized(row[1])
                header = None
                if name in tables:
                    name = None  # a later table of the same kernel: the first is taken
                else:
                    tables[name] = []
                continue
            if name is None:
                continue
            if row[0] == "Address":
                header = row
                continue
            if header:
                tables[name].append(dict(zip(header, row)))
    return tables


def sass_functions(listing, own):
    """{mangled kernel: {offset: (file, line, instruction, calls)}} of `nvdisasm -gi -c`:
    each instruction's innermost source frame inside `own` (the repository;
    a frame in the toolkit's headers, such as cuda_bf16.hpp's operators, is
    charged to the line that called it), else its innermost frame; calls: its
    frames inside `own`, outermost (the kernel's line) first, which tell one
    inlined call of a shared helper (a named barrier, say) from another."""
    out, current, where, chain, calls = {}, None, (None, 0), None, []
    for line in listing.splitlines():
        m = SECTION.search(line)
        if m:
            current = out.setdefault(m.group(1), {})
            where, chain = (None, 0), None
            continue
        if current is None:
            continue
        frames = LINE_INFO.findall(line)
        if frames:  # a group of these lines is the inlining chain, a frame a line, innermost first
            chain = (chain or []) + [(path, int(n)) for path, n in frames]
            continue
        m = SASS_LINE.match(line)
        if m:
            if chain:
                inside = [f for f in chain if os.path.realpath(f[0]).startswith(own)]
                where = (inside or chain)[0]
                calls = inside[::-1]
            chain = None
            current[int(m.group(1), 16)] = (where[0], where[1], m.group(2), calls)
    return out


class Functions:
    """The function around a source line (the nearest definition above it)."""

    def __init__(self, directory):
        self.directory, self.files = directory, {}

    def __call__(self, path, line):
        if path is None:
            return "?"
        full = path if os.path.isabs(path) else os.path.join(self.directory, path)
        if full not in self.files:
            try:
                with open(full) as f:
                    self.files[full] = f.read().splitlines()
            except OSError:
                self.files[full] = None
        lines, short = self.files[full], os.path.basename(path)
        if lines is None:
            return short
        for j in range(min(line, len(lines)) - 1, -1, -1):
            for pattern in DEFINITION:
                m = pattern.search(lines[j])
                if m:
                    return f"{short}:{m.group(1)}"
        return short


def opcode(text):
    words = text.split()
    if words and words[0].startswith("@"):
        words = words[1:]
    return words[0].split(".")[0] if words else ""


def local_sass(build_dir, unit, arch, nvdisasm):
    """(sass_functions of the unit, {mangled: demangled}, the compile's directory):
    the translation unit `unit` of the configured build recompiled for sm_`arch`
    with -lineinfo (the same SASS as without) and disassembled by `nvdisasm`
    (the caller's find_tool: without one it exits 77); None (after saying
    why) when it cannot be."""
    missing = []
    entries = list(unit_entries(build_dir, [unit], missing))
    if missing:
        return None
    entry = entries[0][1]
    with tempfile.TemporaryDirectory() as scratch:
        cubin = os.path.join(scratch, "unit.cubin")
        cmd = build_arguments(entry, drop_targets=True) + [
            f"-gencode=arch=compute_{arch},code=sm_{arch}", "-lineinfo", "-cubin", "-o", cubin]
        r = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"compile failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}", file=sys.stderr)
            return None
        r = subprocess.run([nvdisasm, "-gi", "-c", cubin], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"disassembly failed\n{r.stderr}", file=sys.stderr)
            return None
    own = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    functions = sass_functions(r.stdout, own)
    return functions, demangle(sorted(functions)), entry["directory"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("unit", help="file name (or path suffix) of the kernel's .cu translation unit")
    ap.add_argument("csv", help="ncu's source page, SASS view, as CSV (optionally .gz)")
    ap.add_argument("--kernel", required=True, help="regular expression over the demangled kernel name")
    ap.add_argument("--arch", default="90a", help="compute capability the profiled build targeted (default 90a)")
    ap.add_argument("--top", type=int, default=25, help="instructions to list (default 25)")
    opt = ap.parse_args()
    nvdisasm = find_tool("nvdisasm")
    if nvdisasm is None:
        print("stall_sources: no nvdisasm (PATH or an NVIDIA wheel)", file=sys.stderr)
        return 77
    tables = csv_kernels(opt.csv)
    in_csv = [k for k in tables if re.search(opt.kernel, k)]
    if len(in_csv) != 1:
        print(f"stall_sources: --kernel matches {len(in_csv)} kernels of the CSV: {sorted(tables)}", file=sys.stderr)
        return 1
    rows = tables[in_csv[0]]
    built = local_sass(opt.build_dir, opt.unit, opt.arch, nvdisasm)
    if built is None:
        return 1
    functions, pretty, directory = built
    in_cubin = [k for k in functions if re.search(opt.kernel, pretty[k])]
    if len(in_cubin) != 1:
        print(f"stall_sources: --kernel matches {len(in_cubin)} kernels of the cubin", file=sys.stderr)
        return 1
    local = functions[in_cubin[0]]
    base = int(rows[0]["Address"], 16)
    mismatched = [r["Address"] for r in rows
                  if opcode(r["Source"]) != opcode(local.get(int(r["Address"], 16) - base, (0, 0, ""))[2])]
    if len(rows) != len(local) or mismatched:
        print(f"stall_sources: the profiled SASS ({len(rows)} instructions) is not this build's ({len(local)}); "
              f"{len(mismatched)} opcodes differ (first at {mismatched[:3]}): profile and source must be the "
              "same commit and toolkit", file=sys.stderr)
        return 1
    function_of = Functions(directory)
    samples, reasons, top, total = collections.Counter(), collections.defaultdict(collections.Counter), [], 0
    for row in rows:
        path, line, text, calls = local[int(row["Address"], 16) - base]
        n = int(row.get("Warp Stall Sampling (All Samples)") or 0)
        fn = function_of(path, line)
        samples[fn] += n
        total += n
        for key, value in row.items():
            if key.startswith("stall_") and "(Not Issued)" not in key and value not in ("", "0"):
                reasons[fn][key[len("stall_"):]] += int(value)
        chain = " > ".join(f"{os.path.basename(p)}:{k}" for p, k in calls[-4:])
        top.append((n, int(row["Address"], 16) - base, text, fn, chain or f"{os.path.basename(path or '?')}:{line}"))
    print(f"{in_csv[0]}\n{len(rows)} instructions, {total} stall samples (all), offsets and opcodes as built here")
    print(f"\n| samples | % | function | main stall reasons |\n|---|---|---|---|")
    for fn, n in samples.most_common():
        if n * 200 < total:
            break
        why = ", ".join(f"{k} {v}" for k, v in reasons[fn].most_common(4))
        print(f"| {n} | {100 * n / total:.1f} | {fn} | {why} |")
    print(f"\n| samples | offset | instruction | function | lines (the last 4 calls: outer > inner) |\n|---|---|---|---|---|")
    for n, offset, text, fn, where in sorted(top, reverse=True)[:opt.top]:
        print(f"| {n} | {offset:#x} | `{text[:70]}` | {fn} | {where} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
