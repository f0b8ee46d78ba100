"""The contract between the network (:mod:`gatr`) and an algebra: everything ``gatr`` reads from one.

Any object satisfying :class:`NetworkAlgebra` can drive a GATr; :class:`algebras.CliffordAlgebra`
does, with every member derived from its signature and group. Constants come as tensors from one
per-(device, dtype) cache, :meth:`NetworkAlgebra.tensors` (see :class:`algebras.constants.AlgebraTensors`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .constants import AlgebraTensors


@runtime_checkable
class NetworkAlgebra(Protocol):
    """What :mod:`gatr` uses of an algebra.

    Attributes
    ----------
    name : str
        Registry name, used in messages and configs.
    dim : int
        Number of blades; multivectors are tensors ``(..., dim)``.
    attention_feature_dim : int
        Length ``F`` of the attention features per multivector.
    """

    name: str
    dim: int

    @property
    def attention_feature_dim(self) -> int: ...

    def tensors(self, device, dtype: torch.dtype) -> AlgebraTensors:
        """Constants on ``device`` in ``dtype``: ``linear_basis (n_maps, dim, dim)``, ``invariant_basis
        (k, dim)``, ``invariant_functionals (k', dim)``, ``bilinear_tables (nb, dim, dim, dim)``,
        ``bilinear_references``, ``norm_maps``, ``grade_metric``, ... (cached)."""

    def check(self, x: torch.Tensor, what: str = "multivector") -> torch.Tensor:
        """``x`` unchanged, or a ``ValueError`` unless it is ``(..., dim)``."""

    def squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Invariant, non-negative squared norm, ``(..., dim)`` -> ``(...)``."""

    def query_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., F)``; ``query_features(q) . key_features(k)`` is invariant."""

    def key_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., F)``."""
