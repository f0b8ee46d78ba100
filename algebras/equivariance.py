"""Numerical derivation of equivariant linear maps and invariant subspaces.

Nothing here is typed in by hand: every basis is the null space of the equivariance constraints
obtained from a handful of random group elements, then cleaned into a readable, sparse basis.

Because versor actions preserve grade, ``rho_u`` is block diagonal over grades, and the constraint
``L rho_u = rho_u L`` decouples into one small problem per (output grade, input grade) block:
``L_kl R_l(u) = R_k(u) L_kl``. With row-major vectorisation, ``vec(A X B) = (A kron B^T) vec(X)``, so
each block is the null space of ``stack_u [I kron R_l(u)^T - R_k(u) kron I]``.
"""

from __future__ import annotations

import numpy as np

#: Tolerance (relative to the largest singular value) below which a direction counts as null.
NULL_TOLERANCE = 1e-9


def null_space(constraints: np.ndarray, tol: float = NULL_TOLERANCE) -> np.ndarray:
    """Orthonormal basis (rows) of the null space of a stacked constraint matrix.

    Tall stacks are first reduced to their ``R`` factor (same null space), then an SVD gives it.

    Parameters
    ----------
    constraints : ndarray, shape (m, n)
        One constraint per row.
    tol : float
        Singular values below ``tol`` times the largest (at least 1) count as zero.

    Returns
    -------
    ndarray, shape (n - rank, n)
        Orthonormal rows spanning ``{v : constraints @ v = 0}``; the identity if ``m == 0``.
    """
    if constraints.shape[0] == 0:
        return np.eye(constraints.shape[1])
    if constraints.shape[0] > constraints.shape[1]:
        # Same row space, square and small: QR first makes the SVD cheap for tall stacks.
        constraints = np.linalg.qr(constraints, mode="r")
    _, singular, vt = np.linalg.svd(constraints, full_matrices=True)
    scale = max(singular.max(initial=0.0), 1.0)
    rank = int((singular > tol * scale).sum())
    return vt[rank:]


def rref(rows: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Reduced row echelon form: a sparse basis of the same row space with unit pivots.

    Gauss-Jordan elimination with partial pivoting; columns whose largest remaining entry is below
    ``tol`` get no pivot.

    Parameters
    ----------
    rows : ndarray, shape (m, n)
        A spanning set of the row space.
    tol : float
        Absolute pivot tolerance.

    Returns
    -------
    ndarray, shape (rank, n)
        The non-zero rows of the reduced row echelon form (float64, a copy).
    """
    m = rows.astype(np.float64, copy=True)
    n_rows, n_cols = m.shape
    r = 0
    for c in range(n_cols):
        if r == n_rows:
            break
        p = r + int(np.argmax(np.abs(m[r:, c])))
        if abs(m[p, c]) < tol:
            continue
        m[[r, p]] = m[[p, r]]
        m[r] /= m[r, c]
        others = np.arange(n_rows) != r
        m[others] -= np.outer(m[others, c], m[r])
        r += 1
    return m[:r]


def clean_basis(rows: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """A readable basis of the same row space: RREF, entries snapped to 1/4 multiples, max |entry| = 1.

    Entries within ``1e-8`` of a multiple of 1/4 are set to it.

    Parameters
    ----------
    rows : ndarray, shape (m, n)
        A basis (or spanning set) of the row space, e.g. from :func:`null_space`.
    tol : float
        Pivot tolerance of :func:`rref`.

    Returns
    -------
    ndarray, shape (rank, n)
        ``rows`` itself if it is empty.
    """
    if len(rows) == 0:
        return rows
    m = rref(rows, tol)
    snapped = np.round(m * 4) / 4
    m = np.where(np.abs(m - snapped) < 1e-8, snapped, m)
    return m / np.abs(m).max(axis=1, keepdims=True)


def _grade_indices(grades) -> list[np.ndarray]:
    grades = np.asarray(grades)
    return [np.flatnonzero(grades == k) for k in range(grades.max() + 1)]


def equivariant_linear_maps(
    act_matrices: np.ndarray, grades
) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """All linear maps ``L`` with ``L rho_u = rho_u L`` for the given group elements.

    Parameters
    ----------
    act_matrices : ndarray, shape (m, dim, dim)
        ``rho_u`` as matrices (``rho_u(x) = R @ x``) for ``m`` random group elements.
    grades : sequence of int, length dim
        Grade of each blade.

    Returns
    -------
    basis : ndarray, shape (n_maps, dim, dim)
        A cleaned basis, each map supported on one (output grade, input grade) block.
    blocks : tuple of (input grade, output grade)
        Which block each map lives in.
    """
    dim = act_matrices.shape[-1]
    blocks = _grade_indices(grades)
    maps, labels = [], []
    for l_in, idx_in in enumerate(blocks):
        for k_out, idx_out in enumerate(blocks):
            r_in = act_matrices[:, idx_in][:, :, idx_in]
            r_out = act_matrices[:, idx_out][:, :, idx_out]
            eye_in, eye_out = np.eye(len(idx_in)), np.eye(len(idx_out))
            constraints = np.concatenate(
                [np.kron(eye_out, r_in[u].T) - np.kron(r_out[u], eye_in) for u in range(len(r_in))]
            )
            for row in clean_basis(null_space(constraints)):
                full = np.zeros((dim, dim))
                full[np.ix_(idx_out, idx_in)] = row.reshape(len(idx_out), len(idx_in))
                maps.append(full)
                labels.append((l_in, k_out))
    return np.stack(maps), tuple(labels)


def invariant_vectors(act_matrices: np.ndarray, grades, transpose: bool = False) -> np.ndarray:
    """Multivectors fixed by every group element: ``rho_u(v) = v`` (grade by grade).

    With ``transpose=True``, the invariant linear functionals instead: ``f . rho_u(x) = f . x``,
    i.e. the fixed vectors of ``rho_u^T``.

    Parameters
    ----------
    act_matrices : ndarray, shape (m, dim, dim)
        ``rho_u`` as matrices for ``m`` random group elements.
    grades : sequence of int, length dim
        Grade of each blade.
    transpose : bool
        Return the invariant functionals instead of the invariant vectors.

    Returns
    -------
    ndarray, shape (k, dim)
        A cleaned basis (:func:`clean_basis`), each row supported on one grade.
    """
    dim = act_matrices.shape[-1]
    rows = []
    for idx in _grade_indices(grades):
        block = act_matrices[:, idx][:, :, idx]
        if transpose:
            block = np.swapaxes(block, 1, 2)
        constraints = (block - np.eye(len(idx))).reshape(-1, len(idx))
        for row in clean_basis(null_space(constraints)):
            full = np.zeros(dim)
            full[idx] = row
            rows.append(full)
    return np.stack(rows) if rows else np.zeros((0, dim))
