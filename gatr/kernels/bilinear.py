"""Execution kernels of the equivariant bilinear products (:mod:`gatr.primitives.bilinear`), by name.

* ``"dense"``: ``z_b = outer(x_b, y_b).flatten() @ M_b`` with ``M_b`` the table of bilinear ``b``
  reshaped to ``(dim^2, dim)``: one GEMM per bilinear with a small output, processed in row chunks
  so the outer products stay in cache. The backward passes are bilinear maps with permuted tables
  (``dL/dx_i = sum_jk T_ijk y_j g_k``, ``dL/dy_j = sum_ik T_ijk x_i g_k``) and run through the same
  kernel, so autograd never stores the ``dim^2`` outer products.
* ``"sparse"``: every table here is monomial (``e_i e_j`` is one signed blade, or 0), so output blade ``k``
  needs one partner ``j = P[i, k]`` per left blade ``i``: ``z_k = sum_i x_i S[i, k] y_{P[i, k]}``, ``dim^2``
  multiply-adds instead of the ``dim^3`` of the table product. One gather, multiply and sum that
  ``torch.compile`` fuses into a single loop; the gradients are the same form with the tables transposed
  (``dL/dx_i = sum_k g_k S[i, k] y_{P[i, k]}``, ``dL/dy_j = sum_k g_k S'[j, k] x_{P'[j, k]}``).
* ``"xor"``: in the label order of :mod:`gatr.kernels.label_layout` output ``k`` is
  ``sum_i sign[i, k] x_i y_{k xor d(i)}``: ``dim`` broadcast multiplies with constant shifts of ``y`` that
  the compiler fuses into one loop vectorised over channels; the gradients are xor shifts again. As a
  function of ``(N, nb, dim)`` operands it permutes them to label order and back; in a network whose
  execution plan runs the label layout (:mod:`gatr.kernels.plan`) the operands are already there.

``"auto"`` is resolved by the execution plan: the table GEMM (``"dense"``; in the label layout with its
tables permuted to label order, :func:`label_product_matrices`), or ``"xor"`` in the label layout under
``torch.compile`` on CPUs (the measured choices are in the README's kernel figures).
Compiled, the dense kernel stays one opaque operator (``gatr::outer_gemm``).

Every kernel maps ``x, y (N, n_bilinears, dim)`` to ``z (N, n_bilinears, dim)``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .label_layout import XorBilinear, label_layout, monomial_partners
from .ops import custom_operator, use_operator

#: Elements of one chunk of outer products: about 4 MB in float32 on CPUs, where the chunk should
#: stay in cache; on GPUs one large GEMM beats many small launches, so chunks are far larger.
CHUNK_ELEMENTS = 2**20
GPU_CHUNK_ELEMENTS = 2**27


#: Axes of the tables ``(i, j, k)`` behind the rows and columns of each product matrix.
_PERMUTATIONS = {"forward": (1, 2, 3), "grad_left": (2, 3, 1), "grad_right": (1, 3, 2)}


def product_matrices(t) -> dict[str, torch.Tensor]:
    """Per-bilinear product matrices ``(n_bilinears, dim^2, dim)`` from the algebra's tensors ``t``.

    Parameters
    ----------
    t : AlgebraTensors

    Returns
    -------
    dict of {"forward", "grad_left", "grad_right"} to Tensor, shape (nb, dim^2, dim)

    ``"forward"``: row ``(i, j)``, column ``k`` of slice ``b`` holds ``T_b[i, j, k]``, so
    ``outer(x_b, y_b).flatten() @ M[b] = z_b``. ``"grad_left"``: rows ``(j, k)``, columns ``i``;
    ``"grad_right"``: rows ``(i, k)``, columns ``j``.
    """
    tables = t.bilinear_tables  # (nb, i, j, k)
    nb, dim = tables.shape[:2]
    return {k: tables.permute(0, *p).reshape(nb, dim * dim, dim).contiguous() for k, p in _PERMUTATIONS.items()}


def label_product_matrices(t) -> dict[str, torch.Tensor] | None:
    """:func:`product_matrices` with every axis of the tables in the label order of
    :func:`~gatr.kernels.label_layout.label_layout` (None where the algebra has none): the table GEMM on
    operands in label order, for an execution plan that keeps the hidden stream in the label layout.

    Parameters
    ----------
    t : AlgebraTensors

    Returns
    -------
    dict of {"forward", "grad_left", "grad_right"} to Tensor, shape (nb, dim^2, dim), or None
    """
    layout = t.derived(label_layout)
    if layout is None:
        return None
    o = layout.order
    tables = t.bilinear_tables[:, o][:, :, o][:, :, :, o]
    nb, dim = tables.shape[:2]
    return {k: tables.permute(0, *p).reshape(nb, dim * dim, dim).contiguous() for k, p in _PERMUTATIONS.items()}


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


@custom_operator("gatr::outer_gemm")
def outer_gemm(x: torch.Tensor, y: torch.Tensor, forward: torch.Tensor, grad_left: torch.Tensor,
               grad_right: torch.Tensor) -> torch.Tensor:
    """The chunked outer-product GEMM as one opaque operator: the compiler keeps this CPU/GPU-tuned
    kernel as it is (and fuses what surrounds it) instead of tracing a ``dim^2`` intermediate.

    Parameters
    ----------
    x, y : Tensor, shape (N, nb, dim)
    forward, grad_left, grad_right : Tensor, shape (nb, dim^2, dim)
        :func:`product_matrices` (the gradient tables are used by the backward pass).

    Returns
    -------
    Tensor, shape (N, nb, dim)
    """
    return _outer_matmul(x.contiguous(), y.contiguous(), forward)


@outer_gemm.register_fake
def _(x, y, forward, grad_left, grad_right):
    return x.new_empty(x.shape)  # contiguous, like the real output


def _outer_gemm_setup(ctx, inputs, output):
    x, y, _, grad_left, grad_right = inputs
    ctx.save_for_backward(x, y, grad_left, grad_right)


def _outer_gemm_backward(ctx, grad):
    x, y, grad_left, grad_right = ctx.saved_tensors
    g = grad.to(x.dtype).contiguous()
    # dL/dx_i = sum_jk T_ijk y_j g_k and dL/dy_j = sum_ik T_ijk x_i g_k: the same kernel, permuted tables
    gx = run_outer_gemm(y, g, grad_left, grad_left, grad_left) if ctx.needs_input_grad[0] else None
    gy = run_outer_gemm(x, g, grad_right, grad_right, grad_right) if ctx.needs_input_grad[1] else None
    # learned tables (bilinears="derived"): dL/dM_b[(i, j), k] = sum_n x_ni y_nj g_nk; the gradient tables only
    # shape the backward, so the output does not depend on them
    gm = torch.einsum("nbi,nbj,nbk->bijk", x, y, g).flatten(1, 2) if ctx.needs_input_grad[2] else None
    return gx, gy, gm, None, None


outer_gemm.register_autograd(_outer_gemm_backward, setup_context=_outer_gemm_setup)


class _OuterGemm(torch.autograd.Function):
    """:func:`outer_gemm`'s eager twin (``ctx`` in ``forward``, like :class:`gatr.kernels.ops._PermuteColumns`)."""

    @staticmethod
    def forward(ctx, x, y, forward, grad_left, grad_right):
        _outer_gemm_setup(ctx, (x, y, forward, grad_left, grad_right), None)
        return _outer_matmul(x.contiguous(), y.contiguous(), forward)

    backward = staticmethod(_outer_gemm_backward)


