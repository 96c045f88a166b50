#!/usr/bin/env python3
"""compare_torch.py -- libslay's CUDA backend against torch's
scaled_dot_product_attention (SDPA), in one process, on the same torch tensors.

For every (T, dtype, pass) it measures, with CUDA events on torch's current
stream, --warmup warm-up calls and then --iters timed calls (defaults 5 and 20;
median, std and min reported):
  sdpa_default  torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal)
                with no sdpa_kernel context: torch's own backend choice (cuDNN
                on Hopper for bf16/fp16);
  sdpa_flash    the same inside sdpa_kernel(SDPBackend.FLASH_ATTENTION); where
                that backend cannot run (fp32 inputs) the row is UNAVAILABLE;
                fwd+bwd for both through torch.autograd.grad;
  libslay       every --variants entry: slay_attn_fwd (and slay_attn_bwd for
                fwd+bwd) through ctypes on the tensors' data_ptr()/stride(),
                workspace a torch uint8 tensor of the calls' own sizes
                (slay_attn_fwd_workspace_size / slay_attn_bwd_workspace_size,
                ABI 6) in bytes, stream = torch's stream.
q, k, v, dout are (B, H, T, D) (or (B, T, H, D) memory with --layout bthd).

Every row carries both SDPA references of its (T, dtype, pass): sdpa_default_ms,
sdpa_flash_ms, and its own time ratio against each, x_sdpa (vs the default
backend, the one to beat) and x_flash (vs FLASH_ATTENTION); > 1 means slower.
Also per row: useful FLOPs from the model below, TFLOP/s = FLOPs / median time,
and pct_peak = that as a percentage of --peak-tflops (790, the measured H200
bf16 GEMM rate of PERF.md; fp32 rows are compared with it too);
peak memory from torch.cuda.max_memory_allocated (reset before one call that
allocates its own outputs, workspace and gradients; q, k, v, dout are included,
and 'extra' is the part above them) and the workspace bytes. For `standard` the
forward output is also checked against SDPA's default backend (max |diff|).
With --row-stats the exact variants keep the forward's row statistics
((B, H, T) fp32, slay_attn_fwd_args_t.row_stats) and hand them to the
backward (slay_attn_bwd_args_t.row_stats), as a training step does and as
SDPA's backward reuses its forward's log-sum-exp: the backward then skips
its key sweep for the statistics. Rows measured so carry row_stats = true
(the Markdown table marks their impl "libslay+stats").
A row that answers NOT_SUPPORTED, runs out of memory (OOM) or fails (ERROR) is
reported as such and the run continues; rows after --time-limit-s are SKIPPED.
A call slower than --slow-call-s (measured after its first, untimed call) gets
no further warm-up and at most 3 timed runs; every other row gets --iters.

FLOP model (useful_flops(); per token-head, summed over B*H*T token-heads;
Dv = D; C = 64, the model's chunk, whatever chunk the kernel uses):
  exact (standard, yat, yat_spherical, both SDPA rows):
      forward 4*B*H*T^2*D, half when causal; fwd+bwd = 3.5 x forward
  slay_anchor, Kronecker-factored (PERF.md section 1), F = R*M*P, RM = R*M:
      forward  2F(Dv+1) [state update] + 2F(Dv+1) [output]
               + C(P+RM+Dv+1) [intra, causal only] + 4D(P+2RM) [feature GEMMs]
      backward 10F(Dv+1) + 2*4D(P+2RM) + 2*4D(P+RM) + 3*C(P+RM+Dv+1) [intra, causal only]
      fwd+bwd  forward + backward
  other linearized variants (F = the plan's feature dim, dense-F intra Gram,
  feature maps not counted):
      forward  4F(Dv+1) + C(F+Dv+1) [causal only];  backward 10F(Dv+1) + 3C(F+Dv+1) [causal only]
At B4 H12 D64 T32768 R2 M16 P32 causal this gives 470 GFLOP forward (PERF.md:
470 G); `--self-check` prints that and the other PERF.md reference values and
exits 0 when all are within 5% (no torch, no GPU needed).

Feature parameters are sampled with slay_attn_features_sample on the CUDA
plan or, where that answers NOT_SUPPORTED, on a CPU plan and copied over.

--json writes the device, driver, torch, CUDA and cuDNN versions, date, the
exact command line, the FLOP model and every row; --markdown the same rows as
a table (also printed to stdout).

Usage (GPU machine; torch is imported only after the arguments are parsed):
  python3 tests/bench/compare_torch.py --self-check
  python3 tests/bench/compare_torch.py build-gpu/libslay.so --variants slay_anchor standard \\
      --B 4 --H 12 --D 64 --T 4096 32768 --dtypes bf16 fp32 --passes fwd fwdbwd \\
      --R 2 --M 16 --P 32 --json out.json --markdown out.md
"""
import argparse
import contextlib
import ctypes as C
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import slay_ctypes as S  # noqa: E402  (shared bindings: tests/python/slay_ctypes.py)

