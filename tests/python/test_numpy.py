#!/usr/bin/env python3
"""test_numpy.py -- the Python package's numpy path (CPU backend): q, k
(B, H, T, D), v (B, H, T, Dv) -> out (B, H, T, Dv).

Checks:
  - slay.attention_backward (dq, dk, dv, dinitial_state) equals central finite
    differences of L = sum(out * W) + sum(final_state * Ws) through
    slay.attention, for slay_anchor (causal, with states), slay_laplace
    (bidirectional), yat_spherical (causal) and standard (bidirectional).
    Inputs are fp32 values and the step is 2^-8, so every perturbed input is
    exact in fp32 and the CPU backend accumulates in fp64: the only noise is
    the fp32 rounding of out (tolerance 1e-3 of the largest gradient);
  - (B, T, H, D) memory viewed as (B, H, T, D) is passed without a copy and
    gives the same forward and backward as a contiguous copy;
  - a sequence in two pieces with the state passed on equals one call;
  - variant spellings (slay_anchor, SLAY_ANCHOR, yat-performer-anchor) agree;
    plans are cached; float16 runs; FeatureParams sampling is deterministic
    and segment views match the layout;
  - bad input raises with the library's status name and message (bad shape,
    mixed dtypes, out-of-range and not-applicable attributes, unknown variant)
    or a clear TypeError/ValueError (float64, 3-D input, unknown attribute,
    missing or mismatched parameters, state of an exact variant);
  - a packed call (seq_offsets, int32 and int64, one sequence empty) with
    grouped-query heads (H = 4, H_kv = 2) equals one call per sequence
    bit for bit: outputs, final states and every gradient; grouped-query
    heads equal k, v repeated per group (np.repeat) with dk, dv the group sums
    (slay_anchor with states, standard, causal and bidirectional); bad
    offsets, state counts and head counts raise with the library's message;
  - FeatureParams.fit_poly2_frame: orthonormal frames, and on data whose
    directions span a d-dimensional subspace slay_poly2 with the fitted frame
    equals attention with weights ((D/d) q^.k^)^2 (a random frame does not).
Exit 77 (skipped) without numpy.
"""
import os
import sys

try:
    import numpy as np
except ImportError:
    print("skipped: numpy is not installed")
    sys.exit(77)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slay  # noqa: E402
from slay import _core  # noqa: E402  (plan cache and the no-copy check)
from slay._numpy import ARRAYS  # noqa: E402
from report import Report  # noqa: E402

rng = np.random.default_rng(3)
report = Report()
STEP = 2.0 ** -8  # exact in fp32 for every |x| < 2^15


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def rel(got, want):
    """Relative L2 error of got against want (fp64)."""
    return float(np.linalg.norm(np.asarray(got, np.float64) - want) / np.linalg.norm(want))


def finite_difference_check(name, variant, causal, params=None, with_state=False, B=1, H=2, T=4, D=3, Dv=2,
                            **attrs):
    q, k, v = randn(B, H, T, D), randn(B, H, T, D), randn(B, H, T, Dv)
    weights_out = rng.standard_normal((B, H, T, Dv))
    inputs = {"q": q, "k": k, "v": v}
    weights_state = None
    if with_state:
        # A real state: the final state of an earlier piece (its z keeps denominators positive).
        _, state = slay.attention(randn(B, H, 8, D), randn(B, H, 8, D), randn(B, H, 8, Dv), variant, causal,
                                  params=params, return_state=True, **attrs)
        inputs["initial_state"] = state
        weights_state = rng.standard_normal(state.shape)

    def loss(x):
        result = slay.attention(x["q"], x["k"], x["v"], variant, causal, params=params,
                                initial_state=x.get("initial_state"), return_state=with_state, **attrs)
        if with_state:
            out, final_state = result
            return float((out * weights_out).sum() + (final_state * weights_state).sum())
        return float((result * weights_out).sum())

    grads = slay.attention_backward(weights_out.astype(np.float32), q, k, v, variant, causal, params=params,
                                    initial_state=inputs.get("initial_state"),
                                    dfinal_state=None if weights_state is None else weights_state.astype(np.float32),
                                    **attrs)
    worst, scale = 0.0, 0.0
    for (input_name, x), grad in zip(inputs.items(), grads):
        numeric = np.zeros(x.shape)
        for index in np.ndindex(x.shape):
            values = []
            for sign in (1, -1):
                moved = dict(inputs)
                moved[input_name] = x.copy()
                moved[input_name][index] += sign * STEP
                values.append(loss(moved))
            numeric[index] = (values[0] - values[1]) / (2 * STEP)
        worst = max(worst, float(np.abs(numeric - grad).max()))
        scale = max(scale, float(np.abs(numeric).max()))
    report.check(f"backward vs finite differences: {name}", worst <= 1e-3 * max(scale, 1.0),
                 f"max abs error {worst:.2e}, largest gradient {scale:.2e}, inputs {list(inputs)}")


