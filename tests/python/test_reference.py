#!/usr/bin/env python3
"""test_reference.py -- the Python package (abi/python, numpy on the CPU
backend) against an independent pure-Python transcription of SPEC's forward
formulas.

Per (b, h): q, k (T, D), v (T, Dv) -> out (T, Dv). Cases, fp32, causal:
  linear        o_i = sum_{j<=i} phi(q_i).phi(k_j) v_j / (sum phi.phi + 1e-6), phi = elu+1  (SPEC A.5)
  yat_spherical K_ij = x^2 / max(C - 2x, 1e-6), x = q^.k^, o = sum K v / (sum K + 1e-6)     (SPEC A.9)
  slay_anchor   with caller-filled parameters (omega, anchors, loaded with
                FeatureParams.from_segments), R=2 Gauss-Laguerre nodes from
                SPEC's table, o = N / (Z + 1e-6)                                             (SPEC A.1, A.13)
  slay_poly2    with the library's sampled frame S (D, d): u = sqrt(D/d) S^T q^,
                phi = (w_ab u_a u_b, a <= b) + sqrt(gamma/D), o = N / (Z + 1e-6)            (issue 17)
plus one bad call through the raw ABI declarations (BAD_SHAPE, message set,
output untouched) and the same call through slay.attention (SlayError).
Run from the source tree: SLAY_LIBRARY=build/libslay.so PYTHONPATH=abi/python
python3 tests/python/test_reference.py (exit 77, skipped, without numpy).
"""
import ctypes as C
import math
import random
import sys

try:
    import numpy as np
except ImportError:
    print("skipped: numpy is not installed (the package needs it)")
    sys.exit(77)
import slay  # noqa: E402
from slay import _abi, _core  # noqa: E402  (the raw layer, for the output-untouched check)


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
    return max(abs(g - w) for g, w in zip(got.reshape(-1).tolist(), flat)) / scale


def main():
    random.seed(7)
    T, D, Dv = 5, 4, 3
    q = [random.gauss(0, 1) for _ in range(T * D)]
    k = [random.gauss(0, 1) for _ in range(T * D)]
    v = [random.gauss(0, 1) for _ in range(T * Dv)]
    aq, ak = (np.array(x, np.float32).reshape(1, 1, T, D) for x in (q, k))
    av = np.array(v, np.float32).reshape(1, 1, T, Dv)
    failures = 0

    def report(name, err, tol):
        nonlocal failures
        good = err <= tol
        failures += 0 if good else 1
        print(f"{'ok  ' if good else 'FAIL'} {name}: max relative error {err:.2e} (tolerance {tol:.0e})")

    # linear (ELU + 1)
    elu1 = lambda u: [x + 1 if x > 0 else math.exp(x) for x in u]  # noqa: E731
    got = slay.attention(aq, ak, av, "linear")
    want = linear_attention([elu1(r) for r in rows(q, T, D)], [elu1(r) for r in rows(k, T, D)], rows(v, T, Dv))
    report("linear vs SPEC A.5", max_rel_err(got, want), 1e-6)

    # yat_spherical, eps = 1e-2
    eps = 1e-2
    got = slay.attention(aq, ak, av, "yat_spherical", epsilon=eps)
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
    attrs = dict(num_quad_nodes=R, num_features=M, poly_dim=P, epsilon=eps)
    params = slay.FeatureParams.from_segments(
        "slay_anchor", {"omega": np.array(omega).reshape(R, 1, D, M), "anchors": np.array(anchors).reshape(P, D)},
        num_heads=1, head_dim=D, **attrs)
    got = slay.attention(aq, ak, av, "slay_anchor", params=params, **attrs)
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

    # slay_poly2, budget 7 with gamma 0.5: d = 3 < D (6 pairs + the constant), the frame sampled by the library
    attrs = dict(num_features=7, poly2_gamma=0.5)
    params = slay.FeatureParams.sample("slay_poly2", num_heads=1, head_dim=D, seed=5, **attrs)
    frame = params.segment("poly2_frame").reshape(-1).tolist()  # (H=1, D, d)
    d = len(frame) // D
    gram = max(abs(sum(frame[i * d + a] * frame[i * d + b] for i in range(D)) - (a == b))
               for a in range(d) for b in range(d))
    report("slay_poly2 frame: orthonormal columns", gram, 1e-6)
    got = slay.attention(aq, ak, av, "slay_poly2", params=params, **attrs)

    def phi2(x):
        x = unit(x)
        u = [math.sqrt(D / d) * sum(frame[i * d + a] * x[i] for i in range(D)) for a in range(d)]
        return [(1 if a == b else math.sqrt(2)) * u[a] * u[b] for b in range(d) for a in range(b + 1)] + \
            [math.sqrt(0.5 / D)]

    want = linear_attention([phi2(r) for r in rows(q, T, D)], [phi2(r) for r in rows(k, T, D)], rows(v, T, Dv))
    report("slay_poly2 (sampled frame) vs (u_q.u_k)^2 + gamma/D", max_rel_err(got, want), 1e-5)

    # A bad call: k with the wrong T -> BAD_SHAPE, a message, out untouched (raw ABI layer).
    plan = _core.get_plan(_abi.BACKEND_CPU, 0, _core.variant_value("linear"),
                          _core.normalize_attributes(dict(head_dim=D, value_dim=Dv)))
    short_k = np.ascontiguousarray(ak[:, :, :T - 1])
    out = np.full((1, 1, T, Dv), 123.0, np.float32)
    tensors = {name: _abi.make_tensor(x.ctypes.data, _abi.FLOAT32, list(x.shape))
               for name, x in (("q", aq), ("k", short_k), ("v", av), ("out", out))}
    status = _core.lib.slay_attn_fwd(plan.ptr, C.byref(_abi.fwd_args(**tensors)), None, 0, None)
    message = _core.lib.slay_last_error_message().decode()
    good = status == _abi.BAD_SHAPE and "k.shape[2]" in message and bool((out == 123.0).all())
    failures += 0 if good else 1
    print(f"{'ok  ' if good else 'FAIL'} bad shape (raw): status {status}, message '{message}', out untouched")

    # The same call through the package raises SlayError carrying the name and the message.
    try:
        slay.attention(aq, short_k, av, "linear")
        good, text = False, "no exception"
    except slay.SlayError as e:
        good = e.status_name == "SLAY_STATUS_BAD_SHAPE" and "k.shape[2]" in e.message and "k.shape[2]" in str(e)
        text = str(e)
    failures += 0 if good else 1
    print(f"{'ok  ' if good else 'FAIL'} bad shape (slay.attention): {text}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
