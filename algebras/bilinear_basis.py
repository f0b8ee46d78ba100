"""Derived equivariant bilinear maps ``V × V → V``: every one, for any signature and group.

A bilinear map is a table ``T[i, j, k]`` (``z_k = sum_ij x_i y_j T[i, j, k]``, the layout of
:class:`algebras.hooks.Bilinear`). It is equivariant when ``T(rho_u x, rho_u y) = rho_u T(x, y)`` for
every group element ``u``, and equivariant *up to the determinant* when
``T(rho_u x, rho_u y) = det(u) rho_u T(x, y)`` (the projective join is: its reference pseudoscalar
picks up the same sign). As for the linear maps (:mod:`algebras.equivariance`), versor actions
preserve grade, so the constraint decouples into one problem per (grade of x, grade of y, output
grade) block ``(g_x, g_y, g_z)``: with row-major vectorisation of the block ``T[a, b, c]``,

    (R_x(u)^T ⊗ R_y(u)^T ⊗ I  -  s(u) I ⊗ I ⊗ R_z(u)) vec T = 0,

stacked over a handful of random group elements; ``s(u) = 1`` or ``det(u)``. The null space of each
block (at most 10 × 10 × 10 = 1,000 unknowns in the conformal algebra instead of 32³ at once) is
cleaned into a readable basis. ``det(u)`` is read off the action itself: every versor maps the
pseudoscalar to ``det(u)`` times itself.

Each basis map lives on one block, so a basis is stored as its blocks' coefficient rows
(:class:`BilinearBasis`); :meth:`BilinearBasis.dense` gives the ``(n, dim, dim, dim)`` tables and
:meth:`BilinearBasis.project` the coordinates of any table in the span.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .equivariance import _grade_indices, clean_basis

__all__ = ["BilinearBasis", "equivariant_bilinear_maps", "determinants"]

#: singular values of a restricted constraint below this times the constraint's norm count as zero
#: (true solutions leave ~1e-13; the smallest non-zero ones are ~1e-3 of the norm in every shipped algebra)
SEQUENTIAL_TOLERANCE = 1e-8


class BilinearBasis(NamedTuple):
    """A basis of equivariant bilinear maps, block by block.

    Parameters
    ----------
    dim : int
        Algebra dimension.
    grades : tuple of int
        Grade of each blade.
    blocks : tuple of (int, int, int)
        ``(grade of x, grade of y, output grade)`` of each basis map.
    rows : tuple of ndarray
        Each map's coefficients on its block, ``(d_x * d_y * d_z,)`` in ``[a, b, c]`` row-major order.
    """

    dim: int
    grades: tuple
    blocks: tuple
    rows: tuple

    def __len__(self) -> int:  # noqa: D105 - the number of basis maps
        return len(self.rows)

    def dense(self) -> np.ndarray:
        """The basis as tables.

        Returns
        -------
        ndarray, shape (n, dim, dim, dim)
            ``T[n, i, j, k]``: coefficient of blade ``k`` in the n-th map of blades ``i`` and ``j``.
        """
        idx = _grade_indices(self.grades)
        out = np.zeros((len(self.rows), self.dim, self.dim, self.dim))
        for n, ((gx, gy, gz), row) in enumerate(zip(self.blocks, self.rows)):
            out[n][np.ix_(idx[gx], idx[gy], idx[gz])] = row.reshape(len(idx[gx]), len(idx[gy]), len(idx[gz]))
        return out

    def project(self, table: np.ndarray) -> tuple[np.ndarray, float]:
        """Coordinates of ``table`` in the span (least squares) and the residual's largest entry.

        Parameters
        ----------
        table : ndarray, shape (dim, dim, dim)
            A bilinear map in the layout ``T[i, j, k]``.

        Returns
        -------
        coefficients : ndarray, shape (n,)
        residual : float
            ``max |table - sum_n c_n T_n|``: zero (to rounding) when ``table`` lies in the span.
        """
        basis = self.dense().reshape(len(self), -1)
        coef, *_ = np.linalg.lstsq(basis.T, table.reshape(-1), rcond=None)
        return coef, float(np.abs(basis.T @ coef - table.reshape(-1)).max())

    def residual(self, act_matrices: np.ndarray, up_to_determinant: bool = False) -> float:
        """Largest violation of the constraint on other group elements (0 when every map is equivariant).

        Parameters
        ----------
        act_matrices : ndarray, shape (m, dim, dim)
            ``rho_u`` of group elements that the derivation did not use.
        up_to_determinant : bool
            Check ``T(rho x, rho y) = det(u) rho T(x, y)`` instead.

        Returns
        -------
        float
            ``max |T(rho x, rho y) - s rho T(x, y)|`` over basis maps, elements and four random
            operand pairs, relative to the cube of the largest action entry.
        """
        if not len(self):
            return 0.0
        t = self.dense()  # (n, i, j, k)
        sign = determinants(act_matrices) if up_to_determinant else np.ones(len(act_matrices))
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((2, 4, self.dim))  # random operands find any violation (almost surely)
        worst = 0.0
        for r, s in zip(act_matrices, sign):
            lhs = np.einsum("pi,pj,nijk->npk", x @ r.T, y @ r.T, t, optimize=True)  # T(rho x, rho y)
            rhs = np.einsum("pi,pj,nijk->npk", x, y, t, optimize=True) @ r.T  # rho T(x, y)
            worst = max(worst, float(np.abs(lhs - s * rhs).max()) / max(1.0, float(np.abs(r).max()) ** 3))
        return worst

    def to_arrays(self) -> dict:
        """The basis as the arrays of a cache file.

        Returns
        -------
        dict of str to ndarray
            ``grades``, ``blocks`` (n, 3) and the concatenated ``rows`` with their ``lengths``.
        """
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0)
        return {"grades": np.asarray(self.grades, dtype=np.int64),
                "blocks": np.asarray(self.blocks, dtype=np.int64).reshape(-1, 3),
                "lengths": np.asarray([len(r) for r in self.rows], dtype=np.int64), "rows": rows}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "BilinearBasis":
        """A basis from :meth:`to_arrays`' arrays.

        Parameters
        ----------
        arrays : dict of str to ndarray

        Returns
        -------
        BilinearBasis
        """
        grades = tuple(int(g) for g in arrays["grades"])
        cuts = np.cumsum(arrays["lengths"])[:-1]
        rows = tuple(np.split(np.asarray(arrays["rows"], dtype=np.float64), cuts)) if len(arrays["lengths"]) else ()
        return cls(dim=len(grades), grades=grades, blocks=tuple(tuple(int(v) for v in b) for b in arrays["blocks"]),
                   rows=rows)

    def counts(self) -> dict:
        """Number of basis maps per ``(grade of x, grade of y, output grade)`` block.

        Returns
        -------
        dict of (int, int, int) to int
        """
        out: dict = {}
        for b in self.blocks:
            out[b] = out.get(b, 0) + 1
        return out


def determinants(act_matrices: np.ndarray) -> np.ndarray:
    """``det(u)`` of each group element from its action: the pseudoscalar goes to ``det(u)`` times itself.

    Parameters
    ----------
    act_matrices : ndarray, shape (m, dim, dim)
        ``rho_u`` as matrices; the last blade is the pseudoscalar.

    Returns
    -------
    ndarray, shape (m,)
        +1 or -1.
    """
    s = act_matrices[:, -1, -1]
    if not np.allclose(np.abs(s), 1.0, atol=1e-6):
        raise ValueError("the action does not map the pseudoscalar to +-itself: no determinant to read off")
    return np.sign(s)


def equivariant_bilinear_maps(act_matrices: np.ndarray, grades, up_to_determinant: bool = False) -> BilinearBasis:
    """All bilinear maps ``T`` with ``T(rho_u x, rho_u y) = s(u) rho_u T(x, y)`` for the given elements.

    Parameters
    ----------
    act_matrices : ndarray, shape (m, dim, dim)
        ``rho_u`` as matrices for ``m`` random group elements.
    grades : sequence of int, length dim
        Grade of each blade.
    up_to_determinant : bool
        ``s(u) = det(u)`` (the join's kind of equivariance) instead of 1.

    Returns
    -------
    BilinearBasis
        A cleaned basis, each map supported on one grade block.
    """
    dim = act_matrices.shape[-1]
    idx = _grade_indices(grades)
    sign = determinants(act_matrices) if up_to_determinant else np.ones(len(act_matrices))
    blocks, rows = [], []
    for gx, ix in enumerate(idx):
        for gy, iy in enumerate(idx):
            for gz, iz in enumerate(idx):
                rx, ry, rz = (act_matrices[:, i][:, :, i] for i in (ix, iy, iz))
                for row in clean_basis(_block_null_space(rx, ry, rz, sign)):
                    blocks.append((gx, gy, gz))
                    rows.append(row)
    return BilinearBasis(dim=dim, grades=tuple(int(g) for g in grades), blocks=tuple(blocks), rows=tuple(rows))


def _block_null_space(rx: np.ndarray, ry: np.ndarray, rz: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning the block's solutions, one group element at a time.

    The solutions of the first ``t`` constraints are a subspace ``N_t`` (columns); the next element
    only needs the null space of its constraint restricted to it, ``A_u N_t`` (n x r_t), and after the
    first element ``r_t`` is a small fraction of ``n``. The constraint ``A_u`` is applied as tensor
    contractions, never formed as an ``n x n`` Kronecker product.
    """
    dx, dy, dz = rx.shape[-1], ry.shape[-1], rz.shape[-1]
    n = dx * dy * dz
    basis = np.eye(n)
    for u in range(len(rx)):
        t = basis.T.reshape(-1, dx, dy, dz)  # each column as a block T[a, b, c]
        # (R_x^T ⊗ R_y^T ⊗ I) T: T'[a', b', c] = sum_ab R_x[a, a'] R_y[b, b'] T[a, b, c]; minus s R_z T
        lhs = np.einsum("aA,bB,rabc->rABc", rx[u], ry[u], t, optimize=True)
        rhs = np.einsum("cC,rabC->rabc", rz[u], t, optimize=True)
        applied = (lhs - sign[u] * rhs).reshape(len(t), n).T  # (n, r)
        # zero relative to the norm of the whole constraint, not of its restriction (which is ~0 once
        # few directions are left, and would let rounding decide)
        scale = np.linalg.norm(rx[u], 2) * np.linalg.norm(ry[u], 2) + np.linalg.norm(rz[u], 2)
        basis = basis @ _null_columns(applied, SEQUENTIAL_TOLERANCE * scale)
        if basis.shape[1] == 0:
            break
    return basis.T


def _null_columns(m: np.ndarray, threshold: float) -> np.ndarray:
    """Orthonormal columns spanning ``{v : m v = 0}``, singular values below ``threshold`` counting as 0."""
    if m.shape[0] > m.shape[1]:
        m = np.linalg.qr(m, mode="r")
    _, singular, vt = np.linalg.svd(m, full_matrices=True)
    return vt[int((singular > threshold).sum()):].T


def bilinear_basis_filename(signature, group, up_to_determinant: bool) -> str:
    """Cache file name of a derived bilinear basis, keyed like the linear maps' structure file.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
    group : VersorGroup
    up_to_determinant : bool

    Returns
    -------
    str
    """
    from .structure import structure_filename

    return structure_filename(signature, group).replace("basis_", "bilinear_", 1).replace(
        ".npz", "_det.npz" if up_to_determinant else ".npz")


def load_bilinear_basis(signature, group, grades, sample, up_to_determinant: bool = False) -> BilinearBasis:
    """The equivariant bilinear maps of ``(signature, group)``: shipped, cached on disk, or derived.

    Derived from ``NUM_CONSTRAINT_SAMPLES`` seeded group elements and checked against independent ones
    (as the linear maps are, :func:`algebras.structure.load_group_structure`); a cache file that fails
    the check is derived again.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
    group : VersorGroup
    grades : sequence of int
    sample : callable
        ``(count, seed) -> (count, dim, dim)`` action matrices of seeded random group elements.
    up_to_determinant : bool
        The maps equivariant up to ``det(u)`` instead.

    Returns
    -------
    BilinearBasis

    Raises
    ------
    RuntimeError
        If the derived basis fails the check on fresh group elements.
    """
    from .structure import CHECK_SEED, CONSTRAINT_SEED, NUM_CHECK_SAMPLES, NUM_CONSTRAINT_SAMPLES, group_tag
    from .tables import cached_arrays

    signature = tuple(int(v) for v in signature)
    check = sample(NUM_CHECK_SAMPLES, CHECK_SEED)
    tag = f"{group_tag(group)}|bilinear|det={up_to_determinant}"

    def derive() -> dict:
        basis = equivariant_bilinear_maps(sample(NUM_CONSTRAINT_SAMPLES, CONSTRAINT_SEED), grades, up_to_determinant)
        return {**basis.to_arrays(), "signature": np.asarray(signature, dtype=np.int64), "group": np.asarray(tag)}

    def is_valid(arrays) -> bool:
        try:
            return (tuple(arrays["signature"]) == signature and str(arrays["group"]) == tag
                    and BilinearBasis.from_arrays(arrays).residual(check, up_to_determinant) <= CHECK_TOLERANCE)
        except (KeyError, ValueError, IndexError):
            return False

    basis = BilinearBasis.from_arrays(cached_arrays(bilinear_basis_filename(signature, group, up_to_determinant),
                                                    derive, is_valid))
    residual = basis.residual(check, up_to_determinant)
    if residual > CHECK_TOLERANCE:
        raise RuntimeError(f"bilinear equivariance solver did not converge for {signature} under {group.name} "
                           f"(residual {residual:.2e} on fresh group elements)")
    return basis


#: largest violation on fresh group elements (relative to the action's scale) a basis may have
CHECK_TOLERANCE = 1e-8
