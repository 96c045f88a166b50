"""slay_ctypes.py -- the raw ctypes layer tests/bench/compare_torch.py drives
libslay with (plans, workspace, fwd/bwd on (B, H, T, D) tensors it owns),
kept as a thin layer over the Python package's ABI declarations
(abi/python/slay/_abi.py: constants, structs, signatures, SlayError), so the
header is transcribed once. New code should use the package (import slay).

_abi.py imports nothing from the package, so it is loaded here by file
without running slay/__init__.py, which would load a library at import: the
benchmark names its library explicitly (load(path)).

    lib = slay_ctypes.load("build/libslay.so")
    handle = lib.handle(slay_ctypes.BACKEND_CPU)
    plan = lib.plan(handle, "slay_anchor", ints={"num_heads": 4, "num_quad_nodes": 2})
"""
import ctypes as C
import importlib.util
import os
import sys

_ABI_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "abi", "python", "slay", "_abi.py")


def _load_abi():
    """The package's slay._abi module (registered under that name, so a later
    `import slay` shares it and its SlayError class)."""
    if "slay._abi" not in sys.modules:
        spec = importlib.util.spec_from_file_location("slay._abi", _ABI_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["slay._abi"]


_abi = _load_abi()
from slay._abi import (  # noqa: E402,F401  (re-exported names the benchmark uses)
    ATTRIBUTE_NOT_APPLICABLE, BACKEND_CPU, BACKEND_CUDA, BAD_DTYPE, BAD_SHAPE, BAD_STRIDE, BFLOAT16, CUDA_ERROR,
    FLOAT16, FLOAT32, INT32, INT64, INVALID_ARGUMENT, INVALID_VALUE, NO_DEVICE, NOT_SUPPORTED, OUT_OF_MEMORY, PASS_BACKWARD,
    PASS_FORWARD, PASS_SAMPLE, SUCCESS, SlayError, Tensor, contiguous_strides, make_tensor)

# The exact (O(T^2)) variants; every other variant is linearized.
EXACT_VARIANTS = ("standard", "yat", "yat_spherical")


class Library:
    """libslay at a given path: the raw functions (lib.raw.slay_*) with their
    signatures, plus checked helpers that raise SlayError."""

    def __init__(self, path):
        self.raw = _abi.open_library(path)
        self.attributes = {}
        for value in range(_abi.ATTRIBUTE_ENUM_END):
            name = self.raw.slay_attr_name(value)
            if name:
                self.attributes[name.decode()] = value

    def check(self, status):
        _abi.check(self.raw, status)

    def version(self):
        v = self.raw.slay_get_version()
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"

    def handle(self, backend, device=0):
        h = C.c_void_p()
        self.check(self.raw.slay_handle_create(C.byref(h), backend, device))
        return h

    def variant(self, name):
        value = C.c_int32()
        self.check(self.raw.slay_attn_variant_from_name(name.encode(), C.byref(value)))
        return value.value

    def plan(self, handle, variant, ints=None, floats=None, optional=()):
        """A plan for variant (a name or enum value). ints/floats map attribute
        names to values; names listed in optional are skipped where the variant
        does not use them (ATTRIBUTE_NOT_APPLICABLE)."""
        variant = self.variant(variant) if isinstance(variant, str) else variant
        desc, plan = C.c_void_p(), C.c_void_p()
        self.check(self.raw.slay_attn_desc_create(C.byref(desc), variant))
        try:
            for values, setter in ((ints or {}, self.raw.slay_attn_desc_set_i64),
                                   (floats or {}, self.raw.slay_attn_desc_set_f64)):
                for name, value in values.items():
                    status = setter(desc, self.attributes[name], value)
                    if not (status == ATTRIBUTE_NOT_APPLICABLE and name in optional):
                        self.check(status)
            self.check(self.raw.slay_attn_plan_create(C.byref(plan), handle, desc))
        finally:
            self.raw.slay_attn_desc_destroy(desc)
        return plan

    def _query(self, fn, plan, ctype, *args):
        value = ctype()
        self.check(fn(plan, *args, C.byref(value)))
        return value.value

    def workspace_size(self, plan, pass_, batch=0, seq_len=0):
        return self._query(self.raw.slay_attn_plan_get_workspace_size, plan, C.c_size_t, pass_, batch, seq_len)

    def fwd_workspace_size(self, plan, args, stream=None):
        """One call's workspace (ABI 6): at most workspace_size's."""
        return self._query(self.raw.slay_attn_fwd_workspace_size, plan, C.c_size_t, C.byref(args), stream)

    def bwd_workspace_size(self, plan, args, stream=None):
        return self._query(self.raw.slay_attn_bwd_workspace_size, plan, C.c_size_t, C.byref(args), stream)

    def param_count(self, plan):
        return self._query(self.raw.slay_attn_plan_get_param_count, plan, C.c_int64)

    def feature_dim(self, plan):
        return self._query(self.raw.slay_attn_plan_get_feature_dim, plan, C.c_int64)

    # -- execution (tensors are Tensor structs or None; workspace/stream are ints or None)
    def features_sample(self, plan, seed, offset, params, workspace, workspace_size, stream=None):
        self.check(self.raw.slay_attn_features_sample(plan, seed, offset, C.byref(params), workspace,
                                                      workspace_size, stream))

    @staticmethod
    def fwd_args(q, k, v, out, params=None, initial_state=None, final_state=None, position_offset=0,
                 seq_offsets=None, row_stats=None, merge=0):
        return _abi.fwd_args(q=q, k=k, v=v, out=out, params=params, initial_state=initial_state,
                             final_state=final_state, position_offset=position_offset, seq_offsets=seq_offsets,
                             row_stats=row_stats, merge=merge)

    @staticmethod
    def bwd_args(q, k, v, out, dout, dq, dk, dv, params=None, initial_state=None, dfinal_state=None,
                 dinitial_state=None, position_offset=0, seq_offsets=None, row_stats=None):
        return _abi.bwd_args(q=q, k=k, v=v, out=out, dout=dout, dq=dq, dk=dk, dv=dv, params=params,
                             initial_state=initial_state, dfinal_state=dfinal_state,
                             dinitial_state=dinitial_state, position_offset=position_offset,
                             seq_offsets=seq_offsets, row_stats=row_stats)

    def fwd(self, plan, args, workspace, workspace_size, stream=None):
        self.check(self.raw.slay_attn_fwd(plan, C.byref(args), workspace, workspace_size, stream))

    def bwd(self, plan, args, workspace, workspace_size, stream=None):
        self.check(self.raw.slay_attn_bwd(plan, C.byref(args), workspace, workspace_size, stream))


def load(path):
    return Library(path)
