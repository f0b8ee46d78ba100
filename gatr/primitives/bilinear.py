"""Equivariant bilinear products (geometric product, join, ...) of many operand pairs at once."""

from __future__ import annotations

import torch

from .constants import constant


def bilinear_products(alg, left: torch.Tensor, right: torch.Tensor, reference: torch.Tensor | None = None):
    """Apply every bilinear of ``alg.bilinears`` to its own operand pair.

    Parameters
    ----------
    alg : CliffordAlgebra
    left, right : Tensor ``(..., n_bilinears, dim)``
        Operands; slice ``b`` of the ``n_bilinears`` axis feeds ``alg.bilinears[b]``.
    reference : Tensor, optional
        Broadcastable to ``left.shape[:-2] + (dim,)``; bilinears with a ``reference_component``
        (e.g. the projective join) are multiplied by that component of it. Required if any has one.

    Returns
    -------
    Tensor ``(..., n_bilinears, dim)``: ``z_k = sum_ij x_i y_j T_b[i, j, k]``.
    """
    bilinears = alg.bilinears
    nb, dim = len(bilinears), alg.dim
    if left.shape[-2:] != (nb, dim) or right.shape[-2:] != (nb, dim):
        raise ValueError(f"operands must end in ({nb}, {dim}), got {tuple(left.shape)} and {tuple(right.shape)}")
    index = constant(alg, "bilinear_index", left.device)  # (nb, R*dim, dim), offsets b*dim included
    values = constant(alg, "bilinear_values", left.device, left.dtype)  # (nb, R*dim, dim)
    layers = index.shape[1] // dim
    # Sparse table: z_k = sum_i x_i * S[i, k] * y[J[i, k]] (one signed blade per (i, k) in a blade
    # basis). ONE gather builds the signed "right multiplication" matrices of all operands and
    # bilinears, then one batched (1 x R*dim) @ (R*dim x dim) contraction with the left operands.
    y = right.reshape(*right.shape[:-2], nb * dim).index_select(-1, index.reshape(-1))
    y = y.view(*right.shape[:-2], nb, layers * dim, dim) * values
    x = left if layers == 1 else left.repeat(*([1] * (left.ndim - 1)), layers)  # x_i at r*dim + i
    z = (x.unsqueeze(-2) @ y).squeeze(-2)
    refs = [b.reference_component for b in bilinears]
    if any(r is not None for r in refs):
        if reference is None:
            raise ValueError(
                f"the {alg.name} bilinears {[b.name for b in bilinears if b.reference_component is not None]} "
                "need a reference multivector (..., dim)"
            )
        comps = torch.tensor([0 if r is None else r for r in refs], device=left.device)
        has = torch.tensor([r is not None for r in refs], device=left.device)
        r = reference.to(z.dtype).index_select(-1, comps)  # (..., nb)
        z = z * torch.where(has, r, torch.ones_like(r)).unsqueeze(-1)  # factor 1 where no reference
    return z
