"""Equivariant bilinear products (geometric product, join, ...) of many operand pairs at once.

Bilinear ``b`` of the algebra's bilinear tables maps ``(x, y)`` to ``z_k = sum_ij x_i y_j T_b[i, j, k]``. A
bilinear with a reference component (the projective join) is multiplied by that component of a reference
multivector, which picks up the same ``det(g)`` as the join and makes the product equivariant
(:func:`reference_factors`). This is the definition; the network executes it with the kernels of its
execution plan (:meth:`gatr.kernels.plan.ExecutionPlan.bilinear_products`).
"""

from __future__ import annotations

import torch


def reference_factors(alg, reference: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Per bilinear, the factor its products are multiplied by: the reference's component, or 1.

    Parameters
    ----------
    alg : NetworkAlgebra
    reference : Tensor, shape (..., dim), or None
    dtype : torch.dtype
        Dtype of the factors (the products').

    Returns
    -------
    Tensor, shape (..., n_bilinears), or None
        None when no bilinear has a reference component (every factor is 1).

    Raises
    ------
    ValueError
        If a bilinear has a reference component and ``reference`` is None.
    """
    component, has_reference, any_reference = alg.tensors(
        reference.device if reference is not None else "cpu", dtype).bilinear_references
    if not any_reference:
        return None
    if reference is None:
        raise ValueError(f"the {alg.name} algebra has bilinears scaled by a reference component: "
                         "pass a reference multivector (..., dim)")
    r = reference.to(dtype).index_select(-1, component)  # (..., nb)
    return torch.where(has_reference, r, torch.ones_like(r))


def bilinear_products(alg, left: torch.Tensor, right: torch.Tensor, reference: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """Apply every bilinear of the algebra to its own operand pair.

    Parameters
    ----------
    alg : NetworkAlgebra
    left, right : Tensor, shape (..., n_bilinears, dim)
        Operands; slice ``b`` of the ``n_bilinears`` axis feeds bilinear ``b``.
    reference : Tensor, optional
        Broadcastable to ``left.shape[:-2] + (dim,)``; bilinears with a reference component (e.g. the
        projective join) are multiplied by that component of it. Required if any has one.

    Returns
    -------
    Tensor, shape (..., n_bilinears, dim)
        ``z_k = sum_ij x_i y_j T_b[i, j, k]``, times the reference factor.
    """
    tables = alg.tensors(left.device, left.dtype).bilinear_tables
    nb, dim = tables.shape[0], alg.dim
    if left.shape[-2:] != (nb, dim) or right.shape[-2:] != (nb, dim):
        raise ValueError(f"operands must end in ({nb}, {dim}), got {tuple(left.shape)} and {tuple(right.shape)}")
    z = torch.einsum("...bi,...bj,bijk->...bk", left, right.to(left.dtype), tables)
    factors = reference_factors(alg, reference, z.dtype)
    return z if factors is None else z * factors.unsqueeze(-1)