DTYPES = {"fp32": S.FLOAT32, "bf16": S.BFLOAT16, "fp16": S.FLOAT16}
PASSES = ("fwd", "fwdbwd")
FWDBWD_FLOP_FACTOR = 3.5  # exact attention: backward = 2.5 forwards (5 vs 2 T x T matmuls)
PEAK_TFLOPS = 790.0  # measured H200 bf16 GEMM rate (PERF.md; datasheet 989)
MODEL_CHUNK = 64  # the chunk C of the linearized cost model (PERF.md section 1)
MIN_ITERS = 20  # PERF.md milestone M0: >= 20 timed iterations after warm-up
# (row variant, sdpa backend): torch's own choice, then FlashAttention forced.
SDPA_ROWS = (("sdpa_default", "default"), ("sdpa_flash", "FLASH_ATTENTION"))

FLOP_MODEL = {
    "unit": "FLOPs (multiply-add = 2), tensor-core work; per token-head terms summed over B*H*T; Dv = D",
    "chunk_C": MODEL_CHUNK,
    "peak_tflops": PEAK_TFLOPS,
    "exact": "forward 4*B*H*T^2*D, x0.5 when causal; fwd+bwd = 3.5 x forward (FlashAttention convention); "
             "used for standard, yat, yat_spherical and both SDPA rows",
    "slay_anchor_kronecker": "F = R*M*P, RM = R*M; forward/tok = 2F(Dv+1) [state update] + 2F(Dv+1) [output] "
                             "+ C(P+RM+Dv+1) [intra, causal only] + 4D(P+2RM) [feature GEMMs]; "
                             "backward/tok = 10F(Dv+1) + 2*4D(P+2RM) + 2*4D(P+RM) + 3*C(P+RM+Dv+1) "
                             "[intra, causal only]; fwd+bwd = forward + backward",
    "linear_dense_F": "other linearized variants, F = the plan's feature dim: forward/tok = 4F(Dv+1) "
                      "+ C(F+Dv+1) [causal only]; backward/tok = 10F(Dv+1) + 3C(F+Dv+1) [causal only]; "
                      "feature maps not counted",
}


