#!/usr/bin/env python3
"""Which Kronecker feature maps keep the GPU suite's bar on the tensor cores,
and what operand precision the others would need.

The Kronecker tensor-core kernels (src/cuda/linear_forward_mma_kernel.cuh)
round the features to bf16: the factors poly (P) and pcat (R*M), the feature
product poly * pcat (bf16 multiply), the state operand of Phi_q S, the masked
intra-chunk scores and v * poly of the state update; sums are fp32. This
script emulates those roundings in numpy for the causal and bidirectional
forward of one head,
    q, k (T, D) ~ N(0, 1) rounded to bf16 (the GPU suite's random inputs),
    out = N / (Z + 1e-6), phi = poly (x) pcat (SPEC A.1, A.14),
and prints, per map, the relative L2 error of the output against fp64 for
  fp32 features  -- everything else exact: an fp32 kernel's rounding floor;
  bf16           -- today's kernels;
  bf16 hi+lo     -- every rounded operand as a pair of bf16 (16-bit
                    significand; three mma products per product);
  bf16 x3        -- every rounded operand as three bf16 planes (24 bits;
                    six products: the pairs of planes i + j <= 2);
  3xTF32         -- every rounded operand as a pair of TF32 (22 bits).
The suite's bar for bf16 io is 2e-2, for a signed map on random inputs
max(2e-2, 10 x its fp32 floor); fp32 io's is 1e-5.

What it shows (2026-12-02): in bf16 only the anchor (positive features:
squares times exps, so Z is a sum of positive terms) stays inside the bar
on every head (2-3e-3). Nystrom's estimate of (q^ . k^)^2 is signed: on
most heads as accurate as the anchor, but where an early causal row's few
terms cancel it reaches 2e-2 (1 head in 40 at T = 63; the backward
amplifies more: an H200 run of a Nystrom policy failed 4 of 50 bf16/fp16
GPU-suite lines, up to 1e-1). Random Maclaurin and TensorSketch, whose
estimates of x^2 are unbiased but noisy around 0, are off by 9e-2 to 1.3
(medians) and up to 6e2 (with fp32 features already up to 0.16: why the GPU
suite tests them against derived floors or on clustered inputs). Hence only
the anchor runs on the tensor cores (src/cuda/linear_mma.hpp:
kron_tensor_core_map). bf16 hi+lo would carry Nystrom (worst 1e-4) but not
all heads of random Maclaurin and TensorSketch; 3xTF32 keeps every head of
every map within the rule, and the anchor at 1-3e-7 (fp32 io's 1e-5 bar,
which bf16 hi+lo meets by only 2x), as do three bf16 planes (fp32's
significand; six products at bf16 rate cost as much as 3xTF32's three at
TF32's half rate, and keep the kernels' bf16 fragments and ldmatrix loads):
the split-precision mode the signed maps and fp32 inputs wait for. slay_poly2 in Kronecker form (poly = pcat = u, d =
P, without its constant feature) is the anchor's equal on most heads but
reaches 4.5e-2 on 1 head in 40 (T = 63 causal): it too needs hi+lo operands.
(Every draw is seeded: the numbers above are this script's output.)

Added 2026-12-02 (session 12): the projection rows W as the factor GEMM sees
them (W_ROUNDINGS; parameters fp32 as in the library). The three-plane
kernels had split W into hi + lo only (16 significand bits): the column
"bf16 x3, W hi+lo" puts random Maclaurin at 50-300x its fp32 floor, failing
the rule on 1 to 3 heads in 10 at T = 1000 and 4097 and on every head of
the D = 32, P = 16 causal shape (4.4e-1), as an H200 run of the suite did
(tests/bench/results/h200-2026-12-02/gpu_tables_linear_5515bd6.txt: up to
3.9e-2 on lines whose floors were 4e-4 to 8e-4). With W in three planes
("bf16 x3") every head of every map stays within it. Output of this
version: tests/bench/results/cpu-2026-12-02/kron_bf16_emulation.md.

Run: python3 tests/spec/kron_bf16_emulation.py   (numpy; about 1 minute)
"""
import numpy as np


