#!/usr/bin/env python3
"""The block decomposition of the Hopper Kronecker kernels (issue 10:
src/cuda/kron_forward_wgmma_kernel.cuh, kron_backward_wgmma_kernel.cuh),
checked in float64 against the direct formulas before any device run.

The kernels split a head's work over the four consumer warpgroups of a
two-CTA cluster: warpgroup (r, w) owns the state's rows p in [16 r + 8 w, +8)
(all 32 c), the chunk's key (or query) quarter 2 r + w for the intra terms,
and every chunk's output rows are the sum of the four warpgroups' K-split
partials. This script runs exactly that split (chunks of 64, quarters of
16, per-warpgroup Zmat / Ymat, the carries reversed in time, den and dZ
from the cluster-summed Z and the forward's output) with numpy in float64,
and compares with the direct causal formulas (the ones kron-kernel-bench
uses as its reference):
  forward   out_t = sum_{j<=t} A_tj v_j / (Z_t + delta),  A_tj = (poly_t.poly_j)(pcat_t.pcat_j)
  query     dpoly_q[t,p] = sum_{j<=t} dA_tj Bf_tj poly_k[j,p],  dpcat_q[t,c] = sum_{j<=t} dA_tj Bp_tj pcat_k[j,c]
  key       dv_j = sum_{t>=j} A_tj gs_t,  dpoly_k, dpcat_k likewise over t >= j
with gs_t = g_t / den_t, dZ_t = -(g_t . o_t) / den_t, dA_tj = gs_t . v_j + dZ_t.
Roundings are not emulated (kron_bf16_emulation.py does those for the
engine's bf16 operands); this checks the algebra and the masks: every
difference should be at float64 rounding (~1e-15 relative).
Run: python3 tests/spec/kron_wgmma_decomposition.py (numpy; ~2 s).
"""
import numpy as np

P, RM, DV, C = 32, 32, 64, 64
GROUPS = [(r, w) for r in range(2) for w in range(2)]  # (CTA rank, warpgroup)
DELTA = 1e-6


def group_p(r, w):
    return np.arange(16 * r + 8 * w, 16 * r + 8 * w + 8)


def quarter(r, w):
    return 2 * r + w


def direct(fq, fk, v, g):
    T = fq.shape[0]
    bp = fq[:, :P] @ fk[:, :P].T
    bf = fq[:, P:] @ fk[:, P:].T
    A = np.tril(bp * bf)
    Z = A.sum(1)
    den = Z + DELTA
    o = (A @ v) / den[:, None]
    gs = g / den[:, None]
    dz = -(g * o).sum(1) / den
    dA = np.tril(gs @ v.T + dz[:, None])
    dpoly_q = (dA * bf) @ fk[:, :P]
    dpcat_q = (dA * bp) @ fk[:, P:]
    dv = A.T @ gs
    dpoly_k = (dA * bf).T @ fq[:, :P]
    dpcat_k = (dA * bp).T @ fq[:, P:]
    return o, den, dz, np.hstack([dpoly_q, dpcat_q]), dv, np.hstack([dpoly_k, dpcat_k])


def intra_block(rows_f, cols_f, q, rows_before_cols):
    """Grams of all the chunk's rows against key (query) quarter q, masked."""
    cols = slice(16 * q, 16 * q + 16)
    bp = rows_f[:, :P] @ cols_f[cols, :P].T
    bf = rows_f[:, P:] @ cols_f[cols, P:].T
    r = np.arange(C)[:, None]
    c = 16 * q + np.arange(16)[None, :]
    vis = (c >= r) if rows_before_cols else (c <= r)
    return bp, bf, vis, cols


