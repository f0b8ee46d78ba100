"""Non-equivariant baselines on the same rigid-body tokens: a transformer and an MLP.

Both read the flattened per-body features of :func:`~experiments.models.base.flat_body_features`
(positions, axes, velocity, angular velocity, sizes, mass, one-hot shape, free-flight keypoints: 38
numbers, world frame), standardised with training-set statistics (:meth:`fit_normalization`, called by
the training module before training; the identity until then), and predict the 12 keypoint
coordinates of each body as an offset from a reference: the free-flight keypoints
(``residual="ballistic"``, default, as for GATr), the input keypoints (``residual="keypoints"``, "no
motion") or the input centre (``residual="centre"``). The offset is the head's output times the RMS of
(target - reference) over the training set, and the head is zero-initialised, so an untrained model
predicts the reference.

``centre=True`` (transformer) subtracts each scene's mean body position (the GATr embedding's centring,
:func:`~experiments.models.embedding.scene_centre`) from the positions and the free-flight keypoints
before the features: a translation-invariant baseline that still has to learn
rotations and reflections (the raw one has to learn translations too).

Width / depth mapping (parameter counts comparable with GATr at the same knobs):

* ``TransformerBodyModel``: hidden size ``h = hidden_per_width * width`` (default 6 * width, rounded up to
  a multiple of ``num_heads``), ``depth`` pre-norm blocks (multi-head self-attention over the bodies +
  4h GELU MLP, ~12 h^2 = 432 width^2 parameters each), ``num_heads`` heads.
* ``MLPBodyModel``: all bodies' features concatenated in body order (``num_bodies * 38`` inputs; the
  number of bodies is fixed at construction), hidden size ``h = hidden_per_width * width`` (default 6 *
  width), ``depth`` pre-norm residual blocks ``h -> 4h -> h`` (~8 h^2 parameters each), output
  ``num_bodies * 12``.

Measured at width 16, depth 4 (trainable parameters): GATr 139k / 237k / 418k on G(3,0,0) / G(3,0,1) /
G(4,1,0); transformer 451k; MLP 313k (4 bodies). GATr's per-block count is ~130 / 230 / 410 width^2 on
those algebras, so 6 * width puts the baselines at the top of that range (8 * width would give 1.9-5.7x
the GATr counts). GATr costs far more FLOPs per parameter (its linear maps act on ``dim`` components
each): at width 16, depth 4 the training FLOPs per 4-body sample are 32 M / 108 M / 397 M for GATr on
those algebras, 11 M for the transformer, 1.9 M for the MLP.

FLOPs: the convention of :mod:`gatr.flops` (dense matrix products only, training = 3 x forward), with its
helpers, so the baselines and GATr are counted the same way.
"""

from __future__ import annotations

import torch
from torch import nn

from gatr.flops import attention_flops, linear_flops, training_flops

from .base import FLAT_FEATURES, BodyModel, FeatureStandardizer, flat_body_features
from .embedding import input_keypoints, reference_keypoints, scene_centre

__all__ = ["TransformerBodyModel", "MLPBodyModel", "NUM_FLAT_FEATURES", "mlp_flops", "transformer_block_flops",
           "transformer_flops"]

NUM_FLAT_FEATURES = sum(n for _, n in FLAT_FEATURES)
RESIDUALS = ("ballistic", "keypoints", "centre")


# ---------------------------------------------------------------------- FLOPs (convention of gatr.flops)
def mlp_flops(in_features: int, hidden_features: int, out_features: int | None = None, layers: int = 2) -> int:
    """Forward FLOPs per token of an MLP ``in -> hidden (x layers-1) -> out``."""
    out_features = in_features if out_features is None else out_features
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    if layers == 1:
        return linear_flops(in_features, out_features)
    return (linear_flops(in_features, hidden_features) + (layers - 2) * linear_flops(hidden_features, hidden_features)
            + linear_flops(hidden_features, out_features))


def transformer_block_flops(d_model: int, num_items: int, ffn_hidden: int | None = None) -> int:
    """Forward FLOPs per token of a standard pre-norm transformer block (qkv, attention, out, FFN)."""
    ffn_hidden = 4 * d_model if ffn_hidden is None else ffn_hidden
    return (linear_flops(d_model, 3 * d_model) + attention_flops(num_items, d_model, d_model)
            + linear_flops(d_model, d_model) + mlp_flops(d_model, ffn_hidden, d_model))


def transformer_flops(d_model: int, num_layers: int, num_items: int, in_features: int, out_features: int,
                      ffn_hidden: int | None = None) -> int:
    """Forward FLOPs per token of embedding + ``num_layers`` blocks + output head."""
    return (linear_flops(in_features, d_model) + num_layers * transformer_block_flops(d_model, num_items, ffn_hidden)
            + linear_flops(d_model, out_features))


def _reference(batch: dict, residual: str) -> torch.Tensor:
    if residual == "centre":
        kp = input_keypoints(batch)
        return batch["positions"].unsqueeze(-2).expand_as(kp)
    return reference_keypoints(batch, residual)


def _check_residual(residual: str) -> str:
    if residual not in RESIDUALS:
        raise ValueError(f"unknown residual {residual!r}; valid: {list(RESIDUALS)}")
    return residual


