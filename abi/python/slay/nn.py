"""nn.py -- slay.nn.SlayAttention, a drop-in multi-head attention layer:
x (B, T, C) -> qkv = x W_qkv -> q (B, H, T, D), k, v (B, H_kv, T, D) with
D = C / H (H_kv = H, or fewer grouped-query heads) -> slay.attention -> heads
concatenated (B, T, C) -> out projection. A packed batch is x (1, T_total, C)
with seq_offsets.

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
    num_kv_heads          H_kv key/value heads (grouped-query attention; H a
                          multiple of H_kv); None: H. qkv then maps C to
                          (H + 2 H_kv) D: q's H heads, then k's, then v's
    variant               any name slay.attention accepts; default the paper's SLAY
    causal                key j visible to query i iff j <= i
    seed                  draws the feature parameters (FeatureParams.sample)
                          unless params is given
    params                FeatureParams to use instead (e.g. from_module)
    bias                  biased projections (the reference before 2026-01-28, and JAX)
    attributes            libslay attributes (num_quad_nodes=2, num_features=16, ...)

    forward(x, initial_state=None, return_state=False, position_offset=0, seq_offsets=None)
    returns y (B, T, C), or (y, final_state (B, H, F, D+1)) for return_state;
    with seq_offsets (N+1 offsets, see slay.attention) x is (1, T_total, C)
    holding N sequences and the states have N rows.
    """

    def __init__(self, embed_dim, num_heads, variant="slay_anchor", causal=True, seed=0, params=None, bias=False,
                 device=None, dtype=None, num_kv_heads=None, **attributes):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads < 1 or num_heads % num_kv_heads:
            raise ValueError(f"num_heads {num_heads} is not a multiple of num_kv_heads {num_kv_heads}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.num_kv_heads = num_kv_heads
        self.variant, self.causal, self.attributes = _core.variant_name(variant), causal, dict(attributes)
        self.qkv = nn.Linear(embed_dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=bias, device=device,
                             dtype=dtype)
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

    def forward(self, x, initial_state=None, return_state=False, position_offset=0, seq_offsets=None):
        B, T, C = x.shape
        # (B, T, H + 2 H_kv, D) -> (B, H, T, D) and two (B, H_kv, T, D) strided
        # views of qkv: no copies (for H_kv = H the authors' (B, T, 3, H, D) split).
        heads = (self.num_heads, self.num_kv_heads, self.num_kv_heads)
        q, k, v = (part.transpose(1, 2) for part in
                   self.qkv(x).view(B, T, sum(heads), self.head_dim).split(heads, dim=2))
        result = attention(q, k, v, self.variant, self.causal, params=self.params, initial_state=initial_state,
                           return_state=return_state, position_offset=position_offset, seq_offsets=seq_offsets,
                           **self.attributes)
        out, state = result if return_state else (result, None)
        # out is laid out like v, i.e. (B, T, H, D) in memory: this reshape is a view.
        y = self.out(out.transpose(1, 2).reshape(B, T, C))
        return (y, state) if return_state else y

    def extra_repr(self):
        extra = "".join(f", {k}={v}" for k, v in self.attributes.items())
        if self.num_kv_heads != self.num_heads:
            extra = f", num_kv_heads={self.num_kv_heads}" + extra
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, variant={self.variant!r}, "
                f"causal={self.causal}{extra}")
