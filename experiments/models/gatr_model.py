"""GATr on the rigid-body tokens, for any registered 3D algebra backend.

``GATrBodyModel(algebra, width, depth, num_heads)`` wraps :class:`gatr.GATr` with
``hidden_mv_channels = width`` and ``hidden_s_channels = hidden_s_per_width * width`` (default
``2 * width``), ``num_blocks = depth``. Inputs are the 13 multivector and 16 scalar channels of
:class:`~experiments.models.embedding.BodyEmbedding`; outputs are 4 multivector channels read back as
the centre and the three axis tips with the residual, sign-blind read-out described there: a correction
to the free-flight keypoints (``residual="ballistic"``, default) or to the input keypoints
(``residual="keypoints"``). As for the baselines, the correction is the network's output times the RMS
of (target - reference) over the training set (``target_scale``) and a learnable scalar ``gate``
(``init_gate = 1``), and the output layer's multivector weights start at zero, so an untrained model
predicts the reference and the output layer gets gradients from the first step (a zero gate instead
would block every gradient but its own until it grew). The invariant scalar inputs are standardised with
training-set statistics (:meth:`fit_normalization`); an affine map of invariants keeps the model
equivariant. Centred positions and velocities enter the network in a length unit (``length_unit``, metres or
``"auto"``, the default: the training set's RMS distance of a body from its scene's centre, ~0.19 m on the
rigid-body data). A conformal point ``e_o + x + |x|^2/2 e_inf`` is not scale-covariant: in metres these
scenes give ``|x| ~ 0.2`` and ``X . Y = -|x - y|^2/2 ~ 0.05``, so every distance-dependent invariant
(attention logits, the scalar parts of geometric products that gate the nonlinearity) was ~20x smaller than
the constant parts, and conformal GATr learned little beyond free flight (issue 23, item 0;
``docs/results/conformal-ablations``). Dividing by a positive constant commutes with E(3), so the predictor
stays equivariant; the keypoints are returned in metres. The whole predictor is E(3)-equivariant, reflections included. Further keyword arguments go
to :class:`gatr.GATr`; ``algebra_options`` (e.g. ``{"group": "Pin(4,1)"}``, in training through
``--model.model_kwargs``) are the algebra's.

FLOPs: ``GATr.nominal_flops_per_token`` (already forward + backward, per token, convention of
:mod:`gatr.flops`) times the number of bodies; embedding and read-out are element-wise and not counted.

Reference multivector of the reference-scaled bilinears (the projective join): the network's default,
the mean input multivector, has no pseudoscalar component here (in G(3,0,1) points / directions / axial
vectors are trivectors), which would make the join vanish. We pass ``embed_pseudoscalar(c_i)`` per body instead,
``c_i = det[axes_i]`` the handedness: it transforms by ``rho_u`` (the pseudoscalar and ``c_i`` both
pick up ``det g``), so the join stays equivariant, reflections included, and has unit scale.
"""

from __future__ import annotations

import torch
from torch import nn

from algebras import get_algebra

from .base import BodyModel, FeatureStandardizer
from .embedding import BodyEmbedding

__all__ = ["GATrBodyModel"]


