"""Equivariant linear maps between multivector and scalar channels: the mathematics.

A layer with ``in_mv`` / ``out_mv`` multivector channels and ``in_s`` / ``out_s`` scalar channels
acts on the flattened input ``[x_mv.flatten(-2), x_s]`` of length ``in_mv * dim + in_s`` with the
block matrix

    [ sum_m W[o, i, m] B_m          sum_k V[o, s, k] v_k   ]   (out_mv * dim rows)
    [ sum_k U[p, i, k] f_k^T        S[p, s]                ]   (out_s rows)

where ``B_m`` are the equivariant maps (``tensors.linear_basis``), ``v_k`` the invariant multivectors
(``tensors.invariant_basis``: scalars -> multivectors) and ``f_k`` the invariant functionals
(``tensors.invariant_functionals``: multivectors -> scalars). Every block commutes with the group
action, so the whole map is equivariant. The multivector bias lies along the invariant multivectors.
How the map is executed (this dense matrix, or sparsely per component) is up to
:mod:`gatr.kernels.linear`.
"""

from __future__ import annotations

import math

import torch


def equi_matrix(alg, w_mv, w_s2mv=None, w_mv2s=None, w_s=None) -> torch.Tensor:
    """The dense ``(out_mv * dim + out_s, in_mv * dim + in_s)`` matrix of the map, in ``w_mv``'s dtype.

    Parameters
    ----------
    alg : NetworkAlgebra
    w_mv : Tensor ``(out_mv, in_mv, n_maps)``
    w_s2mv : Tensor ``(out_mv, in_s, n_invariant)`` or None
    w_mv2s : Tensor ``(out_s, in_mv, n_functionals)`` or None
    w_s : Tensor ``(out_s, in_s)`` or None (only together with ``w_mv2s``)

    Returns
    -------
    Tensor ``(out_mv * dim + out_s, in_mv * dim + in_s)``
        The block matrix of the module docstring; the scalar rows / columns are absent when the
        corresponding weights are None.
    """
    t = alg.tensors(w_mv.device, w_mv.dtype)
    dim = alg.dim
    out_mv, in_mv, n_maps = w_mv.shape
    # (o*i, m) @ (m, a*b) -> (o, i, a, b) -> (o, a, i, b): row o*dim+a, column i*dim+b
    mm = (w_mv.reshape(out_mv * in_mv, n_maps) @ t.linear_basis.reshape(n_maps, dim * dim))
    mm = mm.reshape(out_mv, in_mv, dim, dim).permute(0, 2, 1, 3).reshape(out_mv * dim, in_mv * dim)
    top = mm if w_s2mv is None else torch.cat(
        [mm, torch.einsum("osk,ka->oas", w_s2mv, t.invariant_basis).reshape(out_mv * dim, -1)], 1)
    if w_mv2s is None:
        return top
    bottom = torch.einsum("pik,kb->pib", w_mv2s, t.invariant_functionals).reshape(w_mv2s.shape[0], in_mv * dim)
    if w_s is not None:
        bottom = torch.cat([bottom, w_s], 1)
    return torch.cat([top, bottom], 0)


def equi_bias(alg, b_mv, b_s=None) -> torch.Tensor | None:
    """The bias of the flattened output ``[mv.flatten(-2), scalars]``.

    The multivector bias lies along the invariant multivectors, so it is equivariant.

    Parameters
    ----------
    alg : NetworkAlgebra
    b_mv : Tensor ``(out_mv, n_invariant)`` or None
        Coefficients of ``tensors.invariant_basis`` per output channel.
    b_s : Tensor ``(out_s,)`` or None
        Scalar bias (only together with ``b_mv``).

    Returns
    -------
    Tensor ``(out_mv * dim + out_s,)`` or None
        None when both biases are None.
    """
    if b_mv is None and b_s is None:
        return None
    parts = [(b_mv @ alg.tensors(b_mv.device, b_mv.dtype).invariant_basis).reshape(-1)]  # (out, k) @ (k, dim)
    if b_s is not None:
        parts.append(b_s)
    return torch.cat(parts)


def init_stds(alg, in_mv: int, out_mv: int, in_s: int, out_s: int, gain: float = 1.0) -> dict:
    """Standard deviations of the weight groups that give unit output variance per component.

    For unit-variance, independent inputs, output component ``a`` of a multivector has variance
    ``in_mv sum_m std_m^2 |row_a(B_m)|^2 + in_s sum_k std_k^2 v_k[a]^2``. Each source (map ``m`` or
    invariant vector ``k``) is given ``std^2 = 1 / (fan_in * q * c)``, ``q`` the mean squared row
    norm of the source over the rows it touches and ``c`` the mean number of sources per touched
    row, so every component receives about one unit of variance in total, for any algebra.

    Returns
    -------
    dict with float64 tensors ``mv (n_maps,)``, ``s2mv (n_inv,)``, ``mv2s (n_fun,)`` and a float ``s``.
    """
    t = alg.tensors("cpu", torch.float64)
    row_sq = (t.linear_basis**2).sum(-1)  # (m, a)
    inv_sq = t.invariant_basis**2  # (k, a)
    sources = [row_sq if in_mv > 0 else torch.zeros_like(row_sq), inv_sq if in_s > 0 else torch.zeros_like(inv_sq)]
    count = (torch.cat(sources) > 1e-12).sum(0).clamp_min(1).to(torch.float64)  # sources per output component

    def stds(sq: torch.Tensor, fan_in: int) -> torch.Tensor:
        hit = sq > 1e-12
        out = torch.zeros(sq.shape[0], dtype=torch.float64)
        for m in range(sq.shape[0]):
            if hit[m].any():
                out[m] = gain / math.sqrt(fan_in * sq[m, hit[m]].mean() * count[hit[m]].mean())
        return out

    c_s = (t.invariant_functionals.shape[0] if in_mv > 0 else 0) + (1 if in_s > 0 else 0)
    fun_sq = (t.invariant_functionals**2).sum(-1).clamp_min(1e-12)
    return {
        "mv": stds(sources[0], max(in_mv, 1)),
        "s2mv": stds(sources[1], max(in_s, 1)),
        "mv2s": gain / torch.sqrt(max(in_mv, 1) * fun_sq * max(c_s, 1)),
        "s": gain / math.sqrt(max(in_s, 1) * max(c_s, 1)),
    }
