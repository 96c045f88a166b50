#!/usr/bin/env python3
"""How much slay_poly2's gradient dq moves when its features are rounded to
bf16, at the Python CUDA-vs-CPU check's shape (tests/python/test_torch.py
cuda_tests: B 2, H 2, T 33, D = Dv = 16, num_features 5, poly2_gamma 0.5, so
d = 2 and F = d(d+1)/2 + 1 = 4; no initial state; the loss's ramp over Dv as
dout), causal and bidirectional, for two input distributions:
  clustered  q, k = a centre per head (randn(1, H, 1, D)) + 0.1 randn(B, H, T, D),
             v = randn (conditioned_qkv's setup for SIGNED_MAPS);
  random     q, k, v = randn(B, H, T, D).
q, k, v are rounded to bf16 first (the check feeds both backends bf16 tensors).

Why: an H200 run of the check (ce49cc7) failed slay_poly2 bf16 on dq alone,
2.6e-2 and 5.7e-2, with clustered inputs at D = 16, every other output within
4e-3. The GPU engine's dominant rounding is the features in bf16 (fp32 sums).

The map (src/cpu/feature_maps.cpp Poly2Map, src/cuda/linear_features_kernel.cuh):
x^ = x / max(|x|, norm_eps = 1e-12), u = sqrt(D/d) S_h^T x^ (S_h (D, d)
orthonormal, Gaussian then QR), phi = [w_ab u_a u_b at c(c+1)/2 + p, p <= c,
w = sqrt(2) off the diagonal | sqrt(gamma/D)]; out_i = N_i / (Z_i + 1e-6)
(src/cpu/stabilizer.hpp, additive mode). With A = mask * phi_q phi_k^T,
den_i = Z_i + 1e-6, g the ramp and W_ij = g . (v_j - out_i) / den_i:
dphi_q = (mask * W) phi_k, du_a = sum_f dphi_f w_ab u_b (both roles of u),
dx^ = sqrt(D/d) S_h du, dq = (dx^ - (dx^ . x^) x^) / |q|.
The script evaluates this once in fp64 (validated against central finite
differences) and once with phi_q, phi_k and u rounded to bf16 (round to
nearest even) and everything else exact, over 200 draws per distribution and
mode, and reports the relative L2 of out and dq. The column 'cancel' is the
median of ||(|mask * W|) |phi_k| || / ||dphi_q||: how much dphi_q's terms
cancel (sum_j A_ij (g . v_j - g . out_i) = 0, so dphi_q_i = sum_j W_ij
(phi_k,j - its average)), i.e. how much the features' rounding is amplified.

Run: python3 tests/spec/poly2_bf16_dq_conditioning.py   (numpy; a few seconds)
Writes tests/bench/results/cpu-2026-12-03/poly2_bf16_dq_conditioning.md too.
"""
import os

import numpy as np

from kron_bf16_emulation import bf16 as bf16_f32

B, H, T, D, d, GAMMA, EPS, DRAWS = 2, 2, 33, 16, 2, 0.5, 1e-6, 200
PA, PB = zip(*[(p, c) for c in range(d) for p in range(c + 1)])  # feature f = c(c+1)/2 + p
PA, PB = np.array(PA), np.array(PB)
WEIGHT = np.where(PA == PB, 1.0, np.sqrt(2.0))
RAMP = np.linspace(-1, 1, D)  # dL/dout (Dv = D)


def bf16(x):
    return bf16_f32(x).astype(np.float64)


def features(x, S, rnd):
    """x^, |x| (clamped), u, phi of x (B, H, T, D) with frames S (H, D, d); rnd rounds u and phi."""
    n = np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    xh = x / n
    u = np.sqrt(D / d) * np.einsum("bhtk,hka->bhta", xh, S)
    phi = WEIGHT * u[..., PA] * u[..., PB]
    phi = np.concatenate([phi, np.full(phi.shape[:-1] + (1,), np.sqrt(GAMMA / D))], -1)
    return xh, n, rnd(u), rnd(phi)


