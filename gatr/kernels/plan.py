"""The execution plan: how every layer of one forward executes, decided once.

The layers compute the mathematics of :mod:`gatr.primitives`; *how* it runs (which kernel executes the
linear maps and the bilinears, and in which layout the hidden multivectors travel) is one small value,
:class:`ExecutionPlan`, resolved by :func:`resolve_plan` from the algebra, the input's device, dtype and
size, the kernel names and whether ``torch.compile`` is tracing. :class:`~gatr.nets.GATr` resolves it once
per forward at its boundary and hands it to every layer; a layer called on its own resolves its own.
Layers read the plan's layout only through its members (:meth:`~ExecutionPlan.enter`,
:meth:`~ExecutionPlan.leave`, :attr:`~ExecutionPlan.component_axis`, ...), so they never branch on it.

Two layouts exist:

* blade order, ``(..., channels, dim)``: the layout of every input and output;
* the label layout (:mod:`gatr.kernels.label_layout`), ``(..., dim, channels)`` with the components in
  label order, where the sparse linear maps read and write their sectors without permuting components. It
  is taken with bilinear kernel ``"xor"``, and with ``"auto"`` on CPUs where the linear maps run sparse.
  There ``"auto"`` bilinears run as xor shifts under ``torch.compile`` (the compiler fuses them into one
  loop) and eagerly as the table GEMM with its tables permuted to label order (run eagerly the shifts are
  many small operations; see the README's kernel figures). In blade order the sparse maps would permute
  the components of every input and output (two gathers per map and two more in its gradient).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from .bilinear import BILINEAR_KERNELS, dense_bilinear, label_product_matrices, monomial_tables, product_matrices
from .label_layout import LabelLayout, XorBilinear, from_labels, label_layout, to_labels
from .linear import LINEAR_KERNELS, dense_linear
from .sparse_linear import sector_structure, sparse_linear

#: Token count (product of the leading axes) from which ``"auto"`` runs the sparse linear kernel on CPUs.
SPARSE_MIN_TOKENS = 64

#: Float dtypes whose constants :func:`prepare` builds (weights, autocast operands, float64 checks).
PREPARED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class ExecutionPlan(NamedTuple):
    """How the layers of one forward execute (built by :func:`resolve_plan`).

    Parameters
    ----------
    algebra : NetworkAlgebra
    linear : {"dense", "sparse"}
        The kernel of every equivariant linear map (:data:`gatr.kernels.LINEAR_KERNELS`).
    bilinear : {"dense", "sparse", "xor"} or None
        The kernel of the bilinear products (:data:`gatr.kernels.BILINEAR_KERNELS`); None for a layer
        without bilinears. ``"dense"`` with ``labels``: the table GEMM on label-ordered tables.
    labels : LabelLayout or None
        The hidden multivectors travel as ``(..., dim, channels)`` in this label order; None: in blade
        order ``(..., channels, dim)``.
    component_axis, channel_axis : int
        The axes of the hidden multivectors that hold the components and the channels: ``-1, -2`` in blade
        order, ``-2, -1`` in labels (:meth:`build` sets them from ``labels``; stored, not properties,
        because torch 2.5's compiler cannot read a property of a named tuple).
    """

    algebra: Any
    linear: str
    bilinear: Any
    labels: Any
    component_axis: int = -1
    channel_axis: int = -2

    @classmethod
    def build(cls, algebra, linear: str, bilinear, labels) -> "ExecutionPlan":
        """The plan with these kernels and layout, its axes set from ``labels``.

        Parameters
        ----------
        algebra : NetworkAlgebra
        linear : {"dense", "sparse"}
        bilinear : {"dense", "sparse", "xor"} or None
        labels : LabelLayout or None

        Returns
        -------
        ExecutionPlan
        """
        return cls(algebra, linear, bilinear, labels, *((-2, -1) if labels is not None else (-1, -2)))

    # ------------------------------------------------------------------ the layout
    def in_blade_order(self) -> "ExecutionPlan":
        """This plan with the hidden multivectors in blade order (itself if they already are).

        Returns
        -------
        ExecutionPlan
        """
        return self if self.labels is None else ExecutionPlan.build(self.algebra, self.linear, self.bilinear, None)

    def enter(self, mv: torch.Tensor) -> torch.Tensor:
        """Blade-ordered multivectors in this plan's layout.

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim)

        Returns
        -------
        Tensor, shape (..., channels, dim), or (..., dim, channels) in label order (a strided view)
        """
        return mv if self.labels is None else to_labels(self.labels, mv)

    def leave(self, mv: torch.Tensor) -> torch.Tensor:
        """Multivectors in this plan's layout back in blade order (the inverse of :meth:`enter`).

        Parameters
        ----------
        mv : Tensor, shape (..., channels, dim), or (..., dim, channels) in label order

        Returns
        -------
        Tensor, shape (..., channels, dim)
        """
        return mv if self.labels is None else from_labels(self.labels, mv)

    def scalar_part(self, mv: torch.Tensor) -> torch.Tensor:
        """The scalar component ``<x>_0`` of every multivector (label 0 is the scalar too).

        Parameters
        ----------
        mv : Tensor in this plan's layout

        Returns
        -------
        Tensor, shape (..., channels, 1), or (..., 1, channels) in label order
        """
        return mv.narrow(self.component_axis, 0, 1)

    def split_heads(self, mv: torch.Tensor, heads: int, channels: int) -> torch.Tensor:
        """``heads*channels`` multivector channels -> heads first (a view).

        Parameters
        ----------
        mv : Tensor, shape (..., items, heads * channels, dim) (channels last in labels)
        heads, channels : int

        Returns
        -------
        Tensor, shape (..., heads, items, channels, dim) (``(..., heads, items, dim, channels)`` in labels)
        """
        if self.labels is None:
            return mv.unflatten(-2, (heads, channels)).transpose(-4, -3)
        return mv.unflatten(-1, (heads, channels)).movedim(-2, -4)

    def merge_heads(self, mv: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`split_heads`.

        Parameters
        ----------
        mv : Tensor, shape (..., heads, items, channels, dim) (``(..., heads, items, dim, channels)`` in labels)

        Returns
        -------
        Tensor, shape (..., items, heads * channels, dim) (``(..., items, dim, heads * channels)`` in labels)
        """
        if self.labels is None:
            return mv.transpose(-4, -3).flatten(-3, -2)
        return mv.movedim(-4, -2).flatten(-2)

    # ------------------------------------------------------------------ the kernels
    def linear_map(self, mv, scalars, w_mv, w_s2mv=None, w_mv2s=None, w_s=None, b_mv=None, b_s=None):
        """The equivariant linear map with this plan's kernel, multivectors in and out in its layout.

        Parameters
        ----------
        mv : Tensor, shape (..., in_mv, dim) (``(..., dim, in_mv)`` in labels)
        scalars : Tensor, shape (..., in_s), or None
        w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s
            The weights of :func:`gatr.primitives.equi_matrix` and the biases of :func:`gatr.primitives.equi_bias`.

        Returns
        -------
        mv : Tensor, shape (..., out_mv, dim) (``(..., dim, out_mv)`` in labels)
        scalars : Tensor, shape (..., out_s)
        """
        weights = (w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s)
        if self.linear == "sparse":  # in the label layout the sectors are ranges of labels: no permutation
            labels = self.labels is not None
            return sparse_linear(self.algebra, mv, scalars, *weights, labels_in=labels, labels_out=labels)
        out, s = LINEAR_KERNELS[self.linear](self.algebra, self.leave(mv), scalars, *weights)
        return self.enter(out), s

    def bilinear_products(self, operands: torch.Tensor, n_bilinears: int, hidden: int,
                          factors: torch.Tensor | None, tables: torch.Tensor | None = None) -> torch.Tensor:
        """Every bilinear on its operand pairs, with this plan's kernel and layout.

        Parameters
        ----------
        operands : Tensor, shape (..., items, 2 * n_bilinears * hidden, dim) (channels last in labels)
            Operand channels ordered (left/right, bilinear, hidden).
        n_bilinears, hidden : int
        factors : Tensor, shape (..., items | 1, hidden | 1, n_bilinears), or None
            Per product, the factor of :func:`gatr.primitives.reference_factors` (None: all 1).
        tables : Tensor, shape (n_bilinears, dim, dim, dim), optional
            Learned tables instead of the algebra's (run on the dense kernel, in blade order).

        Returns
        -------
        Tensor, shape (..., items, n_bilinears * hidden, dim) (channels last in labels)
            Product channels ordered (bilinear, hidden).
        """
        if tables is not None and self.labels is not None:
            raise ValueError("learned bilinear tables run on the dense kernel in blade order, not in the label layout")
        if self.labels is not None:  # (..., dim, 2, nb, h): each bilinear's operands contiguous
            ops = operands.unflatten(-1, (2, n_bilinears, hidden))
            lead = ops.shape[:-3]
            flat = ops.reshape(-1, *ops.shape[-4:])
            if self.bilinear == "xor":
                z = XorBilinear.apply(self.labels, flat[:, :, 0], flat[:, :, 1]).view(*lead, n_bilinears, hidden)
            else:  # the table GEMM in label order on (T * h, nb, dim) operands: one transposing copy each
                left, right = (a.permute(0, 3, 2, 1) for a in flat.unbind(2))  # (T, h, nb, dim); one gradient
                x, y = (a.reshape(-1, n_bilinears, a.shape[-1]) for a in (left, right))
                z = dense_bilinear(self.algebra, x, y, labels=True).view(*lead[:-1], hidden, n_bilinears, -1)
                if factors is not None:  # before the transposing copy back to (..., dim, nb, h)
                    z = z * factors.unsqueeze(-1).to(z.dtype)  # (..., h|1, nb, 1)
                    factors = None
                z = z.transpose(-1, -3)  # (..., dim, nb, h)
            if factors is not None:
                z = z * factors.transpose(-1, -2).unsqueeze(-3).to(z.dtype)  # (..., 1, nb, h|1)
            return z.flatten(-2)
        ops = operands.unflatten(-2, (2, n_bilinears, hidden)).transpose(-3, -2)  # (..., 2, h, nb, dim)
        left, right = ops.unbind(-4)  # one gradient (a stack), not two zero-padded ones
        shape = left.shape
        x = left.reshape(-1, n_bilinears, shape[-1]).contiguous()
        y = right.reshape(-1, n_bilinears, shape[-1]).to(left.dtype).contiguous()
        if tables is None:
            z = BILINEAR_KERNELS[self.bilinear](self.algebra, x, y).view(shape)
        else:
            z = dense_bilinear(self.algebra, x, y, tables).view(shape)
        if factors is not None:
            z = z * factors.unsqueeze(-1).to(z.dtype)  # (..., h|1, nb, 1)
        return z.transpose(-3, -2).flatten(-3, -2)