def packed_and_grouped_checks():
    H, H_kv, D, Dv = 4, 2, 3, 2
    lengths = [5, 0, 7, 1]
    offsets = np.cumsum([0] + lengths)
    N, total = len(lengths), int(offsets[-1])
    anchor_attrs = dict(num_quad_nodes=2, num_features=2, poly_dim=2)
    cases = (("slay_anchor", True, anchor_attrs, np.int32), ("slay_anchor", False, anchor_attrs, np.int64),
             ("standard", True, {}, np.int64), ("standard", False, {}, np.int32))
    for variant, causal, attrs, offset_dtype in cases:
        name = f"{variant} {'causal' if causal else 'bidirectional'}, {np.dtype(offset_dtype).name} offsets"
        params = slay.FeatureParams.sample(variant, H, D, seed=4, **attrs) if attrs else None
        kw = dict(variant=variant, causal=causal, params=params, **attrs)
        q, k, v = randn(1, H, total, D), randn(1, H_kv, total, D), randn(1, H_kv, total, Dv)
        dout = randn(1, H, total, Dv)
        state = dstate = None
        if attrs:  # the final states of an earlier piece of each sequence (N rows)
            _, state = slay.attention(randn(N, H, 4, D), randn(N, H_kv, 4, D), randn(N, H_kv, 4, Dv),
                                      return_state=True, **kw)
            dstate = randn(*state.shape)
        with_state = state is not None

        # Packed == one call per sequence, bit for bit.
        result = slay.attention(q, k, v, initial_state=state, return_state=with_state,
                                seq_offsets=offsets.astype(offset_dtype), **kw)
        out, final = result if with_state else (result, None)
        grads = slay.attention_backward(dout, q, k, v, initial_state=state, dfinal_state=dstate,
                                        seq_offsets=offsets.astype(offset_dtype), **kw)
        equal = True
        for n in range(N):
            t = slice(offsets[n], offsets[n + 1])
            row = slice(n, n + 1)
            one = slay.attention(q[:, :, t], k[:, :, t], v[:, :, t], initial_state=state[row] if with_state else None,
                                 return_state=with_state, **kw)
            one_out, one_final = one if with_state else (one, None)
            one_grads = slay.attention_backward(dout[:, :, t], q[:, :, t], k[:, :, t], v[:, :, t],
                                                initial_state=state[row] if with_state else None,
                                                dfinal_state=dstate[row] if with_state else None, **kw)
            pairs = [(out[:, :, t], one_out)] + [(g[:, :, t], o) for g, o in zip(grads[:3], one_grads[:3])]
            if with_state:
                pairs += [(final[row], one_final), (grads[3][row], one_grads[3])]
            equal = equal and all(a.shape == b.shape and np.array_equal(a, b) for a, b in pairs)
        report.check(f"packed (lengths {lengths}) == one call per sequence, H={H} H_kv={H_kv}: {name}", equal,
                     "out, dq, dk, dv" + (", final state, dinitial_state" if with_state else ""))

        # Grouped heads == k, v repeated per group, dk and dv summed over each
        # group (one unpacked sequence of total tokens: one state row).
        G = H // H_kv
        if with_state:
            state, dstate = state[:1], dstate[:1]
        grouped = slay.attention_backward(dout, q, k, v, initial_state=state, dfinal_state=dstate, **kw)
        repeated = slay.attention_backward(dout, q, np.repeat(k, G, axis=1), np.repeat(v, G, axis=1),
                                           initial_state=state, dfinal_state=dstate, **kw)
        out_grouped = slay.attention(q, k, v, initial_state=state, **kw)
        out_repeated = slay.attention(q, np.repeat(k, G, axis=1), np.repeat(v, G, axis=1), initial_state=state,
                                      **kw)
        errors = []
        for g, r in zip(grouped[1:3], repeated[1:3]):
            summed = r.astype(np.float64).reshape(r.shape[0], H_kv, G, *r.shape[2:]).sum(axis=2)
            errors.append(float(np.linalg.norm(g - summed) / np.linalg.norm(summed)))
        same = np.array_equal(out_grouped, out_repeated) and np.array_equal(grouped[0], repeated[0]) and (
            not with_state or np.array_equal(grouped[3], repeated[3]))
        report.check(f"grouped-query (H={H}, H_kv={H_kv}) == k, v repeated, dk, dv summed: {name}",
                     same and max(errors) <= 1e-6, f"out, dq{', dinitial_state' if with_state else ''} equal; "
                     f"rel L2 of dk, dv {errors[0]:.1e}, {errors[1]:.1e}")

    # Bad packed and grouped calls.
    q, k, v = randn(1, H, total, D), randn(1, H_kv, total, D), randn(1, H_kv, total, Dv)
    report.raises("float offsets -> TypeError", TypeError,
                  lambda: slay.attention(q, k, v, "standard", seq_offsets=offsets.astype(np.float32)),
                  ["int32 or int64"])
    report.raises("2-D offsets -> ValueError", ValueError,
                  lambda: slay.attention(q, k, v, "standard", seq_offsets=offsets[None]), ["1-D"])
    report.raises("decreasing offsets -> SlayError INVALID_VALUE", slay.SlayError,
                  lambda: slay.attention(q, k, v, "standard", seq_offsets=[0, 6, 5, total]),
                  ["SLAY_STATUS_INVALID_VALUE", "seq_offsets[2]"])
    report.raises("last offset != T_total -> SlayError INVALID_VALUE", slay.SlayError,
                  lambda: slay.attention(q, k, v, "standard", seq_offsets=[0, 5, total - 1]),
                  ["SLAY_STATUS_INVALID_VALUE", "token extent"])
    report.raises("packed q with batch 2 -> SlayError BAD_SHAPE", slay.SlayError,
                  lambda: slay.attention(*(np.concatenate([x, x]) for x in (q, k, v)), "standard",
                                         seq_offsets=offsets), ["SLAY_STATUS_BAD_SHAPE", "q.shape[0]=2"])
    params = slay.FeatureParams.sample("slay_anchor", H, D, seed=4, **anchor_attrs)
    state = np.zeros((1, H, 2 * 2 * 2, Dv + 1), np.float32)
    report.raises("one state row for N sequences -> SlayError BAD_SHAPE", slay.SlayError,
                  lambda: slay.attention(q, k, v, params=params, initial_state=state, seq_offsets=offsets,
                                         **anchor_attrs), ["SLAY_STATUS_BAD_SHAPE", "initial_state"])
    report.raises("H not a multiple of H_kv -> SlayError INVALID_VALUE", slay.SlayError,
                  lambda: slay.attention(q, randn(1, 3, total, D), randn(1, 3, total, Dv), "standard"),
                  ["SLAY_STATUS_INVALID_VALUE", "num_kv_heads=3"])
    report.raises("v with other heads than k -> SlayError BAD_SHAPE", slay.SlayError,
                  lambda: slay.attention(q, k, randn(1, H, total, Dv), "standard"), ["SLAY_STATUS_BAD_SHAPE", "v"])
    report.raises("num_kv_heads as keyword -> TypeError (it comes from k)", TypeError,
                  lambda: slay.attention(q, k, v, "standard", num_kv_heads=2), ["k.shape[1]"])


