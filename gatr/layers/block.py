"""GATrBlock: pre-norm residual geometric attention and residual geometric MLP."""

from __future__ import annotations

import torch
from torch import nn

from algebras import get_algebra

from ..kernels.plan import ExecutionPlan
from ._checks import check_inputs
from .attention import GeometricAttention
from .base import EquiModule
from .bilinear import GeometricBilinear, reference_from_inputs
from .linear import EquiLinear
from .nonlinearity import ScalarGatedNonlinearity
from .norm import EquiLayerNorm


def mv_dropout(mv: torch.Tensor, p: float, training: bool, component_axis: int = -1) -> torch.Tensor:
    """Dropout of whole multivectors (one mask entry per channel), so it stays equivariant.

    Parameters
    ----------
    mv : Tensor, shape (..., channels, dim)
        Multivectors.
    p : float
        Probability of zeroing a multivector; kept ones are scaled by ``1 / (1 - p)``.
    training : bool
        Apply only when True (``mv`` is returned unchanged otherwise, or when ``p == 0``).
    component_axis : int
        The axis of ``mv`` holding the components (-2 in the label layout ``(..., dim, channels)``).

    Returns
    -------
    Tensor, shaped like ``mv``
    """
    if not training or p == 0.0:
        return mv
    shape = list(mv.shape)
    shape[component_axis] = 1  # one decision per multivector
    keep = torch.rand(shape, device=mv.device) >= p
    return mv * keep.to(mv.dtype) / (1.0 - p)


class GeometricMLP(EquiModule):
    """``GeometricBilinear(c -> 2c) -> ScalarGatedNonlinearity -> EquiLinear(2c -> c)`` (same for scalars).

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    mv_channels : int
        Multivector channels ``c`` in and out.
    s_channels : int
        Scalar channels in and out.
    activation : str
        Gate of the nonlinearity (:data:`gatr.primitives.ACTIVATIONS`).
    bilinears : {"fixed", "derived"}
        The bilinear layer's maps (see :class:`GeometricBilinear`).
    """

    def __init__(self, algebra, mv_channels: int, s_channels: int, activation: str = "gelu", bilinears: str = "fixed"):
        super().__init__()
        self.algebra = get_algebra(algebra)
        self.bilinear = GeometricBilinear(self.algebra, mv_channels, 2 * mv_channels, s_channels, 2 * s_channels,
                                          bilinears=bilinears)
        self.nonlinearity = ScalarGatedNonlinearity(activation)
        self.linear = EquiLinear(self.algebra, 2 * mv_channels, mv_channels, 2 * s_channels, s_channels)
        self.nest_children()

    def forward(self, mv, scalars=None, reference_mv=None, plan: ExecutionPlan | None = None):
        """Bilinear, gated nonlinearity, linear; shapes are preserved.

        Parameters
        ----------
        mv : Tensor, shape (..., items, mv_channels, dim)
            Multivector inputs (in the plan's layout when a ``plan`` is given).
        scalars : Tensor, shape (..., items, s_channels), optional
            None only when ``s_channels == 0``.
        reference_mv : Tensor, shape (..., dim), optional
            Passed to :meth:`GeometricBilinear.forward`.
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: this layer's own.

        Returns
        -------
        mv : Tensor, shaped like the input
        scalars : Tensor, shape (..., items, s_channels)
        """
        outermost = plan is None
        if outermost:
            if self.validate_inputs:
                scalars = check_inputs(self, mv, scalars, self.bilinear.in_mv_channels, self.bilinear.in_s_channels)
            plan = self.own_plan(mv)
            reference_mv = reference_from_inputs(mv) if reference_mv is None else reference_mv
            mv = plan.enter(mv)
        mv, scalars = self.bilinear(mv, scalars, reference_mv=reference_mv, plan=plan)
        mv, scalars = self.nonlinearity(mv, scalars, plan=plan)
        mv, scalars = self.linear(mv, scalars, plan=plan)
        return (plan.leave(mv) if outermost else mv), scalars