def forward(fq, fk, v):
    T = fq.shape[0]
    pad = (-T) % C
    fq, fk, v = (np.vstack([x, np.zeros((pad, x.shape[1]))]) for x in (fq, fk, v))
    S = np.zeros((P, RM, DV))
    Zm = np.zeros((P, RM))
    out = np.zeros_like(v)
    Zrow = np.zeros(len(v))
    for c0 in range(0, len(v), C):
        q_, k_, v_ = fq[c0:c0 + C], fk[c0:c0 + C], v[c0:c0 + C]
        O = np.zeros((C, DV))
        Z = np.zeros(C)
        for r, w in GROUPS:
            ps = group_p(r, w)
            bp, bf, vis, cols = intra_block(q_, k_, quarter(r, w), False)
            A = np.where(vis, bp * bf, 0.0)
            O += A @ v_[cols]
            Z += A.sum(1)
            Z += sum(q_[:, p] * (q_[:, P:] @ Zm[p]) for p in ps)
            O += sum(q_[:, p][:, None] * (q_[:, P:] @ S[p]) for p in ps)
        out[c0:c0 + C] = O / (Z + DELTA)[:, None]
        Zrow[c0:c0 + C] = Z
        for r, w in GROUPS:
            for p in group_p(r, w):
                S[p] += (k_[:, p][:, None] * k_[:, P:]).T @ v_
                Zm[p] += k_[:, p] @ k_[:, P:]
    return out[:T], Zrow[:T]


def query_pass(fq, fk, v, g, o):
    T = fq.shape[0]
    pad = (-T) % C
    fq, fk, v, g, o = (np.vstack([x, np.zeros((pad, x.shape[1]))]) for x in (fq, fk, v, g, o))
    S = np.zeros((P, RM, DV))
    Zm = np.zeros((P, RM))
    dfq = np.zeros((len(v), P + RM))
    den_all, dz_all = np.zeros(len(v)), np.zeros(len(v))
    for c0 in range(0, len(v), C):
        q_, k_, v_, g_, o_ = (x[c0:c0 + C] for x in (fq, fk, v, g, o))
        # Z summed over the four warpgroups' parts (share_row_sums), then den, dZ (stage_scaled_gradients)
        Z = np.zeros(C)
        blocks = {}
        for r, w in GROUPS:
            ps = group_p(r, w)
            bp, bf, vis, cols = intra_block(q_, k_, quarter(r, w), False)
            blocks[(r, w)] = (bp, bf, vis, cols)
            Z += np.where(vis, bp * bf, 0.0).sum(1)
            Z += sum(q_[:, p] * (q_[:, P:] @ Zm[p]) for p in ps)
        den = Z + DELTA
        dz = -(g_ * o_).sum(1) / den
        gs = g_ / den[:, None]
        den_all[c0:c0 + C], dz_all[c0:c0 + C] = den, dz
        acc = np.zeros((C, P + RM))
        for r, w in GROUPS:
            ps = group_p(r, w)
            # zmat_terms: dZ (Pcat Zmat^T) at p in the group; dZ (Poly_group Zmat_group)
            for p in ps:
                acc[:, p] += dz * (q_[:, P:] @ Zm[p])
                acc[:, P:] += (dz * q_[:, p])[:, None] * Zm[p][None, :]
            # carry_terms: G = gs S^T over the group's features, contracted
            for p in ps:
                G = gs @ S[p].T  # (C, RM): dphi[:, (p, c)]
                acc[:, p] += (q_[:, P:] * G).sum(1)
                acc[:, P:] += q_[:, p][:, None] * G
            # intra_terms: dA = gs V_quarter^T + dZ (rows), masked j <= t
            bp, bf, vis, cols = blocks[(r, w)]
            dA = gs @ v_[cols].T + dz[:, None]
            acc[:, :P] += np.where(vis, dA * bf, 0.0) @ k_[cols, :P]
            acc[:, P:] += np.where(vis, dA * bp, 0.0) @ k_[cols, P:]
        dfq[c0:c0 + C] = acc
        for r, w in GROUPS:
            for p in group_p(r, w):
                S[p] += (k_[:, p][:, None] * k_[:, P:]).T @ v_
                Zm[p] += k_[:, p] @ k_[:, P:]
    return den_all[:T], dz_all[:T], dfq[:T]