def poly2_frame_fit_checks():
    """FeatureParams.fit_poly2_frame: on q, k whose directions span a 3-D
    subspace of R^8, the fitted frame (d = 3) spans it, so slay_poly2 equals
    attention with weights ((D/d) q^.k^)^2 computed here in fp64; a random
    frame does not (the check is not vacuous)."""
    rng = np.random.default_rng(11)
    B, H, T, D, d = 2, 2, 40, 8, 3
    attrs = dict(num_features=6, poly2_gamma=0.0)  # budget 6: d = 3 (3*4/2 = 6), no constant feature
    basis = np.linalg.qr(rng.standard_normal((H, D, D)))[0][:, :, :d]  # (H, D, d) orthonormal per head
    q, k = (np.einsum("hdc,bhtc->bhtd", basis, rng.standard_normal((B, H, T, d))).astype(np.float32)
            for _ in range(2))
    v = rng.standard_normal((B, H, T, D)).astype(np.float32)
    fitted = slay.FeatureParams.fit_poly2_frame(q, k, **attrs)
    frame = fitted.segment("poly2_frame")
    report.check("fit_poly2_frame: orthonormal columns (H, D, d)", frame.shape == (H, D, d) and all(
        np.allclose(frame[h].T @ frame[h], np.eye(d), atol=1e-6) for h in range(H)))
    qh, kh = (x / np.linalg.norm(x, axis=-1, keepdims=True) for x in (q.astype(np.float64), k.astype(np.float64)))
    w = np.tril(((D / d) * np.einsum("bhid,bhjd->bhij", qh, kh)) ** 2)
    want = (w @ v.astype(np.float64)) / (w.sum(-1, keepdims=True) + 1e-6)  # the default stabilizer, ADD
    err = rel(slay.attention(q, k, v, "slay_poly2", params=fitted, **attrs), want)
    random_frame = slay.FeatureParams.sample("slay_poly2", H, D, seed=3, **attrs)
    err_random = rel(slay.attention(q, k, v, "slay_poly2", params=random_frame, **attrs), want)
    report.check("slay_poly2 with the fitted frame == exact (q^.k^)^2 attention on data in its subspace",
                 err < 1e-5 and err_random > 1e-2, f"rel L2 {err:.1e} (random frame {err_random:.1e})")
    report.raises("fit_poly2_frame: 3-D input -> ValueError", ValueError,
                  lambda: slay.FeatureParams.fit_poly2_frame(q[0], k[0], **attrs))


