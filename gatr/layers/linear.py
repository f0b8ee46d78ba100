"""EquiLinear: the most general equivariant linear map between multivector and scalar channels."""

from __future__ import annotations

import torch
from torch import nn

from algebras import get_algebra

from ..flops import linear_flops
from ..kernels.plan import ExecutionPlan, check_kernel_names
from ..primitives.linear import equi_bias, equi_matrix, init_stds
from ._checks import check_inputs
from .base import EquiModule


class EquiLinear(EquiModule):
    """Equivariant linear layer ``(mv, scalars) -> (mv, scalars)``.

    Multivector-to-multivector weights are coefficients of the algebra's equivariant maps; scalars
    enter the multivector outputs along the invariant multivectors and multivectors enter the scalar
    outputs through the invariant functionals; the multivector bias lies along the invariant
    multivectors (:mod:`gatr.primitives.linear`). Executed by the kernel the execution plan names
    (:mod:`gatr.kernels.plan`).

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, out_mv_channels : int (>= 1)
    in_s_channels, out_s_channels : int (>= 0)
    bias : bool
    gain : float
        Output standard deviation for unit-variance inputs (default 1).
    kernel : {"auto", "dense", "sparse"}
        Execution kernel when the layer is called on its own (:data:`gatr.kernels.LINEAR_KERNELS`); inside a
        network the network's plan decides (``GATrConfig.linear_kernel``).
    """

    kernel_role = "linear"

    def __init__(self, algebra, in_mv_channels: int, out_mv_channels: int, in_s_channels: int = 0,
                 out_s_channels: int = 0, bias: bool = True, gain: float = 1.0, kernel: str = "auto"):
        super().__init__()
        if min(in_mv_channels, out_mv_channels) < 1 or min(in_s_channels, out_s_channels) < 0:
            raise ValueError(
                "EquiLinear needs >= 1 multivector channels in and out and >= 0 scalar channels, got "
                f"mv {in_mv_channels}->{out_mv_channels}, s {in_s_channels}->{out_s_channels}"
            )
        check_kernel_names(linear=kernel)
        self.algebra = get_algebra(algebra)
        self.kernel = kernel
        self.in_mv_channels, self.out_mv_channels = in_mv_channels, out_mv_channels
        self.in_s_channels, self.out_s_channels = in_s_channels, out_s_channels
        t = self.algebra.tensors("cpu", torch.float64)
        n_maps, n_inv, n_fun = (t.linear_basis.shape[0], t.invariant_basis.shape[0],
                                t.invariant_functionals.shape[0])
        self.weight_mv = nn.Parameter(torch.empty(out_mv_channels, in_mv_channels, n_maps))
        self.weight_s2mv = nn.Parameter(torch.empty(out_mv_channels, in_s_channels, n_inv)) if in_s_channels else None
        self.weight_mv2s = nn.Parameter(torch.empty(out_s_channels, in_mv_channels, n_fun)) if out_s_channels else None
        self.weight_s = (nn.Parameter(torch.empty(out_s_channels, in_s_channels))
                         if in_s_channels and out_s_channels else None)
        self.bias_mv = nn.Parameter(torch.zeros(out_mv_channels, n_inv)) if bias else None
        self.bias_s = nn.Parameter(torch.zeros(out_s_channels)) if bias and out_s_channels else None
        self.reset_parameters(gain)
        self.prepare_constants()

    @torch.no_grad()
    def reset_parameters(self, gain: float = 1.0):
        """Normal weights with per-map standard deviations from :func:`init_stds` (unit variance out); zero biases.

        Parameters
        ----------
        gain : float
            Output standard deviation for unit-variance inputs.

        Returns
        -------
        None
        """
        stds = init_stds(self.algebra, self.in_mv_channels, self.out_mv_channels,
                         self.in_s_channels, self.out_s_channels, gain)
        for weight, std in ((self.weight_mv, stds["mv"]), (self.weight_s2mv, stds["s2mv"]),
                            (self.weight_mv2s, stds["mv2s"])):
            if weight is not None:
                weight.normal_().mul_(std.to(weight.dtype))
        if self.weight_s is not None:
            self.weight_s.normal_().mul_(float(stds["s"]))
        for b in (self.bias_mv, self.bias_s):
            if b is not None:
                b.zero_()

    def dense(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The dense matrix ``(out_mv*dim + out_s, in_mv*dim + in_s)`` and the bias of this map."""
        return (equi_matrix(self.algebra, self.weight_mv, self.weight_s2mv, self.weight_mv2s, self.weight_s),
                equi_bias(self.algebra, self.bias_mv, self.bias_s))

    def weights(self) -> tuple:
        """``(w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s)``: the arguments of :func:`~gatr.primitives.equi_matrix` and
        :func:`~gatr.primitives.equi_bias` (None where this layer has none)."""
        return (self.weight_mv, self.weight_s2mv, self.weight_mv2s, self.weight_s, self.bias_mv, self.bias_s)

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, plan: ExecutionPlan | None = None):
        """Apply the equivariant linear map.

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
            Multivector inputs (in the plan's layout when a ``plan`` is given).
        scalars : Tensor, shape (..., items, in_s_channels), optional
            Scalar inputs; None only when ``in_s_channels == 0``.
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: this layer's own.

        Returns
        -------
        mv : Tensor, shape (..., items, out_mv_channels, dim)
            In the plan's layout when a ``plan`` is given.
        scalars : Tensor, shape (..., items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        if plan is None:
            if self.validate_inputs:
                scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels)
            plan = self.own_plan(mv)  # no bilinears: blade order
        return plan.linear_map(mv, scalars, *self.weights())

    def own_flops_per_token(self, num_items: int) -> int:
        """Counted as its dense matrix (:mod:`gatr.flops`), whatever kernel runs it.

        Parameters
        ----------
        num_items : int
            Items per sequence (unused: the map is per token).

        Returns
        -------
        int
            ``2 * (in_mv * dim + in_s) * (out_mv * dim + out_s)``.
        """
        dim = self.algebra.dim
        return linear_flops(self.in_mv_channels * dim + self.in_s_channels,
                            self.out_mv_channels * dim + self.out_s_channels)

    def extra_repr(self) -> str:
        return (f"{self.algebra.name}, mv {self.in_mv_channels}->{self.out_mv_channels}, "
                f"s {self.in_s_channels}->{self.out_s_channels}, kernel={self.kernel}")
