"""The Euclidean algebra G(3,0,0): e_0, e_1, e_2 are x, y, z; symmetry group O(3).

Translations are not in O(3): positions are centred on a reference point before the network
(:meth:`EuclideanAlgebra.center`) and the reference is added back afterwards, which gives E(3)
equivariance overall.
"""

from __future__ import annotations

import torch

from .geometry3d import Euclidean3DAlgebra
from .groups import pin_group

SIGNATURE = (1, 1, 1)
GROUPS = {"O(3)": False, "SO(3)": True}  # name -> even only


class EuclideanAlgebra(Euclidean3DAlgebra):
    """G(3,0,0) with the orthogonal group O(3) (or SO(3) with ``group="SO(3)"``).

    Parameters
    ----------
    group : {"O(3)", "SO(3)"}
        The symmetry group.
    name : str
        Registry name.
    """

    spatial = (0, 1, 2)
    embedding_parity = {"point": 1, "direction": 1, "axial_vector": 1, "plane": 1}

    def __init__(self, group: str = "O(3)", name: str = "euclidean"):
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r} for the euclidean algebra; valid: {sorted(GROUPS)}")
        versor_group = pin_group(SIGNATURE, name="O(3)")
        super().__init__(SIGNATURE, name, versor_group.even("SO(3)") if GROUPS[group] else versor_group)

    # ------------------------------------------------------------------ translations by centring
    def embed_translation(self, translation: torch.Tensor) -> torch.Tensor:
        """Not available: translations are not elements of O(3).

        Centre positions with :meth:`center` before embedding and add the centre back after
        extraction instead.

        Parameters
        ----------
        translation : Tensor, shape (..., 3)
            Ignored.

        Raises
        ------
        ValueError
            Always.
        """
        raise ValueError(
            "translations are not elements of O(3) in the euclidean algebra: centre positions with "
            "EuclideanAlgebra.center() before embedding and add the centre back after extraction"
        )

    def _plane_offset(self, offset):
        raise ValueError("the euclidean algebra represents only planes through the origin (offset 0)")

    # ------------------------------------------------------------------ embeddings
    def embed_point(self, point: torch.Tensor) -> torch.Tensor:
        """A (centred) position, or a direction, as the vector ``x e_0 + y e_1 + z e_2``.

        Also :meth:`embed_direction`: without translations, points and directions are the same.

        Parameters
        ----------
        point : Tensor, shape (..., 3)
            Coordinates.

        Returns
        -------
        Tensor, shape (..., 8)
        """
        return self.vector(self.check_coordinates(point, 3, "point"), self._spatial_vectors)

    def extract_point(self, x: torch.Tensor) -> torch.Tensor:
        """The grade-1 coefficients ``(x, y, z)``; also :meth:`extract_direction`.

        Parameters
        ----------
        x : Tensor, shape (..., 8)
            Multivectors.

        Returns
        -------
        Tensor, shape (..., 3)
        """
        return self.check(x)[..., self._spatial_vectors]

    embed_direction = embed_point
    extract_direction = extract_point

    def embed_axial_vector(self, w: torch.Tensor) -> torch.Tensor:
        """A pseudovector (angular velocity) as the bivector dual to it: flips with det under reflections.

        The inverse is :meth:`extract_axial_vector` (:meth:`extract_euclidean_bivector`).

        Parameters
        ----------
        w : Tensor, shape (..., 3)
            The pseudovector.

        Returns
        -------
        Tensor, shape (..., 8)
            ``w_x e_12 + w_y e_20 + w_z e_01`` (:meth:`euclidean_bivector`).
        """
        return self.euclidean_bivector(w)

    extract_axial_vector = Euclidean3DAlgebra.extract_euclidean_bivector

    def extract_plane(self, x: torch.Tensor):
        """The plane through the origin of a plane vector: its normal and a zero offset.

        Parameters
        ----------
        x : Tensor, shape (..., 8)
            Plane vectors.

        Returns
        -------
        normal : Tensor, shape (..., 3)
            The grade-1 coefficients.
        offset : Tensor, shape (...)
            Zeros: the euclidean algebra has only planes through the origin.
        """
        return self.extract_point(x), torch.zeros_like(x[..., 0])
