"""_numpy.py -- numpy arrays on libslay's CPU backend (forward and backward).

q (B, H, T, D), k (B, H_kv, T, D) and v (B, H_kv, T, Dv) are float32 or
float16 arrays (bfloat16 too, as ml_dtypes' dtype, when installed); any
strides whose innermost one is the element size (or whose last extent is 1)
are passed through unchanged, so a (B, T, H, D) buffer transposed to
(B, H, T, D) is not copied. States are (B, H, F, Dv+1) float32, parameters
(N,) float32, a packed call's seq_offsets (N+1,) int32 or int64.
"""
import contextlib

import numpy as np

from . import _abi, _core

_DTYPES = {"float32": _abi.FLOAT32, "float16": _abi.FLOAT16, "bfloat16": _abi.BFLOAT16}
_OFFSET_DTYPES = {"int32": _abi.INT32, "int64": _abi.INT64}
_WORKSPACE_ALIGNMENT = 16  # slay_attn_plan_get_workspace_size's contract


def _numpy_dtype(code):
    if code == _abi.BFLOAT16:
        import ml_dtypes  # only reachable for bfloat16 inputs, which come from ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype({_abi.FLOAT32: np.float32, _abi.FLOAT16: np.float16}[code])


def _layout_order(like):
    """like's dimensions from the largest stride to the smallest (ties keep
    their logical order): the order a new array with like's layout allocates."""
    return sorted(range(like.ndim), key=lambda i: -like.strides[i])


class NumpyArrays(_core.ArrayKind):
    """numpy arrays in host memory: the CPU backend, synchronous calls."""
    backend, device = _abi.BACKEND_CPU, 0

    @staticmethod
    def dtype_code(x):
        code = _DTYPES.get(x.dtype.name)
        if code is None:
            raise TypeError(f"libslay takes float32 or float16 arrays (bfloat16 via ml_dtypes), got {x.dtype}; "
                            "convert with .astype(numpy.float32)")
        return code

    def prepare(self, x, name):
        if x is None:
            return None
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{name} must be a numpy array like q, got {type(x).__name__}")
        self.dtype_code(x)
        item = x.itemsize
        readable = (x.flags.aligned and all(s >= 0 and s % item == 0 for s in x.strides)
                    and (x.ndim == 0 or x.shape[-1] <= 1 or x.strides[-1] == item))
        return x if readable else np.ascontiguousarray(x)

    @staticmethod
    def prepare_offsets(x):
        if isinstance(x, (list, tuple)):
            x = np.asarray(x, dtype=np.int64)
        if not isinstance(x, np.ndarray):
            raise TypeError(f"seq_offsets must be a numpy array (or a list of ints) like q, got {type(x).__name__}")
        if x.dtype.name not in _OFFSET_DTYPES:
            raise TypeError(f"seq_offsets must be int32 or int64, got {x.dtype}")
        if x.ndim != 1:
            raise ValueError(f"seq_offsets must be 1-D (N+1 offsets of N packed sequences), got shape {x.shape}")
        return np.ascontiguousarray(x)  # stride 1; a no-op for the usual array

    def describe(self, x):
        # numpy may give an array without elements zero strides, which libslay
        # rejects (innermost stride 1); no element is addressed, so any do.
        strides = [s // x.itemsize for s in x.strides] if x.size else None
        code = _OFFSET_DTYPES.get(x.dtype.name)
        return _abi.make_tensor(x.ctypes.data, self.dtype_code(x) if code is None else code, list(x.shape), strides)

    def empty(self, shape, dtype_code, like=None):
        dtype = _numpy_dtype(dtype_code)
        if like is None:
            return np.empty(shape, dtype)
        order = _layout_order(like)
        stored = np.empty([shape[i] for i in order], dtype)
        return stored.transpose(np.argsort(order))

    def zeros(self, shape, dtype_code, like=None):
        x = self.empty(shape, dtype_code, like)
        x[...] = 0
        return x

    @staticmethod
    def workspace(nbytes):
        if nbytes == 0:
            return None, None
        buffer = np.empty(nbytes + _WORKSPACE_ALIGNMENT, np.uint8)
        address = -(-buffer.ctypes.data // _WORKSPACE_ALIGNMENT) * _WORKSPACE_ALIGNMENT
        return buffer, address

    @staticmethod
    def stream():
        return None  # the CPU backend takes no stream

    @staticmethod
    def active():
        return contextlib.nullcontext()


ARRAYS = NumpyArrays()
