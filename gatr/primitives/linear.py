"""Equivariant linear maps: one dense block matrix (the reference form), executed sparsely.

A layer with ``in_mv`` / ``out_mv`` multivector channels and ``in_s`` / ``out_s`` scalar channels
acts on the flattened input ``[x_mv.flatten(-2), x_s]`` of length ``in_mv * dim + in_s`` with the
block matrix

    [ sum_m W[o, i, m] B_m          sum_k V[o, s, k] v_k   ]   (out_mv * dim rows)
    [ sum_k U[p, i, k] f_k^T        S[p, s]                ]   (out_s rows)

where ``B_m`` is ``algebra.linear_basis`` (equivariant maps), ``v_k`` the invariant multivectors
(``algebra.invariant_basis``: scalars -> multivectors) and ``f_k`` the invariant functionals
(``algebra.invariant_functionals``: multivectors -> scalars). Every block commutes with the group
action, so the whole map is equivariant; building it costs a few small GEMMs per call.
:func:`equi_linear` runs the same map without the ~90% zeros of the ``B_m`` blocks (batched GEMMs
over output components); :func:`apply_dense` is the dense form (used below ``SPARSE_MIN_TOKENS``).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
import torch.nn.functional as F

from .constants import constant


def dense_equi_matrix(alg, w_mv, w_s2mv, w_mv2s, w_s, device, dtype) -> torch.Tensor:
    """Build the dense ``(out_mv * dim + out_s, in_mv * dim + in_s)`` matrix.

    Parameters
    ----------
    alg : CliffordAlgebra
    w_mv : Tensor ``(out_mv, in_mv, n_maps)``
    w_s2mv : Tensor ``(out_mv, in_s, n_invariant)`` or None
    w_mv2s : Tensor ``(out_s, in_mv, n_functionals)`` or None
    w_s : Tensor ``(out_s, in_s)`` or None
    """
    dim = alg.dim
    out_mv, in_mv, n_maps = w_mv.shape
    basis = constant(alg, "linear_basis_flat", device, dtype)  # (n_maps, dim*dim)
    # (o*i, m) @ (m, a*b) -> (o, i, a, b) -> (o, a, i, b): row o*dim+a, column i*dim+b
    mm = (w_mv.reshape(out_mv * in_mv, n_maps) @ basis).reshape(out_mv, in_mv, dim, dim)
    mm = mm.permute(0, 2, 1, 3).reshape(out_mv * dim, in_mv * dim)
    if w_s2mv is None and w_mv2s is None and w_s is None:
        return mm
    rows = [mm]
    if w_s2mv is not None:
        inv = constant(alg, "invariant_basis", device, dtype)  # (k, dim)
        # (o, s, k) x (k, a) -> (o, a, s)
        sm = torch.einsum("osk,ka->oas", w_s2mv, inv).reshape(out_mv * dim, -1)
        rows = [torch.cat([mm, sm], 1)]
    if w_mv2s is not None:
        fun = constant(alg, "invariant_functionals", device, dtype)  # (k, dim)
        ms = torch.einsum("pik,kb->pib", w_mv2s, fun).reshape(w_mv2s.shape[0], in_mv * dim)
        rows.append(torch.cat([ms, w_s], 1) if w_s is not None else ms)
    elif w_s is not None:  # out_s > 0 but in_mv == 0 cannot happen for our layers; keep general
        rows.append(torch.cat([mm.new_zeros(w_s.shape[0], in_mv * dim), w_s], 1))
    return torch.cat(rows, 0)


def dense_equi_bias(alg, b_mv, b_s, device, dtype) -> torch.Tensor | None:
    """Bias of length ``out_mv * dim + out_s``: multivector biases only along invariant directions."""
    if b_mv is None and b_s is None:
        return None
    inv = constant(alg, "invariant_basis", device, dtype)
    parts = [(b_mv @ inv).reshape(-1)]  # (out, k) @ (k, dim)
    if b_s is not None:
        parts.append(b_s)
    return torch.cat(parts)


#: Token count (product of the leading axes) from which :func:`equi_linear` runs sparsely.
SPARSE_MIN_TOKENS = 256


def _is_identity(alg, t: int) -> bool:
    per_alg = _IDENTITY.setdefault(alg, {})
    if t not in per_alg:
        gather = constant(alg, "linear_gather")
        per_alg[t] = bool((gather[t] == torch.arange(gather.shape[1])).all())
    return per_alg[t]


_IDENTITY: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


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


def equi_linear(alg, mv, scalars, w_mv, w_s2mv, w_mv2s, w_s, b_mv, b_s):
    """The same map as ``apply_dense(mv, scalars, *dense_equi_matrix(...), ...)``, executed sparsely.

    The dense ``(out_mv*dim, in_mv*dim)`` block is ~90% zeros (each output component reads at most
    ``r`` input components: 1 in G(3,0,0), 2 in G(3,0,1), 4 in G(4,1,0)), so it runs as ``r``
    batched GEMMs over components, ``(dim, T, in) @ (dim, in, out)``, on the component-major
    inputs gathered per source slot; scalars enter (and leave) only through the few components the
    invariant basis (functionals) touches. Same sums as the dense product, minus the zero terms.

    Below ``SPARSE_MIN_TOKENS`` tokens the per-call overhead of these ~15 small ops outweighs the
    saved MACs and the dense matrix runs instead (same result up to rounding).

    Returns ``(mv (..., out_mv, dim), scalars (..., out_s))``.
    """
    dim = alg.dim
    out_mv, in_mv, _ = w_mv.shape
    lead = mv.shape[:-2]
    x = mv.reshape(-1, in_mv, dim)
    n = x.shape[0]
    dev, wdt = w_mv.device, w_mv.dtype
    if n < SPARSE_MIN_TOKENS or mv.device.type != "cpu":  # GPUs: one dense GEMM beats ~15 small ops
        matrix = dense_equi_matrix(alg, w_mv, w_s2mv, w_mv2s, w_s, dev, wdt)
        return apply_dense(mv, scalars, matrix, dense_equi_bias(alg, b_mv, b_s, dev, wdt), out_mv, dim)
    gather = constant(alg, "linear_gather", dev)  # (r, dim)
    coeff = constant(alg, "linear_coeff", dev, wdt)  # (n_maps, r, dim)
    weights = torch.einsum("oim,mra->raio", w_mv, coeff)  # (r, dim, in, out)
    xp = x.permute(2, 0, 1).contiguous()  # (dim, T, in)
    res = None
    for t in range(gather.shape[0]):
        src = xp if _is_identity(alg, t) else xp.index_select(0, gather[t])
        res = torch.bmm(src, weights[t]) if res is None else torch.baddbmm(res, src, weights[t])
    # scalars and biases enter the multivector outputs along the invariant components only
    s = None
    if scalars is not None and scalars.shape[-1] > 0:
        s = scalars.reshape(-1, scalars.shape[-1]).to(x.dtype)
    inv = constant(alg, "linear_inv_components", dev)
    ys = None
    if w_s2mv is not None or b_mv is not None:
        invb = constant(alg, "invariant_basis_sparse", dev, wdt)  # (k, n_inv)
        bias = (b_mv @ invb).t().reshape(-1) if b_mv is not None else None  # (n_inv * out)
        if w_s2mv is not None and s is not None:
            v = torch.einsum("osk,kc->sco", w_s2mv, invb).reshape(w_s2mv.shape[1], -1)
            ys = s @ v if bias is None else torch.addmm(bias, s, v)
        elif bias is not None:
            ys = bias.expand(n, -1)
    out = _TokenMajor.apply(res)  # (T, out, dim); its gradient reaches the GEMMs contiguous
    if ys is not None:
        out.index_add_(2, inv, ys.view(n, -1, out_mv).transpose(1, 2))
    out = out.view(*lead, out_mv, dim)
    if w_mv2s is None:
        return out, out.new_zeros(*lead, 0)
    fun = constant(alg, "linear_fun_components", dev)
    funb = constant(alg, "invariant_functionals_sparse", dev, wdt)  # (k, n_fun)
    u = torch.einsum("pik,kc->pic", w_mv2s, funb).reshape(w_mv2s.shape[0], -1)
    feats = x.index_select(-1, fun).reshape(n, -1)
    if w_s is not None and s is not None:
        feats = torch.cat([feats, s], -1)
        u = torch.cat([u, w_s], 1)
    s_out = F.linear(feats, u, b_s)
    return out, s_out.reshape(*lead, -1)


def apply_dense(mv: torch.Tensor, scalars: torch.Tensor | None, matrix, bias, out_mv: int, dim: int):
    """``F.linear`` on ``[mv.flatten(-2), scalars]``; returns ``(mv (..., out_mv, dim), s (..., out_s))``."""
    x = mv.flatten(-2)
    if scalars is not None and scalars.shape[-1] > 0:
        x = torch.cat([x, scalars.to(x.dtype)], -1)
    y = F.linear(x, matrix, bias)
    split = out_mv * dim
    return y[..., :split].unflatten(-1, (out_mv, dim)), y[..., split:]


# ---------------------------------------------------------------------- initialisation
def init_stds(alg, in_mv: int, out_mv: int, in_s: int, out_s: int, gain: float = 1.0):
    """Standard deviations of the weight groups that give unit output variance per component.

    For unit-variance, independent inputs, output component ``a`` of a multivector has variance
    ``in_mv sum_m std_m^2 |row_a(B_m)|^2 + in_s sum_k std_k^2 v_k[a]^2``. Each source (map ``m`` or
    invariant vector ``k``) is given ``std^2 = 1 / (fan_in * q * c)``, ``q`` the mean squared row
    norm of the source over the rows it touches and ``c`` the mean number of sources per touched
    row, so every component receives about one unit of variance in total, for any algebra.

    Returns
    -------
    dict with arrays ``mv (n_maps,)``, ``s2mv (n_inv,)``, ``mv2s (n_fun,)`` and a float ``s``.
    """
    basis = alg.linear_basis.detach().cpu().numpy()  # (m, a, b)
    inv = np.asarray(alg.invariant_basis, dtype=np.float64)  # (k, a)
    fun = np.asarray(alg.invariant_functionals, dtype=np.float64)  # (k, b)
    row_sq = (basis**2).sum(-1)  # (m, a)
    sources = [(row_sq, in_mv)] if in_mv > 0 else [(np.zeros_like(row_sq), 1)]
    sources.append((inv**2 if in_s > 0 else np.zeros_like(inv), max(in_s, 1)))
    touched = np.concatenate([s[0] for s in sources]) > 1e-12  # (m + k, a)
    count = touched.sum(0).clip(min=1)  # sources per output component

    def stds(sq, fan_in):
        hit = sq > 1e-12
        out = np.zeros(sq.shape[0])
        for m in range(sq.shape[0]):
            if hit[m].any():
                q = sq[m, hit[m]].mean()
                c = count[hit[m]].mean()
                out[m] = gain / np.sqrt(fan_in * q * c)
        return out

    n_fun_sources = fun.shape[0] if in_mv > 0 else 0
    c_s = n_fun_sources + (1 if in_s > 0 else 0)
    return {
        "mv": stds(*sources[0]),
        "s2mv": stds(*sources[1]),
        "mv2s": gain / np.sqrt(max(in_mv, 1) * np.maximum((fun**2).sum(-1), 1e-12) * max(c_s, 1)),
        "s": gain / np.sqrt(max(in_s, 1) * max(c_s, 1)),
    }