def main():
    poly2_frame_fit_checks()
    anchor_attrs = dict(num_quad_nodes=2, num_features=2, poly_dim=2)
    anchor = slay.FeatureParams.sample("slay_anchor", num_heads=2, head_dim=3, seed=5, **anchor_attrs)
    laplace_attrs = dict(num_features=4)
    laplace = slay.FeatureParams.sample("slay_laplace", num_heads=2, head_dim=3, seed=6, **laplace_attrs)
    finite_difference_check("slay_anchor causal, initial and final state", "slay_anchor", True, anchor, True,
                            **anchor_attrs)
    finite_difference_check("slay_laplace bidirectional", "slay_laplace", False, laplace, **laplace_attrs)
    finite_difference_check("yat_spherical causal (epsilon 0.1)", "yat_spherical", True, epsilon=0.1)
    finite_difference_check("standard bidirectional", "standard", False)

    # Strided (B, T, H, D) memory: no copy, same results as contiguous inputs.
    B, H, T, D = 2, 3, 7, 4
    attrs = dict(num_quad_nodes=2, num_features=4, poly_dim=4)
    params = slay.FeatureParams.sample("slay_anchor", H, D, seed=1, **attrs)
    q, k, v = (randn(B, T, H, D).transpose(0, 2, 1, 3) for _ in range(3))
    report.check("(B, T, H, D) views pass without a copy", ARRAYS.prepare(q, "q") is q)
    out = slay.attention(q, k, v, params=params, **attrs)
    dense = [np.ascontiguousarray(x) for x in (q, k, v)]
    out_dense = slay.attention(*dense, params=params, **attrs)
    report.check("strided forward equals contiguous", np.array_equal(out, out_dense),
                 f"max diff {np.abs(out - out_dense).max():.1e}")
    report.check("output laid out like v: (B, T, H, Dv) memory", out.transpose(0, 2, 1, 3).flags.c_contiguous)
    dout = randn(B, H, T, D)
    g_strided = slay.attention_backward(dout, q, k, v, params=params, **attrs)
    g_dense = slay.attention_backward(dout, *dense, params=params, **attrs)
    report.check("strided backward equals contiguous",
                 all(np.array_equal(a, b) for a, b in zip(g_strided[:3], g_dense[:3])))

    # Two pieces with state passing equal one call.
    cut = 3
    first, state = slay.attention(q[:, :, :cut], k[:, :, :cut], v[:, :, :cut], params=params, return_state=True,
                                  **attrs)
    second = slay.attention(q[:, :, cut:], k[:, :, cut:], v[:, :, cut:], params=params, initial_state=state, **attrs)
    pieces = np.concatenate([first, second], axis=2)
    err = float(np.abs(pieces - out).max() / np.abs(out).max())
    report.check("two pieces with state == one call", err < 1e-6, f"max rel diff {err:.1e}")

    # Variant spellings, plan cache, float16, sampling.
    spellings = [slay.attention(q, k, v, name, params=params, **attrs)
                 for name in ("slay_anchor", "SLAY_ANCHOR", "yat-performer-anchor", "SLAY_ATTN_SLAY_ANCHOR")]
    report.check("variant spellings agree", all(np.array_equal(s, out) for s in spellings))
    plans = len(_core._plans)
    slay.attention(q, k, v, params=params, **attrs)
    report.check("repeated calls reuse the cached plan", len(_core._plans) == plans)
    half = slay.attention(*(x.astype(np.float16) for x in (q, k, v)), params=params, **attrs)
    err = float(np.abs(half.astype(np.float32) - out).max() / np.abs(out).max())
    report.check("float16 in, float16 out, close to fp32", half.dtype == np.float16 and err < 2e-2,
                 f"max rel diff {err:.1e}")
    again = slay.FeatureParams.sample("slay_anchor", H, D, seed=1, **attrs)
    other = slay.FeatureParams.sample("slay_anchor", H, D, seed=2, **attrs)
    report.check("sampling: same seed same parameters, other seed others",
                 np.array_equal(again.data, params.data) and not np.array_equal(other.data, params.data))
    omega = params.segment("omega")
    report.check("segment views follow the layout", omega.shape == (2, H, D, 4) and params.segment("anchors").shape
                 == (4, D) and np.allclose(np.linalg.norm(params.segment("anchors"), axis=1), 1, atol=1e-6),
                 repr(params))

    # Bad input.
    report.raises("bad shape -> SlayError BAD_SHAPE with the message", slay.SlayError,
                  lambda: slay.attention(q, k[:, :, :5], v, params=params, **attrs),
                  ["SLAY_STATUS_BAD_SHAPE", "k.shape[2]"])
    report.raises("mixed dtypes -> SlayError BAD_DTYPE", slay.SlayError,
                  lambda: slay.attention(q, k.astype(np.float16), v, params=params, **attrs),
                  ["SLAY_STATUS_BAD_DTYPE"])
    report.raises("out-of-range attribute -> SlayError INVALID_VALUE", slay.SlayError,
                  lambda: slay.attention(q, k, v, params=params, num_quad_nodes=99), ["SLAY_STATUS_INVALID_VALUE"])
    report.raises("attribute the variant does not use -> ATTRIBUTE_NOT_APPLICABLE", slay.SlayError,
                  lambda: slay.attention(q, k, v, "linear", poly_dim=8), ["SLAY_STATUS_ATTRIBUTE_NOT_APPLICABLE"])
    report.raises("unknown variant -> SlayError INVALID_VALUE", slay.SlayError,
                  lambda: slay.attention(q, k, v, "flash"), ["SLAY_STATUS_INVALID_VALUE"])
    report.raises("float64 input -> TypeError naming the dtypes", TypeError,
                  lambda: slay.attention(q.astype(np.float64), k, v, params=params, **attrs), ["float32"])
    report.raises("3-D input -> ValueError", ValueError,
                  lambda: slay.attention(q[0], k[0], v[0], params=params, **attrs), ["4-D"])
    report.raises("unknown attribute -> TypeError listing them", TypeError,
                  lambda: slay.attention(q, k, v, "linear", quad_nodes=2), ["quad_nodes", "num_quad_nodes"])
    report.raises("num_heads as keyword -> TypeError (it comes from q)", TypeError,
                  lambda: slay.attention(q, k, v, "linear", num_heads=3), ["q.shape[1]"])
    report.raises("missing parameters -> ValueError with the sampling hint", ValueError,
                  lambda: slay.attention(q, k, v, **attrs), ["FeatureParams.sample"])
    report.raises("parameters of another layout -> ValueError", ValueError,
                  lambda: slay.attention(q, k, v, params=params, num_quad_nodes=1, num_features=4, poly_dim=4),
                  ["omega"])
    report.raises("wrong-size raw parameter vector -> SlayError", slay.SlayError,
                  lambda: slay.attention(q, k, v, params=params.data[:-1], **attrs), ["SLAY_STATUS_BAD_SHAPE"])
    report.raises("state of an exact variant -> ValueError", ValueError,
                  lambda: slay.attention(q, k, v, "standard", return_state=True), ["exact"])
    report.raises("a list instead of an array -> TypeError", TypeError,
                  lambda: slay.attention(q, k.tolist(), v, "linear"), ["numpy array"])
    packed_and_grouped_checks()
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
