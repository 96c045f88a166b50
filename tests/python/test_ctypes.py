#!/usr/bin/env python3
"""test_ctypes.py -- libslay loaded with ctypes (as Python users do), checked
against an independent pure-Python transcription of SPEC's forward formulas.

Per (b, h): q, k (T, D), v (T, Dv) -> out (T, Dv). Cases, fp32, causal:
  linear        o_i = sum_{j<=i} phi(q_i).phi(k_j) v_j / (sum phi.phi + 1e-6), phi = elu+1  (SPEC A.5)
  yat_spherical K_ij = x^2 / max(C - 2x, 1e-6), x = q^.k^, o = sum K v / (sum K + 1e-6)     (SPEC A.9)
  slay_anchor   with caller-filled parameters (omega, anchors), R=2 Gauss-Laguerre nodes
                from SPEC's table, o = N / (Z + 1e-6)                                        (SPEC A.1, A.13)
plus one bad call (BAD_SHAPE, message set, output untouched).
Usage: test_ctypes.py path/to/libslay.so
"""
import ctypes as C
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slay_ctypes as S  # noqa: E402  (the shared bindings live next to this file)

lib = S.load(sys.argv[1])


def tensor(values, shape):
    """An fp32 host tensor holding values; returns (Tensor, buffer) so the buffer outlives the call."""
    buf = (C.c_float * len(values))(*values)
    return S.make_tensor(C.addressof(buf), S.FLOAT32, shape), buf


def make_plan(handle, variant, ints, floats=()):
    return lib.plan(handle, variant, dict(ints), dict(floats))


def forward(plan, q, k, v, shape_qk, shape_v, params=None):
    tq, bq = tensor(q, shape_qk)
    tk, bk = tensor(k, shape_qk)
    tv, bv = tensor(v, shape_v)
    to, bo = tensor([float("nan")] * len(v), shape_v)  # poisoned: unwritten elements show
    tp = None
    if params is not None:
        tp, bp = tensor(params, [len(params)])
    size = lib.workspace_size(plan, S.PASS_FORWARD, shape_qk[0], shape_qk[2])
    ws = C.create_string_buffer(size + 16)
    addr = (C.addressof(ws) + 15) // 16 * 16
    lib.fwd(plan, lib.fwd_args(tq, tk, tv, to, params=tp), addr, size)
    return list(bo)


def rows(x, T, W):
    return [x[i * W:(i + 1) * W] for i in range(T)]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def unit(u):
    n = max(math.sqrt(dot(u, u)), 1e-12)
    return [x / n for x in u]


def linear_attention(phis_q, phis_k, vs, delta=1e-6):
    out = []
    for i in range(len(phis_q)):
        scores = [dot(phis_q[i], phis_k[j]) for j in range(i + 1)]
        z = sum(scores)
        out.append([sum(s * vs[j][d] for j, s in enumerate(scores)) / (z + delta) for d in range(len(vs[0]))])
    return out


def max_rel_err(got, want):
    flat = [x for r in want for x in r]
    scale = max(abs(x) for x in flat)
    return max(abs(g - w) for g, w in zip(got, flat)) / scale


