"""Equivariant bilinear products (geometric product, join, ...) of many operand pairs at once.

Bilinear ``b`` of ``alg.bilinears`` maps ``(x, y)`` to ``z_k = sum_ij x_i y_j T_b[i, j, k]``; a
bilinear with a reference component (the projective join) is multiplied by that component of a
reference multivector, which picks up the same ``det(g)`` and makes the product equivariant. The
products are executed by a kernel of :mod:`gatr.kernels.bilinear`.
"""

from __future__ import annotations

import torch

from ..kernels.bilinear import select_bilinear_kernel


def bilinear_products(alg, left: torch.Tensor, right: torch.Tensor, reference: torch.Tensor | None = None,
                      kernel: str = "auto") -> torch.Tensor:
    """Apply every bilinear of ``alg.bilinears`` to its own operand pair.

    Parameters
    ----------
    alg : NetworkAlgebra
    left, right : Tensor ``(..., n_bilinears, dim)``
        Operands; slice ``b`` of the ``n_bilinears`` axis feeds bilinear ``b``.
    reference : Tensor, optional
        Broadcastable to ``left.shape[:-2] + (dim,)``; bilinears with a reference component
        (e.g. the projective join) are multiplied by that component of it. Required if any has one.
    kernel : str
        A name from :data:`gatr.kernels.BILINEAR_KERNELS` or ``"auto"``.

    Returns
    -------
    Tensor ``(..., n_bilinears, dim)``: ``z_k = sum_ij x_i y_j T_b[i, j, k]``.
    """
    t = alg.tensors(left.device, left.dtype)
    nb, dim = t.bilinear_tables.shape[0], alg.dim
    if left.shape[-2:] != (nb, dim) or right.shape[-2:] != (nb, dim):
        raise ValueError(f"operands must end in ({nb}, {dim}), got {tuple(left.shape)} and {tuple(right.shape)}")
    left, right = torch.broadcast_tensors(left, right.to(left.dtype))
    shape = left.shape
    run = select_bilinear_kernel(kernel, left.device)
    z = run(alg, left.reshape(-1, nb, dim).contiguous(), right.reshape(-1, nb, dim).contiguous()).view(shape)
    component, has_reference, any_reference = t.bilinear_references
    if any_reference:
        if reference is None:
            raise ValueError(f"the {alg.name} algebra has bilinears scaled by a reference component: "
                             "pass a reference multivector (..., dim)")
        r = reference.to(z.dtype).index_select(-1, component)  # (..., nb)
        z = z * torch.where(has_reference, r, torch.ones_like(r)).unsqueeze(-1)  # factor 1 where no reference
    return z
