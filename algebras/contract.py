"""The contract between the network (:mod:`gatr`) and an algebra: everything ``gatr`` reads from one.

:class:`algebras.CliffordAlgebra` satisfies it, with every member derived from its signature and
group. Every part of :mod:`gatr` takes any object that does: the primitives and kernels directly, the
layers and ``GATr`` through :func:`algebras.get_algebra`, which returns such an object unchanged (and
resolves a registered name otherwise). Constants
come as tensors from one per-(device, dtype) cache, :meth:`NetworkAlgebra.tensors` (see
:class:`algebras.constants.AlgebraTensors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol, runtime_checkable

import numpy as np
import torch

from .constants import AlgebraTensors


@dataclass(frozen=True, eq=False)
class NetworkConstants:
    """Everything the network and its kernels read from an algebra: one typed value, float64 NumPy arrays.

    :meth:`NetworkAlgebra.network_constants` returns it; :class:`~algebras.constants.AlgebraTensors`
    converts its arrays to tensors per (device, dtype), and nothing in :mod:`gatr` reads the algebra in
    any other way (the attention features and the norm are the algebra's own methods, below).

    Parameters
    ----------
    dim : int
        Number of blades.
    blades : tuple of tuple of int, or None
        The basis vectors of each blade (``()`` the scalar), in component order; None for an algebra
        whose components are not named by blades (the kernels then keep their general paths).
    linear_basis : ndarray, shape (n_maps, dim, dim)
        The equivariant linear maps, ``y = B_m @ x``.
    invariant_basis : ndarray, shape (k, dim)
        Multivectors fixed by the group (the scalar 1 among them).
    invariant_functionals : ndarray, shape (k', dim)
        Linear functionals fixed by the group.
    bilinear_tables : ndarray, shape (n_bilinears, dim, dim, dim)
        The bilinear layer's maps, ``z_k = sum_ij x_i y_j T[b, i, j, k]``.
    bilinear_references : tuple of (int or None)
        Per bilinear, the component of a reference multivector that scales it (the projective join's
        pseudoscalar), or None.
    """

    dim: int
    blades: Optional[tuple]
    linear_basis: np.ndarray
    invariant_basis: np.ndarray
    invariant_functionals: np.ndarray
    bilinear_tables: np.ndarray
    bilinear_references: tuple

    def __post_init__(self):
        d = self.dim
        checks = {"linear_basis": (3, (d, d)), "invariant_basis": (2, (d,)), "invariant_functionals": (2, (d,)),
                  "bilinear_tables": (4, (d, d, d))}
        for name, (ndim, tail) in checks.items():
            shape = np.shape(getattr(self, name))
            if len(shape) != ndim or shape[1:] != tail:
                raise ValueError(f"NetworkConstants.{name} must have shape (n, {', '.join(map(str, tail))}), "
                                 f"got {shape}")
        if len(self.bilinear_references) != np.shape(self.bilinear_tables)[0]:
            raise ValueError("NetworkConstants: one bilinear reference (or None) per bilinear table")
        if self.blades is not None and len(self.blades) != d:
            raise ValueError(f"NetworkConstants: {len(self.blades)} blades for dim {d}")


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

    def network_constants(self) -> NetworkConstants:
        """Everything the network's layers and kernels read, as one typed value (built once).

        Returns
        -------
        NetworkConstants
        """

    def bilinear_space(self, up_to_determinant: bool = False) -> np.ndarray:
        """A basis of every bilinear map equivariant under the group (or equivariant up to ``det``).

        Read only by bilinear layers that learn their maps (``bilinears="derived"``); derived, not typed in.

        Parameters
        ----------
        up_to_determinant : bool

        Returns
        -------
        ndarray, shape (n, dim, dim, dim)
        """

    def tensors(self, device, dtype: torch.dtype) -> AlgebraTensors:
        """The algebra's constants as tensors on ``device`` in ``dtype``, one cached object per pair.

        The network reads the members converted from :meth:`network_constants` (``linear_basis``,
        ``invariant_basis``, ``invariant_functionals``, ``bilinear_tables``, ``bilinear_references``,
        ``constants``); kernels keep their derived data in it
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


@runtime_checkable
class Embedding3D(Protocol):
    """What a model of 3D geometry reads from an algebra besides :class:`NetworkAlgebra` (the rigid-body
    model of :mod:`experiments.models` does): embeddings of E(3) quantities and the group action.

    The euclidean, projective and conformal backends provide it; a plain :class:`~algebras.CliffordAlgebra`
    of a new signature does not. ``isinstance(alg, Embedding3D)`` checks that every member is present.

    Attributes
    ----------
    embedding_parity : dict of str to int
        Per embedding kind (``"point"``, ``"direction"``, ...), the sign ``-1`` an odd versor gives it
        (``+1`` where none); empty when nothing picks up ``det(g)``.
    """

    embedding_parity: dict

    def embed_point(self, x: torch.Tensor) -> torch.Tensor:
        """Positions as multivectors.

        Parameters
        ----------
        x : Tensor, shape (..., 3)

        Returns
        -------
        Tensor, shape (..., dim)
        """

    def embed_direction(self, v: torch.Tensor) -> torch.Tensor:
        """Translation-invariant vectors (velocities, axes) as multivectors.

        Parameters
        ----------
        v : Tensor, shape (..., 3)

        Returns
        -------
        Tensor, shape (..., dim)
        """

    def embed_axial_vector(self, w: torch.Tensor) -> torch.Tensor:
        """Axial vectors (angular velocities, ``w -> det(R) R w``) as multivectors.

        Parameters
        ----------
        w : Tensor, shape (..., 3)

        Returns
        -------
        Tensor, shape (..., dim)
        """

    def extract_point(self, mv: torch.Tensor) -> torch.Tensor:
        """Positions read back from multivectors.

        Parameters
        ----------
        mv : Tensor, shape (..., dim)

        Returns
        -------
        Tensor, shape (..., 3)
        """

    def random_versors(self, n: int, generator=None) -> torch.Tensor:
        """Random group elements.

        Parameters
        ----------
        n : int
        generator : int or torch.Generator, optional

        Returns
        -------
        Tensor, shape (n, dim)
        """

    def act(self, versor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The group action ``rho_u(x)``.

        Parameters
        ----------
        versor : Tensor, shape (..., dim)
        x : Tensor, shape (..., dim)

        Returns
        -------
        Tensor, shape (..., dim)
        """

    def parity(self, versor: torch.Tensor) -> torch.Tensor:
        """1 for odd versors, 0 for even ones.

        Parameters
        ----------
        versor : Tensor, shape (..., dim)

        Returns
        -------
        Tensor, shape (...)
        """


def protocol_members(protocol) -> tuple[str, ...]:
    """The public members a protocol of this module declares: its methods and properties, then its
    annotated attributes.

    Parameters
    ----------
    protocol : type
        :class:`NetworkAlgebra` or :class:`Embedding3D`.

    Returns
    -------
    tuple of str
    """
    names = [n for n in vars(protocol) if not n.startswith("_")]
    return tuple(names + [n for n in getattr(protocol, "__annotations__", {}) if n not in names])


def missing_members(obj, protocol) -> list[str]:
    """The members of ``protocol`` (:func:`protocol_members`) that ``obj`` lacks, in declaration order.

    Parameters
    ----------
    obj : object
    protocol : type

    Returns
    -------
    list of str
    """
    present = set(dir(obj))
    return [name for name in protocol_members(protocol) if name not in present]