def main():
    random.seed(7)
    handle = lib.handle(S.BACKEND_CPU)
    T, D, Dv = 5, 4, 3
    q = [random.gauss(0, 1) for _ in range(T * D)]
    k = [random.gauss(0, 1) for _ in range(T * D)]
    v = [random.gauss(0, 1) for _ in range(T * Dv)]
    shape_qk, shape_v = [1, 1, T, D], [1, 1, T, Dv]
    dims = [("head_dim", D), ("value_dim", Dv)]
    failures = 0

    def report(name, err, tol):
        nonlocal failures
        good = err <= tol
        failures += 0 if good else 1
        print(f"{'ok  ' if good else 'FAIL'} {name}: max relative error {err:.2e} (tolerance {tol:.0e})")

    # linear (ELU + 1)
    elu1 = lambda u: [x + 1 if x > 0 else math.exp(x) for x in u]
    got = forward(make_plan(handle, "linear", dims), q, k, v, shape_qk, shape_v)
    want = linear_attention([elu1(r) for r in rows(q, T, D)], [elu1(r) for r in rows(k, T, D)], rows(v, T, Dv))
    report("linear vs SPEC A.5", max_rel_err(got, want), 1e-6)

    # yat_spherical, eps = 1e-2
    eps = 1e-2
    got = forward(make_plan(handle, "yat_spherical", dims, [("epsilon", eps)]), q, k, v, shape_qk, shape_v)
    qh, kh, vs = [unit(r) for r in rows(q, T, D)], [unit(r) for r in rows(k, T, D)], rows(v, T, Dv)
    want = []
    for i in range(T):
        ks = [dot(qh[i], kh[j]) ** 2 / max(2 + eps - 2 * dot(qh[i], kh[j]), 1e-6) for j in range(i + 1)]
        want.append([sum(kk * vs[j][d] for j, kk in enumerate(ks)) / (sum(ks) + 1e-6) for d in range(Dv)])
    report("yat_spherical vs SPEC A.9", max_rel_err(got, want), 1e-6)

    # slay_anchor, R = 2, M = 3, P = 3, eps = 1e-6, parameters filled by the caller
    R, M, P, eps = 2, 3, 3, 1e-6
    omega = [random.gauss(0, 1) for _ in range(R * 1 * D * M)]  # (R, H=1, D, M)
    anchors = []
    for _ in range(P):
        anchors += unit([random.gauss(0, 1) for _ in range(D)])
    plan = make_plan(handle, "slay_anchor", dims + [("num_quad_nodes", R), ("num_features", M), ("poly_dim", P)],
                     [("epsilon", eps)])
    got = forward(plan, q, k, v, shape_qk, shape_v, params=omega + anchors)
    Cc = 2 + eps
    t = [2 - math.sqrt(2), 2 + math.sqrt(2)]                   # SPEC A.1 table, R = 2
    alpha = [(2 + math.sqrt(2)) / 4, (2 - math.sqrt(2)) / 4]
    s_r, w_r = [x / Cc for x in t], [a / Cc for a in alpha]

    def phi(u):
        x = unit(u)
        poly = [dot(anchors[p * D:(p + 1) * D], x) ** 2 / math.sqrt(P) for p in range(P)]
        feats = []
        for r in range(R):
            for p in range(P):
                for m in range(M):
                    proj = sum(omega[(r * D + d) * M + m] * x[d] for d in range(D))
                    a = max(-20.0, min(20.0, math.sqrt(2 * s_r[r]) * proj - s_r[r]))
                    feats.append(poly[p] * math.sqrt(w_r[r]) * math.exp(a) / math.sqrt(M))
        return feats

    want = linear_attention([phi(r) for r in rows(q, T, D)], [phi(r) for r in rows(k, T, D)], rows(v, T, Dv))
    report("slay_anchor (loaded parameters) vs SPEC A.1/A.13", max_rel_err(got, want), 1e-5)

    # A bad call: k with the wrong T -> BAD_SHAPE, a message, out untouched.
    plan = make_plan(handle, "linear", dims)
    tq, bq = tensor(q, shape_qk)
    tk, bk = tensor(k[:(T - 1) * D], [1, 1, T - 1, D])
    tv, bv = tensor(v, shape_v)
    to, bo = tensor([123.0] * (T * Dv), shape_v)
    status = lib.raw.slay_attn_fwd(plan, C.byref(lib.fwd_args(tq, tk, tv, to)), None, 0, None)
    message = lib.raw.slay_last_error_message().decode()
    good = status == S.BAD_SHAPE and "k.shape[2]" in message and all(x == 123.0 for x in bo)
    failures += 0 if good else 1
    print(f"{'ok  ' if good else 'FAIL'} bad shape: status {status}, message '{message}'")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
