#!/usr/bin/env python3
"""Whether slay_poly2 can run on the Kronecker tensor-core engine in one bf16
plane, in the "p-granular triangle" form of PERF.md 3.6 (issue 17's GPU bar:
budget 1024 at D = 64, d = 44, F = 991).

slay_poly2's kernel is (u_q . u_k)^2 + gamma/D, u = sqrt(D/d) S^T x^ (SPEC
A.17). The Kronecker engine (src/cuda/linear_forward_mma_kernel.cuh) forms
features as poly[p] * pcat[c] from bf16 factor rows, one p a time over c
tiles. With poly = pcat = u it can compute that kernel exactly without the
full d x d outer product: row p visits only the c tiles j >= tile(p), the
diagonal tile in full (it holds both (a, b) and (b, a) of a same-tile pair)
and the tiles above it with weight 2 on the query side (a pair of different
tiles counted once where the full product counts it twice; 2 is exact in
bf16). The constant feature sqrt(gamma/D) is one more state row and the
intra-chunk scores' bias gamma/D.

This script emulates that form's roundings for the causal and bidirectional
forward of one head, at a mode's precision (ROUNDINGS of
kron_bf16_emulation.py: one bf16 plane, hi + lo, three planes):
  u (the factor rows) rounded; a feature is the rounded product u_p * u_c
  (bf16x2_mul), times its weight; the state update's operand is the rounded
  vbar * u_k[p] times u_k[c] (fp32 sums); the state operand of Phi_q S and
  the masked intra-chunk scores ((u_q . u_k)^2 + gamma/D from the rounded
  rows, fp32) are rounded; v is exact in bf16 (bf16 io); the frame S as the
  factor GEMM multiplies it (one plane: hi + lo, as the engine has W).
against fp64 of the variant's own triangular features (the CPU backend's
math; dense_planes_emulation.poly2_features), on the GPU suite's inputs and
rule (random q, k ~ N(0, 1) in bf16, judged by max(2e-2, 10 x the fp32
floor), "ill" heads with a floor above 1e-3 not compared; clustered q, k,
judged by 2e-2). Tiles of 8 columns (the state update's n8 tiles).

What it shows (2026-12-03): the form is exact (without roundings it
matches the triangular features to fp32 rounding, 5e-8), and one bf16 plane
keeps every head of every shape within the rule: at the bar shape (D 64,
budget 1024: 1136 pairs, 1312 with the last tile's padding, against
slay_anchor's 1024 features) at most 3.6e-3 (random) and 2.1e-3
(clustered); at the suite's shapes at most 4.1e-3; hi + lo at most 6.6e-6.
Without the constant feature (D 16, budget 256) this draw also stays within
it (8.1e-3 at worst, T 63 causal), but kron_bf16_emulation.py and
dense_planes_emulation.py each found a head in 30-40 of that case at
4.5e-2 / 1.7e-1 in one plane: plan hi + lo for gamma = 0.
Output of the committed version: tests/bench/results/cpu-2026-12-03/poly2_triangle_emulation.md.

Run: python3 tests/spec/poly2_triangle_emulation.py   (numpy; about 10 minutes on 2 cores)
"""
import numpy as np

from dense_planes_emulation import RULE_LEGEND, attention, draw_qkv, frame_rows, poly2_features, poly2_shape, rule_cells
from kron_bf16_emulation import ROUNDINGS

TILE = 8


