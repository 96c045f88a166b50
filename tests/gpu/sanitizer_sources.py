#!/usr/bin/env python3
"""Where compute-sanitizer's reports point in the source: each access it names mapped to a source line.

compute-sanitizer names an access by kernel and SASS offset ("Read access at
void KERNEL(ARGS)+0x2240"), which says nothing about the source without
line information. This recompiles the kernels' translation unit from a
configured build directory with -lineinfo for the same architecture (the same
SASS as the device's build of the same commit and toolkit: stall_sources.py's
local_sass) and prints, for each reported access, its kind, offset, SASS
instruction and the repository's lines of its inlining chain (outer > inner,
the last four), with how many reports named it. The chains of a racecheck
hazard's read and write tell which data the two sides share and whether a
barrier lies between them.

  python3 tests/gpu/sanitizer_sources.py BUILD_DIR kron_kernel_bench.cu kron_sanitize_racecheck.log [--arch 90a]

Offsets that do not exist in the local build, or an instruction whose kind
disagrees with the report (a "Write" that is no store), mean the log came from
another commit or toolkit: they are flagged, and the exit status is 1.
Exit status 77 without nvdisasm (PATH or an NVIDIA wheel).
"""
import argparse
import collections
import os
import re
import sys

from sass_audit import find_tool
from stall_sources import local_sass, normalized

ACCESS = re.compile(r"(Read|Write) access at (?:void )?([^\s(]+(?:<[^>]*>)?)\([^)]*\)\+0x([0-9a-f]+)")
STORE = re.compile(r"^(?:@!?U?P\w+\s+)?(STS|STAS|ST|STG|STL|ATOMS|ATOM|RED|SYNCS|UBLKCP|UTMA)")


def kernel_key(name):
    """A kernel's demangled name without namespaces and arguments, its template bools spelled out."""
    name = normalized(name)
    name = re.sub(r"\(.*", "", name)
    return name.split("::")[-1] if "<" not in name else re.sub(r"^.*::(\w+<)", r"\1", name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir")
    ap.add_argument("unit", help="file name (or path suffix) of the kernels' .cu translation unit")
    ap.add_argument("log", help="compute-sanitizer's output")
    ap.add_argument("--arch", default="90a", help="compute capability the sanitized build targeted (default 90a)")
    opt = ap.parse_args()
    nvdisasm = find_tool("nvdisasm")
    if nvdisasm is None:
        print("sanitizer_sources: no nvdisasm (PATH or an NVIDIA wheel)", file=sys.stderr)
        return 77
    with open(opt.log, errors="replace") as f:
        reports = collections.Counter(
            (kernel_key(m.group(2)), int(m.group(3), 16), m.group(1)) for m in ACCESS.finditer(f.read()))
    if not reports:
        print("sanitizer_sources: no accesses named in the log")
        return 0
    built = local_sass(opt.build_dir, opt.unit, opt.arch, nvdisasm)
    if built is None:
        return 1
    functions, pretty, _ = built
    by_key = {kernel_key(pretty[k].replace("void ", "", 1)): v for k, v in functions.items()}
    flagged = 0
    print("| reports | kernel | access | offset | instruction | lines (outer > inner) |\n|---|---|---|---|---|---|")
    for (kernel, offset, kind), n in sorted(reports.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])):
        listing = by_key.get(kernel)
        if listing is None or offset not in listing:
            flagged += 1
            print(f"| {n} | {kernel} | {kind} | {offset:#x} | (not in this build) | |")
            continue
        path, line, text, calls = listing[offset]
        stores = bool(STORE.match(text))
        mark = "" if stores == (kind == "Write") or text.split()[0].startswith(("SYNCS", "HGMMA", "UTMA")) else " (?)"
        flagged += bool(mark)
        chain = " > ".join(f"{os.path.basename(p)}:{k}" for p, k in calls[-4:]) or f"{os.path.basename(path or '?')}:{line}"
        print(f"| {n} | {kernel} | {kind}{mark} | {offset:#x} | `{text[:60]}` | {chain} |")
    if flagged:
        print(f"\nsanitizer_sources: {flagged} accesses do not match this build (another commit or toolkit?)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
