"""Embeddings every algebra has: scalars, pseudoscalars and coefficients on chosen blades.

A mixin of :class:`algebras.CliffordAlgebra`; geometric embeddings (points, rotations, ...) live in
the backends (:mod:`algebras.geometry3d` and its subclasses) or in a user's own algebra class. Lines
and rays (:meth:`BasicEmbeddings.embed_line`) are declared here so that an algebra which cannot
represent them (the euclidean backend, a plain registered signature) says so by name; the projective
and conformal backends implement them.
"""

from __future__ import annotations

import torch


class BasicEmbeddings:
    """Scalars, pseudoscalars and blade coefficients as multivectors ``(..., dim)``."""

    @staticmethod
    def check_coordinates(value: torch.Tensor, size: int | None, what: str) -> torch.Tensor:
        """``value`` as a tensor, checked to be coordinates of the expected size.

        Parameters
        ----------
        value : Tensor or array-like, shape (..., size)
            Coordinates; converted with ``torch.as_tensor``.
        size : int or None
            Required length of the last axis; None accepts any shape (including 0-dimensional).
        what : str
            How ``value`` is named in the error message.

        Returns
        -------
        Tensor
            ``value`` as a tensor (not copied if it already is one).

        Raises
        ------
        ValueError
            If the last axis is not ``size``, or a floating ``value`` holds nan or inf.
        """
        value = torch.as_tensor(value)
        if size is not None and (value.ndim == 0 or value.shape[-1] != size):
            raise ValueError(f"{what} must have last axis of size {size}, got shape {tuple(value.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{what} contains non-finite values (nan or inf)")
        return value

    def _zeros(self, like: torch.Tensor, batch_shape) -> torch.Tensor:
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        return torch.zeros(*batch_shape, self.dim, dtype=dtype, device=like.device)

    def embed_scalar(self, s: torch.Tensor) -> torch.Tensor:
        """Scalars as multivectors with only the scalar component set.

        Parameters
        ----------
        s : Tensor, shape (...)
            Scalars (non-floating ones become the default dtype).

        Returns
        -------
        Tensor, shape (..., dim)
        """
        s = self.check_coordinates(s, None, "scalar")
        out = self._zeros(s, s.shape)
        out[..., 0] = s
        return out

    def extract_scalar(self, x: torch.Tensor) -> torch.Tensor:
        """The scalar component ``<x>_0``.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (...)
        """
        return self.check(x)[..., 0]

    def embed_pseudoscalar(self, s: torch.Tensor) -> torch.Tensor:
        """Pseudoscalars ``s I`` as multivectors with only the pseudoscalar component set.

        Parameters
        ----------
        s : Tensor, shape (...)
            Coefficients of the pseudoscalar blade (non-floating ones become the default dtype).

        Returns
        -------
        Tensor, shape (..., dim)
        """
        s = self.check_coordinates(s, None, "pseudoscalar")
        out = self._zeros(s, s.shape)
        out[..., -1] = s
        return out

    def extract_pseudoscalar(self, x: torch.Tensor) -> torch.Tensor:
        """The pseudoscalar component (coefficient of the last blade).

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Returns
        -------
        Tensor, shape (...)
        """
        return self.check(x)[..., -1]

    def vector(self, coefficients: torch.Tensor, indices) -> torch.Tensor:
        """Multivectors with the given coefficients on the blades ``indices`` and zeros elsewhere.

        Parameters
        ----------
        coefficients : Tensor, shape (..., len(indices))
            Coefficients (cast to the result's dtype: theirs if floating, else the default dtype).
        indices : sequence of int
            Blade indices along the last axis (see ``blade_index``).

        Returns
        -------
        Tensor, shape (..., dim)
        """
        out = self._zeros(coefficients, coefficients.shape[:-1])
        out[..., list(indices)] = coefficients.to(out.dtype)
        return out

    # ------------------------------------------------------------------ lines: where the algebra has none
    def _no_lines(self) -> ValueError:
        """The error of an algebra without lines, naming it and the backends that have them."""
        return ValueError(
            f"the {self.name} algebra {tuple(self.signature)} cannot represent lines or rays (embed_line, "
            "embed_plucker, extract_line): a line off the origin needs translations in the group; use the "
            "'projective', 'projective-distance' or 'conformal' algebra, or implement embed_plucker and "
            "extract_line in a subclass"
        )

    def embed_line(self, point: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        """The oriented line (ray) through ``point`` along ``direction``; see the 3D backends.

        Raises here: only algebras with translations represent lines (the projective and conformal
        backends override :meth:`embed_plucker`).

        Parameters
        ----------
        point : Tensor, shape (..., 3)
            A point on the line.
        direction : Tensor, shape (..., 3)
            Its direction.

        Raises
        ------
        ValueError
            Always, naming the algebra.
        """
        raise self._no_lines()

    def embed_plucker(self, direction: torch.Tensor, moment: torch.Tensor) -> torch.Tensor:
        """The line with Plücker coordinates ``(d, m = x × d)``; see the 3D backends.

        Parameters
        ----------
        direction : Tensor, shape (..., 3)
            ``d``.
        moment : Tensor, shape (..., 3)
            ``m``.

        Raises
        ------
        ValueError
            Always, naming the algebra.
        """
        raise self._no_lines()

    def extract_line(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Plücker coordinates ``(d, m)`` of an embedded line; see the 3D backends.

        Parameters
        ----------
        x : Tensor, shape (..., dim)
            Multivectors.

        Raises
        ------
        ValueError
            Always, naming the algebra.
        """
        raise self._no_lines()
