"""What the network asks of an algebra beyond its linear maps: norms, attention features, bilinears.

A mixin of :class:`algebras.CliffordAlgebra`. Backends override these hooks (e.g. the distance-aware
projective backend adds attention features, the projective one adds the join); the network reads
them through the contract in :mod:`algebras.contract`.
"""

from __future__ import annotations

from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch

from . import components


class Bilinear(NamedTuple):
    """An equivariant bilinear map ``z_k = sum_ij x_i y_j table[i, j, k]``.

    If ``reference_component`` is set, the result is multiplied by that component of a reference
    multivector (e.g. the pseudoscalar for the projective join, which is only equivariant up to the
    sign ``det`` that the reference's pseudoscalar also picks up).

    Parameters
    ----------
    name : str
        Label of the bilinear (``"geometric"``, ``"join"``, ...).
    table : ndarray, shape (dim, dim, dim)
        ``table[i, j, k]``: coefficient of blade ``k`` in the product of blades ``i`` and ``j``.
    reference_component : int, optional
        Blade index of the reference multivector that scales the result; None for none.
    """

    name: str
    table: np.ndarray
    reference_component: int | None = None


class NetworkHooks:
    """Invariant norms, attention features and equivariant bilinears of an algebra."""

    # ------------------------------------------------------------------ norms
    def norm_maps_array(self) -> np.ndarray:
        """Linear maps ``M_j`` whose outputs enter the norm, stacked as one ``(dim, J * dim)`` matrix.

        The identity and ``w _| x`` for each group-invariant vector ``w`` (e.g. e_inf in CGA), which
        is equivariant since rho_u is an automorphism fixing w. Maps that only produce zero-metric
        components (e.g. ``e_0 _| x = 0`` in PGA) are dropped.
        """
        maps = [np.eye(self.dim)]
        lc, metric = self.arrays["left_contraction"], self.arrays["metric"]
        for w in self.invariant_basis:
            if np.allclose(w[np.asarray(self.grades) != 1], 0):
                contraction = np.einsum("i,ijk->kj", w, lc)
                if np.any(contraction[metric != 0] != 0):
                    maps.append(contraction)
        return np.concatenate([m.T for m in maps], axis=1)

    def grade_metric_array(self) -> np.ndarray:
        """``(J * dim, J * n_grades)``: blade metric scattered into its grade's column, per norm map."""
        one = np.zeros((self.dim, len(self.signature) + 1))
        one[np.arange(self.dim), self.grades] = self.arrays["metric"]
        return np.kron(np.eye(self.norm_maps_array().shape[1] // self.dim), one)

    def squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Invariant, non-negative squared norm.

        ``sum_k |<x_k~ x_k>_0| + sum_w sum_k |<(w _| x)_k~ (w _| x)_k>_0|`` over grades k and the
        group's invariant vectors w (the maps of :meth:`norm_maps_array`). Each term is invariant
        because rho_u is a grade-preserving automorphism with ``<rho_u(z)>_0 = <z>_0``; components
        with zero metric drop out.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (...)
        """
        t = self.tensors_like(self.check(x))
        y = x if t.norm_maps.shape[1] == self.dim else x @ t.norm_maps  # only the identity: skip the matmul
        return ((y * y) @ t.grade_metric).abs().sum(-1)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """The invariant norm ``sqrt(squared_norm(x))``.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (...)
        """
        return self.squared_norm(x).sqrt()

    # ------------------------------------------------------------------ attention
    @property
    def attention_feature_dim(self) -> int:
        """Length ``F`` of :meth:`query_features` / :meth:`key_features` per multivector."""
        return int((self.arrays["metric"] != 0).sum())

    def query_features(self, x: torch.Tensor) -> torch.Tensor:
        """Query features with ``query_features(q) . key_features(k) == <q~ k>_0``.

        The components on blades of non-zero metric, each times its metric ``<e_A~ e_A>_0``; blades
        that contain a degenerate vector are left out (they do not enter ``<q~ k>_0``).

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Query multivectors.

        Returns
        -------
        Tensor, shape (..., F)
            ``F`` is :attr:`attention_feature_dim`.
        """
        t = self.tensors_like(self.check(x))
        return components.select(x, t.nondegenerate) * t.nondegenerate_metric

    def key_features(self, x: torch.Tensor) -> torch.Tensor:
        """The key side of :meth:`query_features`: the components on blades of non-zero metric.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Key multivectors.

        Returns
        -------
        Tensor, shape (..., F)
            ``F`` is :attr:`attention_feature_dim`.
        """
        return components.select(self.check(x), self.tensors_like(x).nondegenerate)

    # ------------------------------------------------------------------ bilinears
    @cached_property
    def bilinears(self) -> tuple[Bilinear, ...]:
        """Equivariant bilinear maps used by the network's bilinear layer (default: the geometric product)."""
        return (Bilinear("geometric", self.arrays["geometric"]),)

    @cached_property
    def join_table(self) -> np.ndarray:
        """Table of the regressive product ``rc^-1(rc(e_i) ^ rc(e_j))``, ``(dim, dim, dim)``."""
        c = self.arrays["complement"]
        return np.einsum("ai,bj,abc,ck->ijk", c, c, self.arrays["outer"], c)