def useful_flops(variant, passname, B, H, T, D, causal, R=2, M=16, P=32, feature_dim=None, chunk=MODEL_CHUNK):
    """Useful FLOPs of one call (dict), or None where no model applies.

    Multiply-add = 2 FLOPs; Dv = D; token-heads N = B*H*T; C = chunk (64).
    exact variants (standard, yat, yat_spherical) and SDPA ("sdpa*"):
        forward = 4*B*H*T^2*D, halved when causal; fwd+bwd = 3.5 x forward.
    slay_anchor, Kronecker-factored causal chunked algorithm (PERF.md section 1),
    F = R*M*P, RM = R*M, per token-head:
        forward  = 2F(Dv+1)          state update  Phi_k^T [V 1]
                 + 2F(Dv+1)          output        Phi_q S
                 + C(P+RM+Dv+1)      intra-chunk factored Grams + A [V 1]
                 + 4D(P+2RM)         feature GEMMs x W^T for q and k (omega hi+lo)
        backward = 10F(Dv+1)                     inter: recompute S, dPhi_q, U, dPhi_k, dV
                 + 2*4D(P+2RM) + 2*4D(P+RM)      backward features + VJP GEMMs (approximation)
                 + 3*C(P+RM+Dv+1)                intra
        bidirectional: the intra terms are dropped.
    other linearized variants (F = feature_dim from the plan), per token-head:
        forward = 4F(Dv+1) + C(F+Dv+1), backward = 10F(Dv+1) + 3C(F+Dv+1)
        (dense-F intra Gram, dropped when bidirectional; feature maps not counted).
    fwd+bwd = forward + backward for the linearized models.
    """
    fwdbwd = passname == "fwdbwd"
    if variant.startswith("sdpa") or variant in S.EXACT_VARIANTS:
        fwd = 4.0 * B * H * T * T * D * (0.5 if causal else 1.0)
        return dict(flops=fwd * (FWDBWD_FLOP_FACTOR if fwdbwd else 1.0), model="exact")
    Dv, Cc, intra = D, chunk, 1 if causal else 0
    if variant == "slay_anchor":
        F, RM = R * M * P, R * M
        fwd_terms = dict(state_update=2 * F * (Dv + 1), output=2 * F * (Dv + 1),
                         intra=intra * Cc * (P + RM + Dv + 1), feature_gemms=4 * D * (P + 2 * RM))
        bwd_terms = dict(inter=10 * F * (Dv + 1), features_and_vjp=2 * 4 * D * (P + 2 * RM) + 2 * 4 * D * (P + RM),
                         intra=intra * 3 * Cc * (P + RM + Dv + 1))
        model = "slay_anchor_kronecker"
    elif feature_dim:
        F = int(feature_dim)
        fwd_terms = dict(state_update=2 * F * (Dv + 1), output=2 * F * (Dv + 1), intra=intra * Cc * (F + Dv + 1))
        bwd_terms = dict(inter=10 * F * (Dv + 1), intra=intra * 3 * Cc * (F + Dv + 1))
        model = "linear_dense_F"
    else:
        return None
    fwd_tok, bwd_tok = sum(fwd_terms.values()), sum(bwd_terms.values())
    per_tok = fwd_tok + (bwd_tok if fwdbwd else 0)
    out = dict(flops=float(per_tok) * B * H * T, model=model, F=F, chunk=Cc, fwd_per_token_head=fwd_tok,
               fwd_terms=fwd_terms)
    if fwdbwd:
        out.update(bwd_per_token_head=bwd_tok, bwd_terms=bwd_terms)
    return out