class GATrBlock(EquiModule):
    """Pre-norm transformer block on ``(mv (..., items, c, dim), scalars (..., items, s))``.

    ``x = x + Attention(Norm(x)); x = x + MLP(Norm(x))``, with whole-multivector dropout on both
    branches. Shapes are preserved.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    mv_channels, s_channels : int
    num_heads : int
    head_mv_channels, head_s_channels : int, optional
        Per-head attention channels; default ``max(1, mv_channels // num_heads)`` and
        ``s_channels // num_heads``.
    multi_query : bool
    dropout : float
    activation : str
    bilinears : {"fixed", "derived"}
        The bilinear layer's maps (see :class:`GeometricBilinear`).
    """

    def __init__(self, algebra, mv_channels: int, s_channels: int, num_heads: int = 8,
                 head_mv_channels: int | None = None, head_s_channels: int | None = None,
                 multi_query: bool = False, dropout: float = 0.0, activation: str = "gelu", bilinears: str = "fixed"):
        super().__init__()
        self.algebra = get_algebra(algebra)
        self.mv_channels, self.s_channels, self.dropout = mv_channels, s_channels, dropout
        self.norm = EquiLayerNorm(self.algebra)
        self.attention = GeometricAttention(
            self.algebra, mv_channels, mv_channels, s_channels, s_channels, num_heads,
            head_mv_channels or max(1, mv_channels // num_heads),
            s_channels // num_heads if head_s_channels is None else head_s_channels,
            multi_query=multi_query, dropout=dropout,
        )
        self.mlp = GeometricMLP(self.algebra, mv_channels, s_channels, activation, bilinears)
        self.nest_children()

    def _residual(self, plan, mv, scalars, update):
        d_mv, d_s = update
        d_mv = mv_dropout(d_mv, self.dropout, self.training, plan.component_axis)
        d_s = nn.functional.dropout(d_s, self.dropout, self.training)
        return mv + d_mv, (scalars + d_s if scalars is not None else d_s)

    def forward(self, mv, scalars=None, attention_mask=None, key_padding_mask=None, reference_mv=None,
                plan: ExecutionPlan | None = None):
        """``x = x + Attention(Norm(x)); x = x + MLP(Norm(x))``.

        Parameters
        ----------
        mv : Tensor, shape (..., items, mv_channels, dim)
            Multivector inputs (in the plan's layout when a ``plan`` is given).
        scalars : Tensor, shape (..., items, s_channels), optional
            None only when ``s_channels == 0``.
        attention_mask : Tensor, optional
            Bool or integer (nonzero = attend) or additive float, broadcastable to
            ``(..., heads, items, items)``.
        key_padding_mask : Tensor of bool, shape (..., items), optional
            True for real items.
        reference_mv : Tensor, shape (..., dim), optional
            For the MLP's reference-scaled bilinears (see :class:`GeometricBilinear`).
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: this block's own.

        Returns
        -------
        mv : Tensor, shaped like the input
        scalars : Tensor, shape (..., items, s_channels)
            Always a tensor (0 channels wide when ``s_channels == 0``).
        """
        outermost = plan is None
        if outermost:
            if self.validate_inputs:
                scalars = check_inputs(self, mv, scalars, self.mv_channels, self.s_channels)
            plan = self.own_plan(mv)
            mv = plan.enter(mv)
        h_mv, h_s = self.norm(mv, scalars, plan=plan)
        update = self.attention(h_mv, h_s, attention_mask, key_padding_mask, plan=plan)
        mv, scalars = self._residual(plan, mv, scalars, update)
        h_mv, h_s = self.norm(mv, scalars, plan=plan)
        mv, scalars = self._residual(plan, mv, scalars, self.mlp(h_mv, h_s, reference_mv=reference_mv, plan=plan))
        return (plan.leave(mv) if outermost else mv), scalars
