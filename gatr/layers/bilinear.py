"""GeometricBilinear: learned operands, every equivariant bilinear of the algebra, output mixing."""

from __future__ import annotations

import torch

from algebras import get_algebra

from ..kernels.bilinear import select_bilinear_kernel
from ..primitives.bilinear import bilinear_products
from ._checks import check_inputs
from .base import EquiModule
from .linear import EquiLinear


def reference_from_inputs(mv: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean multivector over items and channels, ``(..., 1, 1, dim)``; padded items left out.

    A linear equivariant function of the inputs, so it transforms with them (as the projective join
    requires: its pseudoscalar component picks up ``det`` under reflections).

    Parameters
    ----------
    mv : Tensor, shape (..., items, channels, dim)
        Multivectors.
    key_padding_mask : Tensor of bool, shape (..., items), optional
        True for real items; padded items are left out of the mean (a batch entry without real
        items gets 0).

    Returns
    -------
    Tensor, shape (..., 1, 1, dim)
    """
    if key_padding_mask is None:
        return mv.mean(dim=(-3, -2), keepdim=True)
    real = key_padding_mask[..., None, None]  # (..., items, 1, 1)
    weights = real.to(mv.dtype)
    total = torch.where(real, mv, torch.zeros((), dtype=mv.dtype, device=mv.device)).sum(dim=(-3, -2), keepdim=True)
    count = weights.sum(dim=-3, keepdim=True).clamp_min(1) * mv.shape[-2]
    return total / count


class GeometricBilinear(EquiModule):
    """For each ``b`` in ``algebra.bilinears``: EquiLinear projections to left/right operands
    (``hidden_mv_channels`` each), the bilinear product (times ``reference[..., component]`` where
    the bilinear has one), then one EquiLinear from all products and the input scalars to outputs.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, out_mv_channels, in_s_channels, out_s_channels : int
    hidden_mv_channels : int, optional
        Operand channels per bilinear; default ``max(1, out_mv_channels // n_bilinears)``.
    kernel : str
        Execution kernel of the products (:data:`gatr.kernels.BILINEAR_KERNELS` or ``"auto"``).
    """

    def __init__(self, algebra, in_mv_channels: int, out_mv_channels: int, in_s_channels: int = 0,
                 out_s_channels: int = 0, hidden_mv_channels: int | None = None, kernel: str = "auto"):
        super().__init__()
        select_bilinear_kernel(kernel, torch.device("cpu"))  # a clear error for an unknown name, now
        self.algebra = alg = get_algebra(algebra)
        self.kernel = kernel
        self.in_mv_channels, self.out_mv_channels = in_mv_channels, out_mv_channels
        self.in_s_channels, self.out_s_channels = in_s_channels, out_s_channels
        tables = alg.tensors("cpu", torch.float64).bilinear_tables  # (nb, dim, dim, dim)
        nb = self.num_bilinears = tables.shape[0]
        self.hidden_mv_channels = h = hidden_mv_channels or max(1, out_mv_channels // nb)
        # operand channels laid out (left/right, hidden, bilinear) so the products need no transpose
        self.operands = EquiLinear(alg, in_mv_channels, 2 * h * nb, in_s_channels, 0)
        self.output = EquiLinear(alg, h * nb, out_mv_channels, in_s_channels, out_s_channels)
        self.nest_children()
        with torch.no_grad():  # unit-variance products: divide left operands by the table's gain
            gain = (tables**2).sum((1, 2)).mean(-1).clamp_min(1e-12).sqrt()  # (nb,) rms per output
            scale = torch.ones(2, h, nb)
            scale[0] = (1.0 / gain).to(scale.dtype)
            self.operands.weight_mv.mul_(scale.reshape(-1, 1, 1))
            if self.operands.weight_s2mv is not None:
                self.operands.weight_s2mv.mul_(scale.reshape(-1, 1, 1))

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, reference_mv: torch.Tensor | None = None):
        """Every bilinear of the algebra on learned operands, then one EquiLinear to the outputs.

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
            Multivector inputs.
        scalars : Tensor, shape (..., items, in_s_channels), optional
            Scalar inputs (they enter the operands and the output map); None only when
            ``in_s_channels == 0``.
        reference_mv : Tensor, shape (..., dim), optional
            Scales the bilinears that have a reference component (the projective join); must
            broadcast against ``(..., items, 1, dim)``, e.g. ``(batch, 1, 1, dim)``. Default:
            :func:`reference_from_inputs` of ``mv`` (no padding mask).

        Returns
        -------
        mv : Tensor, shape (..., items, out_mv_channels, dim)
        scalars : Tensor, shape (..., items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        if self.validate_inputs:
            scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels)
            if reference_mv is not None and reference_mv.shape[-1] != self.algebra.dim:
                raise ValueError(f"reference_mv must have last axis {self.algebra.dim}, got {tuple(reference_mv.shape)}")
        h, nb = self.hidden_mv_channels, self.num_bilinears
        ops, _ = self.operands(mv, scalars)
        ops = ops.unflatten(-2, (2, h, nb))  # (..., items, 2, h, nb, dim)
        if reference_mv is None:
            reference_mv = reference_from_inputs(mv)
        # reference (..., items|1, 1, dim) broadcasts over the operands' (..., items, h) axes
        products = bilinear_products(self.algebra, ops[..., 0, :, :, :], ops[..., 1, :, :, :], reference_mv,
                                     kernel=self.kernel)
        return self.output(products.flatten(-3, -2), scalars)

    def own_flops_per_token(self, num_items: int) -> int:
        """``2 nnz(T_b)`` per product, ``hidden_mv_channels`` products per bilinear (:mod:`gatr.flops`).

        The operand and output EquiLinears are sub-layers, counted by :meth:`flops_per_token`.

        Parameters
        ----------
        num_items : int
            Items per sequence (unused: the products are per token).

        Returns
        -------
        int
            Forward FLOPs per token of the bilinear products.
        """
        tables = self.algebra.tensors("cpu", torch.float64).bilinear_tables
        return 2 * self.hidden_mv_channels * int(torch.count_nonzero(tables))
