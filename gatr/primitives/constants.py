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
    """Block-diagonal product matrices ``(n_bilinears * dim^2, n_bilinears * dim)``.

    ``"forward"``: row ``(b, i, j)``, column ``(b, k)`` holds ``T_b[i, j, k]``, so
    ``outer(x, y).flatten() @ M = z`` for all bilinears in ONE GEMM. ``"grad_left"``: rows
    ``(b, j, k)``, columns ``(b, i)``; ``"grad_right"``: rows ``(b, i, k)``, columns ``(b, j)``
    (the backward passes are bilinear maps too: ``dL/dx_i = sum_jk T_ijk y_j g_k``).
    """
    tables = [np.asarray(b.table, dtype=np.float64) for b in alg.bilinears]
    nb, dim = len(tables), alg.dim
    perm = {"forward": (0, 1, 2), "grad_left": (1, 2, 0), "grad_right": (0, 2, 1)}[which]
    out = np.zeros((nb, dim * dim, nb, dim))
    for b, t in enumerate(tables):
        out[b, :, b, :] = t.transpose(perm).reshape(dim * dim, dim)
    return out.reshape(nb * dim * dim, nb * dim)


_BUILDERS = {
    "bilinear_forward": lambda alg: _bilinear_blocks(alg, "forward"),
    "bilinear_grad_left": lambda alg: _bilinear_blocks(alg, "grad_left"),
    "bilinear_grad_right": lambda alg: _bilinear_blocks(alg, "grad_right"),
    "linear_basis_flat": _linear_basis_flat,
    "invariant_basis": lambda alg: np.asarray(alg.invariant_basis, dtype=np.float64),
    "invariant_functionals": lambda alg: np.asarray(alg.invariant_functionals, dtype=np.float64),
    "bilinear_tables": _bilinear_tables,
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
