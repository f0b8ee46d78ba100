"""Equivariant layer norm on multivectors, standard layer norm on scalars."""

from __future__ import annotations

import torch

from algebras import get_algebra

from ..kernels.plan import ExecutionPlan
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

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, plan: ExecutionPlan | None = None):
        """Normalise the multivectors equivariantly and the scalars by a standard layer norm.

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim)
            Multivectors (in the plan's layout when a ``plan`` is given); normalised over the channels.
        scalars : Tensor, shape (..., s_channels), optional
            None is treated as 0 channels.
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: blade order.

        Returns
        -------
        mv : Tensor, shaped like the input
            :func:`~gatr.primitives.equi_layer_norm` of ``mv``.
        scalars : Tensor, shape (..., s_channels)
            :func:`~gatr.primitives.scalar_layer_norm` of ``scalars``.
        """
        if scalars is None:
            scalars = mv.new_zeros(*mv.shape[:-2], 0)
        if plan is None:
            if self.validate_inputs:
                self.algebra.check(mv, "EquiLayerNorm input")
            return equi_layer_norm(self.algebra, mv, self.eps), scalar_layer_norm(scalars)
        # the norms are taken in blade order; mv is scaled in the plan's layout
        return equi_layer_norm(self.algebra, mv, self.eps, blades=plan.leave(mv)), scalar_layer_norm(scalars)