class GATrBodyModel(BodyModel):
    family = "gatr"

    def __init__(self, algebra, width: int = 16, depth: int = 2, num_heads: int = 4, hidden_s_per_width: int = 2,
                 init_gate: float = 1.0, residual: str = "ballistic", zero_init_output: bool = True,
                 length_unit: float | str = "auto", **gatr_kwargs):
        super().__init__()
        from gatr import GATr  # imported lazily: the network package is optional for the baselines

        if width < 1 or depth < 1 or num_heads < 1:
            raise ValueError(f"gatr needs width, depth, num_heads >= 1; got {width}, {depth}, {num_heads}")
        # the algebra's options (e.g. {"group": "Pin(4,1)"}) decide the network's maps: they go with the name
        self.algebra = get_algebra(algebra, **(gatr_kwargs.pop("algebra_options", None) or {}))
        self.algebra_name = self.algebra.name
        self.width, self.depth, self.num_heads = width, depth, num_heads
        self.embedding = BodyEmbedding(self.algebra, residual=residual)
        self.residual = residual
        self.net = GATr(
            algebra=self.algebra,
            in_mv_channels=self.embedding.num_mv_channels,
            out_mv_channels=self.embedding.num_out_channels,
            hidden_mv_channels=width,
            in_s_channels=self.embedding.num_scalar_channels,
            out_s_channels=1,  # unused: the targets are points
            hidden_s_channels=hidden_s_per_width * width,
            num_blocks=depth,
            num_heads=num_heads,
            **gatr_kwargs,
        )
        self.gate = nn.Parameter(torch.tensor(float(init_gate)))
        # positions (centred) and velocities enter the network in this unit [m]; "auto": the training set's RMS
        # centred body distance from the scene centre (fit_normalization), so a conformal point's x and |x|^2/2
        # are O(1) and its inner products -|x - y|^2/2 give attention logits of order one
        if not (length_unit == "auto" or (isinstance(length_unit, (int, float)) and not isinstance(length_unit, bool)
                                          and length_unit > 0)):
            raise ValueError(f"length_unit must be a positive number [m] or 'auto'; got {length_unit!r}")
        self.auto_length_unit = length_unit == "auto"
        self.register_buffer("length_unit", torch.tensor(1.0 if self.auto_length_unit else float(length_unit)))
        # corrections are output in units of the training residual's RMS (a constant: equivariant)
        self.register_buffer("target_scale", torch.tensor(1.0))
        if zero_init_output:  # start at the reference, with gradients into the output layer from step 1
            out = self.net.linear_out
            with torch.no_grad():
                for w in (out.weight_mv, out.weight_s2mv, out.bias_mv):
                    if w is not None:
                        w.zero_()
        # the scalar inputs are E(3) invariants, so an affine map of them keeps the model equivariant
        self.standardize_scalars = FeatureStandardizer(self.embedding.num_scalar_channels)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """A state dict from before the length unit (no ``length_unit`` entry) was trained in metres: load it
        with unit 1 m, so it predicts exactly what it did."""
        state_dict.setdefault(prefix + "length_unit", torch.ones((), dtype=self.length_unit.dtype))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def _batch(self, batch: dict) -> dict:
        dtype = self.gate.dtype
        return {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in batch.items()}

    @torch.no_grad()
    def fit_normalization(self, batch: dict) -> None:
        """Mean / std of the invariant scalar inputs and the RMS of (target - reference keypoints) over
        training samples ``batch`` (the multivector inputs are geometric objects and stay as they are)."""
        from .embedding import reference_keypoints

        batch = self._batch(batch)
        if self.auto_length_unit:
            from .embedding import scene_centre

            offsets = batch["positions"].double() - scene_centre(batch["positions"].double())
            rms = float(offsets.pow(2).sum(-1).mean().sqrt())
            self.length_unit.fill_(rms if rms > 1e-9 else 1.0)
        self.standardize_scalars.fit(self.embedding.embed(batch, self.length_unit.to(batch["positions"].dtype)).scalars)
        residual = batch["target_keypoints"].double() - reference_keypoints(batch, self.residual).double()
        rms = float(residual.pow(2).sum(-1).mean().sqrt())
        self.target_scale.fill_(rms if rms > 1e-9 else 1.0)

    def forward(self, batch: dict, attention_mask: torch.Tensor | None = None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embedding.embed(self._batch(batch), self.length_unit.to(self.gate.dtype))
        reference = self.algebra.embed_pseudoscalar(emb.handedness).unsqueeze(-2)  # (B, N, 1, dim)
        mv_out, _ = self.net(emb.mv, self.standardize_scalars(emb.scalars), attention_mask=attention_mask,
                             key_padding_mask=key_padding_mask, reference_mv=reference)
        return self.embedding.readout(mv_out, emb, self.gate * self.target_scale.to(self.gate.dtype))

    def nominal_flops_per_token(self, num_items: int) -> float:
        """Forward + backward FLOPs per body token (from the network, :mod:`gatr.flops`)."""
        return float(self.net.nominal_flops_per_token(num_items))

    def nominal_flops_per_sample(self, num_bodies: int) -> float:
        return num_bodies * self.nominal_flops_per_token(num_bodies)
