"""Per-algebra constant tensors used by the network, built once and cached per (device, dtype).

Everything here depends only on the algebra object, so hot paths never rebuild it. The cache is
keyed weakly on the algebra, so registering a new algebra does not leak memory.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _linear_basis_flat(alg) -> np.ndarray:
    """``(n_maps, dim * dim)``: the equivariant maps as rows, for one GEMM with the weights."""
    basis = alg.linear_basis.detach().cpu().numpy()
    return basis.reshape(basis.shape[0], -1)


def _bilinear_tables(alg) -> np.ndarray:
    """``(n_bilinears, dim, dim * dim)``: ``T[b, i, j * dim + k]``, so ``x @ T[b]`` gives the
    left-multiplication matrix ``L(x)[j, k]`` of bilinear ``b`` for every operand at once."""
    tables = np.stack([np.asarray(b.table, dtype=np.float64) for b in alg.bilinears])
    return tables.reshape(tables.shape[0], alg.dim, alg.dim * alg.dim)


def _bilinear_blocks(alg, which: str) -> np.ndarray:
    """Per-bilinear product matrices ``(n_bilinears, dim^2, dim)``.

    ``"forward"``: row ``(i, j)``, column ``k`` of block ``b`` holds ``T_b[i, j, k]``, so
    ``outer(x_b, y_b).flatten() @ M[b] = z_b``. ``"grad_left"``: rows ``(j, k)``, columns ``i``;
    ``"grad_right"``: rows ``(i, k)``, columns ``j`` (the backward passes are bilinear maps too:
    ``dL/dx_i = sum_jk T_ijk y_j g_k``).
    """
    tables = [np.asarray(b.table, dtype=np.float64) for b in alg.bilinears]
    dim = alg.dim
    perm = {"forward": (0, 1, 2), "grad_left": (1, 2, 0), "grad_right": (0, 2, 1)}[which]
    return np.stack([t.transpose(perm).reshape(dim * dim, dim) for t in tables])


def _linear_structure(alg) -> dict:
    """Sparsity of the equivariant maps, for the component-wise kernel of :mod:`gatr.primitives.linear`.

    Output component ``a`` of ``sum_m w_m B_m x`` reads only the input components ``b`` with some
    ``B_m[a, b] != 0`` (at most ``r`` of them: 1 of 8 in G(3,0,0), 2 of 16 in G(3,0,1), 4 of 32 in
    G(4,1,0)). ``gather (r, dim)``: the ``r``-th source component of each output component (padded
    with ``a`` itself, weight 0); ``coeff (n_maps, r, dim)``: ``B_m[a, gather[r, a]]`` (0 for padding);
    ``inv`` / ``fun``: the components the invariant basis / functionals touch.
    """
    basis = alg.linear_basis.detach().cpu().numpy().astype(np.float64)  # (m, a, b)
    dim = basis.shape[1]
    support = np.abs(basis).sum(0) > 0  # (a, b)
    r = max(1, int(support.sum(1).max()))
    gather = np.tile(np.arange(dim), (r, 1))
    coeff = np.zeros((basis.shape[0], r, dim))
    for a in range(dim):
        for t, b in enumerate(np.nonzero(support[a])[0]):
            gather[t, a] = b
            coeff[:, t, a] = basis[:, a, b]
    inv = np.nonzero(np.abs(np.asarray(alg.invariant_basis, dtype=np.float64)).sum(0) > 0)[0]
    fun = np.nonzero(np.abs(np.asarray(alg.invariant_functionals, dtype=np.float64)).sum(0) > 0)[0]
    return {"gather": gather, "coeff": coeff, "inv": inv, "fun": fun}


_BUILDERS = {
    "bilinear_forward": lambda alg: _bilinear_blocks(alg, "forward"),
    "bilinear_grad_left": lambda alg: _bilinear_blocks(alg, "grad_left"),
    "bilinear_grad_right": lambda alg: _bilinear_blocks(alg, "grad_right"),
    "linear_basis_flat": _linear_basis_flat,
    "invariant_basis": lambda alg: np.asarray(alg.invariant_basis, dtype=np.float64),
    "invariant_functionals": lambda alg: np.asarray(alg.invariant_functionals, dtype=np.float64),
    "bilinear_tables": _bilinear_tables,
    "linear_gather": lambda alg: _linear_structure(alg)["gather"].astype(np.int64),
    "linear_coeff": lambda alg: _linear_structure(alg)["coeff"],
    "linear_inv_components": lambda alg: _linear_structure(alg)["inv"].astype(np.int64),
    "linear_fun_components": lambda alg: _linear_structure(alg)["fun"].astype(np.int64),
    "invariant_basis_sparse": lambda alg: np.asarray(alg.invariant_basis, dtype=np.float64)[
        :, _linear_structure(alg)["inv"]],
    "invariant_functionals_sparse": lambda alg: np.asarray(alg.invariant_functionals, dtype=np.float64)[
        :, _linear_structure(alg)["fun"]],
}


def constant(alg, name: str, device=None, dtype=torch.float32) -> torch.Tensor:
    """The constant ``name`` of algebra ``alg`` as a tensor on ``device`` with ``dtype`` (cached)."""
    per_alg = _CACHE.setdefault(alg, {})
    key = (name, torch.device(device) if device is not None else torch.device("cpu"), dtype)
    if key not in per_alg:
        array = _BUILDERS[name](alg)
        dtype = torch.long if array.dtype == np.int64 else dtype
        per_alg[key] = torch.as_tensor(array, dtype=dtype, device=key[1])
    return per_alg[key]


def bilinear_info(alg) -> tuple[int, tuple[int | None, ...]]:
    """``(n_bilinears, reference components)``, cached (``alg.bilinears`` may rebuild its tables)."""
    per_alg = _CACHE.setdefault(alg, {})
    if "bilinear_info" not in per_alg:
        bilinears = alg.bilinears
        per_alg["bilinear_info"] = (len(bilinears), tuple(b.reference_component for b in bilinears))
    return per_alg["bilinear_info"]


def numpy_constant(alg, name: str) -> np.ndarray:
    """The same constant as a float64 NumPy array (for initialisation and FLOP counting)."""
    return _BUILDERS[name](alg)
