#!/usr/bin/env python3
"""What ptxas kept of the PTX: per kernel, collective instructions in PTX against SASS.

Recompiles the named .cu files of a configured build directory (its
compile_commands.json) twice for one architecture (default sm_90a): to PTX
and to a cubin, disassembles the cubin (nvdisasm, else cuobjdump -sass) and
prints one line per kernel entry with, in PTX / SASS:

  wgmma.mma_async / HGMMA    must match: ptxas neither adds nor drops them
  mma.sync / HMMA            SASS >= PTX (an m16n8k16 is one HMMA)
  shfl.sync / SHFL           SASS >= PTX (divergent paths may duplicate)
  spill stores / loads (bytes, from ptxas)
  SERIALIZED when ptxas serialized the kernel's wgmmas (C7512: each waits
  for the one before; its reason follows), a loss of speed, not of work

A kernel whose SASS holds fewer of these than its PTX lost work in ptxas:
that is how the Kronecker backward's miscompile showed (carry_terms' dpoly
reduction: 32 shuffles in the PTX, 8 in the SASS; the device's factor
gradients wrong, the CPU emulation's right, since the emulation is compiled
by the host compiler). Run it on the device's toolkit too (run_device.sh's
kronkernels phase does): such a miscompile belongs to one ptxas version.

  python3 tests/gpu/sass_audit.py BUILD_DIR kron_kernel_bench.cu [more.cu ...]
      [--filter REGEX] [--arch 90a]

Exit status 1 if a compile or disassembly fails or any kernel has fewer
instructions of a class in SASS than in PTX; 77 without nvdisasm or cuobjdump
(on PATH or in an NVIDIA wheel such as nvidia-cuda-nvdisasm).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

from resource_usage import build_arguments, demangle, kernel_resources, unit_entries, unit_parser, wanted

PTX_ENTRY = re.compile(r"^(?:\.visible\s+|\.weak\s+)?\.entry\s+(\S+?)\(")
PTX_FUNCTION = re.compile(r"^(?:\.visible\s+|\.weak\s+)?\.func\b")  # a non-inlined device function: no kernel's
SASS_FUNCTION = re.compile(r"^\s*\.type\s+(\S+),@function")
SASS_HEADER = re.compile(r"^\s*Function : (\S+)")  # cuobjdump -sass
SERIALIZED = re.compile(r"wgmma\.mma_async instructions are serialized due to ([^']+?) for the function '([^']+)'")
# (class, PTX pattern, SASS pattern, SASS must equal PTX rather than reach it)
CLASSES = [
    ("wgmma", re.compile(r"\bwgmma\.mma_async\b"), re.compile(r"\bHGMMA\b"), True),
    ("mma", re.compile(r"\bmma\.sync\b"), re.compile(r"\bHMMA\b"), False),
    ("shfl", re.compile(r"\bshfl\.sync\b"), re.compile(r"\bSHFL\b"), False),
]


def count_by_kernel(lines, header):
    """{kernel: {class: count}} of a listing whose kernels start at `header` lines."""
    counts, name = {}, None
    for line in lines:
        m = header.search(line)
        if m:
            name = m.group(1)
            counts.setdefault(name, {c: 0 for c, _, _, _ in CLASSES})
            continue
        if header is PTX_ENTRY and PTX_FUNCTION.search(line):
            name = None  # its instructions are in SASS under its own name
            continue
        if name is None:
            continue
        for cls, ptx, sass, _ in CLASSES:
            if (ptx if header is PTX_ENTRY else sass).search(line):
                counts[name][cls] += 1
    return counts


def find_tool(name):
    """`name` on PATH, else in an NVIDIA wheel (e.g. nvidia-cuda-nvdisasm: nvidia/cu13/bin)."""
    path = shutil.which(name)
    if path:
        return path
    try:
        import nvidia  # namespace package of NVIDIA's PyPI wheels
    except ImportError:
        return None
    for base in nvidia.__path__:
        found = sorted(glob.glob(os.path.join(base, "*", "bin", name)))
        if found:
            return found[-1]
    return None


def disassembler():
    """(command prefix, the header that starts a kernel in its listing) of
    nvdisasm, else cuobjdump -sass; None without either."""
    nvdisasm = find_tool("nvdisasm")
    if nvdisasm:
        return [nvdisasm, "-c"], SASS_FUNCTION
    cuobjdump = find_tool("cuobjdump")
    return ([cuobjdump, "-sass"], SASS_HEADER) if cuobjdump else None


def main():
    ap = unit_parser(__doc__.splitlines()[0])
    ap.add_argument("--arch", default="90a", help="compute capability of the one target (default 90a)")
    opt = ap.parse_args()
    tool = disassembler()
    if tool is None:
        print("sass_audit: neither nvdisasm nor cuobjdump (PATH or an NVIDIA wheel)", file=sys.stderr)
        return 77
    disassemble, header = tool
    status, missing = 0, []
    with tempfile.TemporaryDirectory() as scratch:
        for unit, entry in unit_entries(opt.build_dir, opt.units, missing):
            base = build_arguments(entry, drop_targets=True)  # one target a run below
            ptx, cubin = os.path.join(scratch, "unit.ptx"), os.path.join(scratch, "unit.cubin")
            runs = [
                base + [f"-gencode=arch=compute_{opt.arch},code=compute_{opt.arch}", "-ptx", "-o", ptx],
                base + [f"-gencode=arch=compute_{opt.arch},code=sm_{opt.arch}", "-cubin", "--resource-usage",
                        "-o", cubin],
            ]
            logs = []
            for cmd in runs:
                r = subprocess.run(cmd, cwd=entry["directory"], capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"{unit}: compile failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}", file=sys.stderr)
                    status = 1
                    break
                logs.append(r.stdout + r.stderr)
            else:
                r = subprocess.run(disassemble + [cubin], capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"{unit}: disassembly failed\n{r.stderr}", file=sys.stderr)
                    status = 1
                    continue
                with open(ptx) as f:
                    in_ptx = count_by_kernel(f.read().splitlines(), PTX_ENTRY)
                in_sass = count_by_kernel(r.stdout.splitlines(), header)
                resources = kernel_resources(logs[1])
                serialized = {m.group(2): m.group(1) for m in SERIALIZED.finditer(logs[1])}
                pretty = demangle(sorted(in_ptx))
                print(f"== {entry['file']} (sm_{opt.arch}): PTX / SASS " +
                      "  ".join(c for c, _, _, _ in CLASSES) + "  spill stores / loads")
                for kernel in sorted(in_ptx):
                    if not wanted(kernel, pretty[kernel], opt.filter):
                        continue
                    p, s = in_ptx[kernel], in_sass.get(kernel)
                    if s is None:
                        print(f"MISSING in SASS  {pretty[kernel]}")
                        status = 1
                        continue
                    lost = [c for c, _, _, equal in CLASSES if (s[c] != p[c] if equal else s[c] < p[c])]
                    cells = "  ".join(f"{p[c]:4d} /{s[c]:4d}" for c, _, _, _ in CLASSES)
                    _, (_, st, ld) = resources.get(kernel, (0, (0, 0, 0)))
                    verdict = "LOST " + ",".join(lost) if lost else "ok"
                    if kernel in serialized:
                        verdict += " SERIALIZED"
                    print(f"{cells}  {st:4d} /{ld:4d} B  {verdict:10s} {pretty[kernel]}")
                    if kernel in serialized:
                        print(f"      SERIALIZED: {serialized[kernel]}")
                    if lost:
                        status = 1
    return 1 if missing else status


if __name__ == "__main__":
    sys.exit(main())
