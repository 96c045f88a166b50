"""slay_ctypes.py -- ctypes bindings of libslay's C ABI (include/slay/slay.h),
shared by the Python test (test_ctypes.py) and the torch comparison
(tests/bench/compare_torch.py).

The structures mirror the header field by field (slay_tensor_t, the
size-prefixed fwd/bwd argument structs, slay_param_segment_t); enum values are
copied from the header, which pins them (abi/POLICY.md). Tensors are
(B, H, T, D) views given as a data pointer (host or device), a dtype, shape and
element strides.

    lib = slay_ctypes.load("build/libslay.so")
    handle = lib.handle(slay_ctypes.BACKEND_CPU)
    plan = lib.plan(handle, "slay_anchor", ints={"num_heads": 4, "num_quad_nodes": 2})
"""
import ctypes as C

# slay_status_t
SUCCESS = 0
INVALID_ARGUMENT, INVALID_VALUE, BAD_SHAPE, BAD_STRIDE, BAD_DTYPE = 100, 101, 102, 103, 104
ATTRIBUTE_NOT_APPLICABLE, WORKSPACE_TOO_SMALL, BACKEND_MISMATCH = 107, 108, 110
NOT_SUPPORTED = 200
NO_DEVICE, CUDA_ERROR, OUT_OF_MEMORY = 300, 301, 304

# slay_dtype_t, slay_backend_t, slay_pass_t
FLOAT32, BFLOAT16, FLOAT16 = 0, 1, 2
BACKEND_CPU, BACKEND_CUDA = 0, 1
PASS_FORWARD, PASS_BACKWARD, PASS_SAMPLE = 0, 1, 2

# slay_attr_t, by the names slay_attr_name() gives them.
ATTR = dict(num_heads=0, head_dim=1, value_dim=2, causal=3, io_dtype=4, allow_tf32=5, num_quad_nodes=6,
            num_features=7, poly_dim=8, chunk_size=9, stabilizer_mode=10, cosformer_length=11,
            epsilon=32, stabilizer=33, score_scale=34, softmax_scale=35, prf_clamp=36, kernel_clamp=37,
            nystrom_reg=38, norm_eps=39)

# The exact (O(T^2)) variants; every other variant is linearized.
EXACT_VARIANTS = ("standard", "yat", "yat_spherical")

MAX_RANK = 4


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int32), ("rank", C.c_int32),
                ("shape", C.c_int64 * MAX_RANK), ("strides", C.c_int64 * MAX_RANK)]


_T = C.POINTER(Tensor)


class FwdArgs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t)] + [
        (n, _T) for n in ("q", "k", "v", "params", "out", "initial_state", "final_state")
    ] + [("position_offset", C.c_int64)]


class BwdArgs(C.Structure):
    _fields_ = [("struct_size", C.c_size_t)] + [
        (n, _T) for n in ("q", "k", "v", "params", "out", "dout", "dq", "dk", "dv", "initial_state",
                          "dfinal_state", "dinitial_state")
    ] + [("position_offset", C.c_int64)]


class ParamSegment(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("name", C.c_char_p), ("offset", C.c_int64), ("rank", C.c_int32),
                ("shape", C.c_int64 * MAX_RANK)]


class SlayError(RuntimeError):
    """A libslay call that did not return SUCCESS; .status holds its code."""

    def __init__(self, status, name, message):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.status_name = name


def contiguous_strides(shape):
    strides, s = [], 1
    for extent in reversed(shape):
        strides.insert(0, s)
        s *= extent
    return strides


def make_tensor(data_ptr, dtype, shape, strides=None):
    """A slay_tensor_t over memory at data_ptr (an int); contiguous when strides is None."""
    strides = list(strides) if strides is not None else contiguous_strides(shape)
    pad = [0] * (MAX_RANK - len(shape))
    return Tensor(C.c_void_p(data_ptr), dtype, len(shape), (C.c_int64 * MAX_RANK)(*shape, *pad),
                  (C.c_int64 * MAX_RANK)(*strides, *pad))


def _ptr(tensor):
    return C.pointer(tensor) if tensor is not None else None


