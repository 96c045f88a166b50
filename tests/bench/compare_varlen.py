#!/usr/bin/env python3
"""compare_varlen.py -- a packed batch of sequences of mixed lengths on the
GPU: libslay's packed call (seq_offsets) against the same batch padded to the
longest sequence, against one call per sequence, and (for `standard`) against
FlashAttention's variable-length kernel through torch (SDPA on a jagged
nested tensor, the route torch offers to flash_attn_varlen); optionally with
grouped-query heads (--kv-heads).

Sequences: --N lengths between --min-len and --max-len, spaced geometrically
(--spacing geometric, the default: many short and few long sequences, as in
real corpora) or evenly (--spacing linear), each rounded to a multiple of 8.
Tensors are (B, H, T, D) views; the packed call's are (1, H, T_total, D), the
padded call's (N, H, max_len, D) (its padding rows hold data too: the padded
call computes them, which is its cost); the per-sequence calls take views of
the packed tensors. bf16 inputs N(0, 1), causal.

Rows (fwd, and fwd+bwd = one forward then one backward): median of --iters
timed runs after --warmup warm-ups (CUDA events on torch's stream; the timing
helper of compare_torch.py), workspace bytes, and the ratios packed/padded
and packed/separate. With --kv-heads the rows also record the bytes of k, v,
dk, dv (the issue's memory bar: H_kv/H of the multi-head case). --json writes
the device, versions, command line, the lengths and every row.

Usage (GPU machine):
  python3 tests/bench/compare_varlen.py build-gpu/libslay.so --variants standard slay_anchor \\
      --N 64 --min-len 1024 --max-len 32768 --H 8 --D 64 --json varlen.json --markdown varlen.md
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_torch as CT  # noqa: E402  (timing, plans, parameters, metadata)

S = CT.S


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("lib", nargs="?", default="build-gpu/libslay.so")
    p.add_argument("--variants", nargs="+", default=["standard", "slay_anchor"])
    p.add_argument("--N", type=int, default=64, help="sequences")
    p.add_argument("--min-len", type=int, default=1024)
    p.add_argument("--max-len", type=int, default=32768)
    p.add_argument("--spacing", choices=["geometric", "linear"], default="geometric")
    p.add_argument("--H", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=0, help="grouped-query key/value heads (0: H)")
    p.add_argument("--D", type=int, default=64)
    p.add_argument("--passes", nargs="+", choices=CT.PASSES, default=list(CT.PASSES))
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--skip-separate", action="store_true", help="do not time one call per sequence")
    p.add_argument("--json")
    p.add_argument("--markdown")
    return p.parse_args(argv)


def lengths_of(a):
    out = []
    for i in range(a.N):
        f = i / max(a.N - 1, 1)
        x = a.min_len * (a.max_len / a.min_len) ** f if a.spacing == "geometric" else \
            a.min_len + f * (a.max_len - a.min_len)
        out.append(max(8, int(round(x / 8)) * 8))
    return out


class Varlen:
    def __init__(self, a, torch):
        self.a, self.torch = a, torch
        ct_args = CT.parse_args([a.lib, "--H", str(a.H), "--D", str(a.D), "--warmup", str(a.warmup),
                                 "--iters", str(a.iters), "--slow-call-s", "1e9"])
        self.ct = CT.Bench(ct_args, torch)
        self.dev = self.ct.dev
        self.lens = lengths_of(a)
        self.kvh = a.kv_heads or a.H
        offs = [0]
        for n in self.lens:
            offs.append(offs[-1] + n)
        self.offsets = torch.tensor(offs, dtype=torch.int32, device=self.dev)
        self.total = offs[-1]

    def plan(self, variant):
        """A causal bf16 CUDA plan (slay_anchor: the paper's R=2, M=16, P=32)."""
        a = self.a
        ints = dict(num_heads=a.H, num_kv_heads=self.kvh, head_dim=a.D, causal=1, io_dtype=CT.DTYPES["bf16"],
                    num_quad_nodes=2, num_features=16, poly_dim=32)
        return self.ct.lib.plan(self.ct.cuda_handle, variant, ints, {},
                                optional=("num_quad_nodes", "num_features", "poly_dim"))

    def tensors(self, B, T, grad):
        torch, a = self.torch, self.a
        g = torch.Generator(device=self.dev).manual_seed(7 + T)
        mk = lambda h, d: torch.randn((B, h, T, d), generator=g, device=self.dev).to(torch.bfloat16)  # noqa: E731
        x = dict(q=mk(a.H, a.D), k=mk(self.kvh, a.D), v=mk(self.kvh, a.D), out=mk(a.H, a.D))
        if grad:
            x.update(dout=mk(a.H, a.D), dq=mk(a.H, a.D), dk=mk(self.kvh, a.D), dv=mk(self.kvh, a.D))
        return x

    def slay_call(self, plan, params, x, passname, ws, ws_bytes, offsets=None, views=None):
        """One fwd (+bwd) on x; views(name) maps a tensor name to the tensor to pass (default x[name])."""
        lib, ct = self.ct.lib, self.ct
        get = views or (lambda n: x[n])
        t = {n: ct.slay_tensor(get(n)) for n in x}
        tp = ct.slay_tensor(params) if params is not None else None
        to = ct.slay_tensor(offsets) if offsets is not None else None
        stream = ct.stream()
        lib.fwd(plan, lib.fwd_args(t["q"], t["k"], t["v"], t["out"], params=tp, seq_offsets=to), ws, ws_bytes,
                stream)
        if passname == "fwdbwd":
            lib.bwd(plan, lib.bwd_args(t["q"], t["k"], t["v"], t["out"], t["dout"], t["dq"], t["dk"], t["dv"],
                                       params=tp, seq_offsets=to), ws, ws_bytes, stream)

    def workspace(self, plan, B, T, passname):
        lib = self.ct.lib
        n = lib.workspace_size(plan, S.PASS_FORWARD, B, T)
        if passname == "fwdbwd":
            n = max(n, lib.workspace_size(plan, S.PASS_BACKWARD, B, T))
        return n, self.torch.empty(max(n, 1), dtype=self.torch.uint8, device=self.dev)

    def row(self, impl, variant, passname, timing, **extra):
        return dict(impl=impl, variant=variant, pass_=passname, status="ok", **timing, **extra)

    def measure(self, variant, passname):
        torch, a, rows = self.torch, self.a, []
        plan = self.plan(variant)
        try:
            params, _ = self.ct.sample_params(plan, variant, "bf16")
            grad = passname == "fwdbwd"
            # Packed.
            x = self.tensors(1, self.total, grad)
            n, ws = self.workspace(plan, a.N, max(self.lens), passname)
            call = lambda: self.slay_call(plan, params, x, passname, ws.data_ptr(), n, self.offsets)  # noqa: E731
            call()
            kv_bytes = sum(x[k].numel() * x[k].element_size() for k in ("k", "v", "dk", "dv") if k in x)
            rows.append(self.row("packed", variant, passname, self.ct.time_cuda(call), workspace_mb=n / 2**20,
                                 kv_grad_mb=kv_bytes / 2**20))
            # One call per sequence, on views of the packed tensors.
            if not a.skip_separate:
                offs = self.offsets.tolist()
                sizes = [self.workspace(plan, 1, L, passname)[0] for L in self.lens]
                ws_sep = torch.empty(max(max(sizes), 1), dtype=torch.uint8, device=self.dev)

                def separate():
                    for i, L in enumerate(self.lens):
                        s = offs[i]
                        self.slay_call(plan, params, x, passname, ws_sep.data_ptr(), sizes[i],
                                       views=lambda name: x[name][:, :, s:s + L, :])
                separate()
                rows.append(self.row("separate", variant, passname, self.ct.time_cuda(separate),
                                     workspace_mb=max(sizes) / 2**20))
            del x, ws
            # Padded to the longest sequence.
            Tmax = max(self.lens)
            try:
                xp = self.tensors(a.N, Tmax, grad)
                n, ws = self.workspace(plan, a.N, Tmax, passname)
                call = lambda: self.slay_call(plan, params, xp, passname, ws.data_ptr(), n)  # noqa: E731
                call()
                rows.append(self.row("padded", variant, passname, self.ct.time_cuda(call), workspace_mb=n / 2**20))
                del xp, ws
            except torch.cuda.OutOfMemoryError as e:
                rows.append(dict(impl="padded", variant=variant, pass_=passname, status="OOM", message=str(e)[:200]))
            torch.cuda.empty_cache()
        finally:
            self.ct.lib.raw.slay_attn_plan_destroy(plan)
        if variant == "standard":
            rows.append(self.flash_varlen(passname))
        return rows

    def flash_varlen(self, passname):
        """SDPA on jagged nested tensors (torch's FlashAttention varlen route); UNAVAILABLE if torch refuses."""
        torch, a = self.torch, self.a
        F = torch.nn.functional
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            g = torch.Generator(device=self.dev).manual_seed(11)
            offsets = self.offsets.to(torch.int64)

            def jagged(h):
                values = torch.randn((self.total, h, a.D), generator=g, device=self.dev).to(torch.bfloat16)
                return torch.nested.nested_tensor_from_jagged(values, offsets)

            q, k, v = jagged(a.H), jagged(self.kvh), jagged(self.kvh)
            if passname == "fwdbwd":
                q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
            qt, kt, vt = (t.transpose(1, 2) for t in (q, k, v))
            gqa = dict(enable_gqa=True) if self.kvh != a.H else {}

            def call():
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    if passname == "fwd":
                        with torch.no_grad():
                            return F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, **gqa)
                    out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True, **gqa)
                    return torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
            call()
            return self.row("torch_flash_varlen", "standard", passname, self.ct.time_cuda(call))
        except Exception as e:  # noqa: BLE001 (any refusal of torch is a result: UNAVAILABLE)
            return dict(impl="torch_flash_varlen", variant="standard", pass_=passname, status="UNAVAILABLE",
                        message=" ".join(str(e).split())[:300])


