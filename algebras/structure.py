"""The derived equivariant structure of (signature, group) as a value object, and its cache.

:class:`GroupStructure` holds what the network needs from a group: the equivariant linear maps
(grade-block by grade-block), the invariant multivectors and the invariant linear functionals. It is
derived from the action matrices of a few random group elements (:mod:`algebras.equivariance`),
checked against independent group elements, and cached on disk; nothing in it is typed in by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .equivariance import equivariant_linear_maps, invariant_vectors
from .tables import cached_arrays, signature_key

#: Number of random group elements whose constraints define the equivariant maps.
NUM_CONSTRAINT_SAMPLES = 8
#: Seed of those samples, so the derived bases are reproducible.
CONSTRAINT_SEED = 1234
#: Number and seed of the independent elements that check a derived or cached structure.
NUM_CHECK_SAMPLES, CHECK_SEED = 4, CONSTRAINT_SEED + 1
#: Bump when the derivation changes, so that cached group structures are derived again.
STRUCTURE_VERSION = 1
#: Largest residual ``|L R - R L|`` (relative) that counts as equivariant.
RESIDUAL_TOLERANCE = 1e-8

#: ``(count, seed) -> (count, dim, dim)`` action matrices of seeded random group elements.
ActionSampler = Callable[[int, int], np.ndarray]


@dataclass(frozen=True, eq=False)
class GroupStructure:
    """Equivariant maps and invariants of a group acting on a Clifford algebra (a frozen dataclass).

    Parameters
    ----------
    linear_basis : ndarray, shape (n_maps, dim, dim)
        Basis of the linear maps ``L`` with ``L rho_u = rho_u L``; ``y = linear_basis[m] @ x``.
    blocks : tuple of (input grade, output grade)
        The grade block each map lives in.
    invariant_basis : ndarray, shape (k, dim)
        Multivectors fixed by the group (always contains the scalar 1).
    invariant_functionals : ndarray, shape (k', dim)
        Linear functionals ``f`` with ``f . rho_u(x) = f . x``.
    """

    linear_basis: np.ndarray
    blocks: tuple[tuple[int, int], ...]
    invariant_basis: np.ndarray
    invariant_functionals: np.ndarray

    @classmethod
    def derive(cls, act_matrices: np.ndarray, grades) -> "GroupStructure":
        """Solve the equivariance constraints of some group elements (:mod:`algebras.equivariance`).

        Parameters
        ----------
        act_matrices : ndarray, shape (m, dim, dim)
            ``rho_u`` as matrices for ``m`` random group elements.
        grades : sequence of int, length dim
            Grade of each blade.

        Returns
        -------
        GroupStructure
            The maps commuting with every given ``rho_u``, and the vectors and functionals they fix.
        """
        basis, blocks = equivariant_linear_maps(act_matrices, grades)
        return cls(basis, blocks, invariant_vectors(act_matrices, grades),
                   invariant_vectors(act_matrices, grades, transpose=True))

    @property
    def dim(self) -> int:
        """Dimension of the algebra (number of blades) the maps act on."""
        return self.linear_basis.shape[-1]

    def residual(self, act_matrices: np.ndarray) -> float:
        """Largest violation of equivariance / invariance under some group elements, relative.

        The maximum over ``|L R - R L|``, ``|R v - v|`` and ``|f R - f|`` for every map ``L``,
        invariant vector ``v``, invariant functional ``f`` and action matrix ``R``, divided by
        ``max(1, max |R|)``.

        Parameters
        ----------
        act_matrices : ndarray, shape (m, dim, dim)
            ``rho_u`` as matrices.

        Returns
        -------
        float
            The relative residual; ``inf`` if the maps do not have the matrices' shape.
        """
        r = act_matrices
        if self.linear_basis.ndim != 3 or self.linear_basis.shape[1:] != r.shape[1:]:
            return np.inf
        commute = np.matmul(self.linear_basis[:, None], r[None]) - np.matmul(r[None], self.linear_basis[:, None])
        fixed = np.einsum("nab,kb->nka", r, self.invariant_basis) - self.invariant_basis
        cofixed = np.einsum("ka,nab->nkb", self.invariant_functionals, r) - self.invariant_functionals
        worst = max(np.abs(a).max(initial=0.0) for a in (commute, fixed, cofixed))
        return float(worst) / max(1.0, float(np.abs(r).max()))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The structure as the arrays of its ``.npz`` cache file (``blocks`` as an ``(n_maps, 2)`` int array).

        Returns
        -------
        dict of str to ndarray
            ``linear_basis``, ``blocks``, ``invariant_basis`` and ``invariant_functionals``.
        """
        return {"linear_basis": self.linear_basis, "blocks": np.asarray(self.blocks, dtype=np.int64).reshape(-1, 2),
                "invariant_basis": self.invariant_basis, "invariant_functionals": self.invariant_functionals}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "GroupStructure":
        """The inverse of :meth:`to_arrays` (arrays as float64; extra keys are ignored).

        Parameters
        ----------
        arrays : mapping of str to ndarray
            At least ``linear_basis``, ``blocks``, ``invariant_basis`` and ``invariant_functionals``.

        Returns
        -------
        GroupStructure
        """
        blocks = tuple((int(a), int(b)) for a, b in np.asarray(arrays["blocks"]).reshape(-1, 2))
        return cls(np.asarray(arrays["linear_basis"], dtype=np.float64), blocks,
                   np.asarray(arrays["invariant_basis"], dtype=np.float64),
                   np.asarray(arrays["invariant_functionals"], dtype=np.float64))


def group_tag(group) -> str:
    """What a cache file must match besides the signature: group name, parity, derivation version.

    Parameters
    ----------
    group : VersorGroup
        The symmetry group.

    Returns
    -------
    str
        ``"<name>|even=<even_only>|v<STRUCTURE_VERSION>"``.
    """
    return f"{group.name}|even={group.even_only}|v{STRUCTURE_VERSION}"


def structure_filename(signature, group) -> str:
    """File name of the cached structure, keyed by signature and group.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        Squares of the basis vectors.
    group : VersorGroup
        The symmetry group (its name, reduced to a file-name-safe form, and its parity).

    Returns
    -------
    str
        ``"basis_<signature key>_<group name>[_even].npz"``.
    """
    name = re.sub(r"[^A-Za-z0-9]+", "_", group.name).strip("_") or "group"
    return f"basis_{signature_key(signature)}_{name}{'_even' if group.even_only else ''}.npz"


def derive_structure_arrays(signature, group, grades, sample: ActionSampler) -> dict[str, np.ndarray]:
    """A fresh derivation as the arrays of a cache file (SVDs: fast alone, slow on a busy CPU).

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        Squares of the basis vectors.
    group : VersorGroup
        The symmetry group.
    grades : sequence of int, length dim
        Grade of each blade.
    sample : callable
        ``(count, seed) -> (count, dim, dim)`` action matrices of seeded random group elements; called
        with ``NUM_CONSTRAINT_SAMPLES`` and ``CONSTRAINT_SEED``.

    Returns
    -------
    dict of str to ndarray
        :meth:`GroupStructure.to_arrays` plus ``signature`` and ``group`` (:func:`group_tag`), which a
        loaded file must match.
    """
    structure = GroupStructure.derive(sample(NUM_CONSTRAINT_SAMPLES, CONSTRAINT_SEED), grades)
    return {**structure.to_arrays(), "signature": np.asarray(signature, dtype=np.int64),
            "group": np.asarray(group_tag(group))}


def load_group_structure(signature, group, grades, sample: ActionSampler) -> GroupStructure:
    """The structure of ``(signature, group)``: shipped data, the user cache, or a fresh derivation.

    Cached entries are re-checked against independent group elements (cheap: no SVD), so a stale or
    foreign cache file is never trusted; a derivation that fails that check is an error.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        Squares of the basis vectors.
    group : VersorGroup
        The symmetry group.
    grades : sequence of int, length dim
        Grade of each blade.
    sample : callable
        ``(count, seed) -> (count, dim, dim)`` action matrices of seeded random group elements.

    Returns
    -------
    GroupStructure

    Raises
    ------
    RuntimeError
        If the structure's residual on the check elements exceeds ``RESIDUAL_TOLERANCE``.
    """
    check = sample(NUM_CHECK_SAMPLES, CHECK_SEED)
    signature = tuple(int(s) for s in signature)

    def is_valid(arrays) -> bool:
        try:
            if tuple(arrays["signature"]) != signature or str(arrays["group"]) != group_tag(group):
                return False
            return GroupStructure.from_arrays(arrays).residual(check) <= RESIDUAL_TOLERANCE
        except (KeyError, ValueError, IndexError):
            return False

    arrays = cached_arrays(structure_filename(signature, group),
                           lambda: derive_structure_arrays(signature, group, grades, sample), is_valid)
    structure = GroupStructure.from_arrays(arrays)
    residual = structure.residual(check)
    if residual > RESIDUAL_TOLERANCE:  # too few constraints: the maps must commute with fresh elements too
        raise RuntimeError(f"equivariance solver did not converge for {signature} under {group.name} "
                           f"(residual {residual:.2e})")
    return structure
