"""Scalar-gated nonlinearity as a module."""

from __future__ import annotations

import torch

from ..kernels.plan import ExecutionPlan
from ..primitives.nonlinearity import gated_nonlinearity, get_activation
from .base import EquiModule


class ScalarGatedNonlinearity(EquiModule):
    """``(mv, s) -> (act(<mv>_0) * mv, act(s))``; shapes unchanged.

    Parameters
    ----------
    activation : {"gelu", "gelu_exact", "relu", "silu", "sigmoid"}
    """

    def __init__(self, activation: str = "gelu"):
        super().__init__()
        get_activation(activation)
        self.activation = activation

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, plan: ExecutionPlan | None = None):
        """``(act(<mv>_0) * mv, act(scalars))``.

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim)
            Multivectors (in the plan's layout when a ``plan`` is given).
        scalars : Tensor, shape (..., s_channels), optional
            None is treated as 0 channels.
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: blade order.

        Returns
        -------
        mv : Tensor, shaped like the input
        scalars : Tensor, shape (..., s_channels)
        """
        if scalars is None:
            scalars = mv.new_zeros(*mv.shape[:-2], 0)
        gates = None if plan is None else plan.scalar_part(mv)
        return gated_nonlinearity(mv, scalars, self.activation, gates)

    def extra_repr(self) -> str:
        return self.activation
