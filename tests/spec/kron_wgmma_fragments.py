#!/usr/bin/env python3
"""The fragment bookkeeping of the Hopper Kronecker kernels (issue 10:
src/cuda/kron_forward_wgmma_kernel.cuh, kron_backward_wgmma_kernel.cuh),
emulated lane by lane in numpy before any device run.

kron_wgmma_decomposition.py checks the block split's algebra; this checks
the index math that turns it into fragments: the 128-byte swizzle of the
shared-memory tiles, the lanes' ldmatrix addresses (plain and .trans), the
mma.sync m16n8k16 fragment layouts (PTX ISA), the wgmma accumulator layout
(per warp the m16n8 one) and the RS A fragments built by HMUL2, each part
ported line for line from the kernels (same address formulas, same loops)
and compared with the product it is meant to compute:
  factored_grams / masked_scores / block_as_a / block_times_rows (intra),
  row_fragment + poly pairs as factor_rows_times_state's A (Phi_q blocks),
  transposed_fragment + poly token pairs as state_update's A (Phi_k^T),
  zmat_update and pcat_times_zmat (Zmat^T and Pcat Zmat^T),
  carry_terms' contraction of an SS product (dpoly, dpcat),
  zmat_terms (dZ-scaled Zmat terms, k = 8 p),
  intra_terms (the factored dA: the query pass's and the key pass's),
  map_rows_tile (the fused map),
  write_copies against the copy's MN-major reading (rows 16 step).
Values are rounded to bf16 where the kernels hold bf16 and summed in
float64 (so the comparisons are exact up to those roundings: ~1e-16 where
both sides round alike). What it cannot check: wgmma descriptors (the SW128
MN-/K-major readings are taken as the PTX ISA states them), TMA, barriers,
the cluster exchange.
Run: python3 tests/spec/kron_wgmma_fragments.py (numpy; ~2 s).
"""
import numpy as np

P, RM, DV, C = 32, 32, 64, 64


def bf16(x):
    """Round to bf16 (nearest even), returned as float64."""
    a = np.asarray(x, dtype=np.float32)
    b = a.view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32).astype(np.float64)


def sw128(row, byte):
    return row * 128 + ((((byte >> 4) ^ (row & 7)) << 4) | (byte & 15))