def check_kernel_names(linear: str | None = None, bilinear: str | None = None) -> None:
    """A clear error for an unknown kernel name, listing the valid ones.

    Parameters
    ----------
    linear, bilinear : str, optional
        ``"auto"`` or a key of :data:`gatr.kernels.LINEAR_KERNELS` / :data:`gatr.kernels.BILINEAR_KERNELS`.

    Raises
    ------
    ValueError
    """
    for kind, name, valid in (("linear", linear, LINEAR_KERNELS), ("bilinear", bilinear, BILINEAR_KERNELS)):
        if name is not None and name != "auto" and name not in valid:
            raise ValueError(f"unknown {kind} kernel {name!r}; valid: {['auto', *valid]}")


def select_linear_kernel(name: str, tokens: int, device: torch.device, sector_size: int = 2,
                         compiled: bool | None = None) -> str:
    """The linear kernel ``name`` stands for at this size and device.

    Parameters
    ----------
    name : {"auto", "dense", "sparse"}
    tokens : int
        Product of the leading axes of the input.
    device : torch.device
    sector_size : int
        Components in the largest sector of the maps (:mod:`gatr.kernels.sparse_linear`).
    compiled : bool, optional
        Whether the layers will run compiled; default: whether ``torch.compile`` is tracing now.

    Returns
    -------
    {"dense", "sparse"}
    """
    check_kernel_names(linear=name)
    if name != "auto":
        return name
    # On CPUs the sparse map wins from SPARSE_MIN_TOKENS tokens where sectors hold 2 or more components;
    # sectors of one component (G(3,0,0)) are too thin eagerly but not once compiled. On GPUs one dense
    # GEMM was faster (the README's kernel figures).
    compiled = torch.compiler.is_compiling() if compiled is None else compiled
    thick = sector_size >= 2 or compiled
    return "sparse" if device.type == "cpu" and tokens >= SPARSE_MIN_TOKENS and thick else "dense"