class Library:
    """libslay loaded with ctypes: the raw functions (lib.raw.slay_*) with their
    signatures, plus checked helpers that raise SlayError."""

    def __init__(self, path):
        self.raw = lib = C.CDLL(path)
        vp, i32, i64, u64, sz = C.c_void_p, C.c_int32, C.c_int64, C.c_uint64, C.c_size_t
        sigs = {
            "slay_get_version": ([], C.c_uint32),
            "slay_get_abi_version": ([], C.c_uint32),
            "slay_status_name": ([i32], C.c_char_p),
            "slay_last_error_message": ([], C.c_char_p),
            "slay_handle_create": ([C.POINTER(vp), i32, i32], i32),
            "slay_handle_destroy": ([vp], i32),
            "slay_attn_variant_from_name": ([C.c_char_p, C.POINTER(i32)], i32),
            "slay_attn_desc_create": ([C.POINTER(vp), i32], i32),
            "slay_attn_desc_destroy": ([vp], i32),
            "slay_attn_desc_set_i64": ([vp, i32, i64], i32),
            "slay_attn_desc_set_f64": ([vp, i32, C.c_double], i32),
            "slay_attn_plan_create": ([C.POINTER(vp), vp, vp], i32),
            "slay_attn_plan_destroy": ([vp], i32),
            "slay_attn_plan_get_i64": ([vp, i32, C.POINTER(i64)], i32),
            "slay_attn_plan_get_workspace_size": ([vp, i32, i64, i64, C.POINTER(sz)], i32),
            "slay_attn_plan_get_feature_dim": ([vp, C.POINTER(i64)], i32),
            "slay_attn_plan_get_param_count": ([vp, C.POINTER(i64)], i32),
            "slay_attn_plan_get_param_segment_count": ([vp, C.POINTER(i32)], i32),
            "slay_attn_plan_get_param_segment": ([vp, i32, C.POINTER(ParamSegment)], i32),
            "slay_attn_features_sample": ([vp, u64, u64, _T, vp, sz, vp], i32),
            "slay_attn_fwd": ([vp, C.POINTER(FwdArgs), vp, sz, vp], i32),
            "slay_attn_bwd": ([vp, C.POINTER(BwdArgs), vp, sz, vp], i32),
        }
        for name, (argtypes, restype) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = argtypes, restype

    # -- errors
    def check(self, status):
        if status != SUCCESS:
            name = (self.raw.slay_status_name(status) or b"SLAY_STATUS_UNKNOWN").decode()
            raise SlayError(status, name, self.raw.slay_last_error_message().decode())

    def version(self):
        v = self.raw.slay_get_version()
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}"

    # -- objects
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
                    status = setter(desc, ATTR[name], value)
                    if not (status == ATTRIBUTE_NOT_APPLICABLE and name in optional):
                        self.check(status)
            self.check(self.raw.slay_attn_plan_create(C.byref(plan), handle, desc))
        finally:
            self.raw.slay_attn_desc_destroy(desc)
        return plan

    def workspace_size(self, plan, pass_, batch=0, seq_len=0):
        size = C.c_size_t()
        self.check(self.raw.slay_attn_plan_get_workspace_size(plan, pass_, batch, seq_len, C.byref(size)))
        return size.value

    def param_count(self, plan):
        n = C.c_int64()
        self.check(self.raw.slay_attn_plan_get_param_count(plan, C.byref(n)))
        return n.value

    def feature_dim(self, plan):
        n = C.c_int64()
        self.check(self.raw.slay_attn_plan_get_feature_dim(plan, C.byref(n)))
        return n.value

    # -- execution (tensors are Tensor structs or None; workspace/stream are ints or None)
    def features_sample(self, plan, seed, offset, params, workspace, workspace_size, stream=None):
        self.check(self.raw.slay_attn_features_sample(plan, seed, offset, C.byref(params), workspace,
                                                      workspace_size, stream))

    def fwd_args(self, q, k, v, out, params=None, initial_state=None, final_state=None, position_offset=0):
        return FwdArgs(C.sizeof(FwdArgs), _ptr(q), _ptr(k), _ptr(v), _ptr(params), _ptr(out), _ptr(initial_state),
                       _ptr(final_state), position_offset)

    def bwd_args(self, q, k, v, out, dout, dq, dk, dv, params=None, initial_state=None, dfinal_state=None,
                 dinitial_state=None, position_offset=0):
        return BwdArgs(C.sizeof(BwdArgs), _ptr(q), _ptr(k), _ptr(v), _ptr(params), _ptr(out), _ptr(dout), _ptr(dq),
                       _ptr(dk), _ptr(dv), _ptr(initial_state), _ptr(dfinal_state), _ptr(dinitial_state),
                       position_offset)

    def fwd(self, plan, args, workspace, workspace_size, stream=None):
        self.check(self.raw.slay_attn_fwd(plan, C.byref(args), workspace, workspace_size, stream))

    def bwd(self, plan, args, workspace, workspace_size, stream=None):
        self.check(self.raw.slay_attn_bwd(plan, C.byref(args), workspace, workspace_size, stream))


def load(path):
    return Library(path)
