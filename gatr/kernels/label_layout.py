"""The label layout: multivector channels as token rows ``(component, channel)`` in *label order*, where
the equivariant linear maps never mix components of different sectors (contiguous ranges of labels) and
every bilinear is a sum of signed xor shifts, so neither needs a data-dependent gather.

Blade ``e_A`` is named by the bitmask ``A`` of its basis vectors, and ``e_A e_B = ±e_{A xor B}`` (0 when
they share a null vector). Every monomial bilinear built from products and complements (geometric,
outer, inner, join, ...) therefore pairs left blade ``i`` with right blade ``j = k xor d(i)`` for output
``k``, with one shift ``d(i)`` per ``i``; so do their gradients. The *sectors* of the equivariant maps
(the connected components of their joint support, :func:`connected_sectors`) are the cosets ``a xor H``
of a subgroup ``H`` of bitmasks in every shipped algebra (basis vectors counted from 0; G(3,0,1):
``H = {0, e0}``; G(4,1,0): ``{0, e3, e4, e34}``; Cl(1,3) with SO+(1,3): ``{0, e0123}``). A GF(2)-linear
relabelling of the bitmasks that sends ``H`` to the low bits keeps the xor structure (the label of
``A xor B`` is the xor of the labels) and makes every sector an aligned, contiguous range of labels. In
label order a bilinear is ``dim`` broadcast multiplies of ``x_i`` with ``y`` permuted by the constant
shift ``d(i)``: ``dim^2`` multiply-adds per product instead of the ``dim^3`` of the table GEMM, which
``torch.compile`` fuses into one loop vectorised over channels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from algebras.components import ComponentIndex, component_index, select


class XorForm(NamedTuple):
    """One bilinear map per slice as signed xor shifts: ``z[k] = sum_i signs[b, i, k] x[i] y[k xor shifts[b][i]]``.

    Parameters
    ----------
    shifts : tuple of tuple of (int or None)
        ``shifts[b][i]`` per bilinear ``b`` and left label ``i`` (None where left label ``i`` meets nothing).
    signs : Tensor, shape (n_bilinears, dim, dim)
        ``signs[b, i, k]``: the table entry of that pairing, in label order (0 where the product vanishes).
    index : Tensor of long, shape (n_bilinears, dim, dim)
        ``index[b, i, k] = k xor shifts[b][i]`` (``k`` where left label ``i`` meets nothing).
    """

    shifts: tuple
    signs: torch.Tensor
    index: torch.Tensor


class LabelLayout(NamedTuple):
    """Labels of the components, and the bilinears and their gradients as xor shifts (:func:`label_layout`).

    Parameters
    ----------
    order : Tensor of long, shape (dim,)
        ``order[m]`` is the component with label ``m`` (the label order of the label layout).
    bits : int
        ``n``: labels have ``n`` bits (``dim = 2^n``).
    sector_bits : int
        Sectors of the equivariant maps are the ``2^sector_bits`` consecutive labels ``m >> sector_bits``.
    forward, grad_left, grad_right : XorForm
        The products ``z_k = sum_ij T[i, j, k] x_i y_j`` and their gradients ``dL/dx_i = sum_jk T[i, j, k]
        y_j g_k`` (operands ``y, g``) and ``dL/dy_j = sum_ik T[i, j, k] x_i g_k`` (operands ``x, g``): the
        tables with permuted axes are again signed xor shifts.
    label_index, blade_index : ComponentIndex
        The permutations from blade order to label order (``order``) and back, as selections whose
        gradients are gathers (:mod:`algebras.components`). Label 0 is the scalar, so the scalar stays
        component 0 in both orders.
    """

    order: torch.Tensor
    bits: int
    sector_bits: int
    forward: XorForm
    grad_left: XorForm
    grad_right: XorForm
    label_index: ComponentIndex
    blade_index: ComponentIndex


def connected_sectors(support: torch.Tensor) -> list[list[int]]:
    """Connected components of the graph ``a -- b`` where ``support[a, b]`` (union-find).

    Parameters
    ----------
    support : Tensor of bool, shape (dim, dim)
        Where some map has a non-zero entry.

    Returns
    -------
    list of list of int
        The components' members, ascending; the components ordered by size, then first member.
    """
    dim = support.shape[0]
    root = list(range(dim))

    def find(a):
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a

    for a, b in torch.nonzero(support | support.t()).tolist():
        root[find(a)] = find(b)
    sectors: dict[int, list[int]] = {}
    for a in range(dim):
        sectors.setdefault(find(a), []).append(a)
    return sorted(sectors.values(), key=lambda b: (len(b), b[0]))


def _coordinates(vectors: list[int], bits: int) -> list[int] | None:
    """GF(2) coordinates of every ``bits``-bit mask in a basis extending ``vectors`` with unit vectors.

    Returns ``label[mask]`` (basis vector ``q`` is bit ``q`` of the label), or None if ``vectors`` are
    dependent.
    """
    basis = list(vectors)
    for q in range(bits):  # extend with unit vectors (Gaussian elimination on the fly via span check)
        if len(basis) == bits:
            break
        span = {0}
        for v in basis:
            span |= {s ^ v for s in span}
        if 1 << q not in span:
            basis.append(1 << q)
    span_size = 1
    label = {0: 0}
    for q, v in enumerate(basis):  # label of every xor-combination: its coefficients in this basis
        label.update({mask ^ v: lab | 1 << q for mask, lab in list(label.items())})
        span_size *= 2
        if len(label) != span_size:
            return None
    return [label[m] for m in range(1 << bits)]


def label_layout(t) -> LabelLayout | None:
    """:class:`LabelLayout` of the algebra's tensors ``t`` (cached through ``t.derived``), if it has one.

    Parameters
    ----------
    t : AlgebraTensors

    Returns
    -------
    LabelLayout or None
        None when the algebra names no blades (``constants.blades``), its map sectors are not the cosets of
        a subgroup of bitmasks, or a bilinear is not a signed xor shift; the kernels then keep their
        general paths.
    """
    blades = t.constants.blades
    if blades is None:
        return None
    dim = len(blades)
    bits = dim.bit_length() - 1
    if 1 << bits != dim:
        return None
    mask = [sum(1 << v for v in blade) for blade in blades]
    component = {m: a for a, m in enumerate(mask)}
    sectors = [[mask[a] for a in sector] for sector in connected_sectors((t.linear_basis != 0).any(0).cpu())]
    subgroup = next(b for b in sectors if 0 in b)
    if len({len(b) for b in sectors}) != 1 or any({m ^ b[0] for m in subgroup} != set(b) for b in sectors):
        return None  # sectors are not the cosets of one subgroup
    generators = []  # a GF(2) basis of the subgroup
    span = {0}
    for m in sorted(subgroup):
        if m not in span:
            generators.append(m)
            span |= {s ^ m for s in span}
    if span != set(subgroup):
        return None
    label = _coordinates(generators, bits)
    if label is None:
        return None
    order = [component[m] for m in sorted(range(dim), key=lambda m: label[m])]
    if order[0] != 0:  # label 0 is mask 0; the layers read the scalar as component 0 in either order
        return None
    order_t = torch.tensor(order, device=t.device)
    tables = t.bilinear_tables[:, order_t][:, :, order_t][:, :, :, order_t]  # (nb, i, j, k) in label order
    # the gradients shift the incoming gradient, never a forward operand: the compiler would otherwise share
    # (and keep from the forward) the forward's shifted copies of y
    forms = [_xor_form(tables.permute(0, *axes)) for axes in ((1, 2, 3), (2, 3, 1), (1, 3, 2))]
    if any(f is None for f in forms):
        return None
    position = torch.argsort(order_t)
    return LabelLayout(order_t, bits, len(generators), *forms, component_index(order_t, dim),
                       component_index(position, dim))


def to_labels(layout: LabelLayout, mv: torch.Tensor) -> torch.Tensor:
    """Multivectors from the usual ``(..., channels, dim)`` to the label layout ``(..., dim, channels)``.

    Parameters
    ----------
    layout : LabelLayout
    mv : Tensor, shape (..., channels, dim)
        Components in blade order.

    Returns
    -------
    Tensor, shape (..., dim, channels)
        Components in label order (a strided view of the permuted components: not contiguous).
    """
    return select(mv, layout.label_index, -1).transpose(-1, -2)


def from_labels(layout: LabelLayout, mv: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`to_labels`.

    Parameters
    ----------
    layout : LabelLayout
    mv : Tensor, shape (..., dim, channels)
        Components in label order.

    Returns
    -------
    Tensor, shape (..., channels, dim)
        Components in blade order.
    """
    if torch.compiler.is_compiling():  # fused into its consumers (this form measured faster compiled)
        return select(mv.transpose(-1, -2), layout.blade_index, -1)
    # eagerly, permuting the component axis copies whole contiguous rows of channels (the last axis of the
    # transposed view would be read one element at a time)
    return select(mv, layout.blade_index, -2).transpose(-1, -2)