def self_check():
    """Prints the model at PERF.md's shapes against PERF.md's numbers; 0 when all are within 5%."""
    A = dict(B=4, H=12, D=64, T=32768, causal=True, R=2, M=16, P=32)
    paper = dict(B=1, H=8, D=32, T=131072, causal=True, R=2, M=8, P=16)
    fwd_a = useful_flops("slay_anchor", "fwd", **A)
    fb_a = useful_flops("slay_anchor", "fwdbwd", **A)
    fwd_p = useful_flops("slay_anchor", "fwd", **paper)
    fb_p = useful_flops("slay_anchor", "fwdbwd", **paper)
    sdpa_fwd = useful_flops("sdpa_default", "fwd", **A)["flops"]
    sdpa_fb = useful_flops("sdpa_default", "fwdbwd", **A)["flops"]
    n_a = A["B"] * A["H"] * A["T"]
    checks = [  # (what, model value, PERF.md value, unit)
        ("A slay_anchor fwd, causal, C=64 (gating)", fwd_a["flops"] / 1e9, 470.0, "GFLOP"),
        ("A slay_anchor fwd per token-head", fwd_a["fwd_per_token_head"] / 1e3, 299.0, "kFLOP"),
        ("A slay_anchor bwd", (fb_a["flops"] - fwd_a["flops"]) / 1e9, 1195.0, "GFLOP"),
        ("A slay_anchor fwd+bwd", fb_a["flops"] / 1e9, 1666.0, "GFLOP"),
        ("A slay_anchor fwd at 1.5 ms", fwd_a["flops"] / 1.5e-3 / 1e12, 314.0, "TFLOP/s"),
        ("paper slay_anchor fwd", fwd_p["flops"] / 1e9, 46.0, "GFLOP"),
        ("paper slay_anchor bwd per token-head", fb_p["bwd_per_token_head"] / 1e3, 115.0, "kFLOP"),
        ("A SDPA default fwd at 14.2 ms", sdpa_fwd / 14.2e-3 / 1e12, 465.0, "TFLOP/s"),
        ("A SDPA default fwd+bwd at 52.4 ms", sdpa_fb / 52.4e-3 / 1e12, 441.0, "TFLOP/s"),
    ]
    print("FLOP model self-check against PERF.md (tolerance 5%)")
    print(f"  A = B4 H12 D64 T32768 R2 M16 P32 causal ({n_a} token-heads); paper = B1 H8 D32 T131072 R2 M8 P16")
    print(f"  A fwd terms per token-head: {fwd_a['fwd_terms']}")
    print(f"  A bwd terms per token-head: {fb_a['bwd_terms']}")
    ok = True
    for what, got, ref, unit in checks:
        dev = got / ref - 1.0
        good = abs(dev) <= 0.05
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {what}: {got:.1f} {unit} (PERF.md {ref:g}, {dev:+.1%})")
    fwd_a_bidir = useful_flops("slay_anchor", "fwd", **dict(A, causal=False))["flops"]
    print(f"  info: A fwd bidirectional {fwd_a_bidir / 1e9:.1f} GFLOP; A fwd with C=128 "
          f"{useful_flops('slay_anchor', 'fwd', chunk=128, **A)['flops'] / 1e9:.1f} GFLOP (PERF.md 483)")
    print("self-check", "passed" if ok else "FAILED")
    return 0 if ok else 1


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
    p.add_argument("--chunk", type=int, default=None,
                   help="chunk size of the GPU scan (default: the library's); the FLOP model always uses C=64")
    p.add_argument("--epsilon", type=float, default=1e-6, help="Yat epsilon (variants that use it)")
    p.add_argument("--allow-tf32", action="store_true", help="TF32 for fp32 matmuls in both libslay and torch")
    p.add_argument("--layout", choices=["bhtd", "bthd"], default="bhtd",
                   help="memory layout of q, k, v, dout: (B,H,T,D) or (B,T,H,D) viewed as (B,H,T,D)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up calls before timing (default %(default)s)")
    p.add_argument("--iters", type=int, default=MIN_ITERS,
                   help="timed calls; median, std and min are reported (default %(default)s)")
    p.add_argument("--slow-call-s", type=float, default=1.0,
                   help="a call slower than this (after its first call) gets no more warm-up and at most 3 "
                        "timed runs; every other call gets --iters")
    p.add_argument("--time-limit-s", type=float, default=0,
                   help="start no new measurement after this many seconds; the rest are SKIPPED (0: no limit)")
    p.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS,
                   help="peak for the pct_peak column (default %(default)s: H200 bf16, measured)")
    p.add_argument("--row-stats", action="store_true",
                   help="exact variants: the forward writes its row statistics and the backward reads them")
    p.add_argument("--device", type=int, default=0, help="CUDA device ordinal")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", help="write all rows and the run's metadata here")
    p.add_argument("--markdown", help="also write the Markdown table here")
    p.add_argument("--self-check", action="store_true",
                   help="check the FLOP model against PERF.md's numbers and exit (no torch, no GPU)")
    return p.parse_args(argv)


