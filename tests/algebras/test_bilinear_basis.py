"""The derived equivariant bilinear maps: every basis map equivariant (float64, independent group
elements, through the algebra's own action), the named products in the span, the dimensions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algebras import CliffordAlgebra, get_algebra
from algebras.bilinear_basis import equivariant_bilinear_maps
from algebras.equivariance import _grade_indices, null_space

#: (algebra, group) -> (linear maps, bilinear maps, bilinear maps up to det): the docs' algebra table
DIMENSIONS = {
    ("euclidean", "O(3)"): (4, 20, 20), ("euclidean", "SO(3)"): (8, 40, 40),
    ("projective", "E(3)"): (9, 58, 59), ("projective", "SE(3)"): (16, 117, 117),
    ("conformal", "E(3)"): (20, 280, 280), ("conformal", "Pin(4,1)"): (6, 56, 56),
}
FAST = [("euclidean", "O(3)"), ("euclidean", "SO(3)"), ("projective", "E(3)"), ("projective", "SE(3)"),
        ("conformal", "E(3)"), ("conformal", "Pin(4,1)")]


def _apply(tables: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``B_n(x, y)`` for every basis map: (n, p, dim)."""
    return torch.einsum("pi,pj,nijk->npk", x, y, torch.as_tensor(tables))


@pytest.mark.parametrize("name, group", FAST)
def test_every_basis_map_is_equivariant_under_fresh_group_elements(name, group):
    """B(rho_u x, rho_u y) = rho_u B(x, y) (and = det(u) rho_u B(x, y) for the second basis) for group
    elements the derivation never saw, both parities, through `alg.act` itself."""
    alg = get_algebra(name, group=group)
    u = alg.random_versors(6, generator=2024)  # alternating parities (even only for even groups)
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(2, 6, alg.dim, generator=gen, dtype=torch.float64)
    for up_to_det in (False, True):
        tables = alg.equivariant_bilinears(up_to_det).dense()
        lhs = _apply(tables, alg.act(u, x), alg.act(u, y))
        rhs = alg.act(u, _apply(tables, x, y))
        if up_to_det:
            det = torch.as_tensor(alg.parity(u), dtype=torch.float64) * -2 + 1  # odd versors: det = -1
            rhs = rhs * det[:, None]
        scale = 1 + float(lhs.abs().max())
        # the block solver's accuracy (a basis derived one group element at a time): ~1e-9 relative
        assert float((lhs - rhs).abs().max()) < 1e-7 * scale, (name, group, up_to_det)
        # and no map passes by being zero: every one moves some pair of operands
        assert float(_apply(tables, x, y).abs().amax(dim=(1, 2)).min()) > 1e-3


@pytest.mark.parametrize("name, group", FAST)
def test_named_products_lie_in_the_span_and_the_join_only_up_to_det(name, group):
    alg = get_algebra(name, group=group)
    strict, twisted = alg.equivariant_bilinears(), alg.equivariant_bilinears(up_to_determinant=True)
    for product in ("geometric", "outer", "inner"):
        assert strict.project(alg.arrays[product])[1] < 1e-8, product
    assert twisted.project(alg.join_table)[1] < 1e-8
    if not alg.group.even_only:  # with reflections the join picks up det(u): not in the strict span
        assert strict.project(alg.join_table)[1] > 0.1
    assert len(strict) == DIMENSIONS[(name, group)][1] and len(twisted) == DIMENSIONS[(name, group)][2]
    assert alg.linear_basis.shape[0] == DIMENSIONS[(name, group)][0]


def test_block_solver_agrees_with_the_all_at_once_null_space():
    """The one-element-at-a-time solver finds the same number of maps per block as the null space of
    all constraints stacked (as Kronecker products), on the projective algebra."""
    alg = get_algebra("projective")
    acts = alg.sample_action_matrices(8, 99)
    basis = equivariant_bilinear_maps(acts, alg.grades)
    counts = basis.counts()
    idx = _grade_indices(alg.grades)
    for gx, ix in enumerate(idx):
        for gy, iy in enumerate(idx):
            for gz, iz in enumerate(idx):
                rx, ry, rz = (acts[:, i][:, :, i] for i in (ix, iy, iz))
                ex, ey, ez = (np.eye(len(i)) for i in (ix, iy, iz))
                stacked = np.concatenate([np.kron(np.kron(rx[u].T, ry[u].T), ez) - np.kron(np.kron(ex, ey), rz[u])
                                          for u in range(len(acts))])
                assert len(null_space(stacked)) == counts.get((gx, gy, gz), 0), (gx, gy, gz)


def test_a_user_signature_gets_its_bilinears_and_round_trips_through_the_cache():
    alg = CliffordAlgebra((1, -1, 0), name="test-bilinears")
    basis = alg.equivariant_bilinears()
    assert basis.project(alg.arrays["geometric"])[1] < 1e-8
    from algebras.bilinear_basis import BilinearBasis

    again = BilinearBasis.from_arrays(basis.to_arrays())
    assert again.blocks == basis.blocks and np.array_equal(again.dense(), basis.dense())
