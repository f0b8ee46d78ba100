"""EquiLinear: the most general equivariant linear map between multivector and scalar channels."""

from __future__ import annotations

import torch
from torch import nn

from algebras import get_algebra

from ..primitives.linear import dense_equi_bias, dense_equi_matrix, equi_linear, init_stds
from ._checks import check_inputs


class EquiLinear(nn.Module):
    """Equivariant linear layer ``(mv, scalars) -> (mv, scalars)``.

    Multivector-to-multivector weights are coefficients of ``algebra.linear_basis``; scalars enter
    the multivector outputs along ``algebra.invariant_basis`` and multivectors enter the scalar
    outputs through ``algebra.invariant_functionals``; the multivector bias lies along the invariant
    basis. Executed sparsely per component (:func:`gatr.primitives.linear.equi_linear`; the dense
    matrix of :meth:`dense` for few tokens), see :mod:`gatr.primitives.linear`.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, out_mv_channels : int (>= 1)
    in_s_channels, out_s_channels : int (>= 0)
    bias : bool
    gain : float
        Output standard deviation for unit-variance inputs (default 1).

    Shapes
    ------
    forward(mv (..., items, in_mv, dim), scalars (..., items, in_s) or None if in_s == 0)
    -> (mv (..., items, out_mv, dim), scalars (..., items, out_s)); the output scalars are always
    a tensor (with 0 channels when ``out_s_channels == 0``).
    """

    def __init__(self, algebra, in_mv_channels: int, out_mv_channels: int, in_s_channels: int = 0,
                 out_s_channels: int = 0, bias: bool = True, gain: float = 1.0):
        super().__init__()
        if min(in_mv_channels, out_mv_channels) < 1 or min(in_s_channels, out_s_channels) < 0:
            raise ValueError(
                "EquiLinear needs >= 1 multivector channels in and out and >= 0 scalar channels, got "
                f"mv {in_mv_channels}->{out_mv_channels}, s {in_s_channels}->{out_s_channels}"
            )
        self.algebra = get_algebra(algebra)
        self.in_mv_channels, self.out_mv_channels = in_mv_channels, out_mv_channels
        self.in_s_channels, self.out_s_channels = in_s_channels, out_s_channels
        alg = self.algebra
        n_maps, n_inv, n_fun = alg.linear_basis.shape[0], len(alg.invariant_basis), len(alg.invariant_functionals)
        self.weight_mv = nn.Parameter(torch.empty(out_mv_channels, in_mv_channels, n_maps))
        self.weight_s2mv = nn.Parameter(torch.empty(out_mv_channels, in_s_channels, n_inv)) if in_s_channels else None
        self.weight_mv2s = nn.Parameter(torch.empty(out_s_channels, in_mv_channels, n_fun)) if out_s_channels else None
        self.weight_s = (nn.Parameter(torch.empty(out_s_channels, in_s_channels))
                         if in_s_channels and out_s_channels else None)
        self.bias_mv = nn.Parameter(torch.zeros(out_mv_channels, n_inv)) if bias else None
        self.bias_s = nn.Parameter(torch.zeros(out_s_channels)) if bias and out_s_channels else None
        self.reset_parameters(gain)

    @torch.no_grad()
    def reset_parameters(self, gain: float = 1.0):
        """Normal weights with per-map standard deviations from :func:`init_stds` (unit variance out)."""
        stds = init_stds(self.algebra, self.in_mv_channels, self.out_mv_channels,
                         self.in_s_channels, self.out_s_channels, gain)
        self.weight_mv.normal_().mul_(torch.as_tensor(stds["mv"], dtype=self.weight_mv.dtype))
        if self.weight_s2mv is not None:
            self.weight_s2mv.normal_().mul_(torch.as_tensor(stds["s2mv"], dtype=self.weight_s2mv.dtype))
        if self.weight_mv2s is not None:
            self.weight_mv2s.normal_().mul_(torch.as_tensor(stds["mv2s"], dtype=self.weight_mv2s.dtype))
        if self.weight_s is not None:
            self.weight_s.normal_().mul_(float(stds["s"]))
        for b in (self.bias_mv, self.bias_s):
            if b is not None:
                b.zero_()

    def dense(self, device=None, dtype=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The dense matrix ``(out_mv*dim + out_s, in_mv*dim + in_s)`` and bias it executes."""
        device = device or self.weight_mv.device
        dtype = dtype or self.weight_mv.dtype
        matrix = dense_equi_matrix(self.algebra, self.weight_mv, self.weight_s2mv, self.weight_mv2s, self.weight_s,
                                   device, dtype)
        return matrix, dense_equi_bias(self.algebra, self.bias_mv, self.bias_s, device, dtype)

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None):
        scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels)
        return equi_linear(self.algebra, mv, scalars, self.weight_mv, self.weight_s2mv, self.weight_mv2s,
                           self.weight_s, self.bias_mv, self.bias_s)

    def extra_repr(self) -> str:
        return (f"{self.algebra.name}, mv {self.in_mv_channels}->{self.out_mv_channels}, "
                f"s {self.in_s_channels}->{self.out_s_channels}")