def ratios(rows):
    by = {(r["impl"], r["variant"], r["pass_"]): r for r in rows if r.get("status") == "ok"}
    for r in rows:
        p = by.get(("packed", r["variant"], r["pass_"]))
        if r.get("status") == "ok" and p:
            r["x_packed"] = r["ms"] / p["ms"]  # > 1: slower than the packed call


def markdown(rows, meta, lens):
    a = meta["args"]
    out = [f"Device: {meta['device']} (driver {meta['driver']}), torch {meta['torch']}, libslay {meta['libslay']}, "
           f"{meta['date']}; N={a['N']} sequences, lengths {a['spacing']} {min(lens)}..{max(lens)} "
           f"(total {sum(lens)} tokens, padded {len(lens) * max(lens)}), H={a['H']} H_kv={a['kv_heads'] or a['H']} "
           f"D={a['D']} bf16 causal; median of {a['iters']} runs after {a['warmup']} warm-ups.", "",
           f"Command: `{meta['command']}`", "",
           "x_packed = time / packed time (> 1: slower than the packed call).", "",
           "| impl | variant | pass | ms | x_packed | workspace MB | k,v,dk,dv MB | status |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda k, fmt: "" if r.get(k) is None else fmt.format(r[k])  # noqa: E731
        out.append(f"| {r['impl']} | {r['variant']} | {r['pass_']} | {f('ms', '{:.2f}')} | {f('x_packed', '{:.2f}')} | "
                   f"{f('workspace_mb', '{:.0f}')} | {f('kv_grad_mb', '{:.0f}')} | {r['status']} |")
    notes = [f"{r['impl']} {r['variant']} {r['pass_']}: {r['status']}: {r.get('message', '')}"
             for r in rows if r.get("status") != "ok"]
    return "\n".join(out + ([""] + notes if notes else [])) + "\n"


def main(argv=None):
    a = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit("compare_varlen.py: torch sees no CUDA device")
    vb = Varlen(a, torch)
    rows = []
    for variant in a.variants:
        for passname in a.passes:
            try:
                got = vb.measure(variant, passname)
            except S.SlayError as e:
                got = [dict(impl="packed", variant=variant, pass_=passname, status="ERROR", message=str(e))]
            for r in got:
                print(json.dumps({k: v for k, v in r.items() if k != "message"}), flush=True)
            rows += got
    ratios(rows)
    meta = CT.metadata(vb.ct.a, torch, vb.ct.lib)
    meta.update(tool="compare_varlen.py", args=vars(a), lengths=vb.lens,
                command=" ".join([sys.executable] + sys.argv))
    md = markdown(rows, meta, vb.lens)
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md)
    bad = [r for r in rows if r.get("status") == "ERROR"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
