"""Equivariant bilinear products (geometric product, join, ...) of many operand pairs at once.

Kernel: ``z_b = outer(x_b, y_b).flatten() @ M_b`` with ``M_b`` the table of bilinear ``b``
reshaped to ``(dim^2, dim)``: one GEMM per bilinear with a small output, processed in row chunks
so the outer products stay in cache. The backward passes are bilinear maps with permuted tables
(``dL/dx_i = sum_jk T_ijk y_j g_k``, ``dL/dy_j = sum_ik T_ijk x_i g_k``) and run through the same
kernel, so autograd never stores the ``dim^2`` outer products.
"""

from __future__ import annotations

import torch

from .constants import bilinear_info, constant

#: Elements of one chunk of outer products: about 4 MB in float32 on CPUs, where the chunk should
#: stay in cache; on GPUs one large GEMM beats many small launches, so chunks are far larger.
CHUNK_ELEMENTS = 2**20
GPU_CHUNK_ELEMENTS = 2**27


def _outer_matmul(x: torch.Tensor, y: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """``x, y (N, nb, dim)`` -> ``(N, nb, dim)``: ``outer(x_b, y_b).flatten() @ tables[b]`` per bilinear.

    One ``(rows, dim^2) @ (dim^2, dim)`` GEMM per bilinear and chunk (no block-diagonal zeros), the
    outer products written into one reused chunk buffer (a fresh 4 MB allocation per chunk costs
    about as much as the multiplication itself).
    """
    n, nb, dim = x.shape
    out = x.new_empty(n, nb, dim)
    chunk = CHUNK_ELEMENTS if x.device.type == "cpu" else GPU_CHUNK_ELEMENTS
    rows = max(1, chunk // (nb * dim * dim))
    buf = x.new_empty(min(rows, n), nb, dim, dim)
    for start in range(0, n, rows):
        xs, ys = x[start : start + rows], y[start : start + rows]
        m = xs.shape[0]
        outer = torch.mul(xs.unsqueeze(-1), ys.unsqueeze(-2), out=buf[:m]).view(m, nb, dim * dim)
        for b in range(nb):
            torch.mm(outer[:, b], tables[b], out=out[start : start + rows, b])
    return out


class _Bilinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, alg):
        nb, dim = x.shape[-2:]
        shape = x.shape
        x2, y2 = x.reshape(-1, nb, dim), y.reshape(-1, nb, dim)
        ctx.save_for_backward(x2, y2)
        ctx.alg, ctx.shape = alg, shape
        return _outer_matmul(x2, y2, constant(alg, "bilinear_forward", x.device, x.dtype)).view(shape)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x2, y2 = ctx.saved_tensors
        nb, dim = x2.shape[-2:]
        g = grad.reshape(-1, nb, dim).to(x2.dtype)
        gx = gy = None
        if ctx.needs_input_grad[0]:
            gx = _outer_matmul(y2, g, constant(ctx.alg, "bilinear_grad_left", g.device, g.dtype))
            gx = gx.view(ctx.shape)
        if ctx.needs_input_grad[1]:
            gy = _outer_matmul(x2, g, constant(ctx.alg, "bilinear_grad_right", g.device, g.dtype))
            gy = gy.view(ctx.shape)
        return gx, gy, None


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
    nb, refs = bilinear_info(alg)
    dim = alg.dim
    if left.shape[-2:] != (nb, dim) or right.shape[-2:] != (nb, dim):
        raise ValueError(f"operands must end in ({nb}, {dim}), got {tuple(left.shape)} and {tuple(right.shape)}")
    left, right = torch.broadcast_tensors(left, right)
    if right.dtype != left.dtype:
        right = right.to(left.dtype)
    z = _Bilinear.apply(left.contiguous(), right.contiguous(), alg)
    if any(r is not None for r in refs):
        if reference is None:
            raise ValueError(
                f"the {alg.name} algebra has bilinears scaled by a reference component {refs}: "
                "pass a reference multivector (..., dim)"
            )
        comps = torch.tensor([0 if r is None else r for r in refs], device=left.device)
        has = torch.tensor([r is not None for r in refs], device=left.device)
        r = reference.to(z.dtype).index_select(-1, comps)  # (..., nb)
        z = z * torch.where(has, r, torch.ones_like(r)).unsqueeze(-1)  # factor 1 where no reference
    return z
