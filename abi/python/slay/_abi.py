"""_abi.py -- ctypes declarations of libslay's C ABI (include/slay/slay.h).

Nothing here computes attention: this module declares the header's pinned
enum values, its structs field by field (slay_tensor_t, the size-prefixed
forward/backward argument structs, slay_param_segment_t), the functions'
signatures, and the exception every failed call raises. Tensors are (B, H, T, D)
views: a data pointer (host or device), a dtype, shape and element strides.

It imports nothing from the rest of the package, so tests/python/slay_ctypes.py
can load it without loading a library (see that file).
"""
import ctypes as C

# slay_status_t values the package and its tests name (slay.h pins them; abi/POLICY.md).
SUCCESS = 0
INVALID_ARGUMENT, INVALID_VALUE, BAD_SHAPE, BAD_STRIDE, BAD_DTYPE = 100, 101, 102, 103, 104
UNKNOWN_ATTRIBUTE, ATTRIBUTE_TYPE, ATTRIBUTE_NOT_APPLICABLE = 105, 106, 107
WORKSPACE_TOO_SMALL, BACKEND_MISMATCH = 108, 110
NOT_SUPPORTED = 200
NO_DEVICE, CUDA_ERROR, OUT_OF_MEMORY = 300, 301, 304

# slay_dtype_t (INT32/INT64: seq_offsets only, ABI 3), slay_backend_t, slay_pass_t
FLOAT32, BFLOAT16, FLOAT16, INT32, INT64 = 0, 1, 2, 3, 4
BACKEND_CPU, BACKEND_CUDA = 0, 1
PASS_FORWARD, PASS_BACKWARD, PASS_SAMPLE = 0, 1, 2

# slay_attr_t: integer attributes are numbered from 0, floating-point ones from
# 32 (slay.h groups them so); the names come from slay_attr_name().
FIRST_F64_ATTRIBUTE = 32
ATTRIBUTE_ENUM_END = 64  # every slay_attr_t value of ABI 1 lies below this

MAX_RANK = 4


class Tensor(C.Structure):
    """slay_tensor_t: a strided view of caller-owned memory (frozen layout)."""
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int32), ("rank", C.c_int32),
                ("shape", C.c_int64 * MAX_RANK), ("strides", C.c_int64 * MAX_RANK)]


_T = C.POINTER(Tensor)

FWD_TENSORS = ("q", "k", "v", "params", "out", "initial_state", "final_state")
BWD_TENSORS = ("q", "k", "v", "params", "out", "dout", "dq", "dk", "dv", "initial_state", "dfinal_state",
               "dinitial_state")


class FwdArgs(C.Structure):
    """slay_attn_fwd_args_t (size-prefixed; optional tensors are NULL; seq_offsets: ABI 3;
    row_stats, merge: ABI 4, the exact family's row statistics)."""
    _fields_ = ([("struct_size", C.c_size_t)] + [(n, _T) for n in FWD_TENSORS] +
                [("position_offset", C.c_int64), ("seq_offsets", _T), ("row_stats", _T), ("merge", C.c_int64)])


class BwdArgs(C.Structure):
    """slay_attn_bwd_args_t (size-prefixed; optional tensors are NULL; seq_offsets: ABI 3;
    row_stats: ABI 5, the forward's row statistics of the exact family)."""
    _fields_ = ([("struct_size", C.c_size_t)] + [(n, _T) for n in BWD_TENSORS] +
                [("position_offset", C.c_int64), ("seq_offsets", _T), ("row_stats", _T)])


class ParamSegment(C.Structure):
    """slay_param_segment_t: one named, row-major block of the parameter vector."""
    _fields_ = [("struct_size", C.c_size_t), ("name", C.c_char_p), ("offset", C.c_int64), ("rank", C.c_int32),
                ("shape", C.c_int64 * MAX_RANK)]


class SlayError(RuntimeError):
    """A libslay call that did not return SLAY_STATUS_SUCCESS.

    status       the slay_status_t value (int)
    status_name  slay_status_name(status), e.g. "SLAY_STATUS_BAD_SHAPE"
    message      slay_last_error_message() of the failed call
    """

    def __init__(self, status, status_name, message):
        super().__init__(f"{status_name}: {message}")
        self.status = status
        self.status_name = status_name
        self.message = message


_vp, _i32, _i64, _u64, _sz = C.c_void_p, C.c_int32, C.c_int64, C.c_uint64, C.c_size_t

