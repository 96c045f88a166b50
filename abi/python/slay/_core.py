"""_core.py -- the array-independent part of the package: variants, attributes,
cached handles and plans, and one forward and one backward driver that the
numpy and torch front ends share.

Shapes are (B, H, T, D): q (B, H, T, D); k (B, H_kv, T, D) and v
(B, H_kv, T, Dv) with H_kv = H or grouped-query heads; out, dout
(B, H, T, Dv); states (B, H, F, Dv+1) fp32; params (N,) fp32. A packed call
has B = 1, N sequences back to back on the token axis given by (N+1,) int
offsets, and N state rows. An "array kind" (ArrayKind
below; numpy in _numpy.py, torch in _torch.py) turns its arrays into
slay_tensor_t views and allocates outputs and workspace in the memory of the
backend it runs on; the drivers here never copy inputs.
"""
import collections
import ctypes as C
import math
import operator
import threading

from . import _abi
from ._abi import SlayError  # noqa: F401  (re-exported)
from ._loader import load

lib, library_path = load()


def check(status):
    """Raises SlayError (status name + the library's message) unless SUCCESS."""
    _abi.check(lib, status)


def version():
    """The library's version as "major.minor.patch"."""
    v = lib.slay_get_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


# ------------------------------------------------------------------ variants

def _variant_table():
    """canonical name -> slay_attn_variant_t, as the library names them."""
    table, value = {}, 0
    while True:
        name = lib.slay_attn_variant_name(value)
        if name is None:
            return table
        table[name.decode()] = value
        value += 1


VARIANTS = _variant_table()
VARIANT_NAMES = {value: name for name, value in VARIANTS.items()}


def variant_value(variant):
    """slay_attn_variant_t of a name ("slay_anchor", "SLAY_ANCHOR",
    "SLAY_ATTN_SLAY_ANCHOR", the registry key "yat-performer-anchor", ...) or
    of an enum value. Raises SlayError (INVALID_VALUE) for an unknown name."""
    if isinstance(variant, str):
        name = variant.strip().lower()
        if name.startswith("slay_attn_"):
            name = name[len("slay_attn_"):]
        value = C.c_int32()
        check(lib.slay_attn_variant_from_name(name.encode(), C.byref(value)))
        return value.value
    value = operator.index(variant)
    if value not in VARIANT_NAMES:
        raise ValueError(f"{value} is not a slay_attn_variant_t; known: {sorted(VARIANT_NAMES)}")
    return value


def variant_name(variant):
    """The canonical name ("slay_anchor") of any accepted variant spelling."""
    return VARIANT_NAMES[variant_value(variant)]


# ---------------------------------------------------------------- attributes

ATTRIBUTES = {lib.slay_attr_name(v).decode(): v for v in range(_abi.ATTRIBUTE_ENUM_END) if lib.slay_attr_name(v)}
STABILIZER_MODES = {"add": 0, "clamp": 1}  # slay_stabilizer_mode_t

# Attributes attention() takes from the tensors and its own arguments; users
# cannot set them as keywords (a second source of truth would disagree).
DERIVED_ATTRIBUTES = {"num_heads": "q.shape[1]", "num_kv_heads": "k.shape[1]", "head_dim": "q.shape[3]",
                      "value_dim": "v.shape[3]", "io_dtype": "the dtype of q, k, v",
                      "causal": "the causal argument"}


def normalize_attributes(attributes):
    """Attribute keywords -> a sorted tuple of (name, value) with values of the
    attribute's type (int for i64, float for f64): a hashable plan-cache key.
    Raises TypeError for unknown names and values of the wrong type."""
    items = []
    for name, value in attributes.items():
        if name not in ATTRIBUTES:
            raise TypeError(f"unknown libslay attribute {name!r}; the attributes are: {', '.join(ATTRIBUTES)}")
        if ATTRIBUTES[name] >= _abi.FIRST_F64_ATTRIBUTE:
            try:
                if isinstance(value, (bool, str)):
                    raise TypeError
                value = float(value)  # int, float, numpy scalars, 0-d tensors
            except (TypeError, ValueError):
                raise TypeError(f"attribute {name} takes a number, got {value!r}") from None
        else:
            if name == "stabilizer_mode" and isinstance(value, str):
                if value.lower() not in STABILIZER_MODES:
                    raise ValueError(f"stabilizer_mode is one of {sorted(STABILIZER_MODES)} (or 0/1), got {value!r}")
                value = STABILIZER_MODES[value.lower()]
            try:
                value = operator.index(value)  # int, bool, numpy integers; not 2.5
            except TypeError:
                raise TypeError(f"attribute {name} takes an integer, got {value!r}") from None
        items.append((name, value))
    return tuple(sorted(items))