def triangle_pairs(d, tile=TILE):
    """(p, c, query weight) of the form: c in the tiles j >= tile(p), c < d."""
    p, c = np.meshgrid(np.arange(d), np.arange(d), indexing="ij")
    keep = (c // tile) >= (p // tile)
    p, c = p[keep], c[keep]
    return p, c, np.where(c // tile > p // tile, 2.0, 1.0)


def triangle_attention(uq, uk, v, causal, D, gamma, rnd, chunk=64):
    """N / (Z + 1e-6) of the triangle form with the engine's roundings by rnd."""
    T, Dv = v.shape
    d = uq.shape[1]
    r64 = lambda a: rnd(np.asarray(a, np.float32)).astype(np.float64)
    uq, uk = r64(uq), r64(uk)
    p, c, w = triangle_pairs(d)
    const = float(np.sqrt(gamma / D))
    vbar = np.concatenate([v, np.ones((T, 1))], 1)
    phi_q = r64(uq[:, p] * uq[:, c]) * w  # rounded products, exact weights

    def update(t0, t1):  # (pairs, Dv + 1) fp32: rounded vbar * u_k[p], times u_k[c]
        vp = r64(vbar[t0:t1, None, :] * uk[t0:t1, :, None])  # (t, d, Dv + 1)
        full = np.einsum("tpw,tc->pcw", vp, uk[t0:t1])
        return full[p, c].astype(np.float32), (const * vbar[t0:t1].sum(0)).astype(np.float32)

    def scores(t0, t1):  # (u_q . u_k)^2 + gamma/D in fp32 from the rounded rows, then rounded
        b = (uq[t0:t1] @ uk[t0:t1].T).astype(np.float32)
        return r64(b * b + np.float32(gamma / D))

    if not causal:
        S, Sc = update(0, T)
        res = phi_q @ r64(S) + const * r64(Sc)[None, :]
        return res[:, :Dv] / (res[:, Dv:] + 1e-6)
    res = np.zeros((T, Dv + 1))
    S = np.zeros((len(p), Dv + 1), np.float32)
    Sc = np.zeros(Dv + 1, np.float32)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        res[t0:t1] = (phi_q[t0:t1] @ r64(S) + const * r64(Sc)[None, :]
                      + np.tril(scores(t0, t1)) @ vbar[t0:t1])
        dS, dSc = update(t0, t1)
        S, Sc = (S + dS).astype(np.float32), (Sc + dSc).astype(np.float32)
    return res[:, :Dv] / (res[:, Dv:] + 1e-6)


def head(D, budget, T, causal, seed, clustered):
    """Relative L2 against fp64: fp32 features (the floor), then each mode."""
    rng = np.random.default_rng(seed)
    q, k, v = draw_qkv(rng, D, T, clustered)
    gamma, d = poly2_shape(D, budget)
    frame = np.linalg.qr(rng.standard_normal((D, d)))[0].astype(np.float32)
    feats = lambda x, dt: poly2_features(x, frame, D, d, gamma, dt)
    ref = attention(feats(q, np.float64), feats(k, np.float64), v, causal)
    rel = lambda o: np.linalg.norm(o - ref) / np.linalg.norm(ref)
    out = [rel(attention(feats(q, np.float32), feats(k, np.float32), v, causal))]
    for m, rnd in ROUNDINGS.items():
        wr = rnd if m != "bf16" else ROUNDINGS["bf16 hi+lo"]  # one plane: W still hi + lo
        uq, uk = (frame_rows(x, frame, D, d, np.float32, wr) for x in (q, k))
        out.append(rel(triangle_attention(uq, uk, v, causal, D, gamma, rnd)))
    return out


def main():
    modes = list(ROUNDINGS)
    print(f"slay_poly2 in the Kronecker engine's triangle form (c tiles of {TILE}); relative L2 of the output")
    print("against fp64 of the triangular features, median / worst over the heads; 'ok' counts the heads within")
    print("\n".join(RULE_LEGEND))
    print("| D | budget | d | gamma | pairs | T | mode | inputs | heads (ill) | fp32 floor: worst | "
          + " | ".join(f"{m}: median, worst (ok)" for m in modes) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(modes))
    # D = 64 budget 1024: issue 17's bar shape (d 44, F 991); D = 32 budget
    # 256 and D = 64 budget 128: the suite's dense-limits shapes; D = 16
    # budget 256: no constant feature (gamma 0, d = D).
    for D, budget, runs in ((64, 1024, ((63, 20), (1000, 4), (4097, 2))), (32, 256, ((63, 30), (1000, 8), (4097, 3))),
                            (64, 128, ((63, 30), (1000, 8), (4097, 3))), (16, 256, ((63, 30), (1000, 8), (4097, 3)))):
        gamma, d = poly2_shape(D, budget)
        for T, seeds in runs:
            for causal in (True, False):
                for clustered in (False, True):
                    e = np.array([head(D, budget, T, causal, s, clustered) for s in range(1, seeds + 1)])
                    cells, ill = rule_cells(e, clustered, len(modes))
                    print(f"| {D} | {budget} | {d} | {gamma} | {len(triangle_pairs(d)[0])} | {T} | "
                          f"{'causal' if causal else 'bidir'} | {'clustered' if clustered else 'random'} | "
                          f"{len(e)} ({ill}) | {e[:, 0].max():.1e} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
