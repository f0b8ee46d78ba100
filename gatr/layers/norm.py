"""Equivariant layer norm on multivectors, standard layer norm on scalars."""

from __future__ import annotations

from functools import partial

import torch

from algebras import get_algebra

from ..kernels.block_layout import block_layout, from_blocks
from ..primitives.norm import equi_layer_norm, scalar_layer_norm
from .base import EquiModule


class EquiLayerNorm(EquiModule):
    """``mv / sqrt(mean_channels algebra.squared_norm(mv) + eps)``; scalars: LayerNorm without affine.

    Computed in float32 under autocast. Shapes unchanged: ``mv (..., channels, dim)``,
    ``scalars (..., s_channels)`` (None passes through as an empty tensor).

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    eps : float
        Added to the mean squared norm of the multivectors (the scalars use ``1e-5``).
    """

    def __init__(self, algebra, eps: float = 1e-6):
        super().__init__()
        self.algebra = get_algebra(algebra)
        self.eps = eps
        self.prepare_constants()

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, blocks: bool = False):
        """Normalise the multivectors equivariantly and the scalars by a standard layer norm.

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim)
            Multivectors; normalised over the channel axis. ``(..., dim, channels)`` with ``blocks``.
        scalars : Tensor, shape (..., s_channels), optional
            None is treated as 0 channels.
        blocks : bool
            ``mv`` is in the block layout (:mod:`gatr.kernels.block_layout`; not checked).

        Returns
        -------
        mv : Tensor, shaped like the input
            :func:`~gatr.primitives.equi_layer_norm` of ``mv``.
        scalars : Tensor, shape (..., s_channels)
            :func:`~gatr.primitives.scalar_layer_norm` of ``scalars``.
        """
        if self.validate_inputs and not blocks:
            self.algebra.check(mv, "EquiLayerNorm input")
        if scalars is None:
            scalars = mv.new_zeros(*mv.shape[:-2], 0)
        to_components = None
        if blocks:
            layout = self.algebra.tensors(mv.device, mv.dtype).derived(block_layout)
            to_components = partial(from_blocks, layout)
        return equi_layer_norm(self.algebra, mv, self.eps, to_components), scalar_layer_norm(scalars)