def round_mantissa(x, dropped_bits):
    """Round float32 x to nearest even, dropping the low `dropped_bits` mantissa bits."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    b = x.view(np.uint32).astype(np.uint64)
    half = (1 << (dropped_bits - 1)) - 1
    r = ((b + half + ((b >> dropped_bits) & 1)) >> dropped_bits) << dropped_bits
    return r.astype(np.uint32).view(np.float32)


def bf16(x):
    """Round to bf16 (8-bit significand), returned as float32."""
    return round_mantissa(x, 16)


def bf16_hi_lo(x):
    """hi + lo, both bf16 (a 16-bit significand): a split-precision operand."""
    hi = bf16(x)
    return hi + bf16(np.asarray(x, np.float32) - hi)


def bf16_hi_mid_lo(x):
    """hi + mid + lo, three bf16 (24 bits: fp32's significand); six mma products a product."""
    hi = bf16(x)
    r = np.asarray(x, np.float32) - hi
    mid = bf16(r)
    return hi + mid + bf16(r - mid)


def tf32_hi_lo(x):
    """hi + lo, both TF32 (11-bit significands, 22 bits together): 3xTF32's operand."""
    hi = round_mantissa(x, 13)
    return hi + round_mantissa(np.asarray(x, np.float32) - hi, 13)


# The tensor-core modes emulated: every operand rounding of the kernels by
# one of these (a split operand's products drop the planes' smallest cross
# terms -- lo * lo of a pair; of three bf16 planes the terms of rank >= 3 --
# about as large as the split's own rounding, so a split mode's errors here
# are low by up to 2x).
ROUNDINGS = {"bf16": bf16, "bf16 hi+lo": bf16_hi_lo, "bf16 x3": bf16_hi_mid_lo, "3xTF32": tf32_hi_lo}

# W's rows as each mode's factor GEMM multiplies them (load_weights in
# linear_forward_mma_kernel.cuh): bf16 io keeps x exact in one plane, so
# only W is split. One plane: the anchors as bf16 (the anchor policy does
# not split its projections), the PRF rows (omega) as hi + lo; split modes:
# every row at the mode's own precision (three planes: hi + mid + lo). The
# kernels before 2026-12-02 split W into hi + lo only, whatever the planes
# ("bf16 x3, W hi+lo" below): 16 significand bits of W put random
# Maclaurin's outputs at 50-300x its fp32 floor, the failures an H200 run
# showed (tests/bench/results/h200-2026-12-02/gpu_tables_linear_5515bd6.txt).
def w_rounding(mode):
    split = ROUNDINGS[mode]
    def rnd(kind, name, w):
        if mode == "bf16":
            return bf16(w) if name == "anchors" and kind == "anchor" else bf16_hi_lo(w)
        return split(w)
    return rnd


W_ROUNDINGS = {m: w_rounding(m) for m in ROUNDINGS}
W_ROUNDINGS_OLD_X3 = lambda kind, name, w: bf16_hi_lo(w)


class Maps:
    """One head's parameters of the four Kronecker maps (SPEC A.14) and the PRF."""

    def __init__(self, rng, D, R, M, P, frame_seed):
        self.D, self.R, self.M, self.P = D, R, M, P
        C = 2 + 1e-6  # yat epsilon 1e-6
        nodes, weights = np.polynomial.laguerre.laggauss(R)
        self.s, self.w = nodes / C, weights / C
        self.omega = rng.standard_normal((R, D, M)).astype(np.float32)  # the library's parameters are fp32
        a = rng.standard_normal((P, D))
        self.anchors = (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
        K = (self.anchors @ self.anchors.T) ** 2 + 1e-3 * np.eye(P)
        lam, U = np.linalg.eigh(K)
        self.nystrom_w = U @ np.diag(np.maximum(lam, 1e-6) ** -0.5) @ U.T
        self.r1 = (rng.standard_normal((P, D)) / np.sqrt(D)).astype(np.float32)
        self.r2 = (rng.standard_normal((P, D)) / np.sqrt(D)).astype(np.float32)
        self.h1, self.h2 = rng.integers(0, P, D), rng.integers(0, P, D)
        # slay_poly2's S (d = P), from its own generator (the other maps' draws stay as they were)
        self.frame = np.linalg.qr(np.random.default_rng(frame_seed).standard_normal((D, P)))[0]
        self.s1, self.s2 = rng.choice([-1.0, 1.0], D), rng.choice([-1.0, 1.0], D)

    def poly(self, kind, xh, W):
        P = self.P
        if kind == "anchor":
            return (xh @ W["anchors"].T) ** 2 / np.sqrt(P)
        if kind == "nystrom":
            return ((xh @ W["anchors"].T) ** 2) @ self.nystrom_w / np.sqrt(P)
        if kind == "maclaurin":
            return (xh @ W["r1"].T) * (xh @ W["r2"].T) / np.sqrt(P)
        # tensorsketch: circular convolution of two count sketches
        cs1 = np.zeros((xh.shape[0], P))
        cs2 = np.zeros((xh.shape[0], P))
        for d in range(self.D):
            cs1[:, self.h1[d]] += self.s1[d] * xh[:, d]
            cs2[:, self.h2[d]] += self.s2[d] * xh[:, d]
        return np.real(np.fft.ifft(np.fft.fft(cs1) * np.fft.fft(cs2))) / np.sqrt(P)

    def factors(self, kind, x, dtype, wround=None):
        """poly (T, P), pcat (T, R*M) of raw rows x, computed in dtype, with
        the projection rows W (anchors, r1, r2, omega) as the kernels' factor
        GEMM sees them: wround(W) (a W_ROUNDINGS entry), or exact."""
        W = {n: getattr(self, n) for n in ("anchors", "r1", "r2", "omega")}
        if wround is not None:
            W = {n: wround(kind, n, w) for n, w in W.items()}
        x = x.astype(dtype)
        xh = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if kind == "poly2":  # poly = pcat = u = sqrt(D/d) S^T x^: phi = u (x) u, (u_q . u_k)^2 (gamma 0)
            u = (np.sqrt(self.D / self.P) * xh @ self.frame).astype(dtype)
            return u, u
        pcat = [np.sqrt(self.w[r]) * np.exp(np.clip(np.sqrt(2 * self.s[r]) * (xh @ W["omega"][r]) - self.s[r], -80, 80))
                / np.sqrt(self.M) for r in range(self.R)]
        return self.poly(kind, xh, W).astype(dtype), np.concatenate(pcat, 1).astype(dtype)


def attention(pq, cq, pk, ck, v, causal, rnd=None, chunk=64):
    """N / (Z + 1e-6) of the Kronecker features: exact (rnd None) or with the
    tensor-core kernels' roundings, each by rnd (a ROUNDINGS entry)."""
    T, Dv = v.shape
    vbar = np.concatenate([v, np.ones((T, 1))], 1)
    kron = lambda p, c: (p[:, :, None] * c[:, None, :]).reshape(p.shape[0], -1)
    if rnd is None:
        A = kron(pq, cq).astype(np.float64) @ kron(pk, ck).astype(np.float64).T
        res = (np.tril(A) if causal else A) @ vbar
        return res[:, :Dv] / (res[:, Dv:] + 1e-6)
    r64 = lambda a: rnd(a).astype(np.float64)
    pq, cq, pk, ck = (r64(a) for a in (pq, cq, pk, ck))
    phi_q = r64(kron(pq, cq))  # the rounded product poly * pcat (A fragments)
    # state update operand: (vbar * poly_k) rounded, times pcat_k
    vp = lambda t0, t1: r64(vbar[t0:t1, None, :] * pk[t0:t1, :, None])
    update = lambda t0, t1: np.einsum("tpw,tc->pcw", vp(t0, t1), ck[t0:t1]).reshape(-1, Dv + 1).astype(np.float32)
    if not causal:
        res = phi_q @ r64(update(0, T))
        return res[:, :Dv] / (res[:, Dv:] + 1e-6)
    res = np.zeros((T, Dv + 1))
    S = np.zeros((pq.shape[1] * cq.shape[1], Dv + 1), np.float32)
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        scores = np.tril((pq[t0:t1] @ pk[t0:t1].T) * (cq[t0:t1] @ ck[t0:t1].T))
        res[t0:t1] = phi_q[t0:t1] @ r64(S) + r64(scores) @ vbar[t0:t1]
        S = S + update(t0, t1)
    return res[:, :Dv] / (res[:, Dv:] + 1e-6)


def errors(kind, D, R, M, P, T, causal, seed):
    """Relative L2 against fp64: fp32 features, then each ROUNDINGS mode."""
    rng = np.random.default_rng(seed)
    maps = Maps(rng, D, R, M, P, frame_seed=seed + 1000)
    q, k = bf16(rng.standard_normal((T, D))), bf16(rng.standard_normal((T, D)))
    v = bf16(rng.standard_normal((T, D))).astype(np.float64)
    ref = attention(*maps.factors(kind, q, np.float64), *maps.factors(kind, k, np.float64), v, causal)
    f32 = maps.factors(kind, q, np.float32) + maps.factors(kind, k, np.float32)
    rel = lambda o: np.linalg.norm(o - ref) / np.linalg.norm(ref)
    mode = lambda m, wr: attention(*maps.factors(kind, q, np.float32, wr), *maps.factors(kind, k, np.float32, wr), v,
                                   causal, ROUNDINGS[m])
    return ([rel(attention(*f32, v, causal))] + [rel(mode(m, W_ROUNDINGS[m])) for m in ROUNDINGS]
            + [rel(mode("bf16 x3", W_ROUNDINGS_OLD_X3))])


def main():
    modes = list(ROUNDINGS) + ["bf16 x3, W hi+lo"]
    print("Relative L2 of the output against fp64, median / worst over the heads; 'ok' counts the heads within")
    print("the GPU suite's bf16 tolerance, max(2e-2, 10 x the fp32 features' error) (a signed map's floor rule).")
    print("| map | D R M P | T | mode | heads | fp32 features: worst | "
          + " | ".join(f"{m}: median, worst (ok)" for m in modes) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(modes))
    for kind in ("anchor", "nystrom", "maclaurin", "tensorsketch", "poly2"):
        for D, R, M, P, T, seeds in ((16, 2, 4, 8, 63, 40), (16, 2, 4, 8, 1000, 10), (16, 2, 4, 8, 4097, 6),
                                    (32, 2, 8, 16, 2048, 3)):
            for causal in (True, False):
                e = np.array([errors(kind, D, R, M, P, T, causal, seed) for seed in range(1, seeds + 1)])
                tol = np.maximum(2e-2, 10 * e[:, 0])
                cells = [f"{np.median(e[:, i + 1]):.1e}, {e[:, i + 1].max():.1e} ({(e[:, i + 1] <= tol).sum()})"
                         for i in range(len(modes))]
                print(f"| {kind} | {D} {R} {M} {P} | {T} | {'causal' if causal else 'bidir'} | {seeds} | "
                      f"{e[:, 0].max():.1e} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