def resolve_plan(algebra, mv: torch.Tensor, linear: str = "auto", bilinear: str | None = None,
                 compiled: bool | None = None) -> ExecutionPlan:
    """The plan for a forward on blade-ordered multivectors ``mv`` with these kernel names.

    Parameters
    ----------
    algebra : NetworkAlgebra
    mv : Tensor, shape (..., channels, dim)
        The inputs (their device, dtype and number of tokens decide).
    linear : {"auto", "dense", "sparse"}
    bilinear : {"auto", "dense", "sparse", "xor"} or None
        None for layers without bilinears (the plan then keeps blade order).
    compiled : bool, optional
        Whether the layers will run compiled (``"auto"`` picks xor-shift bilinears and thin sparse sectors
        only then); default: whether ``torch.compile`` is tracing now. A network that compiles its
        blocks one by one resolves its plan eagerly, for compiled blocks.

    Returns
    -------
    ExecutionPlan
    """
    check_kernel_names(linear, bilinear)
    t = algebra.tensors(mv.device, mv.dtype if mv.is_floating_point() else torch.get_default_dtype())
    tokens = mv.numel() // max(1, mv.shape[-1] * mv.shape[-2]) if mv.dim() >= 2 else 1
    sector_size = max(p for _, p in t.derived(sector_structure).groups) if linear == "auto" else 2
    compiled = torch.compiler.is_compiling() if compiled is None else compiled
    linear = select_linear_kernel(linear, tokens, mv.device, sector_size, compiled)
    layout = t.derived(label_layout) if bilinear in ("auto", "xor") else None
    use_labels = layout is not None and (bilinear == "xor" or (
        bilinear == "auto" and linear == "sparse" and mv.device.type == "cpu"))
    if bilinear is not None:  # in the label layout "auto" is the xor shifts compiled, the table GEMM eagerly
        xor = use_labels and (bilinear == "xor" or compiled)
        bilinear = "xor" if xor else ("dense" if bilinear in ("auto", "xor") else bilinear)
    return ExecutionPlan.build(algebra, linear, bilinear, layout if use_labels else None)