class _FlatBaseline(BodyModel):
    """Standardised flat features in, scaled keypoint offsets out (shared by both baselines)."""

    centre: bool = False

    def _init_normalization(self, residual: str) -> None:
        self.residual = _check_residual(residual)
        self.standardize = FeatureStandardizer(NUM_FLAT_FEATURES)
        self.register_buffer("target_scale", torch.tensor(1.0))

    def _scene_centre(self, batch: dict) -> torch.Tensor | None:
        return scene_centre(batch["positions"]) if self.centre else None

    def features(self, batch: dict) -> torch.Tensor:
        """Standardised ``(B, N, 38)`` features (centred first when ``centre``)."""
        return self.standardize(flat_body_features(batch, self._scene_centre(batch)))

    def predict(self, batch: dict, offsets: torch.Tensor) -> torch.Tensor:
        """Reference keypoints plus ``offsets`` ``(B, N, 12)`` in units of ``target_scale``."""
        ref = _reference(batch, self.residual)
        return ref + self.target_scale.to(ref.dtype) * offsets.reshape(*offsets.shape[:-1], 4, 3)

    @torch.no_grad()
    def fit_normalization(self, batch: dict) -> None:
        """Feature mean/std and the RMS of (target - reference) from training samples ``batch``."""
        self.standardize.fit(flat_body_features(batch, self._scene_centre(batch)))
        residual = batch["target_keypoints"].to(torch.float64) - _reference(batch, self.residual).to(torch.float64)
        rms = residual.pow(2).sum(-1).mean().sqrt()
        self.target_scale.fill_(float(rms) if float(rms) > 1e-9 else 1.0)


class _FeedForward(nn.Module):
    def __init__(self, hidden: int, expansion: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.net = nn.Sequential(nn.Linear(hidden, expansion * hidden), nn.GELU(), nn.Linear(expansion * hidden, hidden))

    def forward(self, x):
        return x + self.net(self.norm(x))


class _TransformerBlock(nn.Module):
    def __init__(self, hidden: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.mlp = _FeedForward(hidden)

    def forward(self, x, attention_mask=None):
        *lead, n, h = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(*lead, n, 3, self.num_heads, h // self.num_heads).unbind(-3)
        q, k, v = (t.transpose(-2, -3) for t in (q, k, v))  # (..., heads, n, d)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        x = x + self.out(a.transpose(-2, -3).reshape(*lead, n, h))
        return self.mlp(x)


class TransformerBodyModel(_FlatBaseline):
    """Pre-norm transformer over one token per body (see module docstring)."""

    family = "transformer"

    def __init__(self, width: int = 16, depth: int = 2, num_heads: int = 4, hidden_per_width: int = 6,
                 residual: str = "ballistic", centre: bool = False):
        super().__init__()
        if width < 1 or depth < 1 or num_heads < 1 or hidden_per_width < 1:
            raise ValueError(f"transformer needs width, depth, num_heads, hidden_per_width >= 1; got {width}, "
                             f"{depth}, {num_heads}, {hidden_per_width}")
        self.hidden = -(-int(hidden_per_width * width) // num_heads) * num_heads  # multiple of num_heads
        self.width, self.depth, self.num_heads = width, depth, num_heads
        self.centre = bool(centre)
        self._init_normalization(residual)
        self.inp = nn.Linear(NUM_FLAT_FEATURES, self.hidden)
        self.blocks = nn.ModuleList(_TransformerBlock(self.hidden, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(self.hidden)
        self.head = nn.Linear(self.hidden, 12)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, batch: dict) -> torch.Tensor:
        x = self.inp(self.features(batch).to(self.inp.weight.dtype))
        for block in self.blocks:
            x = block(x)
        return self.predict(batch, self.head(self.norm(x)))

    def nominal_flops_per_token(self, num_items: int) -> float:
        """Forward FLOPs per body token in a scene of ``num_items`` bodies."""
        return float(transformer_flops(self.hidden, self.depth, num_items, NUM_FLAT_FEATURES, 12))

    def nominal_flops_per_sample(self, num_bodies: int) -> float:
        return training_flops(num_bodies * self.nominal_flops_per_token(num_bodies))


class MLPBodyModel(_FlatBaseline):
    """MLP over all bodies' concatenated features (see module docstring)."""

    family = "mlp"

    def __init__(self, num_bodies: int = 4, width: int = 16, depth: int = 2, hidden_per_width: int = 6,
                 residual: str = "ballistic"):
        super().__init__()
        if num_bodies < 1 or width < 1 or depth < 1 or hidden_per_width < 1:
            raise ValueError(f"mlp needs num_bodies, width, depth, hidden_per_width >= 1; got {num_bodies}, "
                             f"{width}, {depth}, {hidden_per_width}")
        self.hidden = int(hidden_per_width * width)
        self.num_bodies, self.width, self.depth = num_bodies, width, depth
        self._init_normalization(residual)
        self.inp = nn.Linear(num_bodies * NUM_FLAT_FEATURES, self.hidden)
        self.blocks = nn.Sequential(*(_FeedForward(self.hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(self.hidden)
        self.head = nn.Linear(self.hidden, num_bodies * 12)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, batch: dict) -> torch.Tensor:
        n = batch["positions"].shape[-2]
        if n != self.num_bodies:
            raise ValueError(f"this MLP was built for {self.num_bodies} bodies, got a batch with {n}")
        feats = self.features(batch).to(self.inp.weight.dtype)  # (B, N, 38)
        out = self.head(self.norm(self.blocks(self.inp(feats.flatten(-2)))))
        return self.predict(batch, out.reshape(*out.shape[:-1], n, 12))

    def nominal_flops_per_sample(self, num_bodies: int | None = None) -> float:
        n = self.num_bodies if num_bodies is None else num_bodies
        if n != self.num_bodies:
            raise ValueError(f"this MLP was built for {self.num_bodies} bodies, not {n}")
        h = self.hidden
        forward = (linear_flops(n * NUM_FLAT_FEATURES, h) + self.depth * mlp_flops(h, 4 * h, h)
                   + linear_flops(h, n * 12))
        return training_flops(forward)
