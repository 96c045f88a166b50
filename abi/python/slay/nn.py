"""nn.py -- slay.nn.SlayAttention, a drop-in multi-head attention layer:
x (B, T, C) -> qkv = x W_qkv -> q, k, v (B, H, T, D) with D = C / H ->
slay.attention -> heads concatenated (B, T, C) -> out projection.

It mirrors the authors' modules (SPEC.md §0 "Module wrapper"): projections
named qkv (C -> 3C) and out (C -> C), without bias by default, and the random
features as a buffer ("params", never trained, saved in the state_dict), so
the authors' weights load by name and FeatureParams.from_module copies their
buffers. Needs torch.
"""
import torch
from torch import nn

from . import _core
from ._api import attention
from .features import FeatureParams, module_attributes


class SlayAttention(nn.Module):
    """Multi-head attention of `variant` with libslay kernels.

    embed_dim, num_heads  C and H (C divisible by H)
    variant               any name slay.attention accepts; default the paper's SLAY
    causal                key j visible to query i iff j <= i
    seed                  draws the feature parameters (FeatureParams.sample)
                          unless params is given
    params                FeatureParams to use instead (e.g. from_module)
    bias                  biased projections (the reference before 2026-01-28, and JAX)
    attributes            libslay attributes (num_quad_nodes=2, num_features=16, ...)

    forward(x, initial_state=None, return_state=False, position_offset=0)
    returns y (B, T, C), or (y, final_state (B, H, F, D+1)) for return_state.
    """

    def __init__(self, embed_dim, num_heads, variant="slay_anchor", causal=True, seed=0, params=None, bias=False,
                 device=None, dtype=None, **attributes):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.variant, self.causal, self.attributes = _core.variant_name(variant), causal, dict(attributes)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=bias, device=device, dtype=dtype)
        self.out = nn.Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if params is None and _core.layout_plan(self.variant, num_heads=num_heads, head_dim=self.head_dim,
                                                **attributes).param_count:
            params = FeatureParams.sample(self.variant, num_heads, self.head_dim, seed=seed, **attributes)
        tensor = None
        if params is not None:
            if not isinstance(params, FeatureParams):
                params = FeatureParams(self.variant, params, num_heads, self.head_dim, **attributes)
            tensor = params.to(device if device is not None else "cpu").clone()
        # A buffer: moves with .to()/.cuda(), is saved, gets no gradient.
        self.register_buffer("params", tensor)

    def _apply(self, fn, *args, **kwargs):
        # module.to(torch.bfloat16) casts floating buffers; libslay's parameters
        # stay float32 (rounding them would change the features), so only the
        # device move is kept for them.
        params = self.params
        result = super()._apply(fn, *args, **kwargs)
        if params is not None and self.params.dtype != torch.float32:
            self.params = params.to(self.params.device)
        return result

    @classmethod
    def from_module(cls, module, causal=True):
        """A SlayAttention computing what one of the authors' modules computes:
        its variant and attributes, its random buffers and its qkv/out weights."""
        variant, attributes = module_attributes(module)
        heads = attributes.pop("num_heads")
        attributes.pop("head_dim")
        weight = module.qkv.weight
        layer = cls(weight.shape[1], heads, variant, causal, params=FeatureParams.from_module(module),
                    bias=module.qkv.bias is not None, device=weight.device, dtype=weight.dtype, **attributes)
        layer.qkv.load_state_dict(module.qkv.state_dict())
        layer.out.load_state_dict(module.out.state_dict())
        return layer

    def forward(self, x, initial_state=None, return_state=False, position_offset=0):
        B, T, C = x.shape
        # (B, T, 3, H, D) -> three (B, H, T, D) strided views of qkv: no copies.
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        result = attention(q, k, v, self.variant, self.causal, params=self.params, initial_state=initial_state,
                           return_state=return_state, position_offset=position_offset, **self.attributes)
        out, state = result if return_state else (result, None)
        # out is laid out like v, i.e. (B, T, H, D) in memory: this reshape is a view.
        y = self.out(out.transpose(1, 2).reshape(B, T, C))
        return (y, state) if return_state else y

    def extra_repr(self):
        extra = "".join(f", {k}={v}" for k, v in self.attributes.items())
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, variant={self.variant!r}, "
                f"causal={self.causal}{extra}")
