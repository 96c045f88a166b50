#!/usr/bin/env python3
"""check_signatures.py -- checks the Julia module (abi/julia/Slay.jl) against
include/slay/slay.h: every @ccall (the function exists, its arity, argument
and return types), every struct mirroring a header struct (field order,
names, types: SlayTensor for slay_tensor_t, SlayAttnFwdArgs for
slay_attn_fwd_args_t, ...) and every enum constant (name and value). No Julia
runtime is needed, so CI runs it everywhere; a changed header signature
fails here instead of corrupting memory at run time.

Usage: check_signatures.py HEADER SLAY_JL [EXPORTS]
Exits 0 when all agree, else prints each difference and exits 1.

Julia types map to the canonical forms of slay_header.py: Int32/Cint -> i32,
UInt32/Cuint -> u32, Int64 -> i64, UInt64 -> u64, Csize_t -> usize,
Float64/Cdouble -> f64, Cvoid -> void, Cstring or Ptr{UInt8}/Ptr{Cchar} ->
cstr, Ptr{T}/Ref{T} -> ptr(T), NTuple{N,T} -> array(T,N), `const X = T`
aliases resolved.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slay_header  # noqa: E402

JULIA_SCALARS = {
    "Int32": "i32", "Cint": "i32", "UInt32": "u32", "Cuint": "u32",
    "Int64": "i64", "Clonglong": "i64", "UInt64": "u64", "Culonglong": "u64",
    "Csize_t": "usize", "Float64": "f64", "Cdouble": "f64", "Float32": "f32", "Cfloat": "f32",
    "Cvoid": "void", "Nothing": "void", "UInt8": "char", "Cchar": "char", "Cuchar": "char",
    "Cstring": "cstr",
}


def julia_struct_name(c_typedef):
    """slay_attn_fwd_args_t -> SlayAttnFwdArgs (the module's naming rule)."""
    return "".join(part.capitalize() for part in re.sub(r"_t$", "", c_typedef).split("_"))


def strip_comments(text):
    """Removes #= =# blocks and # comments outside string literals."""
    text = re.sub(r"#=.*?=#", " ", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        in_string, kept = False, []
        for i, ch in enumerate(line):
            if ch == '"' and (i == 0 or line[i - 1] != "\\"):
                in_string = not in_string
            if ch == "#" and not in_string:
                break
            kept.append(ch)
        out.append("".join(kept))
    return "\n".join(out)


def balanced(text, start):
    """The index just past the parenthesis group opening at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise slay_header.ParseError(f"unbalanced parentheses from {text[start:start + 60]!r}")


class JuliaBinding:
    """Slay.jl read into the shape slay_header.compare() takes."""

    def __init__(self, path, header):
        self.path = path
        text = strip_comments(open(path, encoding="utf-8").read())
        self.constants, self.aliases = {}, {}
        for name, rhs in re.findall(r"^\s*const\s+(\w+)\s*=\s*(.+?)\s*$", text, flags=re.M):
            value = re.fullmatch(r"(?:Int32|Cint|UInt32|Int64|Int)?\(?\s*(-?(?:0x[0-9a-fA-F]+|\d+))\s*\)?", rhs)
            if value:
                self.constants[name] = int(value.group(1), 0)
            elif re.fullmatch(r"[\w{}, ]+", rhs):
                self.aliases[name] = rhs
        # Only the header's names are compared (SLAY_*); module-private
        # constants (libslay, ATTRIBUTES) are not ABI.
        self.enum_constants = {n: v for n, v in self.constants.items() if n.startswith("SLAY_")}

        by_julia_name = {julia_struct_name(c): c for c in header.structs}
        self.struct_types = {}  # Julia struct name -> C typedef
        self.structs = {}
        for name, body in re.findall(r"^\s*(?:mutable\s+)?struct\s+(\w+)\s*\n(.*?)^\s*end\b", text, flags=re.M | re.S):
            if name not in by_julia_name:
                continue  # Handle, Plan, SlayError...: not C structs
            cname = by_julia_name[name]
            self.struct_types[name] = cname
            fields = []
            for line in filter(None, (l.strip() for l in body.split("\n"))):
                m = re.fullmatch(r"(\w+)::(.+)", line)
                if not m:
                    raise slay_header.ParseError(f"{path}: struct {name}: cannot read field line {line!r} "
                                                 f"(C-layout structs hold field::Type lines only)")
                fields.append((m.group(1), m.group(2).strip(), m.group(2).strip()))
            self.structs[cname] = fields
        # Types are resolved after every struct is known (fields name them).
        self.structs = {c: [(f, self.canonical(t, f"struct {c}"), s) for f, t, s in fs] for c, fs in self.structs.items()}

        self.functions = {}
        for m in re.finditer(r"@ccall\s+(\w+)\.(\w+)\s*\(", text):
            name = m.group(2)
            end = balanced(text, m.end() - 1)
            ret = re.match(r"\s*::\s*([\w{}, ]+?)\s*(?:$|\n|\))", text[end:])
            if not ret:
                raise slay_header.ParseError(f"{path}: @ccall {name}: no ::ReturnType after the arguments")
            where = f"@ccall {name}"
            args = []
            for i, arg in enumerate(slay_header.split_top_level(text[m.end():end - 1])):
                am = re.fullmatch(r"(.+?)\s*::\s*(.+)", arg, flags=re.S)
                if not am:
                    raise slay_header.ParseError(f"{path}: {where}: argument {i + 1} {arg!r} has no ::Type")
                args.append((am.group(1).strip(), self.canonical(am.group(2), f"{where}, argument {i + 1}"),
                             am.group(2).strip()))
            site = (self.canonical(ret.group(1), where + ", return type"), args, ret.group(1).strip())
            self.functions.setdefault(name, []).append(site)

    def canonical(self, jtype, where, depth=0):
        """The canonical form (see slay_header) of a Julia type expression."""
        t = jtype.strip()
        if depth > 20:
            raise slay_header.ParseError(f"{self.path}: {where}: type alias cycle at {t!r}")
        m = re.fullmatch(r"(Ptr|Ref)\{(.+)\}", t)
        if m:
            inner = m.group(2).strip()
            if m.group(1) == "Ptr" and inner in ("UInt8", "Cchar", "Cuchar", "Int8"):
                return "cstr"
            return f"ptr({self.canonical(inner, where, depth + 1)})"
        m = re.fullmatch(r"NTuple\{\s*(\w+)\s*,\s*(.+)\}", t)
        if m:
            n = m.group(1)
            extent = int(n) if n.isdigit() else self.constants.get(n)
            if extent is None:
                raise slay_header.ParseError(f"{self.path}: {where}: unknown NTuple length {n!r}")
            return f"array({self.canonical(m.group(2), where, depth + 1)},{extent})"
        if t in JULIA_SCALARS:
            return JULIA_SCALARS[t]
        if t in self.aliases:
            return self.canonical(self.aliases[t], where, depth + 1)
        if t in self.struct_types:
            return f"struct({self.struct_types[t]})"
        raise slay_header.ParseError(f"{self.path}: {where}: unknown Julia type {t!r}")


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[8])
        return 2
    try:
        header = slay_header.Header(argv[1])
        binding = JuliaBinding(argv[2], header)
    except slay_header.ParseError as e:
        print(f"FAIL: {e}")
        return 1
    problems = slay_header.check_exports(header, argv[3]) if len(argv) == 4 else []
    problems += slay_header.compare(header, "Julia", binding.functions, binding.structs, binding.enum_constants,
                                    struct_label=julia_struct_name)
    return slay_header.report(header, "Julia", argv[2], problems)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
