"""features.py -- slay.FeatureParams: the fp32 feature-parameter vector (N,) of
one variant and layout (random projections omega (R, H, D, M), anchors (P, D),
...), sampled from a seed, loaded from an array or tensor, or copied from the
buffers of the authors' PyTorch attention modules.

The layout is libslay's (slay_attn_plan_get_param_segment): named row-major
segments back to back. The segments match the authors' module buffers one for
one (SPEC.md §A); only some names differ, see AUTHOR_BUFFER_NAMES.
"""
import numpy as np

from . import _abi, _core
from ._numpy import ARRAYS as NUMPY_ARRAYS

# libslay segment name -> the authors' buffer names (src/attention/*.py of the
# reference); segments not listed carry the same name there (omega, rm_r1,
# rm_r2, ts_hash1, ts_sign1, ts_hash2, ts_sign2).
AUTHOR_BUFFER_NAMES = {
    "anchors": ("anchor_vectors", "nystrom_anchors"),  # anchor, Nystrom
    "nystrom_w": ("nystrom_W",),
    "performer_w": ("proj_matrix",),                   # FastAttention, randn/sqrt(D)
    "rff_phase": ("bias",),                            # RFFCausalAttention, U[0, 2 pi)
}

# The authors' module classes (registry keys in SPEC.md §0.1) -> variant.
AUTHOR_CLASSES = {
    "StandardCausalAttention": "standard",
    "YatCausalAttention": "yat",
    "YatSphericalCausalAttention": "yat_spherical",
    "YatPerformerAnchorCausalAttention": "slay_anchor",
    "YatPerformerLaplaceCausalAttention": "slay_laplace",
    "YatPerformerCausalAttention": "slay_hadamard",
    "YatPerformerTensorCausalAttention": "slay_tensorsketch",
    "YatPerformerRMCausalAttention": "slay_random_maclaurin",
    "YatPerformerNystromCausalAttention": "slay_nystrom",
    "FastAttention": "performer",
    "LinearCausalAttention": "linear",
    "CosformerCausalAttention": "cosformer",
    "RFFCausalAttention": "rff",
}

# Attributes that shape the parameter vector; a call must agree on them.
_LAYOUT_ATTRIBUTES = ("num_heads", "head_dim")


def _describe_layout(segments):
    return ", ".join(f"{s.name} {tuple(s.shape)}" for s in segments) or "no parameters"


