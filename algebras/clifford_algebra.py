"""The generic Clifford-algebra engine: signature -> blades, tables, operations and group action.

Multivectors are torch tensors whose last axis has size ``dim = 2**n``, blades ordered by grade then
lexicographically (DESIGN.md). All operations broadcast over leading axes and work in any float
dtype on any device; constant tables are cached per (device, dtype).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch

from .equivariance import equivariant_linear_maps, invariant_vectors
from .groups import VersorGroup, as_numpy_rng, pin_group
from .tables import blades_from_array, cached_arrays, load_tables, signature_key

#: Number of random group elements whose constraints define the equivariant maps.
NUM_CONSTRAINT_SAMPLES = 8
#: Seed of those samples, so the derived bases are reproducible.
CONSTRAINT_SEED = 1234
#: Bump when the derivation changes, so that cached group structures are derived again.
STRUCTURE_VERSION = 1


class Bilinear(NamedTuple):
    """An equivariant bilinear map ``z_k = sum_ij x_i y_j table[i, j, k]``.

    If ``reference_component`` is set, the result is multiplied by that component of a reference
    multivector (e.g. the pseudoscalar for the projective join, which is only equivariant up to the
    sign ``det`` that the reference's pseudoscalar also picks up).
    """

    name: str
    table: np.ndarray
    reference_component: int | None = None


class CliffordAlgebra:
    """A Clifford algebra G(p, q, r) given by the squares of its basis vectors.

    Parameters
    ----------
    signature : sequence of {1, -1, 0}
        ``signature[i]`` is the square of ``e_i``.
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
        self._arrays = {
            "geometric": tables["geometric"],
            "outer": tables["outer"],
            "inner": tables["inner"],
            "left_contraction": tables["left_contraction"],
            # reverse: (-1)^(k(k-1)/2); grade involution: (-1)^k
            "reverse": (-1.0) ** (grades * (grades - 1) // 2),
            "involution": (-1.0) ** grades,
            # <e_A~ e_A>_0 = reverse sign * (e_A e_A)_0: the metric of each blade
            # (0 for blades that contain a degenerate basis vector)
            "metric": (-1.0) ** (grades * (grades - 1) // 2)
            * np.array([tables["geometric"][i, i, 0] for i in range(len(self.blades))]),
        }
        self._arrays["complement"] = self._complement_matrix()
        self._cache: dict = {}

    # ------------------------------------------------------------------ constants
    def _complement_matrix(self) -> np.ndarray:
        """Right complement: ``e_A ^ rc(e_A) = I`` (as a matrix, ``rc(x) = C @ x``)."""
        full = tuple(range(len(self.signature)))
        outer = self._arrays["outer"]
        comp = np.zeros((self.dim, self.dim))
        for i, blade in enumerate(self.blades):
            j = self.blade_index[tuple(k for k in full if k not in blade)]
            comp[j, i] = outer[i, j, self.dim - 1]  # sign so that e_A ^ (s e_Ac) = +I
        return comp

    def tensor(self, name: str, device=None, dtype=torch.float32) -> torch.Tensor:
        """A constant array (product table, sign vector, basis...) as a cached tensor."""
        key = (name, torch.device(device) if device is not None else torch.device("cpu"), dtype)
        if key not in self._cache:
            if name in self._arrays:
                array = self._arrays[name]
            else:
                array = getattr(self, f"_array_{name}")()
            self._cache[key] = torch.as_tensor(np.asarray(array), dtype=dtype, device=key[1])
        return self._cache[key]

    def _like(self, name: str, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        return self.tensor(name, x.device, dtype)

    @property
    def pseudoscalar_index(self) -> int:
        return self.dim - 1

    @property
    def is_degenerate(self) -> bool:
        return 0 in self.signature

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, signature={self.signature}, group={self.group.name!r})"

    # ------------------------------------------------------------------ validation
    def check(self, x: torch.Tensor, what: str = "multivector") -> torch.Tensor:
        """Raise a clear error if ``x`` is not a tensor of multivectors of this algebra."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{what} must have last axis of size {self.dim} (the dimension of the {self.name} "
                f"algebra {self.signature}), got shape {tuple(x.shape)}"
            )
        return x

    # ------------------------------------------------------------------ products
    def bilinear(self, table_name: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``z_k = sum_ij x_i y_j T[i, j, k]`` with broadcasting over leading axes."""
        self.check(x, "left operand")
        self.check(y, "right operand")
        x, y = torch.broadcast_tensors(x, y)
        table = self._like(table_name, x)
        # two matmuls: (x @ T) contracts i, then y contracts j.
        left = (x @ table.reshape(self.dim, self.dim * self.dim)).reshape(*x.shape, self.dim)
        return (y.unsqueeze(-2) @ left).squeeze(-2)

    def geometric_product(self, x, y):
        return self.bilinear("geometric", x, y)

    def outer_product(self, x, y):
        return self.bilinear("outer", x, y)

    def inner_product(self, x, y):
        """Hestenes inner product (the ``|`` of the ``clifford`` package; scalars give zero)."""
        return self.bilinear("inner", x, y)

    def left_contraction(self, x, y):
        return self.bilinear("left_contraction", x, y)

    def join(self, x, y):
        """Regressive product ``x v y = rc^-1(rc(x) ^ rc(y))`` via complements (works in PGA)."""
        return self.left_complement(self.outer_product(self.right_complement(x), self.right_complement(y)))

    def scalar_product(self, x, y) -> torch.Tensor:
        """``<x~ y>_0``, shape ``(...)``: the algebra's invariant symmetric bilinear form."""
        self.check(x)
        self.check(y)
        return (x * y * self._like("metric", x)).sum(-1)

    # ------------------------------------------------------------------ unary operations
    def reverse(self, x):
        return self.check(x) * self._like("reverse", x)

    def grade_involute(self, x):
        return self.check(x) * self._like("involution", x)

    def clifford_conjugate(self, x):
        return self.reverse(self.grade_involute(x))

    def grade_mask(self, grades) -> np.ndarray:
        grades = [grades] if isinstance(grades, (int, np.integer)) else list(grades)
        for k in grades:
            if not 0 <= k <= len(self.signature):
                raise ValueError(f"grade {k} out of range: the {self.name} algebra has grades 0..{len(self.signature)}")
        return np.isin(np.asarray(self.grades), grades)

    def grade_project(self, x, grades):
        """Keep the components of the given grade(s) (an int or an iterable of ints)."""
        mask = torch.as_tensor(self.grade_mask(grades), device=x.device)
        return self.check(x) * mask

    def right_complement(self, x):
        return self.check(x) @ self._like("complement", x).T

    def left_complement(self, x):
        """Inverse of :meth:`right_complement` (the complement matrix is a signed permutation)."""
        return self.check(x) @ self._like("complement", x)

    def dual(self, x):
        """``x I^-1`` (the ``clifford`` package's dual); only defined for non-degenerate metrics."""
        if self.is_degenerate:
            raise ValueError(
                f"the dual x I^-1 is undefined in the degenerate {self.name} algebra; use right_complement"
            )
        pseudo = torch.zeros(self.dim, dtype=x.dtype, device=x.device)
        pseudo[-1] = 1.0
        return self.geometric_product(x, self.versor_inverse(pseudo))

    # ------------------------------------------------------------------ versors and group action
    def versor_inverse(self, u: torch.Tensor, check: bool = True) -> torch.Tensor:
        """``u^-1 = u~ / (u u~)`` for a versor (``u u~`` is a non-zero scalar)."""
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
        """1 for odd versors, 0 for even ones; raises for mixed parity. Shape ``(...)``."""
        odd_mask = self._like("involution", u) < 0
        odd = (u * u * odd_mask).sum(-1)
        even = (u * u * ~odd_mask).sum(-1)
        if bool((torch.minimum(odd, even) > 1e-12 * (odd + even)).any()):
            raise ValueError("versor has both even and odd parts; a versor has a definite parity")
        return (odd > even).to(torch.long)

    def act(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The twisted adjoint action ``rho_u(x)``: ``u x u^-1`` (even u) or ``u x^ u^-1`` (odd u)."""
        self.check(u, "versor")
        self.check(x)
        odd = self.parity(u).unsqueeze(-1).to(torch.bool)
        x_twisted = torch.where(odd, self.grade_involute(x), x)
        return self.geometric_product(self.geometric_product(u, x_twisted), self.versor_inverse(u))

    def act_matrix(self, u: torch.Tensor) -> torch.Tensor:
        """``rho_u`` as a matrix: ``act(u, x) == act_matrix(u) @ x``. Shape ``(..., dim, dim)``."""
        eye = torch.eye(self.dim, dtype=u.dtype, device=u.device)
        columns = self.act(u.unsqueeze(-2), eye)  # (..., j, k) = rho_u(e_j)_k
        return columns.transpose(-1, -2)

    def random_versors(
        self, n: int, generator=None, parity: str | None = None, dtype=torch.float64, device=None
    ) -> torch.Tensor:
        """``n`` random elements of the algebra's group as versors, shape ``(n, dim)``.

        Each is a product of 1-4 generating vectors; without ``parity`` they alternate even / odd
        (reflections included unless the group is even-only). Reproducible from ``generator``
        (an int seed, ``numpy`` or ``torch`` generator).
        """
        versors = self._random_versors_np(n, as_numpy_rng(generator), parity)
        return torch.as_tensor(versors, dtype=dtype, device=device)

    def _random_versors_np(self, n: int, rng: np.random.Generator, parity: str | None) -> np.ndarray:
        if parity not in (None, "even", "odd"):
            raise ValueError(f"parity must be None, 'even' or 'odd', got {parity!r}")
        if parity == "odd" and self.group.even_only:
            raise ValueError(f"the group {self.group.name} has no odd elements")
        vector_index = [self.blade_index[(i,)] for i in range(len(self.signature))]
        gp = self._arrays["geometric"]
        out = np.zeros((n, self.dim))
        for i in range(n):
            odd = {"even": False, "odd": True}.get(parity, i % 2 == 1 and not self.group.even_only)
            factors = int(odd) + 2 * int(rng.integers(0, 2)) or 2  # odd: 1 or 3; even: 2 or 4
            vectors = self.group.sample_generators(factors, rng)
            versor = np.zeros(self.dim)
            versor[0] = 1.0
            for v in vectors:
                mv = np.zeros(self.dim)
                mv[vector_index] = v
                versor = np.einsum("i,j,ijk->k", versor, mv, gp)
            out[i] = versor
        return out

    # ------------------------------------------------------------------ derived group structure
    def _act_matrices_np(self, u: np.ndarray) -> np.ndarray:
        """``act_matrix`` in plain numpy einsums (no BLAS threads: stays fast on a busy CPU)."""
        gp, rev, inv = self._arrays["geometric"], self._arrays["reverse"], self._arrays["involution"]
        u_rev = u * rev
        norm = np.einsum("ni,nj,ij->n", u, u_rev, gp[:, :, 0])
        u_inv = u_rev / norm[:, None]
        left = np.einsum("ni,ijk->nkj", u, gp)  # (u x)_k = left[k, j] x_j
        right = np.einsum("ni,jik->nkj", u_inv, gp)  # (x u^-1)_k = right[k, j] x_j
        odd = (u**2 * (inv < 0)).sum(-1) > (u**2 * (inv > 0)).sum(-1)
        twist = np.where(odd[:, None], inv[None], 1.0)
        return np.einsum("nab,nbc,nc->nac", right, left, twist)

    @cached_property
    def _constraint_matrices(self) -> np.ndarray:
        u = self._random_versors_np(NUM_CONSTRAINT_SAMPLES, np.random.default_rng(CONSTRAINT_SEED), None)
        return self._act_matrices_np(u)

    @property
    def _structure_filename(self) -> str:
        """Cache file of the derived group structure, keyed by signature and group."""
        group = re.sub(r"[^A-Za-z0-9]+", "_", self.group.name).strip("_") or "group"
        return f"basis_{signature_key(self.signature)}_{group}{'_even' if self.group.even_only else ''}.npz"

    @property
    def _group_tag(self) -> str:
        return f"{self.group.name}|even={self.group.even_only}|v{STRUCTURE_VERSION}"

    def _derive_group_structure(self) -> dict[str, np.ndarray]:
        """Solve for the equivariant maps and invariants (SVDs: fast alone, slow on a busy CPU)."""
        basis, blocks = equivariant_linear_maps(self._constraint_matrices, self.grades)
        return {
            "linear_basis": basis,
            "blocks": np.asarray(blocks, dtype=np.int64).reshape(-1, 2),
            "invariant_basis": invariant_vectors(self._constraint_matrices, self.grades),
            "invariant_functionals": invariant_vectors(self._constraint_matrices, self.grades, transpose=True),
            "signature": np.asarray(self.signature, dtype=np.int64),
            "group": np.asarray(self._group_tag),
        }

    def _structure_is_valid(self, arrays: dict[str, np.ndarray]) -> bool:
        """A cached structure must be for this signature and group, and really commute with it."""
        try:
            if tuple(arrays["signature"]) != self.signature or str(arrays["group"]) != self._group_tag:
                return False
            return self._commutation_residual(arrays["linear_basis"]) <= 1e-8 and self._fixes(arrays)
        except (KeyError, ValueError, IndexError):
            return False

    @cached_property
    def _fresh_act_matrices(self) -> np.ndarray:
        """Group elements independent of the constraints, to check a derived or cached structure."""
        return self._act_matrices_np(self._random_versors_np(4, np.random.default_rng(CONSTRAINT_SEED + 1), None))

    def _commutation_residual(self, basis: np.ndarray) -> float:
        fresh = self._fresh_act_matrices
        if basis.ndim != 3 or basis.shape[1:] != (self.dim, self.dim):
            return np.inf
        lhs = np.matmul(basis[:, None], fresh[None])
        rhs = np.matmul(fresh[None], basis[:, None])
        return float(np.abs(lhs - rhs).max(initial=0.0)) / max(1.0, float(np.abs(fresh).max()))

    def _fixes(self, arrays) -> bool:
        fresh = self._fresh_act_matrices
        inv, fun = arrays["invariant_basis"], arrays["invariant_functionals"]
        return bool(
            np.abs(np.einsum("nab,kb->nka", fresh, inv) - inv).max(initial=0.0) <= 1e-8
            and np.abs(np.einsum("ka,nab->nkb", fun, fresh) - fun).max(initial=0.0) <= 1e-8
        )

    @cached_property
    def _group_structure(self) -> dict[str, np.ndarray]:
        """Equivariant maps and invariants: shipped data, the user cache, or a fresh derivation.

        Cached entries are re-checked against fresh group elements (cheap: no SVD), so a stale or
        foreign cache file is never trusted.
        """
        arrays = cached_arrays(self._structure_filename, self._derive_group_structure, self._structure_is_valid)
        # Guard against too few constraints: the maps must commute with fresh group elements too.
        residual = self._commutation_residual(arrays["linear_basis"])
        if residual > 1e-8:
            raise RuntimeError(f"equivariance solver did not converge for {self!r} (residual {residual:.2e})")
        return arrays

    @cached_property
    def _linear_maps(self) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
        arrays = self._group_structure
        return arrays["linear_basis"], tuple((int(a), int(b)) for a, b in arrays["blocks"])

    @property
    def linear_basis(self) -> torch.Tensor:
        """Equivariant linear maps, ``(n_maps, dim, dim)`` float64, ``y = basis[m] @ x``."""
        return self.tensor("linear_basis", dtype=torch.float64)

    def _array_linear_basis(self) -> np.ndarray:
        return self._linear_maps[0]

    @property
    def linear_basis_blocks(self) -> tuple[tuple[int, int], ...]:
        """(input grade, output grade) of each map in :attr:`linear_basis`."""
        return self._linear_maps[1]

    @cached_property
    def invariant_basis(self) -> np.ndarray:
        """Multivectors fixed by the group, ``(k, dim)`` (always contains the scalar 1)."""
        return self._group_structure["invariant_basis"]

    @cached_property
    def invariant_functionals(self) -> np.ndarray:
        """Linear functionals ``f`` with ``f . rho_u(x) = f . x``, ``(k, dim)``."""
        return self._group_structure["invariant_functionals"]

    # ------------------------------------------------------------------ norms
    def _array_norm_maps(self) -> np.ndarray:
        """Linear maps M_j whose outputs enter the norm, stacked as one ``(dim, J * dim)`` matrix:
        the identity and ``w _| x`` for each group-invariant vector ``w`` (e.g. e_inf in CGA), which
        is equivariant since rho_u is an automorphism fixing w. Maps that only produce zero-metric
        components (e.g. ``e_0 _| x = 0`` in PGA) are dropped."""
        maps = [np.eye(self.dim)]
        lc = self._arrays["left_contraction"]
        metric = self._arrays["metric"]
        for w in self.invariant_basis:
            if np.allclose(w[np.asarray(self.grades) != 1], 0):
                contraction = np.einsum("i,ijk->kj", w, lc)
                if np.any(contraction[metric != 0] != 0):
                    maps.append(contraction)
        return np.concatenate([m.T for m in maps], axis=1)

    def _array_grade_metric(self) -> np.ndarray:
        """``(J * dim, J * n_grades)``: blade metric scattered into its grade's column, per norm map."""
        one = np.zeros((self.dim, len(self.signature) + 1))
        one[np.arange(self.dim), self.grades] = self._arrays["metric"]
        return np.kron(np.eye(self._array_norm_maps().shape[1] // self.dim), one)

    def squared_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Invariant, non-negative squared norm, shape ``(...)``.

        ``sum_k |<x_k~ x_k>_0| + sum_w sum_k |<(w _| x)_k~ (w _| x)_k>_0|`` over grades k and the
        group's invariant vectors w. Each term is invariant because rho_u is a grade-preserving
        automorphism with ``<rho_u(z)>_0 = <z>_0``; components with zero metric drop out.
        """
        maps = self._like("norm_maps", self.check(x))
        y = x if maps.shape[1] == self.dim else x @ maps  # only the identity: skip the matmul
        return ((y * y) @ self._like("grade_metric", x)).abs().sum(-1)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.squared_norm(x).sqrt()

    # ------------------------------------------------------------------ attention
    def _array_nondegenerate(self) -> np.ndarray:
        return np.flatnonzero(self._arrays["metric"] != 0)

    @property
    def attention_feature_dim(self) -> int:
        """Length of :meth:`query_features` / :meth:`key_features` per multivector."""
        return int((self._arrays["metric"] != 0).sum())

    def query_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features with ``query_features(q) . key_features(k) == <q~ k>_0``. ``(..., F)``."""
        index = self.tensor("nondegenerate", x.device, torch.long)
        return self.check(x).index_select(-1, index) * self._like("metric", x).index_select(-1, index)

    def key_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.check(x).index_select(-1, self.tensor("nondegenerate", x.device, torch.long))

    # ------------------------------------------------------------------ network hooks
    @cached_property
    def bilinears(self) -> tuple[Bilinear, ...]:
        """Equivariant bilinear maps used by the network's bilinear layer."""
        return (Bilinear("geometric", self._arrays["geometric"]),)

    @cached_property
    def join_table(self) -> np.ndarray:
        """Table of the regressive product: ``rc^-1(rc(e_i) ^ rc(e_j))``, ``(dim, dim, dim)``."""
        c = self._arrays["complement"]
        return np.einsum("ai,bj,abc,ck->ijk", c, c, self._arrays["outer"], c)

    # ------------------------------------------------------------------ embeddings shared by all
    def _zeros(self, like: torch.Tensor, batch_shape) -> torch.Tensor:
        dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
        return torch.zeros(*batch_shape, self.dim, dtype=dtype, device=like.device)

    @staticmethod
    def check_coordinates(value: torch.Tensor, size: int | None, what: str) -> torch.Tensor:
        """Validate an embedding input: a tensor with last axis ``size`` and finite entries."""
        value = torch.as_tensor(value)
        if size is not None and (value.ndim == 0 or value.shape[-1] != size):
            raise ValueError(f"{what} must have last axis of size {size}, got shape {tuple(value.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{what} contains non-finite values (nan or inf)")
        return value

    def embed_scalar(self, s: torch.Tensor) -> torch.Tensor:
        """``(...,)`` -> ``(..., dim)``."""
        s = self.check_coordinates(s, None, "scalar")
        out = self._zeros(s, s.shape)
        out[..., 0] = s
        return out

    def extract_scalar(self, x: torch.Tensor) -> torch.Tensor:
        return self.check(x)[..., 0]

    def embed_pseudoscalar(self, s: torch.Tensor) -> torch.Tensor:
        s = self.check_coordinates(s, None, "pseudoscalar")
        out = self._zeros(s, s.shape)
        out[..., -1] = s
        return out

    def extract_pseudoscalar(self, x: torch.Tensor) -> torch.Tensor:
        return self.check(x)[..., -1]

    def vector(self, coefficients: torch.Tensor, indices) -> torch.Tensor:
        """Scatter ``coefficients (..., len(indices))`` onto the blades ``indices``."""
        out = self._zeros(coefficients, coefficients.shape[:-1])
        out[..., list(indices)] = coefficients.to(out.dtype)
        return out