def forward_backward(q, k, v, S, causal, rnd=lambda a: a):
    """out, dq, cancellation factor per head of L = sum(out * ramp)."""
    xh, n, u, pq = features(q, S, rnd)
    pk = features(k, S, rnd)[3]
    mask = np.tril(np.ones((T, T))) if causal else np.ones((T, T))
    A = mask * np.einsum("bhif,bhjf->bhij", pq, pk)
    den = A.sum(-1) + EPS
    out = np.einsum("bhij,bhjv->bhiv", A, v) / den[..., None]
    W = mask * ((v @ RAMP)[..., None, :] - (out @ RAMP)[..., :, None]) / den[..., None]
    dphi = np.einsum("bhij,bhjf->bhif", W, pk)
    cancel = (np.linalg.norm(np.einsum("bhij,bhjf->bhif", abs(W), abs(pk)), axis=(-2, -1))
              / np.linalg.norm(dphi, axis=(-2, -1)))
    g = dphi[..., :-1] * WEIGHT  # the constant feature has no gradient
    du = np.zeros(u.shape)
    for f in range(len(PA)):
        du[..., PA[f]] += g[..., f] * u[..., PB[f]]
        du[..., PB[f]] += g[..., f] * u[..., PA[f]]
    dxh = np.sqrt(D / d) * np.einsum("bhta,hka->bhtk", du, S)
    dq = (dxh - (dxh * xh).sum(-1, keepdims=True) * xh) / n
    return out, dq, cancel


def draw(rng, clustered):
    """q, k, v (B, H, T, D) as test_torch.py draws them, rounded to bf16, and the frames S (H, D, d)."""
    if clustered:
        c = rng.standard_normal((1, H, 1, D))
        q, k = (c + 0.1 * rng.standard_normal((B, H, T, D)) for _ in range(2))
    else:
        q, k = rng.standard_normal((B, H, T, D)), rng.standard_normal((B, H, T, D))
    v = rng.standard_normal((B, H, T, D))
    S = np.stack([np.linalg.qr(rng.standard_normal((D, d)))[0] for _ in range(H)])
    return bf16(q), bf16(k), bf16(v), S


def fd_check(rng, clustered, causal, h=1e-6):
    """max |dq analytic - central differences| / max |dq| on one draw, every entry of q."""
    q, k, v, S = draw(rng, clustered)
    loss = lambda qq: (forward_backward(qq, k, v, S, causal)[0] * RAMP).sum()
    dq = forward_backward(q, k, v, S, causal)[1]
    fd = np.zeros_like(q)
    for idx in np.ndindex(q.shape):
        e = np.zeros_like(q)
        e[idx] = h
        fd[idx] = (loss(q + e) - loss(q - e)) / (2 * h)
    return abs(fd - dq).max() / abs(dq).max()


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def stats(e):
    return (f"{np.median(e):.1e} | {np.percentile(e, 95):.1e} | {e.max():.1e} | "
            f"{(e > 2e-2).mean():.3f}")


def main():
    lines = ["# slay_poly2: bf16 features vs dq (tests/spec/poly2_bf16_dq_conditioning.py)", "",
             f"B {B}, H {H}, T {T}, D = Dv = {D}, d {d}, F {len(PA) + 1}, gamma {GAMMA}; {DRAWS} draws per row "
             "(seeds 0..199); relative L2 over the whole (B, H, T, D) tensor; q, k, v in bf16; features phi_q, phi_k "
             "and u rounded to bf16, everything else fp64.", "",
             "Gradient check (fp64 analytic dq vs central differences, step 1e-6, one draw): " + ", ".join(
                 f"{'clustered' if cl else 'random'} {'causal' if ca else 'bidir'} {fd_check(np.random.default_rng(99), cl, ca):.1e}"
                 for cl in (True, False) for ca in (True, False)), "",
             "| inputs | mode | out median | out p95 | out max | out >2e-2 | dq median | dq p95 | dq max "
             "| dq >2e-2 | cancel median |", "|" + "---|" * 11]
    for clustered in (True, False):
        for causal in (True, False):
            eo, eq, cancel = [], [], []
            for seed in range(DRAWS):
                q, k, v, S = draw(np.random.default_rng(seed), clustered)
                out, dq, c = forward_backward(q, k, v, S, causal)
                out_r, dq_r, _ = forward_backward(q, k, v, S, causal, bf16)
                eo.append(rel(out_r, out))
                eq.append(rel(dq_r, dq))
                cancel.append(np.median(c))
            lines.append(f"| {'clustered' if clustered else 'random'} | {'causal' if causal else 'bidirectional'} | "
                         f"{stats(np.array(eo))} | {stats(np.array(eq))} | {np.median(cancel):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench", "results", "cpu-2026-12-03")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "poly2_bf16_dq_conditioning.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
