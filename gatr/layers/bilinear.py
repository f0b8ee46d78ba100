"""GeometricBilinear: learned operands, every equivariant bilinear of the algebra, output mixing."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from algebras import get_algebra

from ..kernels.plan import ExecutionPlan, check_kernel_names
from ..primitives.bilinear import reference_factors
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


def bilinear_spaces(t) -> torch.Tensor:
    """Per bilinear of the algebra, a basis of the maps its learned version ranges over (cached via ``t.derived``).

    Every equivariant bilinear map for a bilinear without a reference component; every map equivariant up
    to ``det`` for one with (its products are multiplied by the reference's component, which restores
    equivariance, as for the projective join).

    Parameters
    ----------
    t : AlgebraTensors

    Returns
    -------
    Tensor, shape (n_bilinears, n, dim, dim, dim)
        Zero-padded to the larger basis (a zero table adds nothing).
    """
    spaces = [t.algebra.bilinear_space(up_to_determinant=ref is not None) for ref in t.constants.bilinear_references]
    n = max(len(s) for s in spaces)
    padded = [np.concatenate([s, np.zeros((n - len(s), *s.shape[1:]))]) for s in spaces]
    return torch.as_tensor(np.stack(padded), dtype=t.dtype, device=t.device)


def _fixed_coefficients(alg) -> torch.Tensor:
    """Coefficients ``(n_bilinears, n)`` on :func:`bilinear_spaces` that give the algebra's fixed bilinears
    (least squares; exact, since each lies in its space), float32."""
    t = alg.tensors("cpu", torch.float64)
    space = t.derived(bilinear_spaces)  # (nb, n, dim^3)
    rows = []
    for b in range(space.shape[0]):
        basis = space[b].flatten(1)  # (n, dim^3)
        c = torch.linalg.lstsq(basis.t(), t.bilinear_tables[b].flatten()[:, None], driver="gelsd").solution[:, 0]
        if not torch.allclose(c @ basis, t.bilinear_tables[b].flatten(), atol=1e-8):
            raise RuntimeError(f"bilinear {b} of {alg.name} is not in its derived space")
        rows.append(c)
    return torch.stack(rows).float()


class GeometricBilinear(EquiModule):
    """For each bilinear of the algebra: EquiLinear projections to left/right operands
    (``hidden_mv_channels`` each), the bilinear product (times ``reference[..., component]`` where
    the bilinear has one, :func:`~gatr.primitives.reference_factors`), then one EquiLinear from all
    products and the input scalars to outputs.

    The operand channels are ordered (left/right, bilinear, hidden) and the product channels (bilinear,
    hidden), so each bilinear's operands are contiguous in either layout of the execution plan.

    Parameters
    ----------
    algebra : str or CliffordAlgebra
    in_mv_channels, out_mv_channels, in_s_channels, out_s_channels : int
    hidden_mv_channels : int, optional
        Operand channels per bilinear; default ``max(1, out_mv_channels // n_bilinears)``.
    kernel : str
        Execution kernel of the products when the layer is called on its own
        (:data:`gatr.kernels.BILINEAR_KERNELS` or ``"auto"``); inside a network its plan decides.
    bilinears : {"fixed", "derived"}
        ``"fixed"``: the algebra's bilinears (the geometric product; in the projective backends also the
        join). ``"derived"``: each of them becomes a learned combination of every equivariant bilinear map
        of the algebra's group (:meth:`~algebras.CliffordAlgebra.bilinear_space`; for a reference-scaled one
        such as the join, of every map equivariant up to ``det``), initialised at the fixed map, so the
        network starts as the fixed one. Learned tables are not monomial: they run on the dense table
        kernel (``dim^3`` multiply-adds per product, like ``"dense"``).
    """

    kernel_role = "bilinear"
    #: 2: operand channels (left/right, bilinear, hidden); 1 (before): (left/right, hidden, bilinear).
    _version = 2

    def __init__(self, algebra, in_mv_channels: int, out_mv_channels: int, in_s_channels: int = 0,
                 out_s_channels: int = 0, hidden_mv_channels: int | None = None, kernel: str = "auto",
                 bilinears: str = "fixed"):
        super().__init__()
        check_kernel_names(bilinear=kernel)
        if bilinears not in ("fixed", "derived"):
            raise ValueError(f"bilinears must be 'fixed' or 'derived', got {bilinears!r}")
        if bilinears == "derived" and kernel not in ("auto", "dense"):
            raise ValueError(f"derived (learned) bilinears run on the dense table kernel, not {kernel!r}")
        self.algebra = alg = get_algebra(algebra)
        self.kernel, self.bilinears = kernel, bilinears
        self.in_mv_channels, self.out_mv_channels = in_mv_channels, out_mv_channels
        self.in_s_channels, self.out_s_channels = in_s_channels, out_s_channels
        tables = alg.tensors("cpu", torch.float64).bilinear_tables  # (nb, dim, dim, dim)
        nb = self.num_bilinears = tables.shape[0]
        self.hidden_mv_channels = h = hidden_mv_channels or max(1, out_mv_channels // nb)
        self.operands = EquiLinear(alg, in_mv_channels, 2 * nb * h, in_s_channels, 0)
        self.output = EquiLinear(alg, nb * h, out_mv_channels, in_s_channels, out_s_channels)
        self.nest_children()
        with torch.no_grad():  # unit-variance products: divide left operands by the table's gain
            gain = (tables**2).sum((1, 2)).mean(-1).clamp_min(1e-12).sqrt()  # (nb,) rms per output
            scale = torch.ones(2, nb, h)
            scale[0] = (1.0 / gain).to(scale.dtype)[:, None]
            self.operands.weight_mv.mul_(scale.reshape(-1, 1, 1))
            if self.operands.weight_s2mv is not None:
                self.operands.weight_s2mv.mul_(scale.reshape(-1, 1, 1))
        self.coefficients = nn.Parameter(_fixed_coefficients(alg)) if bilinears == "derived" else None
        self.prepare_constants()

    @property
    def runs_on(self) -> str:
        """``kernel``, except that learned (derived) bilinears always run on the dense table kernel."""
        return "dense" if self.bilinears == "derived" else self.kernel

    def prepare_constants(self) -> None:
        """As :meth:`EquiModule.prepare_constants`, and the derived spaces for learned bilinears (float32, float64
        and the parameters' dtype), ahead of a compiled forward."""
        super().prepare_constants()
        if getattr(self, "coefficients", None) is not None:
            device, dtype = self.coefficients.device, self.coefficients.dtype
            if device.type != "meta":
                for d in {torch.float32, torch.float64, dtype}:
                    self.algebra.tensors(device, d).derived(bilinear_spaces)

    def tables(self) -> torch.Tensor | None:
        """The learned tables ``(n_bilinears, dim, dim, dim)`` (``bilinears="derived"``), else None."""
        if self.coefficients is None:
            return None
        space = self.algebra.tensors(self.coefficients.device, self.coefficients.dtype).derived(bilinear_spaces)
        return torch.einsum("bn,bnijk->bijk", self.coefficients, space)

    def forward(self, mv: torch.Tensor, scalars: torch.Tensor | None = None, reference_mv: torch.Tensor | None = None,
                plan: ExecutionPlan | None = None):
        """Every bilinear of the algebra on learned operands, then one EquiLinear to the outputs.

        Parameters
        ----------
        mv : Tensor, shape (..., items, in_mv_channels, dim)
            Multivector inputs (in the plan's layout when a ``plan`` is given).
        scalars : Tensor, shape (..., items, in_s_channels), optional
            Scalar inputs (they enter the operands and the output map); None only when
            ``in_s_channels == 0``.
        reference_mv : Tensor, shape (..., dim), optional
            Blade order. Scales the bilinears that have a reference component (the projective join); must
            broadcast against ``(..., items, 1, dim)``, e.g. ``(batch, 1, 1, dim)`` (or
            ``(..., items, hidden_mv_channels, dim)``: one per operand channel). Default:
            :func:`reference_from_inputs` of ``mv`` (no padding mask).
        plan : ExecutionPlan, optional
            The plan of the enclosing network (:mod:`gatr.kernels.plan`); None: this layer's own.

        Returns
        -------
        mv : Tensor, shape (..., items, out_mv_channels, dim)
            In the plan's layout when a ``plan`` is given.
        scalars : Tensor, shape (..., items, out_s_channels)
            Always a tensor (0 channels wide when ``out_s_channels == 0``).
        """
        outermost = plan is None
        if outermost:
            if self.validate_inputs:
                scalars = check_inputs(self, mv, scalars, self.in_mv_channels, self.in_s_channels)
                if reference_mv is not None and reference_mv.shape[-1] != self.algebra.dim:
                    raise ValueError(f"reference_mv must have last axis {self.algebra.dim}, "
                                     f"got {tuple(reference_mv.shape)}")
            plan = self.own_plan(mv)
            reference_mv = reference_from_inputs(mv) if reference_mv is None else reference_mv
            mv = plan.enter(mv)
        elif reference_mv is None:  # the mean over items and channels, in blade order
            reference_mv = reference_from_inputs(plan.leave(mv))
        operands, _ = self.operands(mv, scalars, plan=plan)
        factors = reference_factors(self.algebra, reference_mv, operands.dtype)
        if factors is not None and factors.dim() < 2:  # a shared reference: one factor per bilinear
            factors = factors.reshape(1, -1)
        products = plan.bilinear_products(operands, self.num_bilinears, self.hidden_mv_channels, factors, self.tables())
        out, out_s = self.output(products, scalars, plan=plan)
        return (plan.leave(out) if outermost else out), out_s

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """Load a state dict of version 1 (operand channels (left/right, hidden, bilinear), product channels
        (hidden, bilinear)) by permuting its channels to this version's order: same network, same outputs."""
        version = local_metadata.get("version", self._version)
        nb, h = self.num_bilinears, self.hidden_mv_channels
        if version < 2 and nb > 1:
            # new channel (s, b, c) was (s, c, b); new product channel (b, c) was (c, b)
            operand = torch.arange(2 * h * nb).view(2, h, nb).transpose(1, 2).reshape(-1)
            product = torch.arange(h * nb).view(h, nb).t().reshape(-1)
            for name, axis, index in (("operands.weight_mv", 0, operand), ("operands.weight_s2mv", 0, operand),
                                      ("operands.bias_mv", 0, operand), ("output.weight_mv", 1, product),
                                      ("output.weight_mv2s", 1, product)):
                key = prefix + name
                if key in state_dict and state_dict[key].shape[axis] == index.numel():
                    state_dict[key] = state_dict[key].index_select(axis, index.to(state_dict[key].device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

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
        t = self.algebra.tensors("cpu", torch.float64)
        support = t.bilinear_tables if self.coefficients is None else t.derived(bilinear_spaces).ne(0).any(1)
        return 2 * self.hidden_mv_channels * int(torch.count_nonzero(support))