# ---------------------------------------------------------- handles, plans

class Segment(collections.namedtuple("Segment", "name offset shape")):
    """One named block of the fp32 parameter vector: elements offset ..
    offset + count, row-major with shape (slay_param_segment_t)."""
    __slots__ = ()

    @property
    def count(self):
        return math.prod(self.shape)


class Handle:
    """slay_handle_t on (backend, device); destroyed with the object."""

    def __init__(self, backend, device):
        ptr = C.c_void_p()
        check(lib.slay_handle_create(C.byref(ptr), backend, device))
        self.ptr, self.backend, self.device = ptr, backend, device
        self._destroy = lib.slay_handle_destroy  # kept: module globals may be gone at exit

    def __del__(self):
        if getattr(self, "ptr", None):
            self._destroy(self.ptr)


class Plan:
    """slay_attn_plan_t of (handle, variant, attributes) with the facts callers
    query every call (feature dim F, parameter count and segments) read once.
    Holds its handle, which must outlive it. `lock` serializes executions:
    libslay runs one plan on one host thread at a time, and torch may run a
    backward on another thread than the forward."""

    def __init__(self, handle, variant, attributes):
        desc, ptr = C.c_void_p(), C.c_void_p()
        check(lib.slay_attn_desc_create(C.byref(desc), variant))
        try:
            for name, value in attributes:
                setter = lib.slay_attn_desc_set_f64 if isinstance(value, float) else lib.slay_attn_desc_set_i64
                check(setter(desc, ATTRIBUTES[name], value))
            check(lib.slay_attn_plan_create(C.byref(ptr), handle.ptr, desc))
        finally:
            lib.slay_attn_desc_destroy(desc)
        self.ptr, self.handle, self.variant, self.attributes = ptr, handle, variant, dict(attributes)
        self._destroy = lib.slay_attn_plan_destroy
        self.lock = threading.Lock()
        n = C.c_int64()
        check(lib.slay_attn_plan_get_feature_dim(ptr, C.byref(n)))
        self.feature_dim = n.value
        check(lib.slay_attn_plan_get_param_count(ptr, C.byref(n)))
        self.param_count = n.value
        self.segments = self._read_segments()

    def _read_segments(self):
        count = C.c_int32()
        check(lib.slay_attn_plan_get_param_segment_count(self.ptr, C.byref(count)))
        segments = []
        for i in range(count.value):
            s = _abi.ParamSegment()
            s.struct_size = C.sizeof(_abi.ParamSegment)
            check(lib.slay_attn_plan_get_param_segment(self.ptr, i, C.byref(s)))
            segments.append(Segment(s.name.decode(), s.offset, tuple(s.shape[:s.rank])))
        return tuple(segments)

    def get(self, name):
        """A resolved attribute value (value_dim resolved to Dv, softmax_scale to its effective value)."""
        if ATTRIBUTES[name] >= _abi.FIRST_F64_ATTRIBUTE:
            value, getter = C.c_double(), lib.slay_attn_plan_get_f64
        else:
            value, getter = C.c_int64(), lib.slay_attn_plan_get_i64
        check(getter(self.ptr, ATTRIBUTES[name], C.byref(value)))
        return value.value

    def workspace_size(self, pass_, batch=0, seq_len=0):
        size = C.c_size_t()
        check(lib.slay_attn_plan_get_workspace_size(self.ptr, pass_, batch, seq_len, C.byref(size)))
        return size.value

    def call_workspace_size(self, pass_, args, stream):
        """Bytes of workspace one call with these argument blocks needs (ABI 6):
        at most workspace_size's, less where the call's path needs less (the
        CUDA Hopper Kronecker kernels' backward: two floats a row)."""
        size = C.c_size_t()
        query = lib.slay_attn_fwd_workspace_size if pass_ == _abi.PASS_FORWARD else lib.slay_attn_bwd_workspace_size
        check(query(self.ptr, C.byref(args), stream, C.byref(size)))
        return size.value

    def __del__(self):
        if getattr(self, "ptr", None):
            self._destroy(self.ptr)


_cache_lock = threading.Lock()
_handles = {}
_plans = collections.OrderedDict()
PLAN_CACHE_SIZE = 128  # least recently used plans beyond this are released


def get_handle(backend, device=0):
    """The cached handle of (backend, device), created on first use."""
    key = (backend, device if backend == _abi.BACKEND_CUDA else 0)
    with _cache_lock:
        if key not in _handles:
            _handles[key] = Handle(*key)
        return _handles[key]


