"""The generic Clifford-algebra engine: signature -> blades, product tables and operations.

Multivectors are torch tensors whose last axis has size ``dim = 2**n``, blades ordered by grade then
lexicographically (DESIGN.md). All operations broadcast over leading axes and work in any float
dtype on any device. The class combines one job per module: tables and products (here), the group
action (:mod:`.action`), the derived group structure (:mod:`.structure`), the network's hooks
(:mod:`.hooks`) and the basic embeddings (:mod:`.embedding`); constants reach torch through one
per-(device, dtype) cache (:mod:`.constants`).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from .action import GroupAction
from .constants import AlgebraTensors
from .contract import NetworkConstants
from .embedding import BasicEmbeddings
from .groups import VersorGroup, pin_group
from .hooks import Bilinear, NetworkHooks
from .structure import GroupStructure, derive_structure_arrays, load_group_structure, structure_filename
from .tables import blades_from_array, load_tables

__all__ = ["Bilinear", "CliffordAlgebra"]


class CliffordAlgebra(GroupAction, NetworkHooks, BasicEmbeddings):
    """A Clifford algebra G(p, q, r) given by the squares of its basis vectors, with a symmetry group.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        ``signature[i]`` is the square of ``e_i`` (1 to 8 basis vectors).
    name : str, optional
        Registry name (``"projective"``...).
    group : VersorGroup, optional
        The symmetry group; defaults to the full Pin group of the signature.
    """

    def __init__(self, signature, name: str | None = None, group: VersorGroup | None = None):
        signature = tuple(int(s) for s in signature)
        if not 1 <= len(signature) <= 8 or any(s not in (-1, 0, 1) for s in signature):
            raise ValueError(
                f"signature must be 1 to 8 entries from {{1, -1, 0}} (squares of the basis vectors), "
                f"got {signature}"
            )
        self.signature = signature
        self.name = name or f"G{signature}"
        self.group = group or pin_group(signature, name=f"Pin{signature}")
        tables = load_tables(signature)
        self.blades = blades_from_array(tables["blades"])
        self.dim = len(self.blades)
        self.grades = tuple(len(b) for b in self.blades)
        self.blade_index = {b: i for i, b in enumerate(self.blades)}
        self.blade_names = tuple("e" + "".join(map(str, b)) if b else "1" for b in self.blades)
        grades = np.asarray(self.grades)
        #: float64 NumPy constants: product tables ``(dim, dim, dim)`` and per-blade signs ``(dim,)``
        self.arrays: dict[str, np.ndarray] = {
            "geometric": tables["geometric"],
            "outer": tables["outer"],
            "inner": tables["inner"],
            "left_contraction": tables["left_contraction"],
            "reverse": (-1.0) ** (grades * (grades - 1) // 2),  # (-1)^(k(k-1)/2)
            "involution": (-1.0) ** grades,  # (-1)^k
            # <e_A~ e_A>_0 = reverse sign * (e_A e_A)_0 (0 for blades with a degenerate vector)
            "metric": (-1.0) ** (grades * (grades - 1) // 2) * np.diagonal(tables["geometric"][:, :, 0]),
        }
        self.arrays["complement"] = self._complement_matrix()
        self._tensors: dict[tuple, AlgebraTensors] = {}

    def _complement_matrix(self) -> np.ndarray:
        """Right complement: ``e_A ^ rc(e_A) = I`` (as a matrix, ``rc(x) = C @ x``)."""
        full = tuple(range(len(self.signature)))
        comp = np.zeros((self.dim, self.dim))
        for i, blade in enumerate(self.blades):
            j = self.blade_index[tuple(k for k in full if k not in blade)]
            comp[j, i] = self.arrays["outer"][i, j, self.dim - 1]  # sign so that e_A ^ (s e_Ac) = +I
        return comp

    # ------------------------------------------------------------------ constants as tensors
    def tensors(self, device=None, dtype: torch.dtype = torch.float32) -> AlgebraTensors:
        """The algebra's constants as tensors on ``device`` with ``dtype``, one cached object per pair.

        Each member of the returned :class:`~algebras.constants.AlgebraTensors` (product tables, signs,
        equivariant maps, ...) is converted from the algebra's float64 NumPy arrays on first use and
        kept, so every later call with the same pair is a dictionary look-up.

        Parameters
        ----------
        device : torch.device or str, optional
            Device of the tensors; default CPU.
        dtype : torch.dtype
            Floating dtype of the tensors (index tensors are ``torch.long`` whatever ``dtype`` is).

        Returns
        -------
        AlgebraTensors
            The same object for every call with the same (device, dtype).
        """
        key = (torch.device(device) if device is not None else torch.device("cpu"), dtype)
        found = self._tensors.get(key)
        if found is None:
            found = self._tensors[key] = AlgebraTensors(self, *key)
        return found

    def network_constants(self) -> NetworkConstants:
        """What the network reads from this algebra, derived from its signature and group (built once).

        Returns
        -------
        NetworkConstants
            Blades, equivariant maps and invariants (:attr:`structure`), and the tables and reference
            components of :attr:`bilinears`.
        """
        if "_network_constants" not in self.__dict__:
            bilinears = self.bilinears
            self.__dict__["_network_constants"] = NetworkConstants(
                self.dim, tuple(self.blades), self.structure.linear_basis, self.structure.invariant_basis,
                self.structure.invariant_functionals, np.stack([b.table for b in bilinears]),
                tuple(b.reference_component for b in bilinears))
        return self.__dict__["_network_constants"]

    def tensors_like(self, x: torch.Tensor) -> AlgebraTensors:
        """:meth:`tensors` on ``x``'s device, in its dtype (the default dtype for non-floating ``x``).

        Parameters
        ----------
        x : Tensor
            Any tensor; only its device and dtype are read.

        Returns
        -------
        AlgebraTensors
            The cached constants for that (device, dtype).
        """
        return self.tensors(x.device, x.dtype if x.is_floating_point() else torch.get_default_dtype())

    @property
    def pseudoscalar_index(self) -> int:
        """Index of the pseudoscalar blade ``e_01...(n-1)`` along the last axis: the last one, ``dim - 1``."""
        return self.dim - 1

    @property
    def is_degenerate(self) -> bool:
        """Whether a basis vector squares to 0 (``e_0`` in PGA); :meth:`dual` is then undefined."""
        return 0 in self.signature

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, signature={self.signature}, group={self.group.name!r})"

    def check(self, x: torch.Tensor, what: str = "multivector") -> torch.Tensor:
        """``x`` unchanged if it is a tensor of multivectors ``(..., dim)``, else a clear error.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            The tensor to check.
        what : str
            How ``x`` is named in the error message.

        Returns
        -------
        Tensor, shape (..., dim)
            ``x`` itself.

        Raises
        ------
        TypeError
            If ``x`` is not a ``torch.Tensor``.
        ValueError
            If ``x`` is 0-dimensional or its last axis is not ``dim``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{what} must have last axis of size {self.dim} (the dimension of the {self.name} "
                f"algebra {self.signature}), got shape {tuple(x.shape)}"
            )
        return x

    # ------------------------------------------------------------------ derived group structure
    @cached_property
    def structure(self) -> GroupStructure:
        """Equivariant maps and invariants of the group (shipped, cached on disk, or derived)."""
        return load_group_structure(self.signature, self.group, self.grades, self.sample_action_matrices)

    @property
    def structure_filename(self) -> str:
        """Name of the cache file of :attr:`structure`."""
        return structure_filename(self.signature, self.group)

    def derive_structure_arrays(self) -> dict[str, np.ndarray]:
        """A fresh derivation of :attr:`structure` as the arrays of its cache file."""
        return derive_structure_arrays(self.signature, self.group, self.grades, self.sample_action_matrices)

    def bilinear_space(self, up_to_determinant: bool = False) -> np.ndarray:
        """A basis of every equivariant bilinear map, as tables (what ``bilinears="derived"`` layers learn in).

        Parameters
        ----------
        up_to_determinant : bool
            The maps equivariant up to ``det(u)`` (the projective join's space) instead.

        Returns
        -------
        ndarray, shape (n, dim, dim, dim)
            ``T[n, i, j, k]``, float64 (:meth:`equivariant_bilinears` ``.dense()``).
        """
        return self.equivariant_bilinears(up_to_determinant).dense()

    def equivariant_bilinears(self, up_to_determinant: bool = False):
        """Every bilinear map ``V x V -> V`` equivariant under the group (derived, cached on disk).

        Parameters
        ----------
        up_to_determinant : bool
            The maps with ``B(rho x, rho y) = det(u) rho B(x, y)`` instead (the projective join).

        Returns
        -------
        algebras.bilinear_basis.BilinearBasis
            ``.dense()`` gives the ``(n, dim, dim, dim)`` tables ``T[n, i, j, k]``.
        """
        from .bilinear_basis import load_bilinear_basis

        key = "_bilinears_det" if up_to_determinant else "_bilinears"
        if key not in self.__dict__:
            self.__dict__[key] = load_bilinear_basis(self.signature, self.group, self.grades,
                                                     self.sample_action_matrices, up_to_determinant)
        return self.__dict__[key]

    @property
    def linear_basis(self) -> torch.Tensor:
        """Equivariant linear maps, ``(n_maps, dim, dim)`` float64, ``y = basis[m] @ x``."""
        return self.tensors(dtype=torch.float64).linear_basis

    @property
    def linear_basis_blocks(self) -> tuple[tuple[int, int], ...]:
        """(input grade, output grade) of each map in :attr:`linear_basis`."""
        return self.structure.blocks

    @property
    def invariant_basis(self) -> np.ndarray:
        """Multivectors fixed by the group, ``(k, dim)`` (always contains the scalar 1)."""
        return self.structure.invariant_basis

    @property
    def invariant_functionals(self) -> np.ndarray:
        """Linear functionals ``f`` with ``f . rho_u(x) = f . x``, ``(k, dim)``."""
        return self.structure.invariant_functionals

    # ------------------------------------------------------------------ products
    def bilinear(self, table: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The bilinear map of a product table: ``z_k = sum_ij x_i y_j table[i, j, k]``.

        Parameters
        ----------
        table : Tensor, shape (dim, dim, dim)
            ``table[i, j, k]`` is the coefficient of blade ``k`` in the product of blades ``i`` and
            ``j`` (e.g. ``self.tensors_like(x).geometric``); cast to ``x``'s dtype.
        x, y : Tensor, shape (..., dim)
            Left and right operands, in one dtype; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (..., dim)
            ``z`` over the broadcast leading axes.
        """
        self.check(x, "left operand")
        self.check(y, "right operand")
        x, y = torch.broadcast_tensors(x, y)
        # two matmuls: (x @ T) contracts i, then y contracts j.
        left = (x @ table.to(x.dtype).reshape(self.dim, self.dim * self.dim)).reshape(*x.shape, self.dim)
        return (y.unsqueeze(-2) @ left).squeeze(-2)

    def geometric_product(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The geometric product ``x y``.

        Parameters
        ----------
        x, y : Tensor, shape (..., dim)
            Left and right operands, in one dtype; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (..., dim)
            The product over the broadcast leading axes.
        """
        return self.bilinear(self.tensors_like(x).geometric, x, y)

    def outer_product(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The outer (wedge) product ``x ^ y``.

        Parameters
        ----------
        x, y : Tensor, shape (..., dim)
            Left and right operands, in one dtype; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (..., dim)
            The product over the broadcast leading axes.
        """
        return self.bilinear(self.tensors_like(x).outer, x, y)

    def inner_product(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The Hestenes inner product ``x . y`` (the ``|`` of the ``clifford`` package).

        For blades of grades ``k, l > 0`` it is the grade ``|k - l|`` part of their geometric product;
        it is zero when either factor is a scalar.

        Parameters
        ----------
        x, y : Tensor, shape (..., dim)
            Left and right operands, in one dtype; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (..., dim)
            The product over the broadcast leading axes.
        """
        return self.bilinear(self.tensors_like(x).inner, x, y)

    def left_contraction(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The left contraction ``x _| y``.

        For blades of grades ``k <= l`` it is the grade ``l - k`` part of their geometric product, and
        zero for ``k > l``.

        Parameters
        ----------
        x, y : Tensor, shape (..., dim)
            Left and right operands, in one dtype; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (..., dim)
            The product over the broadcast leading axes.
        """
        return self.bilinear(self.tensors_like(x).left_contraction, x, y)

    def join(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The regressive product (join) ``x v y = rc^-1(rc(x) ^ rc(y))``, computed via complements.

        ``rc`` is :meth:`right_complement` and ``rc^-1`` :meth:`left_complement`. Unlike a definition
        through the dual ``x I^-1`` it needs no inverse pseudoscalar, so it works in degenerate
        algebras: in PGA the join of two points is the line through them.

        Parameters
        ----------
        x, y : Tensor, shape (..., dim)
            Left and right operands, in one dtype; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (..., dim)
            The product over the broadcast leading axes.
        """
        return self.left_complement(self.outer_product(self.right_complement(x), self.right_complement(y)))

    def scalar_product(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``<x~ y>_0``: the algebra's invariant symmetric bilinear form.

        Equal to ``sum_A x_A y_A <e_A~ e_A>_0`` (the blade metric, 0 for blades containing a
        degenerate vector); invariant under the group action.

        Parameters
        ----------
        x, y : Tensor, shape (..., dim)
            Operands; their leading axes broadcast.

        Returns
        -------
        Tensor, shape (...)
            One scalar per multivector pair.
        """
        self.check(x)
        self.check(y)
        return (x * y * self.tensors_like(x).metric).sum(-1)

    # ------------------------------------------------------------------ unary operations
    def reverse(self, x: torch.Tensor) -> torch.Tensor:
        """The reverse ``x~``: the grade-k part scaled by ``(-1)^(k(k-1)/2)``.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.
        """
        return self.check(x) * self.tensors_like(x).reverse

    def grade_involute(self, x: torch.Tensor) -> torch.Tensor:
        """The grade involution ``x^``: the grade-k part scaled by ``(-1)^k``.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.
        """
        return self.check(x) * self.tensors_like(x).involution

    def clifford_conjugate(self, x: torch.Tensor) -> torch.Tensor:
        """The Clifford conjugate: the reverse of the grade involution, grade k scaled by ``(-1)^(k(k+1)/2)``.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.
        """
        return self.reverse(self.grade_involute(x))

    def grade_mask(self, grades) -> np.ndarray:
        """Which blades have the given grade(s).

        Parameters
        ----------
        grades : int or iterable of int
            Grades from 0 to the number of basis vectors.

        Returns
        -------
        ndarray of bool, shape (dim,)
            True for the blades of those grades.

        Raises
        ------
        ValueError
            If a grade is out of range.
        """
        grades = [grades] if isinstance(grades, (int, np.integer)) else list(grades)
        for k in grades:
            if not 0 <= k <= len(self.signature):
                raise ValueError(f"grade {k} out of range: the {self.name} algebra has grades 0..{len(self.signature)}")
        return np.isin(np.asarray(self.grades), grades)

    def grade_project(self, x: torch.Tensor, grades) -> torch.Tensor:
        """Grade projection ``<x>_k``: keep the components of the given grade(s), zero the others.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.
        grades : int or iterable of int
            The grade(s) to keep (see :meth:`grade_mask`).

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.
        """
        mask = torch.as_tensor(self.grade_mask(grades), device=x.device)
        return self.check(x) * mask

    def right_complement(self, x: torch.Tensor) -> torch.Tensor:
        """The right complement ``rc(x)``: ``rc(e_A) = s e_Ac`` with ``e_A ^ rc(e_A) = I`` for every blade.

        ``e_Ac`` is the blade of the basis vectors missing from ``e_A``; the map is linear, a signed
        permutation of the components, and independent of the metric (so defined in PGA too).

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.
        """
        return self.check(x) @ self.tensors_like(x).complement.T

    def left_complement(self, x: torch.Tensor) -> torch.Tensor:
        """The left complement: the inverse of :meth:`right_complement`.

        The complement matrix is a signed permutation, so its inverse is its transpose.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.
        """
        return self.check(x) @ self.tensors_like(x).complement

    def dual(self, x: torch.Tensor) -> torch.Tensor:
        """The dual ``x I^-1`` (the ``clifford`` package's dual), ``I`` the pseudoscalar.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., dim)
            Same shape as ``x``.

        Raises
        ------
        ValueError
            In a degenerate algebra (e.g. PGA), where ``I`` has no inverse; use
            :meth:`right_complement` there.
        """
        if self.is_degenerate:
            raise ValueError(
                f"the dual x I^-1 is undefined in the degenerate {self.name} algebra; use right_complement"
            )
        pseudo = torch.zeros(self.dim, dtype=x.dtype, device=x.device)
        pseudo[-1] = 1.0
        return self.geometric_product(x, self.versor_inverse(pseudo))
