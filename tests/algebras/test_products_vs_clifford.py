"""Every product and unary operation agrees with the ``clifford`` package, blade by blade.

Covers the three built-in signatures and two user signatures (G(2,0,0), the spacetime algebra
G(1,3)); the shipped Cayley tables must equal a fresh derivation from ``clifford``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algebras import CliffordAlgebra
from algebras.tables import SHIPPED_DIR, SHIPPED_SIGNATURES, derive_tables, signature_key

from algebra_helpers import SIGNATURES, algebra_for, clifford_layout

N_SAMPLES = 3
KEYS = tuple(SIGNATURES)


@pytest.fixture(scope="module", params=KEYS)
def pair(request):
    """(our algebra, clifford layout, random operand pairs as numpy arrays)."""
    alg = algebra_for(request.param)
    layout = clifford_layout(request.param)
    assert tuple(layout.sig) == alg.signature
    assert [tuple(b) for b in layout.bladeTupList] == list(alg.blades)
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((N_SAMPLES, alg.dim))
    ys = rng.standard_normal((N_SAMPLES, alg.dim))
    return request.param, alg, layout, xs, ys


def mv(layout, values):
    return layout.MultiVector(value=np.asarray(values, dtype=np.float64))


BINARY = {
    "geometric_product": lambda a, b: a * b,
    "outer_product": lambda a, b: a ^ b,
    "inner_product": lambda a, b: a | b,
    "left_contraction": lambda a, b: a.lc(b),
    "join": lambda a, b: a.vee(b),
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_products_match_clifford(pair, op):
    _, alg, layout, xs, ys = pair
    ours = getattr(alg, op)(torch.as_tensor(xs), torch.as_tensor(ys)).numpy()
    for i in range(N_SAMPLES):
        ref = BINARY[op](mv(layout, xs[i]), mv(layout, ys[i])).value
        np.testing.assert_allclose(ours[i], ref, rtol=1e-12, atol=1e-12, err_msg=op)


UNARY = {
    "reverse": lambda a: ~a,
    "grade_involute": lambda a: a.gradeInvol(),
    "right_complement": lambda a: a.right_complement(),
    "left_complement": lambda a: a.left_complement(),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_operations_match_clifford(pair, op):
    _, alg, layout, xs, _ = pair
    ours = getattr(alg, op)(torch.as_tensor(xs)).numpy()
    for i in range(N_SAMPLES):
        np.testing.assert_allclose(ours[i], UNARY[op](mv(layout, xs[i])).value, atol=1e-12, err_msg=op)


def test_complements_are_inverse_and_match_definition(pair):
    _, alg, layout, xs, _ = pair
    x = torch.as_tensor(xs)
    torch.testing.assert_close(alg.left_complement(alg.right_complement(x)), x)
    torch.testing.assert_close(alg.right_complement(alg.left_complement(x)), x)
    # e_A ^ rc(e_A) = I for every basis blade
    eye = torch.eye(alg.dim, dtype=torch.float64)
    wedge = alg.outer_product(eye, alg.right_complement(eye))
    expected = torch.zeros_like(wedge)
    expected[:, -1] = 1.0
    torch.testing.assert_close(wedge, expected)


def test_grade_projection_matches_clifford(pair):
    _, alg, layout, xs, _ = pair
    x = torch.as_tensor(xs)
    n = len(alg.signature)
    for k in range(n + 1):
        ours = alg.grade_project(x, k).numpy()
        for i in range(N_SAMPLES):
            np.testing.assert_allclose(ours[i], mv(layout, xs[i])(k).value, atol=0)
    # several grades at once = sum of the single projections; all grades = identity
    torch.testing.assert_close(alg.grade_project(x, [0, n]), alg.grade_project(x, 0) + alg.grade_project(x, n))
    torch.testing.assert_close(alg.grade_project(x, range(n + 1)), x)


def test_dual_matches_clifford(pair):
    _, alg, layout, xs, _ = pair
    if alg.is_degenerate:
        with pytest.raises(ValueError, match="degenerate"):
            alg.dual(torch.as_tensor(xs))
        return
    ours = alg.dual(torch.as_tensor(xs)).numpy()
    for i in range(N_SAMPLES):
        np.testing.assert_allclose(ours[i], mv(layout, xs[i]).dual().value, atol=1e-12)


def test_versor_inverse_matches_clifford_inv(pair):
    key, alg, layout, _, _ = pair
    u = alg.random_versors(4, generator=3)
    ours = alg.versor_inverse(u).numpy()
    for i in range(len(u)):
        ref = mv(layout, u[i].numpy()).inv().value
        np.testing.assert_allclose(ours[i], ref, rtol=1e-9, atol=1e-9)
        one = (mv(layout, u[i].numpy()) * mv(layout, ours[i])).value
        np.testing.assert_allclose(one, np.eye(alg.dim)[0], atol=1e-9)


def test_scalar_product_and_norm_match_clifford(pair):
    key, alg, layout, xs, ys = pair
    x, y = torch.as_tensor(xs), torch.as_tensor(ys)
    sp = alg.scalar_product(x, y).numpy()
    for i in range(N_SAMPLES):
        a, b = mv(layout, xs[i]), mv(layout, ys[i])
        assert sp[i] == pytest.approx((~a * b)[()], rel=1e-12, abs=1e-12)
        assert alg.scalar_product(x[i], x[i]).item() == pytest.approx(a.mag2(), rel=1e-12)
    assert sp.shape == (N_SAMPLES,)
    if key == "euclidean":
        norms = alg.norm(x).numpy()
        for i in range(N_SAMPLES):
            assert norms[i] == pytest.approx(abs(mv(layout, xs[i])), rel=1e-12)


def test_products_broadcast_over_leading_axes():
    alg = algebra_for("projective")
    x = torch.randn(5, 1, alg.dim, dtype=torch.float64)
    y = torch.randn(1, 4, alg.dim, dtype=torch.float64)
    z = alg.geometric_product(x, y)
    assert z.shape == (5, 4, alg.dim)
    torch.testing.assert_close(z[2, 3], alg.geometric_product(x[2, 0], y[0, 3]))


@pytest.mark.parametrize("signature", SHIPPED_SIGNATURES)
def test_shipped_tables_are_derived_not_hand_written(signature):
    fresh = derive_tables(signature)
    with np.load(SHIPPED_DIR / f"tables_{signature_key(signature)}.npz") as shipped:
        assert set(shipped.files) == set(fresh)
        for name in fresh:
            np.testing.assert_array_equal(shipped[name], fresh[name], err_msg=name)


def test_user_signature_tables_are_cached(tmp_path, monkeypatch):
    from algebras import tables

    monkeypatch.setenv("GATR_ALGEBRA_CACHE", str(tmp_path))
    tables.load_tables.cache_clear()
    try:
        alg = CliffordAlgebra((1, 1, -1), name="test-cache")
        cached = tmp_path / "tables_ppm.npz"
        assert cached.exists()
        with np.load(cached) as data:
            np.testing.assert_array_equal(data["geometric"], derive_tables((1, 1, -1))["geometric"])
        assert alg.dim == 8
        # a corrupted cache file is re-derived, not trusted
        cached.write_bytes(b"garbage")
        tables.load_tables.cache_clear()
        again = CliffordAlgebra((1, 1, -1))
        np.testing.assert_array_equal(again.tensors(dtype=torch.float64).geometric.numpy(),
                                      alg.tensors(dtype=torch.float64).geometric.numpy())
    finally:
        tables.load_tables.cache_clear()
