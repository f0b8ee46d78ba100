"""The sparse kernel of the equivariant linear map: one batched GEMM over the sectors of the maps.

No equivariant map connects components of different *sectors* (the connected components of the maps'
joint support: 8 sectors of ``dim / 8`` components in every shipped algebra), so the map is sector
diagonal after one permutation of the components and runs as ONE batched GEMM over sectors,
``(sectors, T, p * in) @ (sectors, p * in, p * out)`` (``dim / p`` times fewer multiply-adds than the dense
map); scalars enter (and leave) only through the few components the invariant basis (functionals) touch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from algebras.components import ComponentIndex, component_index, select, spread

from .label_layout import connected_sectors, label_layout
from .ops import run_permute_columns, run_sector_matmul


class SectorStructure(NamedTuple):
    """The block-diagonal form of the equivariant maps on one (device, dtype), built by :func:`sector_structure`.

    Components fall into sectors that no map connects (the connected components of the maps' joint
    support): ``B_m[a, b] = 0`` unless ``a`` and ``b`` share a sector. Every shipped algebra has 8 sectors
    of ``dim / 8`` components (G(3,0,1): ``{e_A, e_0 e_A}``; G(4,1,0): 4 components each).

    Parameters
    ----------
    order : Tensor of long, shape (dim,)
        The components in sector order: sectors of equal size side by side, groups of sizes one after the other.
    position : Tensor of long, shape (dim,)
        The inverse permutation: ``order[position[a]] == a``.
    groups : tuple of (int, int)
        ``(sectors, sector_size)`` per group of equally sized sectors, in the order of ``order``.
    sector_bases : tuple of Tensor, shape (n_maps, sectors, sector_size, sector_size)
        Per group, ``B_m`` restricted to each sector: ``[m, k, q, p] = B_m[sector_k[q], sector_k[p]]``.
    inv, fun : ComponentIndex
        The components the invariant multivectors / functionals touch (:mod:`algebras.components`).
    inv_sectors, fun_sectors : ComponentIndex
        The same components by their positions in ``order``.
    inv_basis : Tensor, shape (k, n_inv)
        The invariant multivectors on those components.
    fun_basis : Tensor, shape (k', n_fun)
        The invariant functionals on those components.
    permutations : dict
        Per channel count, the column permutations of :func:`_sector_major` (filled on first use).
    """

    order: torch.Tensor
    position: torch.Tensor
    groups: tuple
    sector_bases: tuple
    inv: ComponentIndex
    fun: ComponentIndex
    inv_sectors: ComponentIndex
    fun_sectors: ComponentIndex
    inv_basis: torch.Tensor
    fun_basis: torch.Tensor
    permutations: dict


def sector_structure(t) -> SectorStructure:
    """:class:`SectorStructure` from the algebra's tensors (cached through ``t.derived``).

    Parameters
    ----------
    t : AlgebraTensors
        The algebra's constants on one (device, dtype).

    Returns
    -------
    SectorStructure
    """
    basis = t.linear_basis  # (m, a, b)
    layout = t.derived(label_layout)
    if layout is not None:  # the label order: sectors are aligned ranges of labels, bilinears xor shifts
        sectors = layout.order.view(-1, 1 << layout.sector_bits).tolist()
    else:
        sectors = connected_sectors((basis != 0).any(0).cpu())
    groups, sector_bases, order = [], [], []
    for size in sorted({len(b) for b in sectors}):
        members = torch.tensor([b for b in sectors if len(b) == size], device=t.device)  # (k, p)
        groups.append(tuple(members.shape))
        sector_bases.append(basis[:, members[:, :, None], members[:, None, :]].contiguous())
        order.append(members.reshape(-1))
    order = torch.cat(order)
    position = torch.empty_like(order)
    position[order] = torch.arange(order.numel(), device=t.device)
    inv = torch.nonzero(t.invariant_basis.abs().sum(0) > 0).flatten()
    fun = torch.nonzero(t.invariant_functionals.abs().sum(0) > 0).flatten()
    dim = order.numel()
    return SectorStructure(order, position, tuple(groups), tuple(sector_bases), component_index(inv, dim),
                           component_index(fun, dim), component_index(position[inv], dim),
                           component_index(position[fun], dim), t.invariant_basis[:, inv],
                           t.invariant_functionals[:, fun], {})


def _sector_major(st: SectorStructure, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column permutations between token rows ``(channel, component)`` and sector-major rows
    ``(component in sector order, channel)``, and back (built once per channel count)."""
    if channels in st.permutations:
        return st.permutations[channels]
    c = torch.arange(channels, device=st.order.device)
    dim = st.order.numel()
    to_sectors = (c[None, :] * dim + st.order[:, None]).reshape(-1)  # (q, i) reads (i, order[q])
    from_sectors = (st.position[None, :] * channels + c[:, None]).reshape(-1)  # (i, a) reads (position[a], i)
    if not torch.compiler.is_compiling():  # traced, they are constants the compiler folds; never store a traced value
        st.permutations[channels] = (to_sectors, from_sectors)
    return to_sectors, from_sectors


def sparse_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s, labels_in: bool = False,
                  labels_out: bool = False):
    """The map of :func:`dense_linear` as one batched GEMM over the sectors of :class:`SectorStructure`.

    Tokens are permuted to sector-major order (one gather), every sector runs its own dense
    ``(T, p * in) @ (p * in, p * out)`` map (``dim * p * in * out`` multiply-adds per token instead of the
    dense ``dim^2 * in * out``: 1/8 in every shipped algebra), and one gather restores the blade order.
    Scalars enter (and leave) through the few components the invariant basis (functionals) touch.
    In the label layout (:mod:`gatr.kernels.label_layout`) inputs and outputs are already sector-major,
    and the gathers are skipped.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor, shape (..., in_mv, dim), or (..., dim, in_mv) in sector order with ``labels_in``
    scalars : Tensor, shape (..., in_s), or None
    w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s : Tensor or None
        The weights of :func:`gatr.primitives.linear.equi_matrix` and the biases of
        :func:`gatr.primitives.linear.equi_bias`.
    labels_in, labels_out : bool
        Multivector inputs / outputs in the label layout: ``(..., dim, channels)`` with the components in
        the order ``SectorStructure.order``.

    Returns
    -------
    mv : Tensor, shape (..., out_mv, dim), or (..., dim, out_mv) with ``labels_out``
    scalars : Tensor, shape (..., out_s)
    """
    dim = alg.dim
    out_mv, in_mv, _ = w_mv.shape
    lead = mv.shape[:-2]
    x = mv.reshape(-1, in_mv * dim)
    n = x.shape[0]
    st = alg.tensors(w_mv.device, w_mv.dtype).derived(sector_structure)
    # sector weights [k, (p, i), (q, o)] = sum_m W[o, i, m] B_m[sector_k[q], sector_k[p]]: one GEMM and one
    # permuting copy per group (an einsum spends a dozen operations on it, the cost of a small network)
    weights = [(w_mv.reshape(out_mv * in_mv, -1) @ basis.reshape(basis.shape[0], -1)).view(out_mv, in_mv, k, p, p)
               .permute(2, 4, 1, 3, 0).reshape(k, p * in_mv, p * out_mv)
               for (k, p), basis in zip(st.groups, st.sector_bases)]
    # under autocast the einsum ran in the autocast dtype: the GEMMs run there, as F.linear's would
    x = x.to(weights[0].dtype)
    xb = x.contiguous() if labels_in else run_permute_columns(x, *_sector_major(st, in_mv))  # (T, (sector order, in))
    out = run_sector_matmul(xb, weights, *((None, None) if labels_out else _sector_major(st, out_mv)[::-1]))
    out = out.view(n, dim, out_mv) if labels_out else out.view(n, out_mv, dim)
    s = scalars.reshape(-1, scalars.shape[-1]).to(x.dtype) if scalars is not None and scalars.shape[-1] else None
    out = _add_invariant_part(st, out, s, w_s2mv, b_mv, labels_out).view(*lead, *out.shape[1:])
    if w_mv2s is None:
        return out, out.new_zeros(*lead, 0)
    n_s = w_mv2s.shape[0]
    u = (w_mv2s.reshape(n_s * in_mv, -1) @ st.fun_basis).view(n_s, in_mv, -1)  # (out_s, in, functional component)
    if labels_in:  # features ordered (functional component, channel)
        u = u.transpose(1, 2).reshape(n_s, -1)
        feats = select(mv.reshape(n, dim, in_mv), st.fun_sectors, 1).reshape(n, -1)
    else:
        u = u.reshape(n_s, -1)
        feats = select(mv.reshape(n, in_mv, dim), st.fun, 2).reshape(n, -1)
    if w_s is not None and s is not None:
        feats = torch.cat([feats, s], -1)
        u = torch.cat([u, w_s], 1)
    return out, F.linear(feats, u, b_s).reshape(*lead, -1)


