#!/usr/bin/env python3
"""compare_torch.py -- libslay's CUDA backend against torch's
scaled_dot_product_attention (SDPA), in one process, on the same torch tensors.

For every (variant, T, dtype, pass) it times, after warm-up with CUDA events
on torch's current stream (median of --iters runs):
  SDPA     torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal)
           (FlashAttention backend forced for bf16/fp16; torch picks for fp32),
           fwd+bwd through torch.autograd.grad;
  libslay  slay_attn_fwd (and slay_attn_bwd for fwd+bwd) through ctypes on the
           tensors' data_ptr()/stride(), workspace a torch uint8 tensor of
           slay_attn_plan_get_workspace_size bytes, stream = torch's stream.
q, k, v, dout are (B, H, T, D) (or (B, T, H, D) memory with --layout bthd).
Reported per row: ms (median, std, min), time ratio vs SDPA (> 1: slower),
TFLOP/s for the exact variants and SDPA (forward 4*B*H*T^2*D, half when
causal; fwd+bwd counted as 3.5x the forward, the FlashAttention convention),
peak memory from torch.cuda.max_memory_allocated (reset before one call that
allocates its own outputs, workspace and gradients; q, k, v, dout are
included, and 'extra' is the part above them) and the workspace bytes.
For `standard` the forward output is also checked against SDPA's (max |diff|).
A row that answers NOT_SUPPORTED, runs out of memory or fails is reported as
such and the run continues.

Feature parameters are sampled with slay_attn_features_sample on the CUDA
plan or, where that answers NOT_SUPPORTED, on a CPU plan and copied over.

Usage (GPU machine; torch is imported only after the arguments are parsed):
  python3 tests/bench/compare_torch.py build-gpu/libslay.so --variants slay_anchor standard \
      --B 4 --H 12 --D 64 --T 4096 32768 --dtypes bf16 fp32 --passes fwd fwdbwd --json out.json
"""
import argparse
import contextlib
import ctypes as C
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import slay_ctypes as S  # noqa: E402  (shared bindings: tests/python/slay_ctypes.py)

DTYPES = {"fp32": S.FLOAT32, "bf16": S.BFLOAT16, "fp16": S.FLOAT16}
PASSES = ("fwd", "fwdbwd")
FWDBWD_FLOP_FACTOR = 3.5  # backward = 2.5 forwards (5 vs 2 T x T matmuls)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("lib", nargs="?", default="build-gpu/libslay.so", help="path to libslay.so (default %(default)s)")
    p.add_argument("--variants", nargs="+", default=["slay_anchor", "standard"],
                   help="libslay variant names (default: %(default)s)")
    p.add_argument("--B", type=int, default=4)
    p.add_argument("--H", type=int, default=12)
    p.add_argument("--D", type=int, default=64)
    p.add_argument("--T", type=int, nargs="+", default=[4096], help="sequence lengths")
    p.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["bf16"])
    p.add_argument("--passes", nargs="+", choices=PASSES, default=list(PASSES),
                   help="fwd: forward only; fwdbwd: forward + backward")
    p.add_argument("--causal", dest="causal", action="store_true", default=True, help="causal (default)")
    p.add_argument("--bidirectional", dest="causal", action="store_false", help="non-causal")
    p.add_argument("--R", type=int, default=2, help="quadrature nodes (variants that use it)")
    p.add_argument("--M", type=int, default=16, help="random features per node")
    p.add_argument("--P", type=int, default=32, help="polynomial feature dim")
    p.add_argument("--chunk", type=int, default=None, help="chunk size of the GPU scan (default: the library's)")
    p.add_argument("--epsilon", type=float, default=1e-6, help="Yat epsilon (variants that use it)")
    p.add_argument("--allow-tf32", action="store_true", help="TF32 for fp32 matmuls in both libslay and torch")
    p.add_argument("--layout", choices=["bhtd", "bthd"], default="bhtd",
                   help="memory layout of q, k, v, dout: (B,H,T,D) or (B,T,H,D) viewed as (B,H,T,D)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--slow-call-s", type=float, default=1.0,
                   help="a call slower than this gets 1 warm-up and at most 3 timed runs")
    p.add_argument("--time-limit-s", type=float, default=0,
                   help="start no new measurement after this many seconds; the rest are SKIPPED (0: no limit)")
    p.add_argument("--device", type=int, default=0, help="CUDA device ordinal")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", help="write all rows and the run's metadata here")
    p.add_argument("--markdown", help="also write the Markdown table here")
    return p.parse_args(argv)


