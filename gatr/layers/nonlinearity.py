"""Scalar-gated nonlinearity as a module."""

from __future__ import annotations

import torch

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

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, blocks: bool = False):
        """``(act(<mv>_0) * mv, act(scalars))``.

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim)
            Multivectors; ``(..., dim, channels)`` with ``blocks``.
        scalars : Tensor, shape (..., s_channels), optional
            None is treated as 0 channels.
        blocks : bool
            ``mv`` is in the block layout (:mod:`gatr.kernels.block_layout`).

        Returns
        -------
        mv : Tensor, shaped like the input
        scalars : Tensor, shape (..., s_channels)
        """
        if scalars is None:
            scalars = mv.new_zeros(*mv.shape[:-2], 0)
        return gated_nonlinearity(mv, scalars, self.activation, blocks)

    def extra_repr(self) -> str:
        return self.activation