def _add_invariant_part(st: SectorStructure, out, s, w_s2mv, b_mv, labels_out: bool):
    """``out (T, out_mv, dim)`` (``(T, dim, out_mv)`` with ``labels_out``) plus the scalars' and the bias's
    part, which enters along the invariant components only."""
    n, out_mv = out.shape[0], out.shape[2 if labels_out else 1]
    ys = None
    if w_s2mv is not None or b_mv is not None:
        bias = (b_mv @ st.inv_basis).t().reshape(-1) if b_mv is not None else None  # (n_inv * out)
        if w_s2mv is not None and s is not None:
            o, n_s = w_s2mv.shape[:2]  # v[s, (c, o)] = sum_k W[o, s, k] inv[k, c]
            v = (w_s2mv.reshape(o * n_s, -1) @ st.inv_basis).view(o, n_s, -1).permute(1, 2, 0).reshape(n_s, -1)
            ys = s @ v if bias is None else torch.addmm(bias, s, v)
        elif bias is not None:
            ys = bias.expand(n, -1)
    if ys is None:
        return out
    ys = ys.view(n, -1, out_mv)
    if torch.compiler.is_compiling():  # an in-place index_add becomes atomic adds; spread is a gather fused into one add
        return out + (spread(ys, st.inv_sectors, 1) if labels_out else spread(ys.transpose(1, 2), st.inv, 2))
    # out of place: in place on the GEMM's output, autograd would copy the whole gradient (CopySlices)
    if labels_out:  # rows (component in sector order, channel)
        return out.index_add(1, st.inv_sectors.index, ys)
    return out.index_add(2, st.inv.index, ys.transpose(1, 2))
