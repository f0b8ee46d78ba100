"""GeometricBilinear: learned operands, every equivariant bilinear of the algebra, output mixing."""

from __future__ import annotations

import torch

from algebras import get_algebra

from ..kernels.bilinear import select_bilinear_kernel
from ..kernels.block_layout import XorBilinear, block_layout, from_blocks, to_blocks
from ..kernels.linear import sparse_linear, uses_block_layout
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
        Execution kernel of the products (:data:`gatr.kernels.BILINEAR_KERNELS` or ``"auto"``). With
        ``"xor"`` (and with ``"auto"`` under ``torch.compile`` on CPUs where the linear maps run sparse)
        the whole layer runs in the block layout (:meth:`_forward_blocks`).
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

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, reference_mv: torch.Tensor | None = None,
                blocks: bool = False):
        """Every bilinear of the algebra on learned operands, then one EquiLinear to the outputs.

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
            Multivector inputs; ``(..., items, dim, in_mv_channels)`` with ``blocks``.
        scalars : Tensor, shape (..., items, in_s_channels), optional
            Scalar inputs (they enter the operands and the output map); None only when
            ``in_s_channels == 0``.
        reference_mv : Tensor, shape (..., dim), optional
            Scales the bilinears that have a reference component (the projective join); must
            broadcast against ``(..., items, 1, dim)``, e.g. ``(batch, 1, 1, dim)``. Default:
            :func:`reference_from_inputs` of ``mv`` (no padding mask).
        blocks : bool
            Multivectors in and out in the block layout (:mod:`gatr.kernels.block_layout`; not checked).
            ``reference_mv`` stays in blade order.

        Returns
        -------
        mv : Tensor, shape (..., items, out_mv_channels, dim)
            ``(..., items, dim, out_mv_channels)`` with ``blocks``.
        scalars : Tensor, shape (..., items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        if self.validate_inputs and not blocks:
            scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels)
        if self.validate_inputs and reference_mv is not None and reference_mv.shape[-1] != self.algebra.dim:
            raise ValueError(f"reference_mv must have last axis {self.algebra.dim}, got {tuple(reference_mv.shape)}")
        layout = self.algebra.tensors(mv.device, mv.dtype).derived(block_layout) if blocks else None
        if reference_mv is None:  # the mean over items and channels, in blade order
            reference_mv = (from_blocks(layout, mv.mean(dim=(-3, -1), keepdim=True)) if blocks
                            else reference_from_inputs(mv))
        if self._block_path(mv, reference_mv, blocks):
            return self._forward_blocks(mv, scalars, reference_mv, blocks)
        if blocks:  # a reference per channel (or a table kernel): the table path, in blade order
            out, s = self.forward(from_blocks(layout, mv), scalars, reference_mv)
            return to_blocks(layout, out), s
        h, nb = self.hidden_mv_channels, self.num_bilinears
        ops, _ = self.operands(mv, scalars)
        ops = ops.unflatten(-2, (2, h, nb))  # (..., items, 2, h, nb, dim)
        # reference (..., items|1, 1, dim) broadcasts over the operands' (..., items, h) axes
        products = bilinear_products(self.algebra, ops[..., 0, :, :, :], ops[..., 1, :, :, :], reference_mv,
                                     kernel=self.kernel)
        return self.output(products.flatten(-3, -2), scalars)

    def _block_path(self, mv: torch.Tensor, reference_mv: torch.Tensor, blocks: bool = False) -> bool:
        """Whether this call runs in the block layout (:meth:`_forward_blocks`).

        Kernel ``"xor"`` always does where the algebra has a block layout, and ``"auto"`` does on inputs
        already in the block layout; on blade-ordered inputs ``"auto"`` does under ``torch.compile`` on
        CPUs where the operand map runs sparse (it fuses the shifts into one loop; run eagerly, they are
        many small operations and the table GEMM is faster).
        """
        if reference_mv.dim() > mv.dim() or (reference_mv.dim() >= 2 and reference_mv.shape[-2] != 1):
            return False  # a reference per operand channel: the table path broadcasts it
        if blocks:  # inputs already in the block layout: any kernel that can run there does
            return (self.kernel in ("auto", "xor")
                    and self.algebra.tensors(mv.device, mv.dtype).derived(block_layout) is not None)
        return uses_block_layout(self.algebra, self.kernel, self.operands.kernel, mv)

    def _forward_blocks(self, mv: torch.Tensor, scalars: torch.Tensor | None, reference_mv: torch.Tensor,
                        blocks: bool = False):
        """:meth:`forward` in the block layout: the operand map emits block-major rows, the products are
        xor shifts on them (:class:`~gatr.kernels.block_layout.XorBilinear`) and the output map reads them,
        with no permutation of the components in between (nor at all with ``blocks``: inputs and outputs
        in the block layout too).

        The operand channels are taken as ``(left/right, bilinear, hidden)`` (a permutation of the
        parameters' ``(left/right, hidden, bilinear)``), so each bilinear's operands are contiguous.
        """
        h, nb, dim = self.hidden_mv_channels, self.num_bilinears, self.algebra.dim
        lead = mv.shape[:-2]
        layout = self.algebra.tensors(mv.device, mv.dtype).derived(block_layout)
        # new operand channel (s, b, c) is parameter channel (s, c, b); new product channel (b, c) is (c, b)
        ops_channels = torch.arange(2 * h * nb, device=mv.device).view(2, h, nb).transpose(1, 2).reshape(-1)
        product_channels = torch.arange(h * nb, device=mv.device).view(h, nb).t().reshape(-1)
        o, p = self.operands, self.output
        # with one bilinear both orders agree: no permutation (whose gradient would be a scatter-add)
        pick = lambda w, axis, index: w if w is None or nb == 1 else w.index_select(axis, index)  # noqa: E731
        ops, _ = sparse_linear(self.algebra, mv, scalars, pick(o.weight_mv, 0, ops_channels),
                               pick(o.weight_s2mv, 0, ops_channels), None, None, pick(o.bias_mv, 0, ops_channels),
                               None, blocks_in=blocks, blocks_out=True)
        ops = ops.reshape(-1, dim, 2, nb, h)  # (T, component in label order, left/right, bilinear, hidden)
        products = XorBilinear.apply(layout, ops[:, :, 0], ops[:, :, 1])  # (T, dim, nb, h)
        component, has_reference, any_reference = self.algebra.tensors(mv.device, mv.dtype).bilinear_references
        if any_reference:  # reference (..., items|1, 1, dim): one factor per token and bilinear
            r = reference_mv.to(products.dtype).index_select(-1, component)
            r = torch.where(has_reference, r, torch.ones_like(r)).broadcast_to(*lead, 1, nb)
            products = products * r.reshape(-1, 1, nb, 1)
        return sparse_linear(self.algebra, products.view(*lead, dim, nb * h), scalars,
                             pick(p.weight_mv, 1, product_channels), p.weight_s2mv,
                             pick(p.weight_mv2s, 1, product_channels), p.weight_s, p.bias_mv, p.bias_s,
                             blocks_in=True, blocks_out=blocks)

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
