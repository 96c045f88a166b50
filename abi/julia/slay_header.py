"""slay_header.py -- a model of libslay's C ABI parsed from include/slay/slay.h,
and the comparison of a language binding against it.

Used by the CI checks of the Julia module (abi/julia/check_signatures.py) and
the Rust crate (abi/rust/check_signatures.py): each parses its own binding
into the same shape (functions, structs, constants) and calls compare().

Types are compared in a canonical, ABI-level form:
    i32 u32 i64 u64 usize f32 f64 char void   scalars (C enums are pinned to
                                              32 bits, so they are i32)
    cstr                                      const char* (a C string)
    ptr(T)                                    a pointer to T; the opaque
                                              handles are ptr(void)
    struct(NAME)                              a struct, by its C typedef name
    array(T,N)                                a fixed-size array field
so e.g. `const slay_tensor_t* q` is ptr(struct(slay_tensor_t)). Constness and
parameter names do not reach the ABI and are not compared; struct field names
are (bindings keep the header's).

The parser knows only what slay.h uses; a construct it does not know is an
error (so a header change cannot slip past the check unparsed).
"""
import re
import sys

# C scalar type names -> canonical form.
C_SCALARS = {
    "void": "void", "char": "char", "float": "f32", "double": "f64",
    "int32_t": "i32", "uint32_t": "u32", "int64_t": "i64", "uint64_t": "u64",
    "size_t": "usize", "int": "i32",
}


class ParseError(Exception):
    """The header (or a binding) holds something the checker cannot read."""