class Tile:
    """A shared-memory tile of 16-bit values (rows of 128 bytes, SW128)."""

    def __init__(self, rows):
        self.h = np.zeros(rows * 64)  # by byte offset / 2

    @staticmethod
    def of(matrix):
        t = Tile(matrix.shape[0])
        for r in range(matrix.shape[0]):
            for c in range(matrix.shape[1]):
                t.h[sw128(r, 2 * c) // 2] = matrix[r, c]
        return t

    def matrix(self, rows, cols=64):
        return np.array([[self.h[sw128(r, 2 * c) // 2] for c in range(cols)] for r in range(rows)])

    def load8(self, offset):
        return self.h[offset // 2: offset // 2 + 8]


LANES = range(32)


def gt(lane):
    return lane // 4, lane % 4


def ldmatrix_x4(tile, addr, trans=False):
    """addr(lane) -> byte offset of the row lane supplies; regs[lane][m] = (lo, hi)."""
    rows = [[tile.load8(addr(8 * m + r)) for r in range(8)] for m in range(4)]
    regs = []
    for lane in LANES:
        g, t4 = gt(lane)
        regs.append([(rows[m][g][2 * t4], rows[m][g][2 * t4 + 1]) if not trans
                     else (rows[m][2 * t4][g], rows[m][2 * t4 + 1][g]) for m in range(4)])
    return regs


def mma16816(c, a, b0, b1):
    """c[lane][4] += A B for per-lane fragments (PTX m16n8k16 .row.col)."""
    A = np.zeros((16, 16))
    B = np.zeros((16, 8))
    for lane in LANES:
        g, t4 = gt(lane)
        for e in range(2):
            A[g, 2 * t4 + e] = a[lane][0][e]
            A[g + 8, 2 * t4 + e] = a[lane][1][e]
            A[g, 2 * t4 + 8 + e] = a[lane][2][e]
            A[g + 8, 2 * t4 + 8 + e] = a[lane][3][e]
            B[2 * t4 + e, g] = b0[lane][e]
            B[2 * t4 + 8 + e, g] = b1[lane][e]
    D = A @ B
    for lane in LANES:
        g, t4 = gt(lane)
        c[lane][0] += D[g, 2 * t4]
        c[lane][1] += D[g, 2 * t4 + 1]
        c[lane][2] += D[g + 8, 2 * t4]
        c[lane][3] += D[g + 8, 2 * t4 + 1]


def acc_matrix(acc_of_lane, blocks):
    """The warp's 16 x 8 blocks in the m16n8 accumulator layout -> a 16 x (8 blocks) matrix."""
    M = np.zeros((16, 8 * blocks))
    for lane in LANES:
        g, t4 = gt(lane)
        for jb in range(blocks):
            a = acc_of_lane(lane, jb)
            M[g, 8 * jb + 2 * t4] = a[0]
            M[g, 8 * jb + 2 * t4 + 1] = a[1]
            M[g + 8, 8 * jb + 2 * t4] = a[2]
            M[g + 8, 8 * jb + 2 * t4 + 1] = a[3]
    return M


# ---- the kernels' fragment helpers, ported (kron_forward_wgmma_kernel.cuh)

def row_fragment(tile, warp, col0):
    return ldmatrix_x4(tile, lambda L: sw128(16 * warp + (L & 15), 2 * col0 + 16 * (L >> 4)))


def rows_as_n_fragment(tile, r0, col0):
    return ldmatrix_x4(tile, lambda L: sw128(r0 + (L & 7) + 8 * (L >> 4), 2 * col0 + 16 * ((L >> 3) & 1)))


def rows_as_k_fragment(tile, r0, col0):
    return ldmatrix_x4(tile, lambda L: sw128(r0 + (L & 7) + 8 * ((L >> 3) & 1), 2 * col0 + 16 * (L >> 4)), True)


def transposed_fragment(tile, r0, col0):
    return ldmatrix_x4(tile, lambda L: sw128(r0 + (L & 7) + 8 * (L >> 4), 2 * col0 + 16 * ((L >> 3) & 1)), True)


def reg(regs, i):
    return [regs[lane][i] for lane in LANES]


def frag(regs):
    return [[regs[lane][i] for i in range(4)] for lane in LANES]


def zeros_acc(n):
    return [[[0.0] * 4 for _ in range(n)] for _ in LANES]


def poly_pairs(tile, warp, pw0):
    """pairs[lane] = (lo[4], hi[4]) of (value at p = pw0 + 2 i, + 1)."""
    out = []
    for lane in LANES:
        g, _ = gt(lane)
        lo = tile.load8(sw128(16 * warp + g, 2 * pw0))
        hi = tile.load8(sw128(16 * warp + g + 8, 2 * pw0))
        out.append(([(lo[2 * i], lo[2 * i + 1]) for i in range(4)], [(hi[2 * i], hi[2 * i + 1]) for i in range(4)]))
    return out


def factored_grams(rows, pcat_rows, cols, warp, quarter):
    bp, bf = zeros_acc(2), zeros_acc(2)
    for kh in range(2):
        a_p = row_fragment(rows, warp, 16 * kh)
        b_p = rows_as_n_fragment(cols, 16 * quarter, 16 * kh)
        b_f = rows_as_n_fragment(cols, 16 * quarter, P + 16 * kh)
        for nb in range(2):
            c = [x[nb] for x in bp]
            mma16816(c, frag(a_p), reg(b_p, 2 * nb), reg(b_p, 2 * nb + 1))
            c2 = [x[nb] for x in bf]
            mma16816(c2, frag(pcat_rows[kh]), reg(b_f, 2 * nb), reg(b_f, 2 * nb + 1))
    return bp, bf


def visible(columns_after, warp, quarter, lane, nb, e):
    g, t4 = gt(lane)
    col, row = 8 * nb + 2 * t4 + (e & 1), g + 8 * (e >> 1)
    if columns_after:
        return quarter > warp or (quarter == warp and col >= row)
    return quarter < warp or (quarter == warp and col <= row)


def block_as_a(x):
    return [[(bf16(x[l][0][0]), bf16(x[l][0][1])), (bf16(x[l][0][2]), bf16(x[l][0][3])),
             (bf16(x[l][1][0]), bf16(x[l][1][1])), (bf16(x[l][1][2]), bf16(x[l][1][3]))] for l in LANES]


def block_times_rows(acc, a, tile, quarter, cols=64, col0=0, block0=0):
    for jp in range(cols // 16):
        b = rows_as_k_fragment(tile, 16 * quarter, col0 + 16 * jp)
        mma16816([x[block0 + 2 * jp] for x in acc], a, reg(b, 0), reg(b, 1))
        mma16816([x[block0 + 2 * jp + 1] for x in acc], a, reg(b, 2), reg(b, 3))


def check(name, got, want, tol=1e-12):
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)
    print(f"{'PASS' if err <= tol else 'FAIL'} {name}: relative difference {err:.1e}")
    return err <= tol


def main():
    rng = np.random.default_rng(11)
    fq = bf16(np.hstack([rng.random((C, P)) / 6, np.exp(0.5 * rng.standard_normal((C, RM))) / 4]))
    fk = bf16(np.hstack([rng.random((C, P)) / 6, np.exp(0.5 * rng.standard_normal((C, RM))) / 4]))
    v = bf16(rng.standard_normal((C, DV)))
    tq, tk, tv = Tile.of(fq), Tile.of(fk), Tile.of(v)
    ok = True
    ok &= check("the tile's swizzled round trip", tq.matrix(C), fq, 0)

    # intra (forward and query pass: columns = keys at or before the rows)
    for warp in range(4):
        pq = [row_fragment(tq, warp, P), row_fragment(tq, warp, P + 16)]
        for quarter in range(4):
            bp, bf = factored_grams(tq, pq, tk, warp, quarter)
            sc = [[[bp[l][nb][e] * bf[l][nb][e] if visible(False, warp, quarter, l, nb, e) else 0.0
                    for e in range(4)] for nb in range(2)] for l in LANES]
            acc = zeros_acc(8)
            block_times_rows(acc, block_as_a(sc), tv, quarter)
            got = acc_matrix(lambda l, jb: acc[l][jb], 8)
            rows, keys = slice(16 * warp, 16 * warp + 16), slice(16 * quarter, 16 * quarter + 16)
            A = (fq[rows, :P] @ fk[keys, :P].T) * (fq[rows, P:] @ fk[keys, P:].T)
            mask = (16 * quarter + np.arange(16))[None, :] <= (16 * warp + np.arange(16))[:, None]
            ok &= check(f"intra warp {warp} quarter {quarter}", got, bf16(np.where(mask, A, 0.0)) @ v[keys])

    # factor_rows_times_state's A: step (j, hh) of warpgroup p0: Phi_q[rows, (p0 + j, 16 hh ..)]
    pw0 = 8
    for warp in range(4):
        pq = [row_fragment(tq, warp, P), row_fragment(tq, warp, P + 16)]
        pp = poly_pairs(tq, warp, pw0)
        for step in range(16):
            j, hh = step // 2, step % 2
            A = np.zeros((16, 16))
            for lane in LANES:
                g, t4 = gt(lane)
                bl = pp[lane][0][j // 2][j & 1]
                bh = pp[lane][1][j // 2][j & 1]
                a = pq[hh][lane]
                vals = [(a[0], bl), (a[1], bh), (a[2], bl), (a[3], bh)]
                for i, (pair, s) in enumerate(vals):
                    r = g + 8 * (i & 1)
                    k = 2 * t4 + 8 * (i >> 1)
                    A[r, k], A[r, k + 1] = bf16(pair[0] * s), bf16(pair[1] * s)
            rows = slice(16 * warp, 16 * warp + 16)
            want = bf16(fq[rows, P + 16 * hh: P + 16 * hh + 16] * fq[rows, pw0 + j][:, None])
            if not np.array_equal(A, want):
                ok = False
                print(f"FAIL Phi_q A fragment warp {warp} step {step}")

    # state_update's A: block sb, k16 step ks: Phi_k^T rows (p = pw0 + 2 sb + warp / 2, c) x tokens
    for warp in range(4):
        for ks in range(4):
            pt = transposed_fragment(tk, 16 * ks, P + 16 * (warp % 2))
            for sb in range(4):
                p = pw0 + 2 * sb + warp // 2
                A = np.zeros((16, 16))
                for lane in LANES:
                    g, t4 = gt(lane)
                    ta, tb = 16 * ks + 2 * t4, 16 * ks + 2 * t4 + 8
                    pa, pb = (fk[ta, p], fk[ta + 1, p]), (fk[tb, p], fk[tb + 1, p])
                    for i, pair in enumerate(pt[lane]):
                        s = pa if i < 2 else pb
                        r = g + 8 * (i & 1)
                        k = 2 * t4 + 8 * (i >> 1)
                        A[r, k], A[r, k + 1] = bf16(pair[0] * s[0]), bf16(pair[1] * s[1])
                cs = 16 * (warp % 2) + np.arange(16)
                want = bf16((fk[16 * ks:16 * ks + 16, P + cs] * fk[16 * ks:16 * ks + 16, p][:, None]).T)
                if not np.array_equal(A, want):
                    ok = False
                    print(f"FAIL Phi_k^T A fragment warp {warp} ks {ks} sb {sb}")
    print("PASS Phi_q and Phi_k^T A fragments (every warp, step, block)" if ok else "")

    # zmat_update (warps 0, 1: Zmat^T rows c = 16 warp + g (+ 8), columns p = pw0 + 2 t4 (+ 1)), weighted
    weight = rng.standard_normal(C)
    for warp in range(2):
        z = zeros_acc(1)
        for ks in range(4):
            pt = transposed_fragment(tk, 16 * ks, P + 16 * warp)
            pb = rows_as_k_fragment(tk, 16 * ks, pw0)
            t = [16 * ks + 2 * gt(l)[1] for l in LANES]
            b0 = [(bf16(pb[l][0][0] * bf16(weight[t[l]])), bf16(pb[l][0][1] * bf16(weight[t[l] + 1]))) for l in LANES]
            b1 = [(bf16(pb[l][1][0] * bf16(weight[t[l] + 8])), bf16(pb[l][1][1] * bf16(weight[t[l] + 9]))) for l in LANES]
            mma16816([x[0] for x in z], frag(pt), b0, b1)
        got = acc_matrix(lambda l, jb: z[l][0], 1)
        cs = 16 * warp + np.arange(16)
        want = fk[:, P + cs].T @ bf16(fk[:, pw0:pw0 + 8] * bf16(weight)[:, None])
        ok &= check(f"zmat_update warp {warp} (weighted)", got, want)

    # pcat_times_zmat: gz = Pcat_q rows x Zmat^T (Zmat copy [p][c] bf16)
    zmat = bf16(rng.random((8, RM)))
    for warp in range(4):
        pq = [row_fragment(tq, warp, P), row_fragment(tq, warp, P + 16)]
        gz = zeros_acc(1)
        for hh in range(2):
            b0 = [(zmat[gt(l)[0], 16 * hh + 2 * gt(l)[1]], zmat[gt(l)[0], 16 * hh + 2 * gt(l)[1] + 1]) for l in LANES]
            b1 = [(zmat[gt(l)[0], 16 * hh + 2 * gt(l)[1] + 8], zmat[gt(l)[0], 16 * hh + 2 * gt(l)[1] + 9]) for l in LANES]
            mma16816([x[0] for x in gz], frag(pq[hh]), b0, b1)
        ok &= check(f"pcat_times_zmat warp {warp}", acc_matrix(lambda l, jb: gz[l][0], 1),
                    fq[16 * warp:16 * warp + 16, P:] @ zmat.T)

    # carry_terms' contraction: G = X Copy^T per block (the SS product, accumulator layout per warp)
    X = bf16(rng.standard_normal((C, DV)))
    U = bf16(rng.standard_normal((256, DV)))  # the warpgroup's copy rows 64 sb + r
    for warp in range(4):
        acc = np.zeros((16, 64))
        dpoly = np.zeros((32, 2, 8))  # [lane][half][p_local]
        rows = slice(16 * warp, 16 * warp + 16)
        for sb in range(4):
            Gm = X[rows] @ U[64 * sb:64 * sb + 64].T  # 16 x 64: columns f = 8 jb + 2 t4 + e
            for lane in LANES:
                g, t4 = gt(lane)
                pl = (fk[16 * warp + g, pw0 + 2 * sb], fk[16 * warp + g, pw0 + 2 * sb + 1])
                ph = (fk[16 * warp + g + 8, pw0 + 2 * sb], fk[16 * warp + g + 8, pw0 + 2 * sb + 1])
                for jb in range(8):
                    m, pj = jb % 4, jb // 4
                    for e in range(2):
                        col = 8 * jb + 2 * t4 + e
                        c = 8 * m + 2 * t4 + e
                        dpoly[lane][0][2 * sb + pj] += fk[16 * warp + g, P + c] * Gm[g, col]
                        dpoly[lane][1][2 * sb + pj] += fk[16 * warp + g + 8, P + c] * Gm[g + 8, col]
                        acc[g, 32 + c] += (pl[pj]) * Gm[g, col]
                        acc[g + 8, 32 + c] += (ph[pj]) * Gm[g + 8, col]
        for lane in LANES:  # row_lanes_sum, then lane t4 keeps p_local 2 t4, 2 t4 + 1 in block pw0 / 8
            g, t4 = gt(lane)
            quad = [4 * g + i for i in range(4)]
            for half in range(2):
                for e in range(2):
                    acc[g + 8 * half, pw0 + 2 * t4 + e] += sum(dpoly[q][half][2 * t4 + e] for q in quad)
        dphi = np.zeros((16, P, RM))
        for sb in range(4):
            Gm = X[rows] @ U[64 * sb:64 * sb + 64].T
            for f in range(64):
                dphi[:, pw0 + 2 * sb + f // 32, f % 32] = Gm[:, f]
        want = np.zeros((16, 64))
        want[:, :P] = (dphi * fk[rows, P:][:, None, :]).sum(2)
        want[:, P:] = (dphi * fk[rows, :P][:, :, None]).sum(1)
        ok &= check(f"carry_terms contraction warp {warp}", acc, want)

    # zmat_terms' dpcat part: k = the group's 8 p, upper 8 zero
    for warp in range(4):
        pp = poly_pairs(tk, warp, pw0)
        t = zeros_acc(4)
        a = [[pp[l][0][gt(l)[1]], pp[l][1][gt(l)[1]], (0.0, 0.0), (0.0, 0.0)] for l in LANES]
        for nb in range(4):
            b0 = [(zmat[2 * gt(l)[1], 8 * nb + gt(l)[0]], zmat[2 * gt(l)[1] + 1, 8 * nb + gt(l)[0]]) for l in LANES]
            mma16816([x[nb] for x in t], a, b0, [(0.0, 0.0)] * 32)
        ok &= check(f"zmat_terms Poly Zmat warp {warp}", acc_matrix(lambda l, jb: t[l][jb], 4),
                    fk[16 * warp:16 * warp + 16, pw0:pw0 + 8] @ zmat)

    # intra_terms of both passes: key pass (rows keys: X = V, Y = gs of the query quarter, dz by column,
    # queries at or after the keys); query pass (rows queries: X = gs, Y = V of the key quarter, dz by row,
    # keys at or before the queries)
    gs = bf16(rng.standard_normal((C, DV)) / 3)
    dz = rng.standard_normal(C) / 5
    tg = Tile.of(gs)
    for keys_pass in (True, False):
        rows_f, cols_f = (fk, fq) if keys_pass else (fq, fk)
        trows, tcols = (tk, tq) if keys_pass else (tq, tk)
        xm, ym = (v, gs) if keys_pass else (gs, v)
        tx_, ty_ = (tv, tg) if keys_pass else (tg, tv)
        for warp in range(4):
            pr = [row_fragment(trows, warp, P), row_fragment(trows, warp, P + 16)]
            for quarter in range(4):
                bp, bf = factored_grams(trows, pr, tcols, warp, quarter)
                da = zeros_acc(2)
                for ks in range(4):
                    ax = row_fragment(tx_, warp, 16 * ks)
                    by = rows_as_n_fragment(ty_, 16 * quarter, 16 * ks)
                    mma16816([x[0] for x in da], frag(ax), reg(by, 0), reg(by, 1))
                    mma16816([x[1] for x in da], frag(ax), reg(by, 2), reg(by, 3))
                ef, ep = zeros_acc(2), zeros_acc(2)
                for l in LANES:
                    g, t4 = gt(l)
                    for nb in range(2):
                        for e in range(4):
                            col, row = 16 * quarter + 8 * nb + 2 * t4 + (e & 1), 16 * warp + g + 8 * (e >> 1)
                            d = da[l][nb][e] + (dz[col] if keys_pass else dz[row])
                            vis = visible(keys_pass, warp, quarter, l, nb, e)
                            ef[l][nb][e] = d * bf[l][nb][e] if vis else 0.0
                            ep[l][nb][e] = d * bp[l][nb][e] if vis else 0.0
                acc = zeros_acc(8)
                block_times_rows(acc, block_as_a(ef), tcols, quarter, P, 0, 0)
                block_times_rows(acc, block_as_a(ep), tcols, quarter, RM, P, 4)
                got = acc_matrix(lambda l, jb: acc[l][jb], 8)
                rows, qs = slice(16 * warp, 16 * warp + 16), slice(16 * quarter, 16 * quarter + 16)
                dA = xm[rows] @ ym[qs].T + (dz[qs][None, :] if keys_pass else dz[rows][:, None])
                Bp = rows_f[rows, :P] @ cols_f[qs, :P].T
                Bf = rows_f[rows, P:] @ cols_f[qs, P:].T
                cols_idx, rows_idx = (16 * quarter + np.arange(16))[None, :], (16 * warp + np.arange(16))[:, None]
                mask = cols_idx >= rows_idx if keys_pass else cols_idx <= rows_idx
                want = np.hstack([bf16(np.where(mask, dA * Bf, 0.0)) @ cols_f[qs, :P],
                                  bf16(np.where(mask, dA * Bp, 0.0)) @ cols_f[qs, P:]])
                ok &= check(f"intra_terms ({'key' if keys_pass else 'query'} pass) warp {warp} quarter {quarter}",
                            got, want)

    # write_copies' rows against factor_rows_times_state's reading (k16 step s = rows 16 s .. of the copy)
    state = rng.standard_normal((4, 64, DV))  # [sb][row in block][value]
    copy_rows = {}
    for warp in range(4):
        for lane in LANES:
            g, t4 = gt(lane)
            for sb in range(4):
                for jb in range(8):
                    for half in range(2):
                        copy_rows[(64 * sb + 16 * warp + g + 8 * half, 8 * jb + 2 * t4)] = \
                            state[sb, 16 * warp + g + 8 * half, 8 * jb + 2 * t4]
    good = True
    for step in range(16):
        j, hh = step // 2, step % 2
        for r in range(16):
            sb, parity, c = j // 2, j % 2, 16 * hh + r  # feature (p = pw0 + j, c)
            row_in_block = 32 * parity + c
            if copy_rows[(16 * step + r, 0)] != state[sb, row_in_block, 0]:
                good = False
    print(("PASS" if good else "FAIL") + " the state copy's rows are the reading's features (p = pw0 + j, c)")
    ok &= good

    # map_rows_tile (three passes over cached x fragments; bf16 outputs)
    x = bf16(rng.standard_normal((C, 64)))
    anchors = rng.standard_normal((32, 64))
    anchors = bf16(anchors / np.linalg.norm(anchors, axis=1, keepdims=True))
    omega = rng.standard_normal((32, 64))
    w_hi = bf16(omega)
    w_lo = bf16(omega - w_hi)
    tw = Tile.of(np.vstack([anchors, w_hi, w_lo]))
    tx = Tile.of(x)
    s_r = np.array([2 - np.sqrt(2), 2 + np.sqrt(2)]) / (2 + 1e-6)
    w_r = np.array([(2 + np.sqrt(2)) / 4, (2 - np.sqrt(2)) / 4]) / (2 + 1e-6)
    log2e = 1.4426950408889634
    scale, shift, weight_r = np.sqrt(2 * s_r) * log2e, s_r * log2e, np.sqrt(w_r) / 4
    out = np.zeros((C, 64))
    for warp in range(4):
        xa = [row_fragment(tx, warp, 16 * ks) for ks in range(4)]
        ss = np.zeros((32, 2))
        for lane in LANES:
            for ks in range(4):
                for i in range(4):
                    ss[lane][i & 1] += xa[ks][lane][i][0] ** 2 + xa[ks][lane][i][1] ** 2
        inv = np.zeros((32, 2))
        for lane in LANES:
            g, _ = gt(lane)
            for h in range(2):
                inv[lane][h] = 1 / max(np.sqrt(sum(ss[4 * g + i][h] for i in range(4))), 1e-12)
        for pss in range(3):
            y = zeros_acc(4)
            for ks in range(4):
                for jp in range(2):
                    w_row = 16 * jp if pss == 0 else (32 if jp == 0 else 64) + 16 * (pss - 1)
                    b = rows_as_n_fragment(tw, w_row, 16 * ks)
                    mma16816([q[2 * jp] for q in y], frag(xa[ks]), reg(b, 0), reg(b, 1))
                    mma16816([q[2 * jp + 1] for q in y], frag(xa[ks]), reg(b, 2), reg(b, 3))
            for lane in LANES:
                g, t4 = gt(lane)
                for nb in range(4 if pss == 0 else 2):
                    for half in range(2):
                        for e in range(2):
                            if pss == 0:
                                u = y[lane][nb][2 * half + e] * inv[lane][half]
                                val = u * u / np.sqrt(32)
                            else:
                                r = pss - 1
                                u = (y[lane][nb][2 * half + e] + y[lane][nb + 2][2 * half + e]) * inv[lane][half]
                                val = weight_r[r] * 2 ** np.clip(scale[r] * u - shift[r], -20 * log2e, 20 * log2e)
                            col = (0 if pss == 0 else P + 16 * (pss - 1)) + 8 * nb + 2 * t4 + e
                            out[16 * warp + g + 8 * half, col] = val
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    omega_split = w_hi + w_lo  # what the kernels' W holds (the library's hi + lo)
    r_of = np.arange(32) // 16
    want = np.hstack([(xn @ anchors.T) ** 2 / np.sqrt(32),
                      weight_r[r_of][None, :] * np.exp(np.clip(
                          np.sqrt(2 * s_r[r_of])[None, :] * (xn @ omega_split.T) - s_r[r_of][None, :], -20, 20))])
    ok &= check("map_rows_tile against the float64 map of W's hi + lo (before its bf16 rounding)", out, want)

    print("ALL PASS" if ok else "SOME FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