class RowFailure(Exception):
    """A row that cannot be measured: status is NOT_SUPPORTED, OOM, UNAVAILABLE or ERROR."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


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
        dtype = {self.torch.float32: S.FLOAT32, self.torch.bfloat16: S.BFLOAT16, self.torch.float16: S.FLOAT16,
                 self.torch.int32: S.INT32, self.torch.int64: S.INT64}
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
        """Median/std/min/mean ms of call() over the timed runs, after warm-up.

        The first call here is warm-up (the caller has already run call once, for
        the peak memory). Unless that call took longer than --slow-call-s, the
        remaining --warmup - 1 warm-ups and --iters timed runs follow; a slow call
        gets no more warm-up and min(--iters, 3) timed runs."""
        torch, a = self.torch, self.a
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        first_ms = start.elapsed_time(end)
        warmup, iters, slow = a.warmup, a.iters, first_ms > a.slow_call_s * 1e3
        if slow:
            warmup, iters = 1, min(iters, 3)
        for _ in range(max(warmup - 1, 0)):
            call()
        torch.cuda.synchronize()
        times = []
        for _ in range(max(iters, 1)):
            start.record()
            call()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return dict(ms=statistics.median(times), std_ms=statistics.pstdev(times), min_ms=min(times),
                    mean_ms=statistics.fmean(times), runs=len(times), warmup_runs=max(warmup, 1), slow_call=slow,
                    first_ms=first_ms)

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
        except RowFailure:
            raise
        except S.SlayError as e:
            status = {S.NOT_SUPPORTED: "NOT_SUPPORTED", S.OUT_OF_MEMORY: "OOM"}.get(e.status, "ERROR")
            raise RowFailure(status, str(e)) from None
        except torch.cuda.OutOfMemoryError as e:
            raise RowFailure("OOM", str(e).split("\n")[0]) from None
        except RuntimeError as e:
            raise RowFailure("ERROR", str(e).split("\n")[0]) from None

    # ------------------------------------------------------------------- SDPA
    def sdpa_context(self, backend):
        """No context for torch's default choice; FlashAttention forced otherwise."""
        if backend == "default":
            return contextlib.nullcontext()
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel
            return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
        except ImportError:  # torch < 2.3
            return self.torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False,
                                                       enable_mem_efficient=False)

    def run_sdpa(self, backend, T, dtype, passname):
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

        with self.sdpa_context(backend):
            if backend == "default":
                mem, _ = self.peak_memory(call)
            else:  # the forced backend may refuse these inputs (fp32): UNAVAILABLE, not a failure
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        mem, _ = self.peak_memory(call)
                    except torch.cuda.OutOfMemoryError:
                        raise
                    except RuntimeError as e:
                        why = [" ".join(str(w.message).split())[:240] for w in caught]
                        msg = "; ".join([str(e).split("\n")[0]] + why[:4])
                        raise RowFailure("UNAVAILABLE", f"{backend} backend unavailable: {msg}") from None
                for w in caught:  # not swallowed when the call ran
                    print(f"    warning: {(str(w.message).splitlines() or [''])[0]}", file=sys.stderr)
            timing = self.time_cuda(call)
        return dict(**timing, **mem, workspace_mb=0.0, sdpa_backend=backend)

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
            with_stats = a.row_stats and variant in S.EXACT_VARIANTS

            def outputs():
                bufs = dict(out=torch.empty_like(x["q"]))
                if passname == "fwdbwd":
                    bufs.update(dq=torch.empty_like(x["q"]), dk=torch.empty_like(x["k"]), dv=torch.empty_like(x["v"]))
                if with_stats:
                    bufs["stats"] = torch.empty((a.B, a.H, T), dtype=torch.float32, device=self.dev)
                return bufs

            def call_args(bufs):
                tout = self.slay_tensor(bufs["out"])
                tstats = self.slay_tensor(bufs["stats"]) if "stats" in bufs else None
                fwd = lib.fwd_args(tq, tk, tv, tout, params=tp, row_stats=tstats)
                if passname != "fwdbwd":
                    return fwd, None
                dq, dk, dv = (self.slay_tensor(bufs[n]) for n in ("dq", "dk", "dv"))
                return fwd, lib.bwd_args(tq, tk, tv, tout, self.slay_tensor(x["dout"]), dq, dk, dv, params=tp,
                                         row_stats=tstats)

            # The workspace these calls need (ABI 6; at most the plan-level size for (B, T)).
            fwd_args, bwd_args = call_args(outputs())
            ws_bytes = lib.fwd_workspace_size(plan, fwd_args, self.stream())
            if bwd_args is not None:
                ws_bytes = max(ws_bytes, lib.bwd_workspace_size(plan, bwd_args, self.stream()))
            del fwd_args, bwd_args

            def call_allocating():
                """One call with its outputs and workspace allocated inside (for the peak)."""
                bufs = outputs()
                bufs["ws"] = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=self.dev)
                run(bufs)
                return bufs

            def run(bufs):
                stream, ws = self.stream(), bufs["ws"].data_ptr()
                fwd_args, bwd_args = call_args(bufs)
                lib.fwd(plan, fwd_args, ws, ws_bytes, stream)
                if bwd_args is not None:
                    lib.bwd(plan, bwd_args, ws, ws_bytes, stream)

            mem, bufs = self.peak_memory(call_allocating)
            timing = self.time_cuda(lambda: run(bufs))
            row = dict(**timing, **mem, workspace_mb=ws_bytes / 2**20, params_sampled_on=sampled_on,
                       feature_dim=lib.feature_dim(plan), row_stats=bool(with_stats))
            if variant == "standard" and passname == "fwd":
                with torch.no_grad(), self.sdpa_context("default"):
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
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 (metadata only)
        cudnn = None
    return dict(tool="compare_torch.py", date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                device=props.name, device_memory_gb=round(props.total_memory / 1e9, 1),
                sm_count=getattr(props, "multi_processor_count", None), driver=driver,
                cuda_runtime_torch=torch.version.cuda, cudnn=cudnn, torch=torch.__version__,
                python=sys.version.split()[0], libslay=lib.version(), libslay_abi=lib.raw.slay_get_abi_version(),
                libslay_path=os.path.abspath(args.lib), command=shlex.join([sys.executable] + sys.argv),
                argv=list(sys.argv), python_executable=sys.executable, cwd=os.getcwd(), args=vars(args),
                sdpa_backends={"sdpa_default": "no sdpa_kernel context (torch's choice)",
                               "sdpa_flash": "sdpa_kernel(SDPBackend.FLASH_ATTENTION)"},
                flop_model=dict(FLOP_MODEL, peak_tflops=args.peak_tflops))