def key_pass(fq, fk, v, g, den, dz):
    T = fq.shape[0]
    pad = (-T) % C
    fq, fk, v, g = (np.vstack([x, np.zeros((pad, x.shape[1]))]) for x in (fq, fk, v, g))
    den = np.concatenate([den, np.ones(pad)])
    dz = np.concatenate([dz, np.zeros(pad)])
    U = np.zeros((P, RM, DV))
    Ym = np.zeros((P, RM))
    dv = np.zeros_like(v)
    dfk = np.zeros((len(v), P + RM))
    for c0 in reversed(range(0, len(v), C)):
        q_, k_, v_, g_ = (x[c0:c0 + C] for x in (fq, fk, v, g))
        gs = g_ / den[c0:c0 + C, None]
        dzc = dz[c0:c0 + C]
        DVc = np.zeros((C, DV))
        acc = np.zeros((C, P + RM))
        for r, w in GROUPS:
            ps = group_p(r, w)
            bp, bf, vis, cols = intra_block(k_, q_, quarter(r, w), True)  # keys as rows, query quarter
            A = np.where(vis, bp * bf, 0.0)
            DVc += A @ gs[cols]
            DVc += sum(k_[:, p][:, None] * (k_[:, P:] @ U[p]) for p in ps)
            for p in ps:  # zmat_terms with Ymat, scale 1
                acc[:, p] += k_[:, P:] @ Ym[p]
                acc[:, P:] += k_[:, p][:, None] * Ym[p][None, :]
            for p in ps:  # carry_terms: V U^T
                G = v_ @ U[p].T
                acc[:, p] += (k_[:, P:] * G).sum(1)
                acc[:, P:] += k_[:, p][:, None] * G
            dA = v_ @ gs[cols].T + dzc[cols][None, :]  # dA^T: keys x queries
            acc[:, :P] += np.where(vis, dA * bf, 0.0) @ q_[cols, :P]
            acc[:, P:] += np.where(vis, dA * bp, 0.0) @ q_[cols, P:]
        dv[c0:c0 + C] = DVc
        dfk[c0:c0 + C] = acc
        for r, w in GROUPS:
            for p in group_p(r, w):
                U[p] += (q_[:, p][:, None] * q_[:, P:]).T @ gs
                Ym[p] += (dzc * q_[:, p]) @ q_[:, P:]
    return dv[:T], dfk[:T]


def rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


def main():
    rng = np.random.default_rng(7)
    worst = 0.0
    for T in (1, 64, 65, 128, 300, 1000):
        fq = np.hstack([rng.random((T, P)) * rng.random((T, P)) / np.sqrt(32), np.exp(0.5 * rng.standard_normal((T, RM)) - 0.5) / 4])
        fk = np.hstack([rng.random((T, P)) * rng.random((T, P)) / np.sqrt(32), np.exp(0.5 * rng.standard_normal((T, RM)) - 0.5) / 4])
        v = rng.standard_normal((T, DV))
        g = rng.standard_normal((T, DV))
        o, den, dz, dfq, dv, dfk = direct(fq, fk, v, g)
        o_blocks, Z_blocks = forward(fq, fk, v)
        den_q, dz_q, dfq_q = query_pass(fq, fk, v, g, o)
        dv_k, dfk_k = key_pass(fq, fk, v, g, den_q, dz_q)
        errs = {"out": rel(o_blocks, o), "den": rel(den_q, den), "dZ": rel(dz_q, dz), "dv": rel(dv_k, dv)}
        if T > 1:
            # With one key, o = v (1 - delta / A): dA = gs . (v - o) cancels to ~delta and the factor
            # gradients are rounding noise of that difference, so T = 1 compares only the rest.
            errs.update({"[dpoly_q | dpcat_q]": rel(dfq_q, dfq), "[dpoly_k | dpcat_k]": rel(dfk_k, dfk)})
        worst = max(worst, *errs.values())
        print(f"T={T:5d} " + "  ".join(f"{k} {e:.1e}" for k, e in errs.items()))
    print(f"worst relative L2 difference: {worst:.1e} ({'PASS' if worst < 1e-12 else 'FAIL'}: the split is the formulas')")
    return 0 if worst < 1e-12 else 1


if __name__ == "__main__":
    raise SystemExit(main())