def prepare(algebra, device, linear: str = "auto", bilinear: str | None = "auto") -> None:
    """Build the algebra's tensors, and the data of every kernel these names can run, on ``device``.

    For every float dtype (weights, autocast operands, float64 checks), so a forward, traced or compiled
    with ``fullgraph=True``, only reads cached tensors and never converts NumPy data or runs a host loop.
    Everything is cached in the algebra's :class:`~algebras.constants.AlgebraTensors`, so a second call is
    a few dictionary look-ups.

    Parameters
    ----------
    algebra : NetworkAlgebra
    device : torch.device or str
    linear : {"auto", "dense", "sparse"}
    bilinear : {"auto", "dense", "sparse", "xor"} or None
    """
    device = torch.device(device)
    if device.type == "meta":
        return
    data = [sector_structure, label_layout]  # the plan reads both to decide
    if bilinear in ("auto", "dense", "xor"):  # "xor" falls back to the table GEMM without a label layout
        data.append(product_matrices)
    if bilinear == "auto":  # eagerly, the table GEMM in the label layout
        data.append(label_product_matrices)
    if bilinear == "sparse":
        data.append(monomial_tables)
    for dtype in PREPARED_DTYPES:
        t = algebra.tensors(device, dtype).build()
        for build in data:
            t.derived(build)


__all__ = ["ExecutionPlan", "LabelLayout", "PREPARED_DTYPES", "SPARSE_MIN_TOKENS", "check_kernel_names", "dense_linear",
           "prepare", "resolve_plan", "select_linear_kernel"]