def run_outer_gemm(x, y, forward, grad_left, grad_right) -> torch.Tensor:
    """:func:`outer_gemm`, or eagerly its twin (:func:`~gatr.kernels.ops.use_operator`).

    Parameters
    ----------
    x, y : Tensor, shape (N, nb, dim)
    forward, grad_left, grad_right : Tensor, shape (nb, dim^2, dim)
        :func:`product_matrices` (or learned tables' matrices).

    Returns
    -------
    Tensor, shape (N, nb, dim)
    """
    if use_operator():
        return outer_gemm(x, y, forward, grad_left, grad_right)
    return _OuterGemm.apply(x, y, forward, grad_left, grad_right)


def dense_bilinear(alg, x: torch.Tensor, y: torch.Tensor, tables: torch.Tensor | None = None,
                   labels: bool = False) -> torch.Tensor:
    """The outer-product GEMM kernel.

    Parameters
    ----------
    alg : NetworkAlgebra
    x, y : Tensor, shape (N, nb, dim)
        Operands of bilinear ``b`` in slice ``b``, same dtype.
    tables : Tensor, shape (nb, dim, dim, dim), optional
        Tables to use instead of the algebra's (learned ones: their gradient is computed too).
    labels : bool
        Components of operands and products in label order (:func:`label_product_matrices`); the
        algebra's tables only.

    Returns
    -------
    Tensor, shape (N, nb, dim)
    """
    if tables is not None:
        nb, dim = tables.shape[:2]
        t = tables.to(x.dtype)
        m = {k: t.permute(0, *p).reshape(nb, dim * dim, dim) for k, p in _PERMUTATIONS.items()}
        return run_outer_gemm(x, y, m["forward"], m["grad_left"].detach(), m["grad_right"].detach())
    m = alg.tensors(x.device, x.dtype).derived(label_product_matrices if labels else product_matrices)
    return run_outer_gemm(x, y, m["forward"], m["grad_left"], m["grad_right"])


class MonomialTables(NamedTuple):
    """Signs and partners of monomial tables in the layout ``(n_bilinears, c, r)`` of :func:`_gather_contract`.

    Parameters
    ----------
    forward, grad_left, grad_right : tuple of (sign Tensor, partner Tensor of long)
        For the product and the gradients with respect to the left and right operands.
    """

    forward: tuple[torch.Tensor, torch.Tensor]
    grad_left: tuple[torch.Tensor, torch.Tensor]
    grad_right: tuple[torch.Tensor, torch.Tensor]


