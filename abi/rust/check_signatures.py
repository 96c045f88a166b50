#!/usr/bin/env python3
"""check_signatures.py -- checks the Rust crate's raw ABI (abi/rust/src/ffi.rs)
against include/slay/slay.h: every function of the `slay_functions!` table
(arity, parameter and return types), every #[repr(C)] struct (field order,
names and types) and every enum constant (name and value). A changed header
signature fails CI here instead of corrupting memory at run time.

Usage: check_signatures.py HEADER FFI_RS [EXPORTS]
Exits 0 when all agree, else prints each difference and exits 1.

The header side and the comparison live in abi/julia/slay_header.py, shared
with the Julia check.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "julia"))
import slay_header  # noqa: E402

RUST_SCALARS = {
    "i32": "i32", "u32": "u32", "i64": "i64", "u64": "u64", "usize": "usize",
    "f32": "f32", "f64": "f64", "c_int": "i32", "c_uint": "u32", "c_char": "char",
    "c_void": "void", "c_double": "f64", "c_float": "f32", "()": "void",
}


class RustBinding:
    """ffi.rs read into the shape slay_header.compare() takes."""

    def __init__(self, path):
        self.path = path
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        self.aliases = dict(re.findall(r"\bpub\s+type\s+(\w+)\s*=\s*([^;]+);", text))
        self.constants = {}
        for name, value in re.findall(r"\bpub\s+const\s+(\w+)\s*:\s*\w+\s*=\s*(-?(?:0x[0-9a-fA-F_]+|[\d_]+))\s*;", text):
            if name.startswith("SLAY_"):  # the header's names; MIN_ABI_VERSION is the crate's own
                self.constants[name] = int(value.replace("_", ""), 0)

        self.structs = {}
        for attrs, name, body in re.findall(r"((?:#\[[^\]]*\]\s*)*)pub\s+struct\s+(\w+)\s*\{(.*?)\}", text, flags=re.S):
            if not name.startswith("slay_"):
                continue
            if "repr(C)" not in attrs.replace(" ", ""):
                raise slay_header.ParseError(f"{path}: struct {name} lacks #[repr(C)]: its layout would not be C's")
            fields = []
            for decl in slay_header.split_top_level(body):
                m = re.fullmatch(r"pub\s+(\w+)\s*:\s*(.+)", decl, flags=re.S)
                if not m:
                    raise slay_header.ParseError(f"{path}: struct {name}: cannot read field {decl!r}")
                fields.append((m.group(1), self.canonical(m.group(2), f"struct {name}"), m.group(2).strip()))
            self.structs[name] = fields

        table = re.search(r"slay_functions!\s*\{(.*?)\n\}", text, flags=re.S)
        if not table:
            raise slay_header.ParseError(f"{path}: no slay_functions! {{ ... }} table")
        self.functions = {}
        for name, params, ret in re.findall(r"(\w+)\s*:\s*fn\s*\((.*?)\)\s*->\s*([^;]+);", table.group(1), flags=re.S):
            where = f"function {name}"
            args = []
            for i, decl in enumerate(slay_header.split_top_level(params)):
                m = re.fullmatch(r"(\w+)\s*:\s*(.+)", decl, flags=re.S)
                if not m:
                    raise slay_header.ParseError(f"{path}: {where}: cannot read parameter {decl!r}")
                args.append((m.group(1), self.canonical(m.group(2), f"{where}, parameter {i + 1}"), m.group(2).strip()))
            if name in self.functions:
                raise slay_header.ParseError(f"{path}: function {name} is listed twice")
            self.functions[name] = (self.canonical(ret, where + ", return type"), args, ret.strip())

    def canonical(self, rtype, where, depth=0):
        """The canonical form (see slay_header) of a Rust type."""
        t = rtype.strip()
        if depth > 20:
            raise slay_header.ParseError(f"{self.path}: {where}: type alias cycle at {t!r}")
        m = re.fullmatch(r"\*\s*(?:const|mut)\s+(.+)", t, flags=re.S)
        if m:
            inner = m.group(1).strip()
            if inner in ("c_char", "u8", "i8"):
                return "cstr"
            return f"ptr({self.canonical(inner, where, depth + 1)})"
        m = re.fullmatch(r"\[\s*(.+?)\s*;\s*(\w+)\s*\]", t, flags=re.S)
        if m:
            n = m.group(2)
            extent = int(n) if n.isdigit() else self.constants.get(n)  # SLAY_MAX_RANK
            if extent is None:
                raise slay_header.ParseError(f"{self.path}: {where}: unknown array extent {n!r}")
            return f"array({self.canonical(m.group(1), where, depth + 1)},{extent})"
        t = re.sub(r"^(?:std::os::raw::|core::ffi::|std::ffi::)", "", t)
        if t in RUST_SCALARS:
            return RUST_SCALARS[t]
        if t in self.aliases:
            return self.canonical(self.aliases[t], where, depth + 1)
        if re.fullmatch(r"slay_\w+_t", t):
            return f"struct({t})"
        raise slay_header.ParseError(f"{self.path}: {where}: unknown Rust type {t!r}")


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[6])
        return 2
    try:
        header = slay_header.Header(argv[1])
        binding = RustBinding(argv[2])
    except slay_header.ParseError as e:
        print(f"FAIL: {e}")
        return 1
    problems = slay_header.check_exports(header, argv[3]) if len(argv) == 4 else []
    problems += slay_header.compare(header, "Rust", binding.functions, binding.structs, binding.constants)
    return slay_header.report(header, "Rust", argv[2], problems)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