def get_plan(backend, device, variant, attributes):
    """The cached plan of (backend, device, variant, attributes); attributes is
    normalize_attributes()'s tuple. Repeated calls cost one dict look-up."""
    handle = get_handle(backend, device)
    key = (handle.backend, handle.device, variant, attributes)
    with _cache_lock:
        plan = _plans.get(key)
        if plan is not None:
            _plans.move_to_end(key)
            return plan
    plan = Plan(handle, variant, attributes)  # outside the lock: may raise SlayError
    with _cache_lock:
        _plans[key] = plan
        while len(_plans) > PLAN_CACHE_SIZE:
            _plans.popitem(last=False)  # an execution still holding it keeps it alive
    return plan


def layout_plan(variant, **attributes):
    """A CPU plan used only for its facts (parameter layout, feature dim)."""
    return get_plan(_abi.BACKEND_CPU, 0, variant_value(variant), normalize_attributes(attributes))


# ------------------------------------------------------------------ drivers

class ArrayKind:
    """What the drivers need from an array library, on one backend/device.

    backend, device     where the plan runs
    dtype_code(x)       slay_dtype_t of x's dtype, or TypeError naming the accepted dtypes
    prepare(x, name)    x itself when libslay can read it as is (innermost
                        stride 1, non-negative element strides, this device),
                        else a compatible copy; TypeError/ValueError for arrays
                        of another library or device
    prepare_offsets(x)  seq_offsets as a 1-D int32/int64 array libslay can
                        read on this device (a sequence of ints becomes int64);
                        TypeError/ValueError otherwise
    describe(x)         the slay_tensor_t view of x (io dtypes, fp32, int offsets)
    empty(shape, dtype_code, like=None)
                        a new array; when like is given, its dimensions are laid
                        out in memory in like's order (so a (B, T, H, D) view
                        gives a (B, T, H, Dv) output: no copy to undo the transpose)
    zeros(shape, dtype_code, like=None)
    workspace(nbytes)   (owner, address) of nbytes of 16-byte aligned scratch
    stream()            the stream to enqueue on (int) or None
    active()            a context manager making the device current (CUDA)
    """


def call_attributes(q, k, v, causal, dtype_code, attributes):
    """The plan attributes of an attention call on q (B, H, T, D), k
    (B, H_kv, T, D), v (B, H_kv, T, Dv). num_kv_heads is set only when
    H_kv != H, so multi-head calls make the same plans as before ABI 3 (and
    still run on an older library, which does not know the attribute)."""
    for name, x in (("q", q), ("k", k), ("v", v)):
        if len(x.shape) != 4:
            raise ValueError(f"{name} must be 4-D (B, H, T, D), got shape {tuple(x.shape)}")
    for name in attributes:
        if name in DERIVED_ATTRIBUTES:
            raise TypeError(f"{name} is not a keyword of attention(): it is {DERIVED_ATTRIBUTES[name]}")
    full = dict(attributes, num_heads=int(q.shape[1]), head_dim=int(q.shape[3]), value_dim=int(v.shape[3]),
                causal=int(bool(causal)), io_dtype=dtype_code)
    if k.shape[1] != q.shape[1]:
        full["num_kv_heads"] = int(k.shape[1])  # libslay checks H % H_kv and v's heads
    return normalize_attributes(full)


class Packing(collections.namedtuple("Packing", "offsets count longest")):
    """A packed call: its (N+1,) offsets as libslay reads them (this kind's
    array on the call's device), the sequence count N and the longest
    sequence's length; (N, longest) sizes the workspace, N the state rows."""
    __slots__ = ()


def packing(kind, seq_offsets):
    """The Packing of a call's seq_offsets, or None for an unpacked call.
    The values are read on the host for the workspace size (on CUDA a small
    copy that waits for the stream, as libslay's own check of them does);
    libslay validates them (0 first, never decreasing, last = token extent)."""
    if seq_offsets is None:
        return None
    offsets = kind.prepare_offsets(seq_offsets)
    values = offsets.tolist()
    longest = max((b - a for a, b in zip(values, values[1:])), default=0)
    # Bad offsets get libslay's message from the call, not a workspace error here.
    return Packing(offsets, max(len(values) - 1, 0), max(longest, 0))


def call_rows(q, packing):
    """(batch rows, sequence length) of a call: what sizes its workspace and
    its states; a packed call's are (N, longest sequence)."""
    if packing is not None:
        return packing.count, packing.longest
    return int(q.shape[0]), int(q.shape[2])


