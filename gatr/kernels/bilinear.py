"""Execution kernels of the equivariant bilinear products (:mod:`gatr.primitives.bilinear`), by name.

* ``"dense"``: ``z_b = outer(x_b, y_b).flatten() @ M_b`` with ``M_b`` the table of bilinear ``b``
  reshaped to ``(dim^2, dim)``: one GEMM per bilinear with a small output, processed in row chunks
  so the outer products stay in cache. The backward passes are bilinear maps with permuted tables
  (``dL/dx_i = sum_jk T_ijk y_j g_k``, ``dL/dy_j = sum_ik T_ijk x_i g_k``) and run through the same
  kernel, so autograd never stores the ``dim^2`` outer products.
* ``"auto"``: the best kernel for the device.

Every kernel maps ``x, y (N, n_bilinears, dim)`` to ``z (N, n_bilinears, dim)``.
"""

from __future__ import annotations

import torch

#: Elements of one chunk of outer products: about 4 MB in float32 on CPUs, where the chunk should
#: stay in cache; on GPUs one large GEMM beats many small launches, so chunks are far larger.
CHUNK_ELEMENTS = 2**20
GPU_CHUNK_ELEMENTS = 2**27


def product_matrices(t) -> dict[str, torch.Tensor]:
    """Per-bilinear product matrices ``(n_bilinears, dim^2, dim)`` from :class:`algebras.AlgebraTensors`.

    ``"forward"``: row ``(i, j)``, column ``k`` of block ``b`` holds ``T_b[i, j, k]``, so
    ``outer(x_b, y_b).flatten() @ M[b] = z_b``. ``"grad_left"``: rows ``(j, k)``, columns ``i``;
    ``"grad_right"``: rows ``(i, k)``, columns ``j``.
    """
    tables = t.bilinear_tables  # (nb, i, j, k)
    nb, dim = tables.shape[:2]
    perms = {"forward": (0, 1, 2, 3), "grad_left": (0, 2, 3, 1), "grad_right": (0, 1, 3, 2)}
    return {k: tables.permute(p).reshape(nb, dim * dim, dim).contiguous() for k, p in perms.items()}


def _outer_matmul(x: torch.Tensor, y: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """``x, y (N, nb, dim)`` -> ``(N, nb, dim)``: ``outer(x_b, y_b).flatten() @ tables[b]`` per bilinear.

    The outer products are written into one reused chunk buffer (a fresh 4 MB allocation per chunk
    costs about as much as the multiplication itself).
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


class _OuterGemm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, alg):
        ctx.save_for_backward(x, y)
        ctx.alg = alg
        return _outer_matmul(x, y, alg.tensors(x.device, x.dtype).derived(product_matrices)["forward"])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        g = grad.to(x.dtype).contiguous()
        matrices = ctx.alg.tensors(g.device, g.dtype).derived(product_matrices)
        gx = _outer_matmul(y, g, matrices["grad_left"]) if ctx.needs_input_grad[0] else None
        gy = _outer_matmul(x, g, matrices["grad_right"]) if ctx.needs_input_grad[1] else None
        return gx, gy, None


def dense_bilinear(alg, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The outer-product GEMM kernel; ``x, y (N, nb, dim)`` contiguous, same dtype."""
    return _OuterGemm.apply(x, y, alg)


#: The kernels by name (``"auto"`` is resolved by :func:`select_bilinear_kernel`).
BILINEAR_KERNELS = {"dense": dense_bilinear}


def select_bilinear_kernel(name: str, device: torch.device):
    """The kernel function for ``name`` (``"auto"`` or a key of :data:`BILINEAR_KERNELS`)."""
    if name == "auto":
        name = "dense"
    try:
        return BILINEAR_KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown bilinear kernel {name!r}; valid: {['auto', *BILINEAR_KERNELS]}") from None
