"""Equivariant layer norm on multivectors, standard layer norm on scalars."""

from __future__ import annotations

import torch

from algebras import get_algebra

from ..primitives.norm import equi_layer_norm, scalar_layer_norm
from .base import EquiModule


class EquiLayerNorm(EquiModule):
    """``mv / sqrt(mean_channels algebra.squared_norm(mv) + eps)``; scalars: LayerNorm without affine.

    Computed in float32 under autocast. Shapes unchanged: ``mv (..., channels, dim)``,
    ``scalars (..., s_channels)`` (None passes through as an empty tensor).
    """

    def __init__(self, algebra, eps: float = 1e-6):
        super().__init__()
        self.algebra = get_algebra(algebra)
        self.eps = eps
        self.prepare_constants()

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None):
        if self.validate_inputs:
            self.algebra.check(mv, "EquiLayerNorm input")
        if scalars is None:
            scalars = mv.new_zeros(*mv.shape[:-2], 0)
        return equi_layer_norm(self.algebra, mv, self.eps), scalar_layer_norm(scalars)
