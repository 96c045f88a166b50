"""_api.py -- slay.attention and slay.attention_backward: attention of q
(B, H, T, D), k (B, H_kv, T, D) and v (B, H_kv, T, Dv) giving out
(B, H, T, Dv), on numpy arrays (CPU backend) or torch tensors (CPU or CUDA
backend, with autograd); optionally a packed batch of variable-length
sequences (seq_offsets).
"""
import collections

import numpy as np

from . import _core
from ._numpy import ARRAYS as NUMPY_ARRAYS
from .features import resolve_params

# One prepared call: its plan and the inputs as libslay will read them.
Call = collections.namedtuple("Call", "kind plan q k v params initial_state position_offset packing")


def array_kind(q):
    """The ArrayKind of q: numpy arrays, or torch tensors (torch is imported
    only when a tensor is passed, so numpy users never need it)."""
    if isinstance(q, np.ndarray):
        return NUMPY_ARRAYS
    if type(q).__module__.split(".")[0] == "torch":
        from . import _torch
        return _torch.arrays_for(q)
    raise TypeError(f"q must be a numpy array or a torch tensor, got {type(q).__name__}")


def prepare_call(q, k, v, variant, causal, params, initial_state, position_offset, seq_offsets, attributes):
    """Checks and resolves everything a forward or backward needs: the kind of
    arrays, the cached plan (attributes from the shapes, the dtype, causal and
    the keywords), the inputs libslay can read without copies and the packing
    of seq_offsets."""
    kind = array_kind(q)
    q, k, v = kind.prepare(q, "q"), kind.prepare(k, "k"), kind.prepare(v, "v")
    plan = _core.get_plan(kind.backend, kind.device, _core.variant_value(variant),
                          _core.call_attributes(q, k, v, causal, kind.dtype_code(q), attributes))
    return Call(kind, plan, q, k, v, resolve_params(params, plan, kind, getattr(kind, "torch_device", None)),
                kind.prepare(initial_state, "initial_state"), int(position_offset), _core.packing(kind, seq_offsets))


def attention(q, k, v, variant="slay_anchor", causal=True, params=None, initial_state=None, return_state=False,
              position_offset=0, seq_offsets=None, **attributes):
    """out = attention(q, k, v) of one libslay variant.

    q         (B, H, T, D) float32, bfloat16 (torch) or float16
    k, v      (B, H_kv, T, D) and (B, H_kv, T, Dv): H_kv = H, or grouped-query
              heads (H a multiple of H_kv; query head h reads key/value head
              h // (H // H_kv)); the plan's num_kv_heads is k.shape[1]
    variant   "slay_anchor", "SLAY_ANCHOR", "yat-performer-anchor", ... (README's table)
    causal    key j is visible to query i iff j <= i; False: bidirectional
    params    FeatureParams (or a (N,) float32 vector in its layout) for the
              variants with random features; None for the others
    initial_state  optional (B, H, F, Dv+1) float32 state of the linearized
              variants (a previous call's final state)
    return_state   also return the final state (B, H, F, Dv+1) float32
    position_offset  cosformer: global position of token 0 of this call
              (of each sequence, when packed)
    seq_offsets    a packed batch (like flash-attn's cu_seqlens): a 1-D int32
              or int64 array/tensor of N+1 offsets on q's device (or a list of
              ints), 0 first, non-decreasing, last = T_total; q, k, v are
              (1, H, T_total, D) with sequence n at tokens [offsets[n],
              offsets[n+1]), each computed as a call of its own (causal
              within itself); states have N rows (N, H, F, Dv+1)
    attributes     libslay attributes by name (slay_attr_name): num_quad_nodes,
              num_features, poly_dim, epsilon, stabilizer, ... (README "Attributes");
              num_heads, num_kv_heads, head_dim, value_dim and io_dtype come
              from the tensors

    numpy arrays run on the CPU backend; torch tensors on their device (a CUDA
    handle on the tensor's device, torch's current stream, workspace from
    torch's allocator) through a torch.autograd.Function with gradients for
    q, k, v and initial_state (grouped k, v get their group's summed
    gradient). Returns out, or (out, final_state).
    Raises SlayError (status name and libslay's message) for calls libslay
    rejects (e.g. H not a multiple of H_kv, bad offsets, states of the wrong
    count).
    """
    call = prepare_call(q, k, v, variant, causal, params, initial_state, position_offset, seq_offsets, attributes)
    if hasattr(call.kind, "autograd_forward"):
        return call.kind.autograd_forward(call, return_state)
    out, final_state = _core.run_forward(call.kind, call.plan, call.q, call.k, call.v, call.params,
                                         call.initial_state, return_state, call.position_offset, call.packing)
    return (out, final_state) if return_state else out


def attention_backward(dout, q, k, v, variant="slay_anchor", causal=True, params=None, out=None,
                       initial_state=None, dfinal_state=None, position_offset=0, seq_offsets=None, **attributes):
    """Gradients (dq, dk, dv, dinitial_state) of a loss L given dout = dL/dout
    (B, H, T, Dv) and optionally dfinal_state = dL/dfinal_state (B, H, F, Dv+1)
    of the call attention(q, k, v, variant, causal, params, initial_state, ...,
    seq_offsets). out is that call's output (computed again when None). dk, dv
    are shaped like k, v. dinitial_state is None without initial_state. Works
    on numpy arrays and on torch tensors (no autograd graph: use attention()
    for that)."""
    call = prepare_call(q, k, v, variant, causal, params, initial_state, position_offset, seq_offsets, attributes)
    kind = call.kind
    if out is None:
        out, _ = _core.run_forward(kind, call.plan, call.q, call.k, call.v, call.params, call.initial_state, False,
                                   call.position_offset, call.packing)
    return _core.run_backward(kind, call.plan, call.q, call.k, call.v, kind.prepare(out, "out"),
                              kind.prepare(dout, "dout"), call.params, call.initial_state,
                              kind.prepare(dfinal_state, "dfinal_state"), True, call.position_offset, call.packing)