def monomial_partners(tables: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The one right blade each left blade meets per output, if the tables are monomial.

    Parameters
    ----------
    tables : Tensor, shape (nb, i, j, k)

    Returns
    -------
    (signs, partner) or None
        ``partner[b, i, k]`` is the ``j`` with ``tables[b, i, j, k] != 0`` (0 where there is none) and
        ``signs[b, i, k]`` that entry, both ``(nb, i, k)``; None if some ``(b, i, k)`` has two such ``j``.
    """
    nonzero = tables != 0
    if bool((nonzero.sum(2) > 1).any()):
        return None
    partner = nonzero.to(torch.int64).argmax(2)
    return torch.gather(tables, 2, partner.unsqueeze(2)).squeeze(2), partner


def _xor_form(tables: torch.Tensor) -> XorForm | None:
    """:class:`XorForm` of tables ``(nb, i, j, k)`` in label order, or None if one is not a signed xor shift."""
    found = monomial_partners(tables)
    if found is None:
        return None
    signs, partner = found
    shifts = []
    for b in range(tables.shape[0]):
        row = []
        for i in range(tables.shape[1]):
            found = {int(partner[b, i, k]) ^ k for k in torch.nonzero(signs[b, i]).flatten().tolist()}
            if len(found) > 1:
                return None
            row.append(found.pop() if found else None)
        shifts.append(tuple(row))
    labels = torch.arange(tables.shape[1], device=tables.device)
    index = torch.stack([torch.stack([labels ^ (d or 0) for d in row]) for row in shifts])
    return XorForm(tuple(shifts), signs.contiguous(), index)


def xor_products(form: XorForm, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Every bilinear on its operands in the label layout, as signed xor shifts.

    ``z[:, k, b] = sum_i signs[b, i, k] x[:, i, b] y[:, k xor shifts[b][i], b]``: ``dim`` terms per
    bilinear, each a broadcast multiply with ``y`` permuted by a constant xor shift of its components
    (no ``dim^2`` intermediate once compiled: one fused loop over tokens and components, vectorised over
    the ``h`` products).

    Parameters
    ----------
    form : XorForm
    x, y : Tensor, shape (T, dim, n_bilinears, h)
        Operands in label order; slice ``b`` feeds bilinear ``b`` (``h`` products each).

    Returns
    -------
    Tensor, shape (T, dim, n_bilinears, h)
    """
    n_tokens, dim, nb, h = x.shape
    outs = []
    for b in range(nb):
        xb, yb = x[:, :, b], y[:, :, b]  # (T, dim, h)
        # every shift of y as ONE index_select (T, i, k, h), left unmaterialised by the compiler: a sum that
        # reads few buffers stays one fused loop (a constant index_select also measured 3-4x faster
        # compiled than flipping the component bits)
        shifted = yb.index_select(1, form.index[b].reshape(-1)).view(n_tokens, dim, dim, h)
        signs = form.signs[b].to(x.dtype)
        z = None
        for i, d in enumerate(form.shifts[b]):
            if d is None:
                continue
            term = xb[:, i : i + 1] * signs[i, :, None] * shifted[:, i]
            z = term if z is None else z + term
        outs.append(z if z is not None else torch.zeros_like(xb))
    return torch.stack(outs, 2)


class XorBilinear(torch.autograd.Function):
    """:func:`xor_products` with gradients that are xor-shift products again (``grad_left``,
    ``grad_right``), so a compiled backward is as compact as the forward.

    Call ``XorBilinear.apply(layout, x, y)``.

    Parameters
    ----------
    layout : LabelLayout
    x, y : Tensor, shape (T, dim, n_bilinears, h)
        Operands in label order.

    Returns
    -------
    Tensor, shape (T, dim, n_bilinears, h)
        The products (:attr:`LabelLayout.forward`).
    """

    @staticmethod
    def forward(ctx, layout: LabelLayout, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The products; saves the operands for the gradients.

        Parameters
        ----------
        ctx : autograd context
        layout : LabelLayout
        x, y : Tensor, shape (T, dim, n_bilinears, h)

        Returns
        -------
        Tensor, shape (T, dim, n_bilinears, h)
        """
        ctx.layout = layout
        ctx.save_for_backward(x, y)
        return xor_products(layout.forward, x, y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        """``dL/dx = grad_left(y, g)`` and ``dL/dy = grad_right(x, g)``: differentiable operations again,
        so gradients of gradients hold.

        Parameters
        ----------
        ctx : autograd context
        grad : Tensor, shape (T, dim, n_bilinears, h)

        Returns
        -------
        tuple of (None, Tensor or None, Tensor or None)
            No gradient for the layout, then those of ``x`` and ``y``.
        """
        x, y = ctx.saved_tensors
        layout = ctx.layout
        g = grad.to(x.dtype)
        gx = xor_products(layout.grad_left, y, g) if ctx.needs_input_grad[1] else None
        gy = xor_products(layout.grad_right, x, g) if ctx.needs_input_grad[2] else None
        return None, gx, gy