class FeatureParams:
    """The feature parameters of `variant` for num_heads heads of head_dim.

    data         1-D float32 numpy array or torch tensor of param_count elements
    variant      canonical variant name ("slay_anchor")
    attributes   the attributes the layout was made with (num_heads, head_dim,
                 num_quad_nodes, num_features, poly_dim, ...)
    segments     (Segment(name, offset, shape), ...) of the layout

    Pass it as attention(..., params=fp): the call checks that its own layout
    is the same, and on CUDA uses a device copy made once per device.
    """

    def __init__(self, variant, data, num_heads, head_dim, **attributes):
        self.variant = _core.variant_name(variant)
        self.attributes = dict(attributes, num_heads=num_heads, head_dim=head_dim)
        plan = _core.layout_plan(self.variant, **self.attributes)
        self.segments = plan.segments
        shape, dtype = tuple(getattr(data, "shape", ())), str(getattr(data, "dtype", type(data).__name__))
        if shape != (plan.param_count,) or not dtype.endswith("float32"):
            raise ValueError(f"{self.variant} parameters are ({plan.param_count},) float32 "
                             f"[{_describe_layout(self.segments)}], got {shape} {dtype}")
        self.data = data
        self._device_copies = {}  # torch.device -> tensor

    # ----------------------------------------------------------- construction
    @classmethod
    def sample(cls, variant, num_heads, head_dim, seed=0, offset=0, **attributes):
        """Draws the parameters with libslay's generator (cuRAND Philox4x32-10,
        segment i from (seed, offset + i * 2^32)) on the CPU backend: the same
        (seed, offset) give the same parameters as the C API on any backend."""
        plan = _core.layout_plan(variant, num_heads=num_heads, head_dim=head_dim, **attributes)
        data = np.empty(plan.param_count, np.float32)
        if plan.param_count:
            _core.run_sample(NUMPY_ARRAYS, plan, data, seed, offset)
        return cls(variant, data, num_heads, head_dim, **attributes)

    @classmethod
    def from_segments(cls, variant, segments, num_heads, head_dim, **attributes):
        """Assembles the vector from {segment name: array or tensor of the
        segment's shape}; every segment of the layout must be given (integer
        buffers such as ts_hash1 are converted to float32)."""
        plan = _core.layout_plan(variant, num_heads=num_heads, head_dim=head_dim, **attributes)
        missing = [s.name for s in plan.segments if s.name not in segments]
        extra = sorted(set(segments) - {s.name for s in plan.segments})
        if missing or extra:
            raise ValueError(f"{_core.variant_name(variant)} needs segments [{_describe_layout(plan.segments)}]; "
                             f"missing {missing}, unexpected {extra}")
        data = np.empty(plan.param_count, np.float32)
        for s in plan.segments:
            values = _to_numpy(segments[s.name])
            if tuple(values.shape) != tuple(s.shape):
                raise ValueError(f"segment {s.name} has shape {tuple(s.shape)} in this layout, "
                                 f"got {tuple(values.shape)}")
            data[s.offset:s.offset + s.count] = values.reshape(-1)
        return cls(variant, data, num_heads, head_dim, **attributes)

    @classmethod
    def from_module(cls, module):
        """Copies the random buffers of one of the authors' attention modules
        (YatPerformerAnchorCausalAttention, FastAttention, ...; AUTHOR_CLASSES)
        and reads the attributes they imply (heads, R, M, P, epsilon, ...)."""
        variant, attributes = module_attributes(module)
        buffers = dict(module.named_buffers(recurse=False))
        plan = _core.layout_plan(variant, **attributes)
        segments = {}
        for s in plan.segments:
            for name in (s.name,) + AUTHOR_BUFFER_NAMES.get(s.name, ()):
                if name in buffers:
                    segments[s.name] = buffers[name]
                    break
            else:
                raise ValueError(f"{type(module).__name__} has no buffer for segment {s.name} "
                                 f"(looked for {(s.name,) + AUTHOR_BUFFER_NAMES.get(s.name, ())})")
        return cls.from_segments(variant, segments, **attributes)

    @classmethod
    def fit_poly2_frame(cls, q, k, norm_eps=1e-12, **attributes):
        """slay_poly2 parameters whose frame is FITTED TO DATA (data-dependent:
        the approximation then depends on how well the calibration batch
        represents later inputs; FeatureParams.sample draws the data-blind
        random frame of the paper's comparison).

        q, k   a calibration batch, arrays or tensors (B, H, T, D) (k may have
               H_kv heads; each key head counts for the query heads of its group)
        attributes  the plan's slay_poly2 attributes (num_features = the
               budget, poly2_gamma, ...); num_heads and head_dim come from q

        Per head h the frame S_h (D, d) is the top-d eigenvectors of the
        uncentred second moment of the unit rows q^ = q/max(|q|, eps) and k^
        of that head (the principal directions of the directions attention
        compares): if q^ and k^ lie in a d-dimensional subspace, S_h spans it
        and u_q . u_k = (D/d) q^ . k^ exactly, so slay_poly2 computes the
        kernel (q^ . k^)^2 (+ gamma/D) without approximation. Columns come in
        decreasing eigenvalue order, each with its largest-magnitude entry
        positive (deterministic)."""
        qn, kn = _to_numpy(q).astype(np.float64), _to_numpy(k).astype(np.float64)
        if qn.ndim != 4 or kn.ndim != 4 or qn.shape[3] != kn.shape[3] or qn.shape[1] % kn.shape[1]:
            raise ValueError(f"fit_poly2_frame needs q (B, H, T, D) and k (B, H_kv, T, D) with H a multiple of "
                             f"H_kv, got {qn.shape} and {kn.shape}")
        H, D = qn.shape[1], qn.shape[3]
        kn = np.repeat(kn, H // kn.shape[1], axis=1)
        plan = _core.layout_plan("slay_poly2", num_heads=H, head_dim=D, **attributes)
        (frame_segment,) = plan.segments
        d = frame_segment.shape[2]
        frame = np.empty((H, D, d), np.float32)
        for h in range(H):
            rows = np.concatenate([qn[:, h].reshape(-1, D), kn[:, h].reshape(-1, D)])
            rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), norm_eps)
            _, vectors = np.linalg.eigh(rows.T @ rows)   # ascending eigenvalues
            top = vectors[:, ::-1][:, :d]
            signs = np.sign(top[np.argmax(np.abs(top), axis=0), np.arange(d)])
            frame[h] = (top * np.where(signs == 0, 1.0, signs)).astype(np.float32)
        return cls.from_segments("slay_poly2", {frame_segment.name: frame}, num_heads=H, head_dim=D, **attributes)

    # ----------------------------------------------------------------- access
    @property
    def param_count(self):
        return int(self.data.shape[0])

    def segment(self, name):
        """The named segment as a view of shape segment.shape."""
        for s in self.segments:
            if s.name == name:
                return self.data[s.offset:s.offset + s.count].reshape(s.shape)
        raise KeyError(f"{self.variant} has no segment {name!r}; it has [{_describe_layout(self.segments)}]")

    def numpy(self):
        return _to_numpy(self.data)

    def to(self, device):
        """The vector as a torch tensor on device, copied once per device."""
        import torch
        device = torch.device(device)
        if isinstance(self.data, torch.Tensor) and self.data.device == device:
            return self.data
        if device not in self._device_copies:
            source = self.data if isinstance(self.data, torch.Tensor) else torch.from_numpy(self.numpy())
            self._device_copies[device] = source.to(device=device, dtype=torch.float32).contiguous()
        return self._device_copies[device]

    def __repr__(self):
        extra = {k: v for k, v in self.attributes.items() if k not in _LAYOUT_ATTRIBUTES}
        return (f"FeatureParams({self.variant!r}, num_heads={self.attributes['num_heads']}, "
                f"head_dim={self.attributes['head_dim']}, {extra}: {_describe_layout(self.segments)})")