COLUMNS = [("impl", "{}"), ("variant", "{}"), ("dtype", "{}"), ("pass", "{}"), ("T", "{}"), ("ms", "{:.3f}"),
           ("std_ms", "{:.3f}"), ("min_ms", "{:.3f}"), ("runs", "{}"), ("sdpa_default_ms", "{:.3f}"),
           ("sdpa_flash_ms", "{:.3f}"), ("x_sdpa", "{:.2f}"), ("x_flash", "{:.2f}"), ("gflop", "{:.1f}"),
           ("tflops", "{:.1f}"), ("pct_peak", "{:.1f}"), ("peak_mb", "{:.1f}"), ("extra_mb", "{:.1f}"),
           ("workspace_mb", "{:.1f}"), ("status", "{}")]


def markdown(rows, meta):
    a = meta["args"]
    lines = [f"Device: {meta['device']} (driver {meta['driver']}, CUDA {meta['cuda_runtime_torch']}, "
             f"cuDNN {meta.get('cudnn')}), torch {meta['torch']}, libslay {meta['libslay']}, {meta['date']}; "
             f"B={a['B']} H={a['H']} D={a['D']} causal={a['causal']} layout={a['layout']} R={a['R']} M={a['M']} "
             f"P={a['P']} chunk={a['chunk']}; median of {a['iters']} timed runs after {a['warmup']} warm-ups "
             f"(calls over {a['slow_call_s']} s: at most 3).", "",
             f"Command: `{meta['command']}`", "",
             "sdpa_default: torch's own SDPA backend choice; sdpa_flash: SDPBackend.FLASH_ATTENTION forced "
             "(UNAVAILABLE where it cannot run). x_sdpa = time / sdpa_default time, x_flash = time / sdpa_flash "
             f"time (> 1: slower). gflop: useful FLOPs (model below); tflops = gflop / ms; pct_peak = % of "
             f"{a['peak_tflops']:g} TFLOP/s.", "",
             "| " + " | ".join(c for c, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = []
        for c, fmt in COLUMNS:
            v = r.get(c)
            if c == "impl" and r.get("row_stats"):
                v = "libslay+stats"
            if v is None and c == "sdpa_flash_ms" and r.get("sdpa_flash_status") not in (None, "ok"):
                cells.append("n/a")
            else:
                cells.append("" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{r['variant']} {r['dtype']} T={r['T']}: max |out - SDPA out| = {r['max_abs_diff_vs_sdpa']:.3g}"
             for r in rows if "max_abs_diff_vs_sdpa" in r]
    notes += [f"{r['impl']} {r['variant']} {r['dtype']} {r['pass']} T={r['T']}: {r['status']}: {r.get('message', '')}"
              for r in rows if r.get("status") not in ("ok", None)]
    fm = meta["flop_model"]
    model = ["", "FLOP model (useful FLOPs; C = %d):" % fm["chunk_C"]] + \
            [f"- {k}: {fm[k]}" for k in ("unit", "exact", "slay_anchor_kronecker", "linear_dense_F")]
    return "\n".join(lines + ([""] + notes if notes else []) + model) + "\n"


def add_references(group, peak_tflops):
    """Puts both SDPA references of one (T, dtype, pass) and the ratios against them into every row."""
    ref = {}
    for r in group:
        if r["impl"] == "sdpa":
            ref[r["variant"]] = (r["ms"] if r.get("status") == "ok" else None, r.get("status"))
    d_ms, d_status = ref.get("sdpa_default", (None, None))
    f_ms, f_status = ref.get("sdpa_flash", (None, None))
    for r in group:
        r.update(sdpa_default_ms=d_ms, sdpa_default_status=d_status, sdpa_flash_ms=f_ms, sdpa_flash_status=f_status)
        if r.get("status") != "ok":
            continue
        r["x_sdpa"] = r["ms"] / d_ms if d_ms else None
        r["x_flash"] = r["ms"] / f_ms if f_ms else None
        if r.get("flops"):
            r["gflop"] = r["flops"] / 1e9
            r["tflops"] = r["flops"] / (r["ms"] * 1e-3) / 1e12
            r["pct_peak"] = 100.0 * r["tflops"] / peak_tflops


def main(argv=None):
    args = parse_args(argv)
    if args.self_check:
        return self_check()
    if args.iters < MIN_ITERS:
        print(f"compare_torch.py: note: --iters {args.iters} is below {MIN_ITERS} (PERF.md M0 asks for >= "
              f"{MIN_ITERS} timed iterations)", file=sys.stderr)
    import torch  # imported late: --help and --self-check work where torch is not installed

    if not torch.cuda.is_available():
        sys.exit("compare_torch.py: torch sees no CUDA device")
    try:
        bench = Bench(args, torch)
    except S.SlayError as e:
        sys.exit(f"compare_torch.py: cannot use libslay's CUDA backend: {e}")
    meta = metadata(args, torch, bench.lib)
    configs = [(T, d, p) for T in args.T for d in args.dtypes for p in args.passes]
    impls = [("sdpa", name, backend) for name, backend in SDPA_ROWS] + [("libslay", v, None) for v in args.variants]
    total, done, rows = len(configs) * len(impls), 0, []
    started = time.monotonic()
    for T, dtype, passname in configs:
        group = []
        for impl, variant, backend in impls:
            done += 1
            print(f"[{done}/{total}] {impl} {variant} T={T} {dtype} {passname} ...", file=sys.stderr, flush=True)
            row = dict(impl=impl, variant=variant, dtype=dtype, **{"pass": passname}, B=args.B, H=args.H, T=T,
                       D=args.D, causal=args.causal)
            if args.time_limit_s and time.monotonic() - started > args.time_limit_s:
                row.update(status="SKIPPED", message="--time-limit-s reached")
                group.append(row)
                continue
            try:
                measure = (lambda: bench.run_sdpa(backend, T, dtype, passname)) if impl == "sdpa" else \
                          (lambda: bench.run_slay(variant, T, dtype, passname))
                row.update(bench.guarded(measure), status="ok")
                model = useful_flops(variant, passname, args.B, args.H, T, args.D, args.causal, R=args.R, M=args.M,
                                     P=args.P, feature_dim=row.get("feature_dim"))
                if model:
                    row.update(flops=model["flops"], flop_model=model["model"],
                               flop_detail={k: v for k, v in model.items() if k not in ("flops", "model")})
                print(f"    {row['ms']:.3f} ms (std {row['std_ms']:.3f}, min {row['min_ms']:.3f}, "
                      f"{row['runs']} runs)", file=sys.stderr, flush=True)
            except RowFailure as e:
                row.update(status=e.status, message=str(e))
                print(f"    {e.status}: {e}", file=sys.stderr, flush=True)
            group.append(row)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        add_references(group, args.peak_tflops)
        rows.extend(group)
        if args.json:  # rewritten after every configuration: a killed run keeps what it measured
            with open(args.json, "w") as f:
                json.dump(dict(meta=meta, rows=rows, complete=False), f, indent=1, default=str)
    table = markdown(rows, meta)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=rows, complete=True), f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
