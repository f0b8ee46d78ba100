"""What every algebra of 3D Euclidean geometry shares: rotations, reflections, axial vectors.

A backend names its three spatial basis vectors (x, y, z); rotors, reflecting planes through the
origin and Euclidean bivectors are then the same in all of them. Subclasses add points, directions,
planes with offsets and translations, which is where the algebras differ.
"""

from __future__ import annotations

import torch

from .clifford_algebra import CliffordAlgebra


class Euclidean3DAlgebra(CliffordAlgebra):
    """Base of the euclidean, projective and conformal backends.

    Subclasses set :attr:`spatial` (indices of the basis vectors playing x, y, z) and
    :attr:`embedding_parity`: for each embedding, ``+1`` if ``act(u, embed(z)) == embed(g z)`` for
    every group element, ``-1`` if it picks up ``det(g)`` under reflections (PGA's trivector points:
    ``rho_u`` of an odd-grade object under an odd versor carries a sign; projectively it is the same
    point, and ``extract_point`` is blind to it).

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        ``signature[i]`` is the square of ``e_i``.
    name : str, optional
        Registry name.
    group : VersorGroup, optional
        The symmetry group; defaults to the full Pin group of the signature.
    """

    spatial: tuple[int, int, int] = (0, 1, 2)
    embedding_parity: dict[str, int] = {}

    @staticmethod
    def center(points: torch.Tensor, dim: int = -2, mask: torch.Tensor | None = None):
        """Subtract the (masked) mean over ``dim`` from ``points (..., 3)``: translation-equivariant centring.

        Returns ``(centred_points, centre)`` with ``centre`` keeping ``dim`` as size 1, so that
        ``centred + centre`` restores the input; add the centre back to predicted points. The euclidean
        algebra needs it for translation equivariance. For every algebra it keeps float32 accurate away
        from the origin: a conformal point carries ``|x|^2 / 2``, so at 100 m float32 loses the
        centimetres (a GATr on raw conformal points was off by 42 at a 100 m offset); centre first
        whenever coordinates are far from the origin relative to the distances that matter.

        Parameters
        ----------
        points : Tensor, shape (..., 3)
            Positions, e.g. ``(batch, items, 3)``.
        dim : int
            The axis to average over (default ``-2``: the items of ``(..., items, 3)``).
        mask : Tensor of bool, optional
            ``points.shape[:-1]``, True for the points that enter the mean; a slice with no True
            entry gets centre 0. Every point is shifted, masked or not.

        Returns
        -------
        centred : Tensor, shape (..., 3)
            ``points - centre``.
        centre : Tensor
            The mean, ``points``'s shape with axis ``dim`` of size 1.
        """
        points = Euclidean3DAlgebra.check_coordinates(points, 3, "points")
        if mask is None:
            centre = points.mean(dim=dim, keepdim=True)
        else:
            weights = mask.to(points.dtype).unsqueeze(-1)
            centre = (points * weights).sum(dim, keepdim=True) / weights.sum(dim, keepdim=True).clamp_min(1)
        return points - centre, centre


    # ------------------------------------------------------------------ index helpers
    def _blade(self, *vectors: int) -> int:
        """Index of the blade ``e_a e_b ...`` (given in increasing order)."""
        return self.blade_index[tuple(vectors)]

    @property
    def _spatial_vectors(self) -> list[int]:
        return [self._blade(i) for i in self.spatial]

    @property
    def _spatial_bivectors(self) -> tuple[list[int], torch.Tensor]:
        """Blades and signs of the Euclidean bivectors dual to x, y, z: e_yz, e_zx, e_xy."""
        x, y, z = self.spatial
        pairs = [(y, z), (z, x), (x, y)]
        blades = [self._blade(*sorted(p)) for p in pairs]
        signs = torch.tensor([1.0 if p[0] < p[1] else -1.0 for p in pairs])
        return blades, signs

    # ------------------------------------------------------------------ axial vectors
    def euclidean_bivector(self, w: torch.Tensor) -> torch.Tensor:
        """The bivector ``w_x e_yz + w_y e_zx + w_z e_xy`` (Hodge dual of a 3-vector).

        ``x, y, z`` are the basis vectors :attr:`spatial`; ``e_zx = -e_xz`` in blade order.

        Parameters
        ----------
        w : Tensor, shape (..., 3)
            The 3-vector (e.g. an axis or an angular velocity).

        Returns
        -------
        Tensor, shape (..., dim)
        """
        w = self.check_coordinates(w, 3, "axial vector")
        blades, signs = self._spatial_bivectors
        return self.vector(w * signs.to(w), blades)

    def extract_euclidean_bivector(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`euclidean_bivector`: ``(w_x, w_y, w_z)`` from the ``e_yz, e_zx, e_xy`` parts.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors; other components are ignored.

        Returns
        -------
        Tensor, shape (..., 3)
        """
        blades, signs = self._spatial_bivectors
        return self.check(x)[..., blades] * signs.to(x)

    # ------------------------------------------------------------------ rotations
    def embed_rotation(self, quaternion: torch.Tensor) -> torch.Tensor:
        """Rotor of the rotation given by a quaternion ``(w, x, y, z)``, shape ``(..., 4)``.

        For ``q = (cos(t/2), sin(t/2) a)`` the rotor is ``cos(t/2) - sin(t/2) B_a`` with ``B_a`` the
        bivector dual to the axis ``a``, so that ``act(R, v)`` rotates by ``t`` about ``a``
        (right-handed). The quaternion is normalised; a zero quaternion is an error.

        Parameters
        ----------
        quaternion : Tensor, shape (..., 4)
            ``(w, x, y, z)``, any non-zero scale (integer ones become the default dtype).

        Returns
        -------
        Tensor, shape (..., dim)
            The rotor, an even versor of scalar and Euclidean bivector parts.

        Raises
        ------
        ValueError
            For a zero quaternion.
        """
        q = self.check_coordinates(quaternion, 4, "quaternion")
        if not q.is_floating_point():  # integer quaternions, e.g. (0, 0, 0, 1)
            q = q.to(torch.get_default_dtype())
        # scale by the largest entry first: the norm of a float32 quaternion ~1e20 overflows to inf
        scale = q.abs().amax(dim=-1, keepdim=True)
        if bool((scale == 0).any()):
            raise ValueError("zero quaternion: a rotation needs a non-zero quaternion (w, x, y, z)")
        q = q / scale
        q = q / q.norm(dim=-1, keepdim=True)
        rotor = -self.euclidean_bivector(q[..., 1:])
        rotor[..., 0] = q[..., 0]
        return rotor

    def extract_rotation(self, rotor: torch.Tensor) -> torch.Tensor:
        """Unit quaternion ``(w, x, y, z)`` with ``w >= 0`` of a rotor (inverse of :meth:`embed_rotation`).

        Reads the scalar and Euclidean bivector parts and normalises them; ``q`` and ``-q`` are the
        same rotation, and the sign with ``w >= 0`` is returned.

        Parameters
        ----------
        rotor : Tensor, shape (..., dim)
            Rotors.

        Returns
        -------
        Tensor, shape (..., 4)
        """
        q = torch.cat([self.check(rotor)[..., :1], -self.extract_euclidean_bivector(rotor)], -1)
        q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
        return torch.where(q[..., :1] < 0, -q, q)

    # ------------------------------------------------------------------ reflections
    def _plane_offset(self, offset: torch.Tensor) -> torch.Tensor:
        """Multivector added to the normal for a plane ``n . p = offset`` (needs translations)."""
        raise NotImplementedError

    def embed_plane(self, normal: torch.Tensor, offset: torch.Tensor | float = 0.0) -> torch.Tensor:
        """The oriented plane ``{p : normal . p = offset}`` as a vector.

        The normal is not normalised (see :meth:`embed_reflection`). A non-zero offset needs the
        backend's translations (``n + d e_inf`` in CGA, ``n - d e_0`` in PGA); the euclidean
        algebra only has planes through the origin.

        Parameters
        ----------
        normal : Tensor, shape (..., 3)
            Normal vectors.
        offset : Tensor of shape (...) or float
            Right-hand side of ``normal . p = offset``; broadcast to ``normal.shape[:-1]``.

        Returns
        -------
        Tensor, shape (..., dim)
            A grade-1 multivector.

        Raises
        ------
        ValueError
            For a non-zero offset in the euclidean algebra.
        """
        normal = self.check_coordinates(normal, 3, "plane normal")
        offset = self.check_coordinates(torch.as_tensor(offset, dtype=normal.dtype), None, "plane offset")
        plane = self.vector(normal, self._spatial_vectors)
        if bool((offset != 0).any()):
            plane = plane + self._plane_offset(offset.expand(normal.shape[:-1]))
        return plane

    def embed_reflection(self, normal: torch.Tensor, offset: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Versor of the reflection in the plane ``{p : normal . p = offset}``.

        :meth:`embed_plane` with the normal normalised (and the offset divided by its length), so
        that ``act(embed_reflection(n, d), x)`` mirrors ``x`` in the plane.

        Parameters
        ----------
        normal : Tensor, shape (..., 3)
            Normal vectors (any non-zero length).
        offset : Tensor of shape (...) or float
            Offset in the plane equation ``normal . p = offset``.

        Returns
        -------
        Tensor, shape (..., dim)
            An odd versor (a unit vector).

        Raises
        ------
        ValueError
            For a zero normal.
        """
        normal = self.check_coordinates(normal, 3, "plane normal")
        norm = normal.norm(dim=-1, keepdim=True)
        if bool((norm <= 1e-12).any()):
            raise ValueError("zero plane normal: a reflection needs a non-zero normal")
        return self.embed_plane(normal / norm, torch.as_tensor(offset, dtype=normal.dtype) / norm.squeeze(-1))

    def extract_plane(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The plane ``{p : normal . p = offset}`` of a plane vector (the inverse of :meth:`embed_plane`).

        Implemented by the backends; here it raises ``NotImplementedError``.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Plane vectors.

        Returns
        -------
        normal : Tensor, shape (..., 3)
        offset : Tensor, shape (...)
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ lines and rays
    def _plucker_pair(self, a: torch.Tensor, b: torch.Tensor, names: tuple[str, str]):
        """Two checked 3-vectors in one floating dtype, broadcast to one shape."""
        a = self.check_coordinates(a, 3, names[0])
        b = self.check_coordinates(b, 3, names[1])
        dtype = torch.promote_types(a.dtype, b.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        return torch.broadcast_tensors(a.to(dtype), b.to(dtype))

    def embed_line(self, point: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """The oriented line (ray) through ``point`` along ``direction``: Plücker ``(d, x × d)``.

        ``embed_plucker(direction, cross(point, direction))``: the line from ``x`` towards ``x + d``,
        equal to the join of the two embedded points (PGA ``P ∨ Q``, CGA ``P ∧ Q ∧ e_inf``), so its
        magnitude is ``|d|`` and ``-d`` gives the opposite ray (the negated multivector). Any point
        of the line gives the same result (``m`` depends only on the line).

        Under ``g: x -> R x + t`` the ray goes to ``(R d, det(R) R m + t × R d)``: the direction is a
        vector (its sign is kept), the moment ``x × d`` a pseudovector plus the translation's share,
        since ``(R a) × (R b) = det(R) R (a × b)``. The backend's ``embedding_parity["line"]`` says
        whether ``act(u, L)`` is that ray's embedding (+1, conformal) or minus it under reflections
        (-1, projective: a bivector, like the trivector points).

        Parameters
        ----------
        point : Tensor, shape (..., 3)
            A point ``x`` on the line.
        direction : Tensor, shape (..., 3)
            The direction ``d`` (any length; the ray points along it). Broadcasts with ``point``.

        Returns
        -------
        Tensor, shape (..., dim)

        Raises
        ------
        ValueError
            Where the algebra cannot represent lines (the euclidean backend), or for bad coordinates.
        """
        point, direction = self._plucker_pair(point, direction, ("line point", "line direction"))
        return self.embed_plucker(direction, torch.linalg.cross(point, direction))
