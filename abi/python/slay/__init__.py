"""slay -- Python bindings of libslay: SLAY attention (Spherical Linearized
Attention with Yat kernels) and the attention variants it is compared with,
on q, k (B, H, T, D) and v (B, H, T, Dv) giving out (B, H, T, Dv).

    import numpy as np, slay
    q = k = v = np.random.randn(1, 4, 128, 32).astype(np.float32)
    fp = slay.FeatureParams.sample("slay_anchor", num_heads=4, head_dim=32, seed=0, num_quad_nodes=2)
    out = slay.attention(q, k, v, "slay_anchor", params=fp, num_quad_nodes=2)

numpy arrays run on libslay's CPU reference backend; torch tensors on their
device with autograd (slay.nn.SlayAttention is a drop-in layer). torch is
optional: it is imported only when a tensor is passed or slay.nn is used.
The library is loaded with ctypes at import (see _loader.py for the search
order; SLAY_LIBRARY overrides it).
"""
import importlib

from ._abi import SlayError
from ._api import attention, attention_backward
from ._core import ATTRIBUTES, VARIANTS, library_path, variant_name, version
from .features import FeatureParams

__version__ = "0.1.0"
__all__ = ["attention", "attention_backward", "FeatureParams", "SlayError", "VARIANTS", "ATTRIBUTES",
           "variant_name", "version", "library_path", "SlayAttention"]


def __getattr__(name):
    # slay.nn and slay.SlayAttention import torch on first use only, so numpy
    # users never need it.
    if name in ("nn", "SlayAttention"):
        nn = importlib.import_module(__name__ + ".nn")
        return nn if name == "nn" else nn.SlayAttention
    raise AttributeError(f"module 'slay' has no attribute {name!r}")