# name -> (argument types, result type), in the header's order.
SIGNATURES = {
    "slay_get_version": ([], C.c_uint32),
    "slay_get_abi_version": ([], C.c_uint32),
    "slay_status_name": ([_i32], C.c_char_p),
    "slay_status_string": ([_i32], C.c_char_p),
    "slay_last_error_message": ([], C.c_char_p),
    "slay_handle_create": ([C.POINTER(_vp), _i32, _i32], _i32),
    "slay_handle_destroy": ([_vp], _i32),
    "slay_handle_get_backend": ([_vp, C.POINTER(_i32)], _i32),
    "slay_attn_variant_name": ([_i32], C.c_char_p),
    "slay_attn_variant_from_name": ([C.c_char_p, C.POINTER(_i32)], _i32),
    "slay_attr_name": ([_i32], C.c_char_p),
    "slay_attn_desc_create": ([C.POINTER(_vp), _i32], _i32),
    "slay_attn_desc_destroy": ([_vp], _i32),
    "slay_attn_desc_set_i64": ([_vp, _i32, _i64], _i32),
    "slay_attn_desc_set_f64": ([_vp, _i32, C.c_double], _i32),
    "slay_attn_desc_get_i64": ([_vp, _i32, C.POINTER(_i64)], _i32),
    "slay_attn_desc_get_f64": ([_vp, _i32, C.POINTER(C.c_double)], _i32),
    "slay_attn_plan_create": ([C.POINTER(_vp), _vp, _vp], _i32),
    "slay_attn_plan_destroy": ([_vp], _i32),
    "slay_attn_plan_get_i64": ([_vp, _i32, C.POINTER(_i64)], _i32),
    "slay_attn_plan_get_f64": ([_vp, _i32, C.POINTER(C.c_double)], _i32),
    "slay_attn_plan_get_variant": ([_vp, C.POINTER(_i32)], _i32),
    "slay_attn_plan_get_workspace_size": ([_vp, _i32, _i64, _i64, C.POINTER(_sz)], _i32),
    "slay_attn_plan_get_feature_dim": ([_vp, C.POINTER(_i64)], _i32),
    "slay_attn_plan_get_param_count": ([_vp, C.POINTER(_i64)], _i32),
    "slay_attn_plan_get_param_segment_count": ([_vp, C.POINTER(_i32)], _i32),
    "slay_attn_plan_get_param_segment": ([_vp, _i32, C.POINTER(ParamSegment)], _i32),
    "slay_attn_features_sample": ([_vp, _u64, _u64, _T, _vp, _sz, _vp], _i32),
    "slay_attn_fwd": ([_vp, C.POINTER(FwdArgs), _vp, _sz, _vp], _i32),
    "slay_attn_bwd": ([_vp, C.POINTER(BwdArgs), _vp, _sz, _vp], _i32),
    "slay_attn_fwd_workspace_size": ([_vp, C.POINTER(FwdArgs), _vp, C.POINTER(_sz)], _i32),
    "slay_attn_bwd_workspace_size": ([_vp, C.POINTER(BwdArgs), _vp, C.POINTER(_sz)], _i32),
}


def open_library(path):
    """dlopens the library at path and gives every ABI function its signature.
    Raises OSError if it cannot be loaded, AttributeError if a symbol is missing."""
    lib = C.CDLL(path)
    for name, (argtypes, restype) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    return lib


def check(lib, status):
    """Raises SlayError carrying the status name and the library's message
    unless status is SUCCESS. Call it right after the failing call: the
    message is thread-local and overwritten by the next call."""
    if status != SUCCESS:
        name = (lib.slay_status_name(status) or b"SLAY_STATUS_UNKNOWN").decode()
        raise SlayError(status, name, (lib.slay_last_error_message() or b"").decode())


def contiguous_strides(shape):
    """Row-major element strides of shape."""
    strides, step = [], 1
    for extent in reversed(shape):
        strides.insert(0, step)
        step *= extent
    return strides


def make_tensor(data_ptr, dtype, shape, strides=None):
    """A slay_tensor_t over memory at data_ptr (an int, host or device);
    row-major when strides is None."""
    if not 1 <= len(shape) <= MAX_RANK:
        raise ValueError(f"libslay tensors have rank 1..{MAX_RANK}, got shape {tuple(shape)}")
    strides = list(strides) if strides is not None else contiguous_strides(shape)
    pad = [0] * (MAX_RANK - len(shape))
    return Tensor(C.c_void_p(data_ptr), dtype, len(shape), (C.c_int64 * MAX_RANK)(*shape, *pad),
                  (C.c_int64 * MAX_RANK)(*strides, *pad))


def pointer_or_null(tensor):
    """A pointer to a Tensor, or NULL for None (optional arguments)."""
    return C.pointer(tensor) if tensor is not None else None


def _call_args(block, names, what, tensors):
    """One size-prefixed argument block: the Tensor pointers in `names` order
    (missing ones are NULL), then position_offset and seq_offsets (a packed
    call's (N+1,) int32/int64 offsets Tensor, or None), then the exact
    family's row_stats Tensor (or None) and, forward only, merge (0 or 1)."""
    offset = tensors.pop("position_offset", 0)
    seq_offsets = tensors.pop("seq_offsets", None)
    row_stats = tensors.pop("row_stats", None)
    merge = tensors.pop("merge", 0) if block is FwdArgs else 0
    unknown = set(tensors) - set(names)
    if unknown:
        raise TypeError(f"not {what} arguments: {sorted(unknown)}")
    args = block(C.sizeof(block), *(pointer_or_null(tensors.get(n)) for n in names), offset,
                 pointer_or_null(seq_offsets), pointer_or_null(row_stats))
    if merge:
        args.merge = merge
    return args


def fwd_args(**tensors):
    """slay_attn_fwd_args_t from Tensor keyword arguments, position_offset and merge."""
    return _call_args(FwdArgs, FWD_TENSORS, "forward", tensors)


def bwd_args(**tensors):
    """slay_attn_bwd_args_t from Tensor keyword arguments and position_offset."""
    return _call_args(BwdArgs, BWD_TENSORS, "backward", tensors)
