"""The dense kernel of the equivariant linear map (:mod:`gatr.primitives.linear`), and the kernels by name.

* ``"dense"``: one ``F.linear`` with the assembled block matrix (one GEMM; best for few tokens and where a
  large GEMM is cheap, e.g. on GPUs).
* ``"sparse"``: the same sums without the zeros of the maps, one batched GEMM over their sectors
  (:mod:`gatr.kernels.sparse_linear`).

Which one runs is decided by the execution plan (:mod:`gatr.kernels.plan`). Every kernel returns
``(mv (..., out_mv, dim), scalars (..., out_s))``; the results agree to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..primitives.linear import equi_bias, equi_matrix
from .sparse_linear import sparse_linear


def dense_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s):
    """``F.linear`` on ``[mv.flatten(-2), scalars]`` with :func:`equi_matrix` and :func:`equi_bias`.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor, shape (..., in_mv, dim)
    scalars : Tensor, shape (..., in_s), or None
    w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s : Tensor or None
        The weights of :func:`gatr.primitives.linear.equi_matrix` and the biases of
        :func:`gatr.primitives.linear.equi_bias`.

    Returns
    -------
    mv : Tensor, shape (..., out_mv, dim)
    scalars : Tensor, shape (..., out_s)
    """
    out_mv, dim = w_mv.shape[0], alg.dim
    x = mv.flatten(-2)
    if scalars is not None and scalars.shape[-1] > 0:
        x = torch.cat([x, scalars.to(x.dtype)], -1)
    y = F.linear(x, equi_matrix(alg, w_mv, w_s2mv, w_mv2s, w_s), equi_bias(alg, b_mv, b_s))
    split = out_mv * dim
    return y[..., :split].unflatten(-1, (out_mv, dim)), y[..., split:]



#: The kernels by name (``"auto"`` is resolved by the execution plan, :func:`gatr.kernels.plan.resolve_plan`).
LINEAR_KERNELS = {"dense": dense_linear, "sparse": sparse_linear}