class RowFailure(Exception):
    """A row that cannot be measured: status is NOT_SUPPORTED, OOM or ERROR."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def exact_flops(a, T, passname):
    fwd = 4.0 * a.B * a.H * T * T * a.D * (0.5 if a.causal else 1.0)
    return fwd * (FWDBWD_FLOP_FACTOR if passname == "fwdbwd" else 1.0)


class Bench:
    def __init__(self, args, torch):
        self.a, self.torch = args, torch
        self.dev = torch.device("cuda", args.device)
        torch.cuda.set_device(self.dev)
        torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
        torch.backends.cudnn.allow_tf32 = args.allow_tf32
        self.tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
        self.lib = S.load(args.lib)
        self.cuda_handle = self.lib.handle(S.BACKEND_CUDA, args.device)
        self.cpu_handle = None  # made on demand, for sampling fallback

    # ---------------------------------------------------------------- helpers
    def stream(self):
        return self.torch.cuda.current_stream().cuda_stream

    def slay_tensor(self, t):
        dtype = {self.torch.float32: S.FLOAT32, self.torch.bfloat16: S.BFLOAT16, self.torch.float16: S.FLOAT16}
        return S.make_tensor(t.data_ptr(), dtype[t.dtype], list(t.shape), list(t.stride()))

    def inputs(self, T, dtype, with_dout):
        """q, k, v (and dout) as (B, H, T, D) views, N(0, 1), the same for every implementation."""
        a, torch = self.a, self.torch
        g = torch.Generator(device=self.dev).manual_seed(a.seed + T)
        mem_shape = (a.B, a.H, T, a.D) if a.layout == "bhtd" else (a.B, T, a.H, a.D)
        names = ("q", "k", "v", "dout") if with_dout else ("q", "k", "v")
        out = {}
        for n in names:
            x = torch.randn(mem_shape, generator=g, device=self.dev, dtype=torch.float32).to(self.tdtype[dtype])
            out[n] = x if a.layout == "bhtd" else x.transpose(1, 2)
        return out

    def time_cuda(self, call):
        """Median/std/min/mean ms of call() over the timed runs, after warm-up."""
        torch, a = self.torch, self.a
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        first_ms = start.elapsed_time(end)
        warmup, iters = a.warmup, a.iters
        if first_ms > a.slow_call_s * 1e3:
            warmup, iters = 0, min(iters, 3)
        for _ in range(max(warmup - 1, 0)):
            call()
        times = []
        for _ in range(iters):
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return dict(ms=statistics.median(times), std_ms=statistics.pstdev(times), min_ms=min(times),
                    mean_ms=statistics.fmean(times), runs=len(times))

    def peak_memory(self, call_allocating):
        """Peak allocated bytes over one call that allocates its own outputs (total, and above what was live)."""
        torch = self.torch
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        result = call_allocating()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return dict(peak_mb=peak / 2**20, extra_mb=(peak - base) / 2**20), result

    def guarded(self, fn):
        """Runs fn, turning libslay and torch failures into RowFailure."""
        torch = self.torch
        try:
            return fn()
        except S.SlayError as e:
            status = {S.NOT_SUPPORTED: "NOT_SUPPORTED", S.OUT_OF_MEMORY: "OOM"}.get(e.status, "ERROR")
            raise RowFailure(status, str(e)) from None
        except torch.cuda.OutOfMemoryError as e:
            raise RowFailure("OOM", str(e).split("\n")[0]) from None
        except RuntimeError as e:
            raise RowFailure("ERROR", str(e).split("\n")[0]) from None

    # ------------------------------------------------------------------- SDPA
    def sdpa_context(self, dtype):
        if dtype == "fp32":
            return contextlib.nullcontext()
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
        except ImportError:  # torch < 2.3
            return self.torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False,
                                                       enable_mem_efficient=False)

    def run_sdpa(self, T, dtype, passname):
        torch, a = self.torch, self.a
        F = torch.nn.functional
        x = self.inputs(T, dtype, passname == "fwdbwd")
        q, k, v = x["q"], x["k"], x["v"]

        if passname == "fwd":
            def call():
                with torch.no_grad():
                    return F.scaled_dot_product_attention(q, k, v, is_causal=a.causal)
        else:
            qg, kg, vg = (t.detach().requires_grad_() for t in (q, k, v))

            def call():
                out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=a.causal)
                return torch.autograd.grad(out, (qg, kg, vg), x["dout"])

        with self.sdpa_context(dtype):
            mem, _ = self.peak_memory(call)
            timing = self.time_cuda(call)
        return dict(**timing, **mem, workspace_mb=0.0)

    # ---------------------------------------------------------------- libslay
    def plan(self, handle, variant, dtype):
        a = self.a
        ints = dict(num_heads=a.H, head_dim=a.D, causal=int(a.causal), io_dtype=DTYPES[dtype],
                    allow_tf32=int(a.allow_tf32), num_quad_nodes=a.R, num_features=a.M, poly_dim=a.P)
        if a.chunk:
            ints["chunk_size"] = a.chunk
        optional = ("num_quad_nodes", "num_features", "poly_dim", "chunk_size", "epsilon")
        return self.lib.plan(handle, variant, ints, dict(epsilon=a.epsilon), optional=optional)

    def sample_params(self, plan, variant, dtype):
        """(fp32 device parameter tensor or None, where it was sampled)."""
        torch, lib = self.torch, self.lib
        n = lib.param_count(plan)
        if n == 0:
            return None, "none"
        params = torch.empty(n, dtype=torch.float32, device=self.dev)
        try:
            self.sample_into(plan, params, self.stream())
            return params, "cuda"
        except S.SlayError as e:
            if e.status != S.NOT_SUPPORTED:
                raise
        if self.cpu_handle is None:
            self.cpu_handle = lib.handle(S.BACKEND_CPU)
        cpu_plan = self.plan(self.cpu_handle, variant, dtype)
        try:
            host = torch.empty(n, dtype=torch.float32)
            self.sample_into(cpu_plan, host, None)
        finally:
            lib.raw.slay_attn_plan_destroy(cpu_plan)
        params.copy_(host)
        return params, "cpu"

    def sample_into(self, plan, params, stream):
        size = self.lib.workspace_size(plan, S.PASS_SAMPLE)
        ws = self.torch.empty(max(size, 1), dtype=self.torch.uint8, device=params.device)
        self.lib.features_sample(plan, self.a.seed, 0, self.slay_tensor(params), ws.data_ptr(), size, stream)

    def run_slay(self, variant, T, dtype, passname):
        torch, lib, a = self.torch, self.lib, self.a
        plan = self.plan(self.cuda_handle, variant, dtype)
        try:
            params, sampled_on = self.sample_params(plan, variant, dtype)
            x = self.inputs(T, dtype, passname == "fwdbwd")
            tq, tk, tv = (self.slay_tensor(x[n]) for n in ("q", "k", "v"))
            tp = self.slay_tensor(params) if params is not None else None
            ws_bytes = lib.workspace_size(plan, S.PASS_FORWARD, a.B, T)
            if passname == "fwdbwd":
                ws_bytes = max(ws_bytes, lib.workspace_size(plan, S.PASS_BACKWARD, a.B, T))

            def call_allocating():
                """One call with its outputs and workspace allocated inside (for the peak)."""
                bufs = dict(out=torch.empty_like(x["q"]), ws=torch.empty(max(ws_bytes, 1), dtype=torch.uint8,
                                                                         device=self.dev))
                if passname == "fwdbwd":
                    bufs.update(dq=torch.empty_like(x["q"]), dk=torch.empty_like(x["k"]), dv=torch.empty_like(x["v"]))
                run(bufs)
                return bufs

            def run(bufs):
                stream, ws = self.stream(), bufs["ws"].data_ptr()
                tout = self.slay_tensor(bufs["out"])
                lib.fwd(plan, lib.fwd_args(tq, tk, tv, tout, params=tp), ws, ws_bytes, stream)
                if passname == "fwdbwd":
                    tdout = self.slay_tensor(x["dout"])
                    dq, dk, dv = (self.slay_tensor(bufs[n]) for n in ("dq", "dk", "dv"))
                    lib.bwd(plan, lib.bwd_args(tq, tk, tv, tout, tdout, dq, dk, dv, params=tp), ws, ws_bytes,
                            stream)

            mem, bufs = self.peak_memory(call_allocating)
            timing = self.time_cuda(lambda: run(bufs))
            row = dict(**timing, **mem, workspace_mb=ws_bytes / 2**20, params_sampled_on=sampled_on,
                       feature_dim=lib.feature_dim(plan))
            if variant == "standard" and passname == "fwd":
                with torch.no_grad(), self.sdpa_context(dtype):
                    ref = torch.nn.functional.scaled_dot_product_attention(x["q"], x["k"], x["v"],
                                                                           is_causal=a.causal)
                row["max_abs_diff_vs_sdpa"] = (bufs["out"].float() - ref.float()).abs().max().item()
            return row
        finally:
            lib.raw.slay_attn_plan_destroy(plan)


def metadata(args, torch, lib):
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", "-i",
                                 str(args.device)], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        driver = "unknown"
    props = torch.cuda.get_device_properties(args.device)
    return dict(tool="compare_torch.py", date=datetime.datetime.now().isoformat(timespec="seconds"),
                device=props.name, device_memory_gb=round(props.total_memory / 1e9, 1), driver=driver,
                cuda_runtime_torch=torch.version.cuda, torch=torch.__version__, libslay=lib.version(),
                libslay_abi=lib.raw.slay_get_abi_version(), libslay_path=os.path.abspath(args.lib),
                command=" ".join(sys.argv), args=vars(args))


COLUMNS = [("impl", "{}"), ("variant", "{}"), ("dtype", "{}"), ("pass", "{}"), ("T", "{}"), ("ms", "{:.3f}"),
           ("std_ms", "{:.3f}"), ("min_ms", "{:.3f}"), ("x_sdpa", "{:.2f}"), ("tflops", "{:.1f}"),
           ("peak_mb", "{:.1f}"), ("extra_mb", "{:.1f}"), ("workspace_mb", "{:.1f}"), ("status", "{}")]


def markdown(rows, meta):
    a = meta["args"]
    lines = [f"Device: {meta['device']} (driver {meta['driver']}, CUDA {meta['cuda_runtime_torch']}), "
             f"torch {meta['torch']}, libslay {meta['libslay']}; B={a['B']} H={a['H']} D={a['D']} "
             f"causal={a['causal']} layout={a['layout']} R={a['R']} M={a['M']} P={a['P']} chunk={a['chunk']}; "
             f"median of {a['iters']} after {a['warmup']} warm-up; x_sdpa = time / SDPA time", "",
             "| " + " | ".join(c for c, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for c, fmt in COLUMNS:
            v = r.get(c)
            cells.append("" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{r['variant']} {r['dtype']} T={r['T']}: max |out - SDPA out| = {r['max_abs_diff_vs_sdpa']:.3g}"
             for r in rows if "max_abs_diff_vs_sdpa" in r]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv=None):
    args = parse_args(argv)
    import torch  # imported late: --help works where torch is not installed

    if not torch.cuda.is_available():
        sys.exit("compare_torch.py: torch sees no CUDA device")
    try:
        bench = Bench(args, torch)
    except S.SlayError as e:
        sys.exit(f"compare_torch.py: cannot use libslay's CUDA backend: {e}")
    meta = metadata(args, torch, bench.lib)
    configs = [(T, d, p) for T in args.T for d in args.dtypes for p in args.passes]
    total, done, rows = len(configs) * (1 + len(args.variants)), 0, []
    started = time.monotonic()
    for T, dtype, passname in configs:
        sdpa_ms = None
        for impl, variant in [("sdpa", "sdpa")] + [("libslay", v) for v in args.variants]:
            done += 1
            print(f"[{done}/{total}] {impl} {variant} T={T} {dtype} {passname} ...", file=sys.stderr, flush=True)
            row = dict(impl=impl, variant=variant, dtype=dtype, **{"pass": passname}, B=args.B, H=args.H, T=T,
                       D=args.D, causal=args.causal)
            if args.time_limit_s and time.monotonic() - started > args.time_limit_s:
                row.update(status="SKIPPED", message="--time-limit-s reached")
                rows.append(row)
                continue
            try:
                measure = (lambda: bench.run_sdpa(T, dtype, passname)) if impl == "sdpa" else \
                          (lambda: bench.run_slay(variant, T, dtype, passname))
                row.update(bench.guarded(measure), status="ok")
                if impl == "sdpa":
                    sdpa_ms = row["ms"]
                if sdpa_ms:
                    row["x_sdpa"] = row["ms"] / sdpa_ms
                if impl == "sdpa" or variant in S.EXACT_VARIANTS:
                    row["tflops"] = exact_flops(args, T, passname) / (row["ms"] * 1e-3) / 1e12
            except RowFailure as e:
                row.update(status=e.status, message=str(e))
                print(f"    {e.status}: {e}", file=sys.stderr, flush=True)
            rows.append(row)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    table = markdown(rows, meta)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