class Header:
    """What slay.h declares.

    defines:   {NAME: int} for integer #defines (SLAY_MAX_RANK, ...)
    enums:     {typedef: {ENUMERATOR: value}} without the *_FORCE_32BIT_ ones
    handles:   {typedef} of opaque pointers (struct x_s*)
    structs:   {typedef: [(field, canonical type)]}
    functions: {name: (canonical return, [(param, canonical type)])}
    """

    def __init__(self, path):
        self.path = path
        text = open(path, encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        self.defines = {}
        for name, value in re.findall(r"^\s*#\s*define\s+(\w+)\s+(-?(?:0x[0-9a-fA-F]+|\d+))\s*$", text, flags=re.M):
            self.defines[name] = int(value, 0)
        text = re.sub(r"^\s*#[^\n]*", " ", text, flags=re.M)

        self.enums = {}
        for body, name in re.findall(r"typedef\s+enum\s+\w*\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S):
            values = {}
            for item in filter(None, (i.strip() for i in body.split(","))):
                m = re.fullmatch(r"(\w+)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))", item)
                if not m:
                    raise ParseError(f"{path}: enum {name}: cannot read enumerator {item!r} (explicit values only)")
                if not m.group(1).endswith("FORCE_32BIT_"):
                    values[m.group(1)] = int(m.group(2), 0)
            self.enums[name] = values
        self.handles = set(re.findall(r"typedef\s+struct\s+\w+\s*\*\s*(\w+)\s*;", text))

        self.structs = {}
        struct_bodies = re.findall(r"typedef\s+struct\s+\w*\s*\{(.*?)\}\s*(\w+)\s*;", text, flags=re.S)
        self.struct_names = {name for _, name in struct_bodies}
        for body, name in struct_bodies:
            fields = []
            for decl in filter(None, (d.strip() for d in body.split(";"))):
                field, ctype = self._split_declaration(decl, f"struct {name}")
                fields.append((field, ctype))
            self.structs[name] = fields

        self.functions = {}
        for ret, name, params in re.findall(r"SLAY_API\s+([\w\s\*]+?)\s*\b(\w+)\s*\(([^)]*)\)\s*;", text):
            where = f"function {name}"
            args = []
            if params.strip() != "void":
                for i, decl in enumerate(p.strip() for p in params.split(",")):
                    args.append(self._split_declaration(decl, f"{where}, parameter {i + 1}"))
            self.functions[name] = (self.canonical(ret, where + ", return type"), args)
        if not self.functions:
            raise ParseError(f"{path}: no SLAY_API function found")

    def _split_declaration(self, decl, where):
        """'const slay_tensor_t* q' -> ('q', 'ptr(struct(slay_tensor_t))');
        'int64_t shape[SLAY_MAX_RANK]' -> ('shape', 'array(i64,4)')."""
        m = re.fullmatch(r"(.*?)\b(\w+)\s*(?:\[\s*(\w+)\s*\])?", decl.strip(), flags=re.S)
        if not m or not m.group(1).strip():
            raise ParseError(f"{self.path}: {where}: cannot read declaration {decl!r}")
        ctype = self.canonical(m.group(1), where)
        if m.group(3):
            ctype = f"array({ctype},{self.integer(m.group(3), where)})"
        return m.group(2), ctype

    def integer(self, token, where):
        """An array extent: a literal or an integer #define."""
        if re.fullmatch(r"\d+", token):
            return int(token)
        if token in self.defines:
            return self.defines[token]
        raise ParseError(f"{self.path}: {where}: unknown array extent {token!r}")

    def canonical(self, ctype, where):
        """The canonical form of a C type spelled as in the header."""
        stars = ctype.count("*")
        words = [w for w in re.findall(r"\w+", ctype) if w not in ("const", "struct", "enum")]
        if len(words) != 1:
            raise ParseError(f"{self.path}: {where}: cannot read type {ctype!r}")
        base = words[0]
        if base == "char" and stars >= 1:
            result, stars = "cstr", stars - 1
        elif base in C_SCALARS:
            result = C_SCALARS[base]
        elif base in self.enums:
            result = "i32"
        elif base in self.handles:
            result = "ptr(void)"
        elif base in self.struct_names:
            result = f"struct({base})"
        else:
            raise ParseError(f"{self.path}: {where}: unknown C type {base!r} (teach slay_header.py its ABI form)")
        for _ in range(stars):
            result = f"ptr({result})"
        return result

    def constants(self):
        """{ENUMERATOR: value} over all enums."""
        out = {}
        for values in self.enums.values():
            out.update(values)
        return out


def split_top_level(text, separator=","):
    """Splits at separators outside (), [] and {}: 'Ptr{A}, NTuple{4,Int64}'."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def compare(header, language, functions, structs, constants, struct_label=lambda c: c):
    """Differences between the header and a binding, one line each.

    functions: {C name: (canonical return, [(arg, canonical, spelled)], return spelled)}
               (a list of such tuples per name when a binding calls it from
               several places)
    structs:   {C typedef: [(field, canonical, spelled)]}
    constants: {NAME: value} (enumerators the binding defines)
    struct_label: the binding's name for a C struct, for messages.
    """
    problems = []
    for name in sorted(set(header.functions) - set(functions)):
        problems.append(f"missing function {name}: the header declares it, {language} does not bind it")
    for name in sorted(set(functions) - set(header.functions)):
        problems.append(f"extra function {name}: {language} binds it, the header does not declare it")
    for name in sorted(set(header.functions) & set(functions)):
        want_ret, want_args = header.functions[name]
        sites = functions[name] if isinstance(functions[name], list) else [functions[name]]
        for got_ret, got_args, ret_spelled in sites:
            if len(got_args) != len(want_args):
                problems.append(
                    f"{name}: arity: header has {len(want_args)} parameters "
                    f"({', '.join(t for _, t in want_args)}), {language} has {len(got_args)} "
                    f"({', '.join(s for _, _, s in got_args)})")
            else:
                for i, ((pname, want), (_, got, spelled)) in enumerate(zip(want_args, got_args)):
                    if want != got:
                        problems.append(f"{name}: parameter {i + 1} ({pname}): header {want}, "
                                        f"{language} {spelled} = {got}")
            if got_ret != want_ret:
                problems.append(f"{name}: return type: header {want_ret}, {language} {ret_spelled} = {got_ret}")

    for cname, want_fields in sorted(header.structs.items()):
        label = struct_label(cname)
        if cname not in structs:
            problems.append(f"missing struct {cname}: {language} has no struct {label}")
            continue
        got_fields = structs[cname]
        want_desc = [f"{f}:{t}" for f, t in want_fields]
        got_desc = [f"{f}:{t}" for f, t, _ in got_fields]
        if want_desc != got_desc:
            problems.append(f"struct {cname} ({language} {label}) fields differ:\n"
                            f"    header: {', '.join(want_desc)}\n"
                            f"    {language}: {', '.join(got_desc)}")

    want_constants = header.constants()
    for name in sorted(set(want_constants) - set(constants)):
        problems.append(f"missing constant {name} = {want_constants[name]}")
    for name in sorted(set(constants) - set(want_constants) - set(header.defines)):
        problems.append(f"extra constant {name} = {constants[name]}: not in the header")
    for name in sorted(set(constants) & (set(want_constants) | set(header.defines))):
        want = want_constants.get(name, header.defines.get(name))
        if constants[name] != want:
            problems.append(f"constant {name}: header {want}, {language} {constants[name]}")
    return problems


def report(header, language, binding_path, problems):
    """Prints the verdict; returns the process exit status."""
    if problems:
        print(f"FAIL: {binding_path} does not match {header.path} ({len(problems)} problems):")
        for p in problems:
            print("  " + p)
        return 1
    print(f"ok: {binding_path} matches {header.path}: {len(header.functions)} functions, "
          f"{len(header.structs)} structs, {len(header.constants())} constants")
    return 0


def check_exports(header, exports_path):
    """Problems when the parsed header misses a name of abi/exports.txt (a
    parser slip would otherwise hide a function from the comparison)."""
    exported = {line.strip() for line in open(exports_path, encoding="utf-8") if line.strip()}
    missing = sorted(exported - set(header.functions))
    return [f"the header parser found no declaration of exported function {n}" for n in missing]


if __name__ == "__main__":
    # Debug aid: prints the parsed model.
    h = Header(sys.argv[1])
    for n, (r, a) in sorted(h.functions.items()):
        print(f"{r} {n}({', '.join(f'{t} {p}' for p, t in a)})")
    for n, f in sorted(h.structs.items()):
        print(n, f)
