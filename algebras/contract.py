"""The contract between the network (:mod:`gatr`) and an algebra: everything ``gatr`` reads from one.

:class:`algebras.CliffordAlgebra` satisfies it, with every member derived from its signature and
group. Every part of :mod:`gatr` takes any object that does: the primitives and kernels directly, the
layers and ``GATr`` through :func:`algebras.get_algebra`, which returns such an object unchanged (and
resolves a registered name otherwise). Constants
come as tensors from one per-(device, dtype) cache, :meth:`NetworkAlgebra.tensors` (see
:class:`algebras.constants.AlgebraTensors`).
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
    def attention_feature_dim(self) -> int:
        """Length ``F`` of :meth:`query_features` / :meth:`key_features` per multivector."""
        ...

    def tensors(self, device, dtype: torch.dtype) -> AlgebraTensors:
        """The algebra's constants as tensors on ``device`` in ``dtype``, one cached object per pair.

        The network reads ``linear_basis (n_maps, dim, dim)``, ``invariant_basis (k, dim)``,
        ``invariant_functionals (k', dim)``, ``bilinear_tables (nb, dim, dim, dim)`` and
        ``bilinear_references`` from it; kernels keep their derived data in it
        (:meth:`AlgebraTensors.derived <algebras.constants.AlgebraTensors.derived>`).

        Parameters
        ----------
        device : torch.device or str
            Device of the tensors.
        dtype : torch.dtype
            Floating dtype of the tensors.

        Returns
        -------
        AlgebraTensors
            The same object for every call with the same (device, dtype).
        """

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
        """

    def squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        """An invariant, non-negative squared norm (used by the equivariant layer norm).

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (...)
            ``n(x) >= 0`` with ``n(rho_u(x)) = n(x)`` for every group element ``u``.
        """

    def query_features(self, x: torch.Tensor) -> torch.Tensor:
        """Attention features of query multivectors.

        ``query_features(q) . key_features(k)`` must be invariant under the group, so that the
        attention weights are.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Query multivectors.

        Returns
        -------
        Tensor, shape (..., F)
            ``F`` is :attr:`attention_feature_dim`.
        """

    def key_features(self, x: torch.Tensor) -> torch.Tensor:
        """Attention features of key multivectors (the key side of :meth:`query_features`).

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Key multivectors.

        Returns
        -------
        Tensor, shape (..., F)
            ``F`` is :attr:`attention_feature_dim`.
        """
