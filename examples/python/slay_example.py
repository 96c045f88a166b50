#!/usr/bin/env python3
"""slay_example.py -- libslay from Python.

Runs slay_anchor (the paper's SLAY: anchor polynomial features (x) positive
random features, R = 2 quadrature nodes, M = 16, P = 32, epsilon 1e-6) on
random q, k (B, H, T, D) and v (B, H, T, D) and prints the relative L2 error
of its output against exact yat_spherical attention (the kernel SLAY
linearizes) and the time each took:
  - with numpy on the CPU backend (always), then a packed batch of two
    sequences (seq_offsets) with one shared key/value head (multi-query,
    num_kv_heads = 1) against one call per sequence;
  - with torch on CUDA device 0 when torch and a GPU are there (unless --cpu),
    including a backward through autograd (q.grad, k.grad, v.grad) and the
    drop-in layer slay.nn.SlayAttention.
It checks its own results: every output and gradient finite and not all
zero, and each relative error finite and below 2.0 (linearized attention is
an approximation: about 0.8 is typical); it exits 1 otherwise.

Usage: slay_example.py [--cpu] [T] [H] [D]      (defaults 256 4 64, B = 1)
From the source tree: SLAY_LIBRARY=build/libslay.so PYTHONPATH=abi/python python3 examples/python/slay_example.py
"""
import sys
import time

import numpy as np

import slay

ATTRS = dict(num_quad_nodes=2, num_features=16, poly_dim=32, epsilon=1e-6)
MAX_REL_L2 = 2.0
failures = []


def check(name, values, reference=None):
    """Prints and checks one result: finite, not all zero, and (with a
    reference) relative L2 error finite and below MAX_REL_L2."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        failures.append(f"{name} is not finite")
    elif not np.any(values):
        failures.append(f"{name} is all zero")
    if reference is not None:
        reference = np.asarray(reference, dtype=np.float64)
        rel_l2 = float(np.linalg.norm(values - reference) / np.linalg.norm(reference))
        print(f"  {name}: relative L2 error vs exact yat_spherical {rel_l2:.4f}")
        if not (np.isfinite(rel_l2) and rel_l2 < MAX_REL_L2):
            failures.append(f"{name}: relative L2 error {rel_l2:.4g} is not below {MAX_REL_L2}")


def timed(fn, synchronize=lambda: None):
    start = time.perf_counter()
    result = fn()
    synchronize()
    return result, 1e3 * (time.perf_counter() - start)


def numpy_cpu(T, H, D):
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, H, T, D), dtype=np.float32) for _ in range(3))
    params = slay.FeatureParams.sample("slay_anchor", num_heads=H, head_dim=D, seed=42, **ATTRS)
    out, ms = timed(lambda: slay.attention(q, k, v, "slay_anchor", params=params, **ATTRS))
    exact, exact_ms = timed(lambda: slay.attention(q, k, v, "yat_spherical", epsilon=1e-6))
    print(f"numpy, CPU backend: slay_anchor {ms:.1f} ms, yat_spherical {exact_ms:.1f} ms (B=1 H={H} T={T} D={D})")
    check("slay_anchor output", out, exact)
    check("yat_spherical output", exact)

    # Two sequences packed back to back (lengths T/3 and T - T/3) sharing one
    # key/value head: q (1, H, T, D), k, v (1, 1, T, D); each sequence is
    # computed as a call of its own.
    offsets = np.array([0, T // 3, T], np.int64)
    k1, v1 = k[:, :1], v[:, :1]
    packed = slay.attention(q, k1, v1, "slay_anchor", params=params, seq_offsets=offsets, **ATTRS)
    pieces = [slay.attention(q[:, :, a:b], k1[:, :, a:b], v1[:, :, a:b], "slay_anchor", params=params, **ATTRS)
              for a, b in zip(offsets[:-1], offsets[1:])]
    diff = float(np.abs(packed - np.concatenate(pieces, axis=2)).max())
    print(f"  packed batch of 2 sequences, 1 key/value head: max difference to per-sequence calls {diff:.1e}")
    check("packed multi-query output", packed)
    if diff != 0.0:
        failures.append(f"packed output differs from the per-sequence calls by {diff:.3g}")


def torch_cuda(T, H, D):
    import torch
    device = torch.device("cuda", 0)
    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, H, T, D, device=device, requires_grad=True) for _ in range(3))
    params = slay.FeatureParams.sample("slay_anchor", num_heads=H, head_dim=D, seed=42, **ATTRS)
    slay.attention(q, k, v, params=params, **ATTRS)  # warm-up: handle, plan, device copy of params
    out, ms = timed(lambda: slay.attention(q, k, v, params=params, **ATTRS), sync)
    exact, exact_ms = timed(lambda: slay.attention(q, k, v, "yat_spherical", epsilon=1e-6), sync)
    print(f"torch, CUDA ({torch.cuda.get_device_name(device)}): slay_anchor {ms:.2f} ms, "
          f"yat_spherical {exact_ms:.2f} ms")
    check("slay_anchor output", out.detach().cpu(), exact.detach().cpu())
    _, backward_ms = timed(lambda: (out * torch.randn_like(out)).sum().backward(), sync)
    print(f"  backward through autograd: {backward_ms:.2f} ms")
    for name, x in (("q.grad", q), ("k.grad", k), ("v.grad", v)):
        check(name, x.grad.cpu())
    layer = slay.nn.SlayAttention(H * D, H, "slay_anchor", seed=42, **ATTRS).to(device)
    x = torch.randn(2, T, H * D, device=device)
    check("slay.nn.SlayAttention output", layer(x).detach().cpu())


def main():
    args = [a for a in sys.argv[1:] if a != "--cpu"]
    T, H, D = (int(a) for a in args) if args else (256, 4, 64)
    print(f"libslay {slay.version()} from {slay.library_path}")
    numpy_cpu(T, H, D)
    if "--cpu" not in sys.argv[1:]:
        try:
            import torch
            gpu = torch.cuda.is_available()
        except ImportError:
            gpu = False
        if gpu:
            torch_cuda(T, H, D)
        else:
            print("torch with a CUDA device not found: the CPU run above is the whole example")
    for failure in failures:
        print(f"CHECK FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
