"""The group action on multivectors: versor inverses, parity, the twisted adjoint ``rho_u``, sampling.

A mixin of :class:`algebras.CliffordAlgebra`; it reads the algebra's product tables (``arrays``),
its cached tensors and its :class:`~algebras.groups.VersorGroup`.
"""

from __future__ import annotations

import numpy as np
import torch

from .groups import as_numpy_rng


class GroupAction:
    """``rho_u(x) = u x u^-1`` (even ``u``) or ``u x^ u^-1`` (odd ``u``), and random group elements."""

    def versor_inverse(self, u: torch.Tensor, check: bool = True) -> torch.Tensor:
        """The inverse ``u^-1 = u~ / (u u~)`` of versors (for a versor ``u u~`` is a non-zero scalar).

        Parameters
        ----------
        u : Tensor, shape (..., dim)
            Versors.
        check : bool
            Verify that ``u u~`` is a non-zero scalar (relative tolerances ``1e-10`` for zero and
            ``1e-5`` for the non-scalar rest). Without it, only the scalar part of ``u u~`` is used.

        Returns
        -------
        Tensor, shape (..., dim)
            ``u~`` divided by the scalar part of ``u u~``.

        Raises
        ------
        ValueError
            With ``check``: for a null or zero ``u`` (``u u~ = 0``) and for a ``u`` whose ``u u~`` is
            not a scalar (no versor).
        """
        u_rev = self.reverse(u)
        square = self.geometric_product(u, u_rev)
        scalar = square[..., 0]
        scale = (u * u).sum(-1).clamp_min(torch.finfo(u.dtype).tiny)
        if check:
            if bool((scalar.abs() <= 1e-10 * scale).any()):
                raise ValueError("versor is not invertible: u u~ = 0 (a null or zero multivector)")
            rest = square[..., 1:].abs().amax(-1)
            if bool((rest > 1e-5 * scalar.abs().clamp_min(1e-30)).any()):
                raise ValueError("not a versor: u u~ is not a scalar")
        return u_rev / scalar.unsqueeze(-1)

    def parity(self, u: torch.Tensor) -> torch.Tensor:
        """The parity of versors: 1 for odd ones (products of an odd number of vectors), 0 for even ones.

        Parameters
        ----------
        u : Tensor, shape (..., dim)
            Versors; each must be (to a relative ``1e-12`` of its squared coefficients) purely even or
            purely odd in grade.

        Returns
        -------
        Tensor of torch.long, shape (...)

        Raises
        ------
        ValueError
            If a versor has both even and odd parts.
        """
        odd_mask = self.tensors(u.device, u.dtype).involution < 0
        odd = (u * u * odd_mask).sum(-1)
        even = (u * u * ~odd_mask).sum(-1)
        if bool((torch.minimum(odd, even) > 1e-12 * (odd + even)).any()):
            raise ValueError("versor has both even and odd parts; a versor has a definite parity")
        return (odd > even).to(torch.long)

    def act(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The twisted adjoint action ``rho_u(x)``: ``u x u^-1`` for even ``u``, ``u x^ u^-1`` for odd ``u``.

        ``x^`` is the grade involution. ``rho_u`` is linear, preserves grades and is an algebra
        automorphism; a unit vector ``n`` acts on vectors as the reflection in the hyperplane
        orthogonal to ``n``.

        Parameters
        ----------
        u : Tensor, shape (..., dim)
            Versors (group elements); see :meth:`versor_inverse` and :meth:`parity` for the checks.
        x : Tensor, shape (..., dim)
            Multivectors in ``u``'s dtype; leading axes broadcast against ``u``'s.

        Returns
        -------
        Tensor, shape (..., dim)
            ``rho_u(x)`` over the broadcast leading axes.
        """
        self.check(u, "versor")
        self.check(x)
        odd = self.parity(u).unsqueeze(-1).to(torch.bool)
        x_twisted = torch.where(odd, self.grade_involute(x), x)
        return self.geometric_product(self.geometric_product(u, x_twisted), self.versor_inverse(u))

    def act_matrix(self, u: torch.Tensor) -> torch.Tensor:
        """``rho_u`` as a matrix: ``act(u, x) == act_matrix(u) @ x``.

        Parameters
        ----------
        u : Tensor, shape (..., dim)
            Versors.

        Returns
        -------
        Tensor, shape (..., dim, dim)
            Column ``j`` is ``rho_u(e_j)``.
        """
        eye = torch.eye(self.dim, dtype=u.dtype, device=u.device)
        columns = self.act(u.unsqueeze(-2), eye)  # (..., j, k) = rho_u(e_j)_k
        return columns.transpose(-1, -2)

    def random_versors(self, n: int, generator=None, parity: str | None = None, dtype=torch.float64,
                       device=None) -> torch.Tensor:
        """``n`` random elements of the algebra's group, as versors.

        Each is a product of generating vectors of the group: 1 or 3 for an odd element, 2 or 4 for
        an even one (in G(3,0,1): a rotation or translation, or a general screw motion). Without ``parity`` they alternate even / odd, starting even (all even if the group
        is even-only). Sampled in float64 NumPy (:meth:`random_versors_numpy`), then converted.

        Parameters
        ----------
        n : int
            Number of group elements.
        generator : None, int, numpy.random.Generator or torch.Generator
            Source of randomness (an int is a seed); reproducible for a given seed or generator state.
        parity : {None, "even", "odd"}
            Only even or only odd elements; ``"odd"`` is an error for an even-only group.
        dtype : torch.dtype
            Dtype of the result.
        device : torch.device or str, optional
            Device of the result.

        Returns
        -------
        Tensor, shape (n, dim)
        """
        versors = self.random_versors_numpy(n, as_numpy_rng(generator), parity)
        return torch.as_tensor(versors, dtype=dtype, device=device)

    def random_versors_numpy(self, n: int, rng: np.random.Generator, parity: str | None = None) -> np.ndarray:
        """:meth:`random_versors` in float64 NumPy from a ``numpy`` generator.

        Parameters
        ----------
        n : int
            Number of group elements.
        rng : numpy.random.Generator
            Source of randomness.
        parity : {None, "even", "odd"}
            As in :meth:`random_versors`.

        Returns
        -------
        ndarray, shape (n, dim)

        Raises
        ------
        ValueError
            For an unknown ``parity``, or ``"odd"`` in an even-only group.
        """
        if parity not in (None, "even", "odd"):
            raise ValueError(f"parity must be None, 'even' or 'odd', got {parity!r}")
        if parity == "odd" and self.group.even_only:
            raise ValueError(f"the group {self.group.name} has no odd elements")
        vector_index = [self.blade_index[(i,)] for i in range(len(self.signature))]
        gp = self.arrays["geometric"]
        out = np.zeros((n, self.dim))
        for i in range(n):
            odd = {"even": False, "odd": True}.get(parity, i % 2 == 1 and not self.group.even_only)
            # odd: 1 or 3 generating vectors; even: 2 or 4 (4 plane reflections: a general screw motion)
            factors = (1 if odd else 2) + 2 * int(rng.integers(0, 2))
            versor = np.zeros(self.dim)
            versor[0] = 1.0
            for v in self.group.sample_generators(factors, rng):
                mv = np.zeros(self.dim)
                mv[vector_index] = v
                versor = np.einsum("i,j,ijk->k", versor, mv, gp)
            out[i] = versor
        return out

    def act_matrices_numpy(self, u: np.ndarray) -> np.ndarray:
        """:meth:`act_matrix` in plain NumPy einsums (no BLAS threads), without the versor checks.

        Used to derive and check the group structure. The parity of each versor is read from
        whether its odd or its even part is larger.

        Parameters
        ----------
        u : ndarray, shape (n, dim)
            Versors, float64.

        Returns
        -------
        ndarray, shape (n, dim, dim)
            ``rho_u`` as matrices, ``rho_u(x) = R @ x``.
        """
        gp, rev, inv = self.arrays["geometric"], self.arrays["reverse"], self.arrays["involution"]
        u_rev = u * rev
        norm = np.einsum("ni,nj,ij->n", u, u_rev, gp[:, :, 0])
        u_inv = u_rev / norm[:, None]
        left = np.einsum("ni,ijk->nkj", u, gp)  # (u x)_k = left[k, j] x_j
        right = np.einsum("ni,jik->nkj", u_inv, gp)  # (x u^-1)_k = right[k, j] x_j
        odd = (u**2 * (inv < 0)).sum(-1) > (u**2 * (inv > 0)).sum(-1)
        twist = np.where(odd[:, None], inv[None], 1.0)
        return np.einsum("nab,nbc,nc->nac", right, left, twist)

    def sample_action_matrices(self, count: int, seed: int) -> np.ndarray:
        """Action matrices of ``count`` random group elements drawn with ``seed``.

        The sampler that :mod:`algebras.structure` derives and checks the equivariant maps with.

        Parameters
        ----------
        count : int
            Number of group elements.
        seed : int
            Seed of ``numpy.random.default_rng``.

        Returns
        -------
        ndarray, shape (count, dim, dim)
            ``rho_u`` as matrices (see :meth:`act_matrices_numpy`).
        """
        return self.act_matrices_numpy(self.random_versors_numpy(count, np.random.default_rng(seed)))
