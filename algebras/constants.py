"""An algebra's constants as torch tensors on one (device, dtype): the one cache the network reads.

:meth:`CliffordAlgebra.tensors` returns one :class:`AlgebraTensors` per (device, dtype); each member
is converted from the algebra's float64 NumPy arrays on first use and kept. Execution kernels keep
what they derive from these (gather indices, sparse coefficients) in the same object through
:meth:`AlgebraTensors.derived`, so nothing is cached anywhere else.
"""

from __future__ import annotations

from functools import cached_property
from typing import Callable, TypeVar

import numpy as np
import torch

from .components import ComponentIndex, component_index

T = TypeVar("T")


class AlgebraTensors:
    """Constants of ``algebra`` as tensors with ``dtype`` on ``device`` (index tensors: ``torch.long``).

    Product tables are ``(dim, dim, dim)`` with ``z_k = sum_ij x_i y_j table[i, j, k]``. Members are
    built on first use; :meth:`build` builds them all.

    The network's members (the equivariant maps, the bilinears) come from the algebra's
    :class:`~algebras.contract.NetworkConstants` (:attr:`constants`); the product tables, involutions and
    norm data are the algebra's own (its products and hooks read them through ``algebra.arrays``).

    Parameters
    ----------
    algebra : NetworkAlgebra
        The algebra whose float64 NumPy constants are converted.
    device : torch.device
    dtype : torch.dtype
    """

    def __init__(self, algebra, device: torch.device, dtype: torch.dtype):
        self.algebra, self.device, self.dtype = algebra, device, dtype
        self._derived: dict = {}

    @cached_property
    def constants(self):
        """The algebra's :class:`~algebras.contract.NetworkConstants` (what the network reads)."""
        return self.algebra.network_constants()

    def _tensor(self, array, dtype: torch.dtype | None = None) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array), dtype=dtype or self.dtype, device=self.device)

    # ------------------------------------------------------------------ products and involutions
    @cached_property
    def geometric(self) -> torch.Tensor:
        """``(dim, dim, dim)``: the geometric product table."""
        return self._tensor(self.algebra.arrays["geometric"])

    @cached_property
    def outer(self) -> torch.Tensor:
        """``(dim, dim, dim)``: the outer (wedge) product table."""
        return self._tensor(self.algebra.arrays["outer"])

    @cached_property
    def inner(self) -> torch.Tensor:
        """``(dim, dim, dim)``: the Hestenes inner product table."""
        return self._tensor(self.algebra.arrays["inner"])

    @cached_property
    def left_contraction(self) -> torch.Tensor:
        """``(dim, dim, dim)``: the left contraction table."""
        return self._tensor(self.algebra.arrays["left_contraction"])

    @cached_property
    def reverse(self) -> torch.Tensor:
        """``(dim,)`` signs ``(-1)^(k(k-1)/2)``."""
        return self._tensor(self.algebra.arrays["reverse"])

    @cached_property
    def involution(self) -> torch.Tensor:
        """``(dim,)`` signs ``(-1)^k``."""
        return self._tensor(self.algebra.arrays["involution"])

    @cached_property
    def metric(self) -> torch.Tensor:
        """``(dim,)``: ``<e_A~ e_A>_0`` per blade (0 where a degenerate vector is involved)."""
        return self._tensor(self.algebra.arrays["metric"])

    @cached_property
    def complement(self) -> torch.Tensor:
        """``(dim, dim)`` right-complement matrix ``rc(x) = C @ x``."""
        return self._tensor(self.algebra.arrays["complement"])

    # ------------------------------------------------------------------ network hooks
    @cached_property
    def norm_maps(self) -> torch.Tensor:
        """``(dim, J * dim)``: the maps whose outputs enter :meth:`squared_norm`."""
        return self._tensor(self.algebra.norm_maps_array())

    @cached_property
    def grade_metric(self) -> torch.Tensor:
        """``(J * dim, J * n_grades)``: blade metric per grade and norm map."""
        return self._tensor(self.algebra.grade_metric_array())

    @cached_property
    def nondegenerate(self) -> ComponentIndex:
        """The blades with non-zero metric (the attention features), as a :class:`ComponentIndex`."""
        index = self._tensor(np.flatnonzero(self.algebra.arrays["metric"] != 0), torch.long)
        return component_index(index, self.algebra.dim)

    @cached_property
    def nondegenerate_metric(self) -> torch.Tensor:
        """``(F,)``: the metric ``<e_A~ e_A>_0`` of the :attr:`nondegenerate` blades."""
        return self._tensor(self.algebra.arrays["metric"][self.algebra.arrays["metric"] != 0])

    @cached_property
    def linear_basis(self) -> torch.Tensor:
        """``(n_maps, dim, dim)``: the equivariant linear maps."""
        return self._tensor(self.constants.linear_basis)

    @cached_property
    def invariant_basis(self) -> torch.Tensor:
        """``(k, dim)``: multivectors fixed by the group."""
        return self._tensor(self.constants.invariant_basis)

    @cached_property
    def invariant_functionals(self) -> torch.Tensor:
        """``(k', dim)``: linear functionals fixed by the group."""
        return self._tensor(self.constants.invariant_functionals)

    @cached_property
    def bilinear_tables(self) -> torch.Tensor:
        """``(n_bilinears, dim, dim, dim)``: the tables of the bilinear layer's maps."""
        return self._tensor(self.constants.bilinear_tables)

    @cached_property
    def bilinear_references(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """``(component (nb,) long, has_reference (nb,) bool, any_reference)`` of the bilinears."""
        refs = self.constants.bilinear_references
        return (self._tensor([0 if r is None else r for r in refs], torch.long),
                self._tensor([r is not None for r in refs], torch.bool), any(r is not None for r in refs))

    def build(self) -> "AlgebraTensors":
        """Build every member now (a traced or compiled forward then only reads cached tensors).

        Returns
        -------
        AlgebraTensors
            ``self``.
        """
        for name, member in vars(type(self)).items():
            if isinstance(member, cached_property):
                getattr(self, name)
        return self

    # ------------------------------------------------------------------ kernel data
    def derived(self, build: Callable[["AlgebraTensors"], T]) -> T:
        """``build(self)``, computed once per (algebra, device, dtype) and kept here (keyed by ``build``).

        Parameters
        ----------
        build : callable
            ``(AlgebraTensors) -> value``; kernels pass module-level functions (stable keys).

        Returns
        -------
        The cached value of ``build(self)``.
        """
        if build not in self._derived:
            self._derived[build] = build(self)
        return self._derived[build]