def _to_numpy(x):
    """A float32 numpy copy or view of an array or (CPU or CUDA) tensor."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def module_attributes(module):
    """(variant, attributes) of one of the authors' attention modules: heads
    and head dim from the module, R and M from omega (R, H, D, M) (or M from
    the (H, D, M) projections of performer and rff), P from the (P, D) poly
    buffers (TensorSketch: its poly_sketch_dim), epsilon, the denominator
    stabilizer, the Nystrom regularizer and the yat score scale as stored."""
    cls = type(module).__name__
    if cls not in AUTHOR_CLASSES:
        raise TypeError(f"{cls} is not one of the authors' attention modules: {sorted(AUTHOR_CLASSES)}")
    variant = AUTHOR_CLASSES[cls]
    heads = int(module.n_heads)
    attributes = dict(num_heads=heads, head_dim=int(getattr(module, "head_dim", module.embed_dim // heads)))
    buffers = dict(module.named_buffers(recurse=False))
    if "omega" in buffers and buffers["omega"].dim() == 4:          # (R, H, D, M)
        attributes["num_quad_nodes"] = int(buffers["omega"].shape[0])
        attributes["num_features"] = int(buffers["omega"].shape[3])
    for name in ("proj_matrix", "omega"):                             # (H, D, M)
        if name in buffers and buffers[name].dim() == 3:
            attributes["num_features"] = int(buffers[name].shape[2])
    for name in ("anchor_vectors", "nystrom_anchors", "rm_r1"):        # (P, D)
        if name in buffers:
            attributes["poly_dim"] = int(buffers[name].shape[0])
    if variant == "slay_tensorsketch":
        attributes["poly_dim"] = int(module.poly_sketch_dim)
    if hasattr(module, "epsilon"):
        attributes["epsilon"] = float(module.epsilon)
    if variant in ("slay_anchor", "slay_random_maclaurin", "slay_nystrom") and hasattr(module, "delta"):
        attributes["stabilizer"] = float(module.delta)
    if variant == "slay_nystrom" and hasattr(module, "nystrom_reg"):
        attributes["nystrom_reg"] = float(module.nystrom_reg)
    if variant in ("yat", "yat_spherical") and "score_scale" in buffers:
        attributes["score_scale"] = float(buffers["score_scale"])  # yat stores sqrt(sigma): SPEC §A.8
    return variant, attributes


def resolve_params(params, plan, kind, device=None):
    """The params tensor a call passes to libslay: None for variants without
    parameters, FeatureParams checked against the call's layout and moved to
    the call's device, or a raw (N,) float32 array/tensor as is (libslay checks it)."""
    if params is None:
        if plan.param_count:
            name = _core.VARIANT_NAMES[plan.variant]
            raise ValueError(f"variant {name} needs feature parameters [{_describe_layout(plan.segments)}]: pass "
                             f"params=slay.FeatureParams.sample({name!r}, num_heads, head_dim, seed=0, ...) "
                             "with the call's attributes")
        return None
    if isinstance(params, FeatureParams):
        if params.variant != _core.VARIANT_NAMES[plan.variant] or params.segments != plan.segments:
            raise ValueError(f"params were made for {params.variant} [{_describe_layout(params.segments)}], this "
                             f"call is {_core.VARIANT_NAMES[plan.variant]} [{_describe_layout(plan.segments)}]")
        params = params.numpy() if device is None else params.to(device)
    return kind.prepare(params, "params")
