"""_torch.py -- torch tensors on libslay's CPU or CUDA backend, and the
torch.autograd.Function behind slay.attention on tensors.

q (B, H, T, D), k (B, H_kv, T, D), v (B, H_kv, T, Dv) in float32, bfloat16
or float16 on one device; states (B, H, F, Dv+1) float32; params (N,)
float32 and a packed call's seq_offsets (N+1,) int32/int64 on that device.
CUDA calls use a libslay handle on the tensors' device, enqueue on torch's
current stream of that device, and take their workspace from torch's caching
allocator (stream-ordered, so it is reused only after the call on that stream).
Views are passed with their strides; a tensor is copied only when its
innermost stride is not 1 (e.g. an expanded gradient).
"""
import contextlib
import threading

import torch
from torch.autograd.function import once_differentiable

from . import _abi, _core

_DTYPES = {torch.float32: _abi.FLOAT32, torch.bfloat16: _abi.BFLOAT16, torch.float16: _abi.FLOAT16}
_TORCH_DTYPES = {code: dtype for dtype, code in _DTYPES.items()}
_OFFSET_DTYPES = {torch.int32: _abi.INT32, torch.int64: _abi.INT64}


class TorchArrays(_core.ArrayKind):
    """torch tensors on one device: the CPU backend for "cpu", CUDA for "cuda:i"."""

    def __init__(self, device):
        self.torch_device = device
        if device.type == "cuda":
            self.backend, self.device = _abi.BACKEND_CUDA, device.index
        elif device.type == "cpu":
            self.backend, self.device = _abi.BACKEND_CPU, 0
        else:
            raise ValueError(f"libslay runs on CPU and CUDA tensors, got a tensor on {device}")

    @staticmethod
    def dtype_code(x):
        code = _DTYPES.get(x.dtype)
        if code is None:
            raise TypeError(f"libslay takes float32, bfloat16 or float16 tensors, got {x.dtype}; "
                            "convert with .float()")
        return code

    def prepare(self, x, name):
        if x is None:
            return None
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor like q, got {type(x).__name__}")
        if x.device != self.torch_device:
            raise ValueError(f"{name} is on {x.device} but q is on {self.torch_device}")
        self.dtype_code(x)
        if x.dim() > 0 and x.shape[-1] > 1 and x.stride(-1) != 1:
            x = x.contiguous()
        return x

    def prepare_offsets(self, x):
        if isinstance(x, (list, tuple)):
            x = torch.tensor(x, dtype=torch.int64, device=self.torch_device)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"seq_offsets must be a torch tensor (or a list of ints) like q, got {type(x).__name__}")
        if x.dtype not in _OFFSET_DTYPES:
            raise TypeError(f"seq_offsets must be int32 or int64, got {x.dtype}")
        if x.dim() != 1:
            raise ValueError(f"seq_offsets must be 1-D (N+1 offsets of N packed sequences), got shape "
                             f"{tuple(x.shape)}")
        if x.device != self.torch_device:  # libslay reads them in the handle's memory
            raise ValueError(f"seq_offsets is on {x.device} but q is on {self.torch_device}; "
                             f"move it with .to(q.device)")
        return x.contiguous()

    def describe(self, x):
        code = _OFFSET_DTYPES.get(x.dtype)
        return _abi.make_tensor(x.data_ptr(), self.dtype_code(x) if code is None else code, list(x.shape),
                                list(x.stride()))

    def empty(self, shape, dtype_code, like=None):
        dtype = _TORCH_DTYPES[dtype_code]
        if like is None:
            return torch.empty(shape, dtype=dtype, device=self.torch_device)
        order = sorted(range(like.dim()), key=lambda i: -like.stride(i))  # like's memory order
        stored = torch.empty([shape[i] for i in order], dtype=dtype, device=self.torch_device)
        return stored.permute([order.index(i) for i in range(len(order))])

    def zeros(self, shape, dtype_code, like=None):
        return self.empty(shape, dtype_code, like).zero_()

    def workspace(self, nbytes):
        if nbytes == 0:
            return None, None
        # torch's allocator aligns blocks to at least 512 bytes (16 are required).
        buffer = torch.empty(nbytes, dtype=torch.uint8, device=self.torch_device)
        return buffer, buffer.data_ptr()

    def stream(self):
        if self.backend == _abi.BACKEND_CUDA:
            return torch.cuda.current_stream(self.torch_device).cuda_stream
        return None

    def active(self):
        if self.backend == _abi.BACKEND_CUDA:
            return torch.cuda.device(self.torch_device)
        return contextlib.nullcontext()

    def autograd_forward(self, call, return_state):
        """attention() on tensors: through AttentionFunction so autograd records it."""
        outputs = AttentionFunction.apply(call.q, call.k, call.v, call.initial_state, call.params, call, return_state)
        return outputs if return_state else outputs[0]


_arrays_lock = threading.Lock()
_arrays = {}


def arrays_for(x):
    """The (cached) TorchArrays of x's device; "cuda" without an index means the current device."""
    device = x.device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    with _arrays_lock:
        if device not in _arrays:
            _arrays[device] = TorchArrays(device)
        return _arrays[device]


class AttentionFunction(torch.autograd.Function):
    """(out, final_state) = attention(q, k, v, initial_state) with libslay's
    backward: gradients for q, k, v and initial_state (params get none, as
    in the reference, whose random features are fixed buffers; grouped k, v
    get their group's summed gradient; a packed call's offsets ride in
    `call`). final_state is
    None unless return_state; its gradient, when it is used, flows into the
    backward as dfinal_state."""

    @staticmethod
    def forward(ctx, q, k, v, initial_state, params, call, return_state):
        out, final_state = _core.run_forward(call.kind, call.plan, q, k, v, params, initial_state, return_state,
                                             call.position_offset, call.packing)
        ctx.kind, ctx.plan, ctx.position_offset = call.kind, call.plan, call.position_offset
        ctx.packing = call.packing  # the integer offsets get no gradient: kept as is, not saved for backward
        ctx.save_for_backward(q, k, v, initial_state, params, out)
        ctx.set_materialize_grads(False)  # an unused output gets None, not a tensor of zeros
        return out, final_state

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dfinal_state):
        q, k, v, initial_state, params, out = ctx.saved_tensors
        kind = ctx.kind
        if dout is None:  # only the final state was used
            dout = kind.zeros(tuple(out.shape), kind.dtype_code(out))
        dq, dk, dv, dinitial_state = _core.run_backward(
            kind, ctx.plan, q, k, v, out, kind.prepare(dout, "dout"), params, initial_state,
            kind.prepare(dfinal_state, "dfinal_state"), ctx.needs_input_grad[3], ctx.position_offset, ctx.packing)
        need = ctx.needs_input_grad
        return (dq if need[0] else None, dk if need[1] else None, dv if need[2] else None,
                dinitial_state if need[3] else None, None, None, None)