def monomial_tables(t) -> MonomialTables | None:
    """:class:`MonomialTables` of the algebra's bilinear tables.

    Parameters
    ----------
    t : AlgebraTensors

    Returns
    -------
    MonomialTables or None
        None if some ``(i, k)`` (or ``(j, k)``) has two partners (the table is not monomial).
    """
    tables = t.bilinear_tables  # (nb, i, j, k)
    left = monomial_partners(tables)  # the partner j of left blade i for output k, (nb, i, k)
    right = monomial_partners(tables.transpose(1, 2))  # the partner i of right blade j for output k
    if left is None or right is None:
        return None
    (s_ik, j_of), (s_jk, i_of) = left, right
    transposed = lambda a: a.transpose(1, 2).contiguous()  # noqa: E731
    return MonomialTables((s_ik, j_of), (transposed(s_ik), transposed(j_of)), (transposed(s_jk), transposed(i_of)))


def _gather_contract(a: torch.Tensor, b: torch.Tensor, sign: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """``out[n, q, r] = sum_c a[n, q, c] sign[q, c, r] b[n, q, partner[q, c, r]]``; ``a, b (N, nb, dim)``."""
    n, nb, dim = a.shape
    if torch.compiler.is_compiling():  # fused by the compiler: no (N, nb, dim, dim) intermediate
        index = partner.reshape(1, nb, dim * dim).expand(n, nb, dim * dim)
        return (a.unsqueeze(-1) * sign * torch.gather(b, 2, index).view(n, nb, dim, dim)).sum(-2)
    out = a.new_empty(n, nb, dim)
    rows = max(1, CHUNK_ELEMENTS // (nb * dim * dim))
    for start in range(0, n, rows):
        a_, b_ = a[start : start + rows], b[start : start + rows]
        index = partner.reshape(1, nb, dim * dim).expand(a_.shape[0], nb, dim * dim)
        gathered = torch.gather(b_, 2, index).view(-1, nb, dim, dim)
        out[start : start + rows] = (a_.unsqueeze(-1) * sign * gathered).sum(-2)
    return out


class _MonomialProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, sign, partner, left_sign, left_partner, right_sign, right_partner):
        ctx.save_for_backward(x, y, left_sign, left_partner, right_sign, right_partner)
        return _gather_contract(x, y, sign, partner)

    @staticmethod
    def backward(ctx, grad):
        x, y, left_sign, left_partner, right_sign, right_partner = ctx.saved_tensors
        g = grad.to(x.dtype).contiguous()
        gx = _gather_contract(g, y, left_sign, left_partner) if ctx.needs_input_grad[0] else None
        gy = _gather_contract(g, x, right_sign, right_partner) if ctx.needs_input_grad[1] else None
        return gx, gy, None, None, None, None, None, None


def sparse_bilinear(alg, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The monomial (gather) kernel; falls back to :func:`dense_bilinear` for tables that are not monomial.

    Parameters
    ----------
    alg : NetworkAlgebra
    x, y : Tensor, shape (N, nb, dim)
        Contiguous operands, same dtype.

    Returns
    -------
    Tensor, shape (N, nb, dim)
    """
    tables = alg.tensors(x.device, x.dtype).derived(monomial_tables)
    if tables is None:
        return dense_bilinear(alg, x, y)
    return _MonomialProduct.apply(x, y, *tables.forward, *tables.grad_left, *tables.grad_right)


def xor_bilinear(alg, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The xor-shift kernel (:class:`gatr.kernels.label_layout.XorBilinear`) on ``(N, nb, dim)`` operands,
    permuted to label order and back; :func:`dense_bilinear` where the algebra has no label layout.

    In a network whose plan runs the label layout the shifts run on operands already there (no
    permutation, :meth:`gatr.kernels.plan.ExecutionPlan.bilinear_products`); this form is for other callers.

    Parameters
    ----------
    alg : NetworkAlgebra
    x, y : Tensor, shape (N, nb, dim)

    Returns
    -------
    Tensor, shape (N, nb, dim)
    """
    layout = alg.tensors(x.device, x.dtype).derived(label_layout)
    if layout is None:
        return dense_bilinear(alg, x, y)
    to_labels = lambda a: a.index_select(2, layout.order).transpose(1, 2).unsqueeze(-1)  # noqa: E731
    z = XorBilinear.apply(layout, to_labels(x), to_labels(y)).squeeze(-1)  # (N, dim, nb) in label order
    return z.index_select(1, torch.argsort(layout.order)).transpose(1, 2).contiguous()


#: The kernels by name (``"auto"`` is resolved by the execution plan, :func:`gatr.kernels.plan.resolve_plan`).
BILINEAR_KERNELS = {"dense": dense_bilinear, "sparse": sparse_bilinear, "xor": xor_bilinear}
