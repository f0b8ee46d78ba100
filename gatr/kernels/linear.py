"""Execution kernels of the equivariant linear map (:mod:`gatr.primitives.linear`), chosen by name.

* ``"dense"``: one ``F.linear`` with the assembled block matrix (one GEMM; best for few tokens and
  where a large GEMM is cheap, e.g. on GPUs).
* ``"sparse"``: the same sums without the ~90% zeros of the ``B_m`` blocks. Output component ``a``
  reads at most ``r`` input components (1 of 8 in G(3,0,0), 2 of 16 in G(3,0,1), 4 of 32 in
  G(4,1,0)), so the map runs as ``r`` batched GEMMs over components, ``(dim, T, in) @ (dim, in, out)``;
  scalars enter (and leave) only through the few components the invariant basis (functionals) touch.
* ``"auto"``: sparse on CPUs from :data:`SPARSE_MIN_TOKENS` tokens, dense otherwise.

Every kernel returns ``(mv (..., out_mv, dim), scalars (..., out_s))``; the results agree to rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..primitives.linear import equi_bias, equi_matrix

#: Token count (product of the leading axes) from which ``"auto"`` runs the sparse kernel on CPUs.
SPARSE_MIN_TOKENS = 256


def dense_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s):
    """``F.linear`` on ``[mv.flatten(-2), scalars]`` with :func:`equi_matrix` and :func:`equi_bias`."""
    out_mv, dim = w_mv.shape[0], alg.dim
    x = mv.flatten(-2)
    if scalars is not None and scalars.shape[-1] > 0:
        x = torch.cat([x, scalars.to(x.dtype)], -1)
    y = F.linear(x, equi_matrix(alg, w_mv, w_s2mv, w_mv2s, w_s), equi_bias(alg, b_mv, b_s))
    split = out_mv * dim
    return y[..., :split].unflatten(-1, (out_mv, dim)), y[..., split:]


class SparseStructure(NamedTuple):
    """Sparsity of the equivariant maps on one (device, dtype).

    ``gather (r, dim)`` long: the ``r``-th source component of each output component (padded with the
    component itself, weight 0); ``identity`` : per slot, whether ``gather`` is the identity;
    ``coeff (n_maps, r, dim)``: ``B_m[a, gather[r, a]]``; ``inv`` / ``fun`` long: the components the
    invariant basis / functionals touch; ``inv_basis (k, n_inv)``, ``fun_basis (k', n_fun)``: those columns.
    """

    gather: torch.Tensor
    identity: tuple[bool, ...]
    coeff: torch.Tensor
    inv: torch.Tensor
    fun: torch.Tensor
    inv_basis: torch.Tensor
    fun_basis: torch.Tensor


def sparse_structure(t) -> SparseStructure:
    """:class:`SparseStructure` from :class:`algebras.AlgebraTensors` ``t`` (kept via ``t.derived``)."""
    basis = t.linear_basis  # (m, a, b)
    dim = basis.shape[1]
    support = basis.abs().sum(0) > 0  # (a, b)
    r = max(1, int(support.sum(1).max()))
    gather = torch.arange(dim, device=t.device).repeat(r, 1)
    coeff = basis.new_zeros(basis.shape[0], r, dim)
    for a in range(dim):
        for slot, b in enumerate(torch.nonzero(support[a]).flatten().tolist()):
            gather[slot, a] = b
            coeff[:, slot, a] = basis[:, a, b]
    identity = tuple(bool((gather[s] == torch.arange(dim, device=t.device)).all()) for s in range(r))
    inv = torch.nonzero(t.invariant_basis.abs().sum(0) > 0).flatten()
    fun = torch.nonzero(t.invariant_functionals.abs().sum(0) > 0).flatten()
    return SparseStructure(gather, identity, coeff, inv, fun, t.invariant_basis[:, inv], t.invariant_functionals[:, fun])


class _TokenMajor(torch.autograd.Function):
    """``(dim, T, out)`` -> contiguous ``(T, out, dim)``, with a contiguous ``(dim, T, out)`` gradient.

    A plain ``permute(...).reshape`` hands the batched GEMMs a permuted gradient whose per-component
    slices have no unit stride, and CPU ``bmm`` then copies every slice, once per GEMM operand.
    """

    @staticmethod
    def forward(ctx, res):
        return res.permute(1, 2, 0).contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        return grad.permute(2, 0, 1).contiguous()


def sparse_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s):
    """The map of :func:`dense_linear` as ``r`` batched GEMMs over components (module docstring)."""
    dim = alg.dim
    out_mv, in_mv, _ = w_mv.shape
    lead = mv.shape[:-2]
    x = mv.reshape(-1, in_mv, dim)
    n = x.shape[0]
    st = alg.tensors(w_mv.device, w_mv.dtype).derived(sparse_structure)
    weights = torch.einsum("oim,mra->raio", w_mv, st.coeff)  # (r, dim, in, out)
    xp = x.permute(2, 0, 1).contiguous()  # (dim, T, in)
    res = None
    for slot, is_identity in enumerate(st.identity):
        src = xp if is_identity else xp.index_select(0, st.gather[slot])
        res = torch.bmm(src, weights[slot]) if res is None else torch.baddbmm(res, src, weights[slot])
    # scalars and biases enter the multivector outputs along the invariant components only
    s = scalars.reshape(-1, scalars.shape[-1]).to(x.dtype) if scalars is not None and scalars.shape[-1] else None
    ys = None
    if w_s2mv is not None or b_mv is not None:
        bias = (b_mv @ st.inv_basis).t().reshape(-1) if b_mv is not None else None  # (n_inv * out)
        if w_s2mv is not None and s is not None:
            v = torch.einsum("osk,kc->sco", w_s2mv, st.inv_basis).reshape(w_s2mv.shape[1], -1)
            ys = s @ v if bias is None else torch.addmm(bias, s, v)
        elif bias is not None:
            ys = bias.expand(n, -1)
    out = _TokenMajor.apply(res)  # (T, out, dim); its gradient reaches the GEMMs contiguous
    if ys is not None:
        out.index_add_(2, st.inv, ys.view(n, -1, out_mv).transpose(1, 2))
    out = out.view(*lead, out_mv, dim)
    if w_mv2s is None:
        return out, out.new_zeros(*lead, 0)
    u = torch.einsum("pik,kc->pic", w_mv2s, st.fun_basis).reshape(w_mv2s.shape[0], -1)
    feats = x.index_select(-1, st.fun).reshape(n, -1)
    if w_s is not None and s is not None:
        feats = torch.cat([feats, s], -1)
        u = torch.cat([u, w_s], 1)
    return out, F.linear(feats, u, b_s).reshape(*lead, -1)


#: The kernels by name (``"auto"`` is resolved by :func:`select_linear_kernel`).
LINEAR_KERNELS = {"dense": dense_linear, "sparse": sparse_linear}


def select_linear_kernel(name: str, tokens: int, device: torch.device):
    """The kernel function for ``name`` (``"auto"``, ``"dense"`` or ``"sparse"``) at this size and device."""
    if name == "auto":
        # the ~15 small ops of the sparse kernel only pay off with enough tokens; GPUs: one GEMM wins
        name = "sparse" if device.type == "cpu" and tokens >= SPARSE_MIN_TOKENS else "dense"
    try:
        return LINEAR_KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown linear kernel {name!r}; valid: {['auto', *LINEAR_KERNELS]}") from None


def equi_linear(alg, mv, scalars, w_mv, w_s2mv=None, w_mv2s=None, w_s=None, b_mv=None, b_s=None,
                kernel: str = "auto"):
    """Apply the equivariant linear map with the named kernel.

    Parameters
    ----------
    alg : NetworkAlgebra
    mv : Tensor ``(..., in_mv, dim)``
    scalars : Tensor ``(..., in_s)`` or None
    w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s : weights, see :func:`gatr.primitives.linear.equi_matrix`
    kernel : {"auto", "dense", "sparse"}

    Returns
    -------
    ``(mv (..., out_mv, dim), scalars (..., out_s))``
    """
    tokens = mv.numel() // max(1, mv.shape[-1] * mv.shape[-2])
    return select_linear_kernel(kernel, tokens, mv.device)(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s)
