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


class SparseStructure(NamedTuple):
    """Sparsity of the equivariant maps on one (device, dtype), built by :func:`sparse_structure`.

    Parameters
    ----------
    gather : Tensor of long, shape (r, dim)
        The ``r``-th source component of each output component (padded with the component itself).
    coeff : Tensor, shape (n_maps, r, dim)
        ``B_m[a, gather[r, a]]`` (0 for padding).
    inv, fun : Tensor of long
        The components the invariant multivectors / functionals touch.
    inv_basis : Tensor, shape (k, n_inv)
        The invariant multivectors on those components.
    fun_basis : Tensor, shape (k', n_fun)
        The invariant functionals on those components.
    """

    gather: torch.Tensor
    coeff: torch.Tensor
    inv: torch.Tensor
    fun: torch.Tensor
    inv_basis: torch.Tensor
    fun_basis: torch.Tensor


def sparse_structure(t) -> SparseStructure:
    """:class:`SparseStructure` from the algebra's tensors (cached through ``t.derived``).

    Parameters
    ----------
    t : AlgebraTensors
        The algebra's constants on one (device, dtype).

    Returns
    -------
    SparseStructure
    """
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
    inv = torch.nonzero(t.invariant_basis.abs().sum(0) > 0).flatten()
    fun = torch.nonzero(t.invariant_functionals.abs().sum(0) > 0).flatten()
    return SparseStructure(gather, coeff, inv, fun, t.invariant_basis[:, inv], t.invariant_functionals[:, fun])


def _slot_sources(xp: torch.Tensor, gather: torch.Tensor):
    """Per slot, the component-major input its output components read: ``xp`` itself where the slot's
    gather is the identity (no copy), ``xp[gather[slot]]`` otherwise."""
    identity = torch.arange(xp.shape[0], device=xp.device)
    for slot in range(gather.shape[0]):
        same = torch.equal(gather[slot], identity)
        yield slot, same, (xp if same else xp.index_select(0, gather[slot]))


@torch.library.custom_op("gatr::component_matmul", mutates_args=())
def component_matmul(x: torch.Tensor, weights: torch.Tensor, gather: torch.Tensor) -> torch.Tensor:
    """``out[t, o, a] = sum_slot sum_i x[t, i, gather[slot, a]] weights[slot, a, i, o]``: the multivector part
    of the sparse kernel as one opaque operator (batched GEMMs over components), token-major in and out.

    Parameters
    ----------
    x : Tensor, shape (T, in, dim)
    weights : Tensor, shape (r, dim, in, out)
    gather : Tensor of long, shape (r, dim)

    Returns
    -------
    Tensor, shape (T, out, dim), contiguous
    """
    xp = x.permute(2, 0, 1).contiguous()  # (dim, T, in)
    res = None
    for slot, _, src in _slot_sources(xp, gather):
        res = torch.bmm(src, weights[slot]) if res is None else torch.baddbmm(res, src, weights[slot])
    return res.permute(1, 2, 0).contiguous()


@component_matmul.register_fake
def _(x, weights, gather):
    return x.new_empty(x.shape[0], weights.shape[-1], x.shape[-1])


def _component_matmul_setup(ctx, inputs, output):
    x, weights, gather = inputs
    ctx.save_for_backward(x, weights, gather)


@torch.library.custom_op("gatr::component_matmul_backward", mutates_args=())
def component_matmul_backward(grad: torch.Tensor, x: torch.Tensor, weights: torch.Tensor,
                              gather: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of :func:`component_matmul` as one opaque operator (the compiler traces no host-side slot
    logic).

    Parameters
    ----------
    grad : Tensor, shape (T, out, dim)
    x, weights, gather
        The inputs of :func:`component_matmul`.

    Returns
    -------
    dx : Tensor, shape (T, in, dim)
    dweights : Tensor, shape (r, dim, in, out)
    """
    xp = x.permute(2, 0, 1).contiguous()  # (dim, T, in)
    gp = grad.permute(2, 0, 1).contiguous()  # (dim, T, out): unit-stride slices for the GEMMs
    dxp = torch.zeros_like(xp)
    dw = []
    for slot, same, src in _slot_sources(xp, gather):
        dw.append(torch.bmm(src.transpose(1, 2).to(gp.dtype), gp))
        d_src = torch.bmm(gp, weights[slot].transpose(1, 2).to(gp.dtype)).to(dxp.dtype)
        dxp.add_(d_src) if same else dxp.index_add_(0, gather[slot], d_src)
    return dxp.permute(1, 2, 0).contiguous(), torch.stack(dw).to(weights.dtype)


@component_matmul_backward.register_fake
def _(grad, x, weights, gather):
    return x.new_empty(x.shape), weights.new_empty(weights.shape)  # contiguous, like the real outputs


def _component_matmul_backward(ctx, grad):
    x, weights, gather = ctx.saved_tensors
    dx, dw = component_matmul_backward(grad, x, weights, gather)
    return dx, dw, None


component_matmul.register_autograd(_component_matmul_backward, setup_context=_component_matmul_setup)


def sparse_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s):
    """The map of :func:`dense_linear` as ``r`` batched GEMMs over components (module docstring).

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
    dim = alg.dim
    out_mv, in_mv, _ = w_mv.shape
    lead = mv.shape[:-2]
    x = mv.reshape(-1, in_mv, dim)
    n = x.shape[0]
    st = alg.tensors(w_mv.device, w_mv.dtype).derived(sparse_structure)
    weights = torch.einsum("oim,mra->raio", w_mv, st.coeff)  # (r, dim, in, out)
    out = component_matmul(x, weights, st.gather)  # (T, out, dim)
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
    """The kernel function for ``name`` at this size and device.

    Parameters
    ----------
    name : {"auto", "dense", "sparse"}
    tokens : int
        Product of the leading axes of the input.
    device : torch.device

    Returns
    -------
    callable
        A function of :data:`LINEAR_KERNELS`.

    Raises
    ------
    ValueError
        For an unknown name, listing the valid ones.
    """
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