def state_shape(plan, q, v, rows):
    """(rows, H, F, Dv+1) of the linearized family; ValueError for exact variants."""
    if plan.feature_dim == 0:
        raise ValueError(f"variant {VARIANT_NAMES[plan.variant]} is exact: it carries no state "
                         "(initial_state, final states and return_state need a linearized variant)")
    return (rows, int(q.shape[1]), plan.feature_dim, int(v.shape[3]) + 1)


def _tensor(kind, x):
    return kind.describe(x) if x is not None else None


def _offsets_tensor(kind, packing):
    return kind.describe(packing.offsets) if packing is not None else None


def _call_workspace_size(kind, plan, pass_, args, rows, T, packing):
    """The workspace of one call: its own need (ABI 6), or for a packed call
    the plan-level size of (N, longest) (its offsets are read once, by the call)."""
    if packing is not None:
        return plan.workspace_size(pass_, rows, T)
    return plan.call_workspace_size(pass_, args, kind.stream())


def run_forward(kind, plan, q, k, v, params=None, initial_state=None, return_state=False, position_offset=0,
                packing=None):
    """out (B, H, T, Dv) in q's dtype, and the final state (B or N, H, F, Dv+1)
    fp32 if return_state (else None). Inputs must have passed kind.prepare;
    packing is packing()'s result or None."""
    rows, T = call_rows(q, packing)
    # out has q's heads and v's width, laid out in memory like v.
    out = kind.empty(tuple(q.shape[:3]) + (v.shape[3],), kind.dtype_code(v), like=v)
    final_state = kind.empty(state_shape(plan, q, v, rows), _abi.FLOAT32) if return_state else None
    args = _abi.fwd_args(q=kind.describe(q), k=kind.describe(k), v=kind.describe(v), params=_tensor(kind, params),
                         out=kind.describe(out), initial_state=_tensor(kind, initial_state),
                         final_state=_tensor(kind, final_state), position_offset=position_offset,
                         seq_offsets=_offsets_tensor(kind, packing))
    with kind.active(), plan.lock:
        size = _call_workspace_size(kind, plan, _abi.PASS_FORWARD, args, rows, T, packing)
        owner, address = kind.workspace(size)
        check(lib.slay_attn_fwd(plan.ptr, C.byref(args), address, size, kind.stream()))
    del owner  # the call was enqueued on kind.stream(); stream-ordered allocators may reuse it after
    return out, final_state


def run_backward(kind, plan, q, k, v, out, dout, params=None, initial_state=None, dfinal_state=None,
                 want_dinitial_state=True, position_offset=0, packing=None):
    """(dq, dk, dv, dinitial_state) of L given dout = dL/dout (B, H, T, Dv) and
    optionally dfinal_state = dL/dfinal_state. dk, dv are shaped like k, v
    (grouped heads get their group's summed gradient). dinitial_state is None
    unless initial_state is given and want_dinitial_state. Inputs must have
    passed kind.prepare; out is the forward's output."""
    rows, T = call_rows(q, packing)
    dq = kind.empty(tuple(q.shape), kind.dtype_code(q), like=q)
    dk = kind.empty(tuple(k.shape), kind.dtype_code(k), like=k)
    dv = kind.empty(tuple(v.shape), kind.dtype_code(v), like=v)
    dinitial_state = None
    if initial_state is not None and want_dinitial_state:
        dinitial_state = kind.empty(tuple(initial_state.shape), _abi.FLOAT32)
    args = _abi.bwd_args(q=kind.describe(q), k=kind.describe(k), v=kind.describe(v), params=_tensor(kind, params),
                         out=kind.describe(out), dout=kind.describe(dout), dq=kind.describe(dq),
                         dk=kind.describe(dk), dv=kind.describe(dv), initial_state=_tensor(kind, initial_state),
                         dfinal_state=_tensor(kind, dfinal_state), dinitial_state=_tensor(kind, dinitial_state),
                         position_offset=position_offset, seq_offsets=_offsets_tensor(kind, packing))
    with kind.active(), plan.lock:
        size = _call_workspace_size(kind, plan, _abi.PASS_BACKWARD, args, rows, T, packing)
        owner, address = kind.workspace(size)
        check(lib.slay_attn_bwd(plan.ptr, C.byref(args), address, size, kind.stream()))
    del owner
    return dq, dk, dv, dinitial_state


def run_sample(kind, plan, params, seed, offset):
    """Fills params (param_count,) fp32 with the plan's random features drawn from (seed, offset)."""
    size = plan.workspace_size(_abi.PASS_SAMPLE)
    owner, address = kind.workspace(size)
    with kind.active(), plan.lock:
        check(lib.slay_attn_features_sample(plan.ptr, seed, offset, C.byref(kind.describe(params)), address, size,
                                            kind.stream()))
    del owner
