"""Derived equivariant structure: linear maps, invariants, attention features, norms, bilinears."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algebras.structure import GroupStructure, group_tag
from algebras import CliffordAlgebra, get_algebra, pin_group

from algebra_helpers import random_mv

FRESH_SEED = 98765  # unrelated to the solver's constraint seed

GROUP_CASES = [  # (algebra, options, expected number of equivariant linear maps)
    ("euclidean", {}, 4),
    ("euclidean", {"group": "SO(3)"}, 8),
    ("projective", {}, 9),
    ("projective", {"group": "SE(3)"}, 16),
    ("projective-distance", {}, 9),
    ("conformal", {}, 20),
    ("conformal", {"group": "SE(3)"}, 40),
    ("conformal", {"group": "Pin(4,1)"}, 6),
]


def fresh_versors(alg, n=6, seed=FRESH_SEED):
    return alg.random_versors(n, generator=seed)


def assert_commutes(alg, basis, n=6, seed=FRESH_SEED, tol=1e-10):
    u = fresh_versors(alg, n, seed)
    rho = alg.act_matrix(u)  # (n, dim, dim)
    lhs = torch.einsum("mab,nbc->nmac", basis, rho)
    rhs = torch.einsum("nab,mbc->nmac", rho, basis)
    scale = max(1.0, float(rho.abs().max()))
    assert float((lhs - rhs).abs().max()) < tol * scale


@pytest.mark.parametrize("name,options,count", GROUP_CASES)
def test_linear_basis_count_and_equivariance(name, options, count):
    alg = get_algebra(name, **options)
    basis = alg.linear_basis
    assert basis.dtype == torch.float64
    assert basis.shape == (count, alg.dim, alg.dim)
    assert len(alg.linear_basis_blocks) == count
    parities = alg.parity(fresh_versors(alg))
    if alg.group.even_only:
        assert not bool(parities.any())
    else:  # the check covers both parities
        assert bool(parities.any()) and not bool(parities.all())
    assert_commutes(alg, basis)
    # linearly independent
    assert np.linalg.matrix_rank(basis.reshape(count, -1).numpy()) == count
    # each map lives in its declared (input grade, output grade) block
    grades = np.asarray(alg.grades)
    for m, (g_in, g_out) in enumerate(alg.linear_basis_blocks):
        support = np.argwhere(basis[m].numpy() != 0)
        assert len(support) > 0
        assert set(grades[support[:, 0]]) == {g_out} and set(grades[support[:, 1]]) == {g_in}


@pytest.mark.parametrize("name,options,count", GROUP_CASES)
def test_linear_basis_entries_are_clean(name, options, count):
    basis = get_algebra(name, **options).linear_basis.numpy()
    quarters = basis * 4
    np.testing.assert_array_equal(quarters, np.round(quarters))  # exact multiples of 1/4
    assert np.abs(basis).max(axis=(1, 2)).tolist() == [1.0] * count


def test_projective_basis_is_grade_projections_and_multiplication_by_e0():
    alg = get_algebra("projective")
    basis = alg.linear_basis
    x = random_mv(alg, 5, seed=1)
    e0 = torch.zeros(alg.dim, dtype=torch.float64)
    e0[alg.blade_index[(0,)]] = 1.0
    projections, e0_maps = [], []
    for m, (g_in, g_out) in enumerate(alg.linear_basis_blocks):
        y = x @ basis[m].T
        if g_in == g_out:
            torch.testing.assert_close(y, alg.grade_project(x, g_in))
            projections.append(g_in)
        else:
            assert g_out == g_in + 1
            expected = alg.grade_project(alg.geometric_product(e0, alg.grade_project(x, g_in)), g_out)
            torch.testing.assert_close(y, expected)
            e0_maps.append(g_in)
    assert projections == [0, 1, 2, 3, 4] and e0_maps == [0, 1, 2, 3]


def test_full_group_bases_are_exactly_the_grade_projections():
    for alg in (get_algebra("euclidean"), get_algebra("conformal", group="Pin(4,1)")):
        x = random_mv(alg, 3, seed=2)
        for m, (g_in, g_out) in enumerate(alg.linear_basis_blocks):
            assert g_in == g_out
            torch.testing.assert_close(x @ alg.linear_basis[m].T, alg.grade_project(x, g_in))


def test_solver_rejects_a_non_commuting_map():
    # sanity of the commutation check itself: a map mixing grades 1 -> 2 arbitrarily fails it
    alg = get_algebra("euclidean")
    bad = torch.zeros(1, alg.dim, alg.dim, dtype=torch.float64)
    bad[0, 4, 1] = 1.0  # e_0 -> e_01
    with pytest.raises(AssertionError):
        assert_commutes(alg, bad)


@pytest.mark.parametrize(
    "signature,even,count",
    [
        ((1, 1), False, 3),            # O(2): the three grade projections
        ((1, 1), True, 6),             # SO(2): plus multiplication by I on vectors, scalars <-> I
        ((1, -1, -1, -1), False, 5),   # Lorentz group Pin(1,3)
        ((1, -1, -1, -1), True, 10),   # Spin(1,3): plus Hodge duals 0<->4, 1<->3 and on bivectors
    ],
)
def test_user_algebra_gets_its_basis_with_no_further_code(signature, even, count):
    group = pin_group(signature, name=f"Pin{signature}")
    alg = CliffordAlgebra(signature, name="user", group=group.even() if even else group)
    assert alg.linear_basis.shape == (count, alg.dim, alg.dim)
    assert_commutes(alg, alg.linear_basis)
    # the default group of a bare signature is its Pin group
    if not even:
        assert CliffordAlgebra(signature).linear_basis.shape[0] == count


def test_lorentz_boost_generators_give_lorentz_equivariant_maps():
    # a spacetime algebra whose group is generated by explicit unit vectors (timelike and spacelike)
    from algebras import VersorGroup

    def sample(count, rng):
        v = rng.standard_normal((count, 4))
        square = v[:, 0] ** 2 - (v[:, 1:] ** 2).sum(-1)
        v = v[np.abs(square) > 0.1][:count]
        while len(v) < count:
            v = np.concatenate([v, sample(count - len(v), rng)])
        return v / np.sqrt(np.abs(v[:, 0] ** 2 - (v[:, 1:] ** 2).sum(-1)))[:, None]

    alg = CliffordAlgebra((1, -1, -1, -1), name="spacetime", group=VersorGroup("Lorentz", sample).even())
    assert alg.linear_basis.shape[0] == 10
    assert_commutes(alg, alg.linear_basis)
    u = alg.random_versors(4, generator=5)
    # proper Lorentz transformations preserve the Minkowski metric on vectors
    rho = alg.act_matrix(u)[:, 1:5, 1:5]
    eta = torch.diag(torch.tensor([1.0, -1, -1, -1], dtype=torch.float64))
    torch.testing.assert_close(rho.transpose(-1, -2) @ eta @ rho, eta.expand_as(rho))


@pytest.mark.parametrize("name,options,expected", [
    ("euclidean", {}, [(0,)]),
    ("projective", {}, [(0,), (1,)]),                 # 1 and e_0
    ("conformal", {}, [(0,), (4, 5)]),                # 1 and e_inf = e_3 + e_4
    ("conformal", {"group": "Pin(4,1)"}, [(0,)]),
])
def test_invariant_basis_is_really_invariant(name, options, expected):
    alg = get_algebra(name, **options)
    inv = torch.as_tensor(alg.invariant_basis)
    assert [tuple(np.flatnonzero(v).tolist()) for v in alg.invariant_basis] == expected
    u = fresh_versors(alg)
    for v in inv:
        torch.testing.assert_close(alg.act(u, v), v.expand(len(u), -1), atol=1e-10, rtol=0)
    if name == "conformal" and not options:
        np.testing.assert_array_equal(alg.invariant_basis[1][[4, 5]], [1.0, 1.0])  # e_inf, not e_o


@pytest.mark.parametrize("name", ["euclidean", "projective", "conformal"])
def test_invariant_functionals_are_really_invariant(name):
    alg = get_algebra(name)
    f = torch.as_tensor(alg.invariant_functionals)
    np.testing.assert_array_equal(alg.invariant_functionals[0], np.eye(alg.dim)[0])  # scalar part first
    u = fresh_versors(alg)
    x = random_mv(alg, len(u), seed=3)
    torch.testing.assert_close(alg.act(u, x) @ f.T, x @ f.T, atol=1e-10, rtol=0)
    if name == "conformal":  # x -> x . e_inf is invariant because e_inf is
        assert f.shape[0] == 2


# ---------------------------------------------------------------------------- attention and norms
def test_attention_features_equal_scalar_product_and_are_invariant(backend):
    alg = backend
    q = random_mv(alg, 6, seed=4)
    k = random_mv(alg, 6, seed=5)
    qf, kf = alg.query_features(q), alg.key_features(k)
    assert qf.shape == kf.shape == (6, alg.attention_feature_dim)
    dots = (qf * kf).sum(-1)
    if alg.name != "projective-distance":
        torch.testing.assert_close(dots, alg.scalar_product(q, k))
    u = fresh_versors(alg)
    dots_moved = (alg.query_features(alg.act(u, q)) * alg.key_features(alg.act(u, k))).sum(-1)
    torch.testing.assert_close(dots_moved, dots, atol=1e-9, rtol=1e-9)


def test_distance_attention_features_measure_squared_distance():
    alg = get_algebra("projective-distance")
    g = torch.Generator().manual_seed(6)
    p, r = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    P, R = alg.embed_point(p), alg.embed_point(r)
    dots = (alg.query_features(P) * alg.key_features(R)).sum(-1)
    # the PGA scalar product of two normalised points is 1, the extra features give -|p - r|^2
    torch.testing.assert_close(alg.scalar_product(P, R), torch.ones(7, dtype=torch.float64))
    torch.testing.assert_close(dots, 1.0 - ((p - r) ** 2).sum(-1))
    # plain projective attention is blind to positions
    plain = get_algebra("projective")
    torch.testing.assert_close((plain.query_features(P) * plain.key_features(R)).sum(-1),
                               torch.ones(7, dtype=torch.float64))


def test_squared_norm_is_invariant_and_non_negative(backend):
    alg = backend
    x = random_mv(alg, 6, seed=7)
    u = fresh_versors(alg)
    n2 = alg.squared_norm(x)
    assert n2.shape == (6,) and bool((n2 >= 0).all())
    torch.testing.assert_close(alg.squared_norm(alg.act(u, x)), n2, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(alg.norm(x), n2.sqrt())
    assert float(alg.squared_norm(torch.zeros(alg.dim, dtype=torch.float64))) == 0.0


def test_squared_norm_is_positive_on_conformal_points():
    alg = get_algebra("conformal")
    X = alg.embed_point(torch.randn(5, 3, dtype=torch.float64))
    assert torch.allclose(alg.scalar_product(X, X), torch.zeros(5, dtype=torch.float64), atol=1e-12)  # null
    assert bool((alg.squared_norm(X) > 0.5).all())
    # Directions v ^ e_inf span a translation-invariant null subspace: translations of c ^ e_o
    # add arbitrarily large multiples of it, so no invariant norm can see it (as e_0 parts in PGA).
    D = alg.embed_direction(torch.randn(5, 3, dtype=torch.float64))
    torch.testing.assert_close(alg.squared_norm(D), torch.zeros(5, dtype=torch.float64))
    # the conformal group option has no invariant vector and keeps the plain norm
    full = get_algebra("conformal", group="Pin(4,1)")
    u = full.random_versors(4, generator=8)
    x = random_mv(full, 4, seed=9)
    torch.testing.assert_close(full.squared_norm(full.act(u, x)), full.squared_norm(x), rtol=1e-8, atol=1e-8)


def test_geometric_product_is_equivariant(backend):
    alg = backend
    u = fresh_versors(alg)
    x, y = random_mv(alg, len(u), seed=10), random_mv(alg, len(u), seed=11)
    torch.testing.assert_close(alg.act(u, alg.geometric_product(x, y)),
                               alg.geometric_product(alg.act(u, x), alg.act(u, y)), atol=1e-9, rtol=1e-9)


def apply_bilinear(alg, bilinear, x, y, reference):
    table = torch.as_tensor(bilinear.table)
    z = torch.einsum("...i,...j,ijk->...k", x, y, table)
    if bilinear.reference_component is not None:
        z = z * reference[..., bilinear.reference_component : bilinear.reference_component + 1]
    return z


def test_network_bilinears_are_equivariant(backend):
    alg = backend
    u = fresh_versors(alg)
    x, y, ref = (random_mv(alg, len(u), seed=s) for s in (12, 13, 14))
    names = [b.name for b in alg.bilinears]
    assert names[0] == "geometric"
    if alg.name.startswith("projective"):
        assert names == ["geometric", "join"]
    for bilinear in alg.bilinears:
        lhs = alg.act(u, apply_bilinear(alg, bilinear, x, y, ref))
        rhs = apply_bilinear(alg, bilinear, alg.act(u, x), alg.act(u, y), alg.act(u, ref))
        torch.testing.assert_close(lhs, rhs, atol=1e-9, rtol=1e-9, msg=bilinear.name)


def test_projective_join_needs_the_reference_pseudoscalar():
    alg = get_algebra("projective")
    join = next(b for b in alg.bilinears if b.name == "join")
    x, y = random_mv(alg, 2, seed=15), random_mv(alg, 2, seed=16)
    torch.testing.assert_close(torch.einsum("...i,...j,ijk->...k", x, y, torch.as_tensor(join.table)),
                               alg.join(x, y))
    u = alg.random_versors(2, generator=17, parity="odd")
    # without the reference, an odd versor flips the sign of the join
    torch.testing.assert_close(alg.join(alg.act(u, x), alg.act(u, y)), -alg.act(u, alg.join(x, y)),
                               atol=1e-9, rtol=1e-9)
    u = alg.random_versors(2, generator=17, parity="even")
    torch.testing.assert_close(alg.join(alg.act(u, x), alg.act(u, y)), alg.act(u, alg.join(x, y)),
                               atol=1e-9, rtol=1e-9)


def test_act_matrix_matches_act_and_is_a_homomorphism(backend):
    alg = backend
    u = fresh_versors(alg, 4)
    v = fresh_versors(alg, 4, seed=FRESH_SEED + 1)
    x = random_mv(alg, 4, seed=18)
    torch.testing.assert_close(alg.act_matrix(u) @ x.unsqueeze(-1), alg.act(u, x).unsqueeze(-1))
    # rho_{uv} = rho_u rho_v (the twisted adjoint is a representation, also across parities)
    uv = alg.geometric_product(u, v)
    torch.testing.assert_close(alg.act(uv, x), alg.act(u, alg.act(v, x)), atol=1e-9, rtol=1e-9)
    # it is an algebra automorphism that fixes scalars and preserves grades
    for k in range(len(alg.signature) + 1):
        torch.testing.assert_close(alg.grade_project(alg.act(u, x), k), alg.act(u, alg.grade_project(x, k)),
                                   atol=1e-9, rtol=1e-9)


# ---------------------------------------------------------------------------- cached structures
@pytest.mark.parametrize("name,group", [
    ("euclidean", "O(3)"), ("euclidean", "SO(3)"), ("projective", "E(3)"), ("projective", "SE(3)"),
    ("conformal", "E(3)"), ("conformal", "SE(3)"), ("conformal", "Pin(4,1)"), ("conformal", "Spin(4,1)"),
])
def test_shipped_group_structure_equals_a_fresh_derivation(name, group):
    from algebras.tables import SHIPPED_DIR, SHIPPED_GROUPS

    assert (name, group) in SHIPPED_GROUPS
    alg = get_algebra(name, group=group)
    with np.load(SHIPPED_DIR / alg.structure_filename) as shipped:
        fresh = alg.derive_structure_arrays()
        assert set(shipped.files) == set(fresh)
        for key in fresh:
            np.testing.assert_array_equal(shipped[key], fresh[key], err_msg=key)
    np.testing.assert_array_equal(alg.linear_basis.numpy(), fresh["linear_basis"])


def test_group_structure_is_a_value_object_built_and_checked_on_its_own():
    """GroupStructure from action matrices alone: the O(2) maps of G(2,0,0), checked against other elements,
    round-tripped through its arrays; a structure that does not commute is caught by its residual."""
    alg = CliffordAlgebra((1, 1), group=pin_group((1, 1), name="O(2)"))
    structure = GroupStructure.derive(alg.sample_action_matrices(8, 0), alg.grades)
    check = alg.sample_action_matrices(4, 99)
    assert structure.linear_basis.shape == (3, 4, 4) and structure.blocks == ((0, 0), (1, 1), (2, 2))
    assert structure.residual(check) < 1e-12
    again = GroupStructure.from_arrays(structure.to_arrays())
    np.testing.assert_array_equal(again.linear_basis, structure.linear_basis)
    assert again.blocks == structure.blocks
    wrong = GroupStructure(np.eye(4)[None] + np.triu(np.ones((4, 4)), 1)[None], ((0, 0),),
                           structure.invariant_basis, structure.invariant_functionals)
    assert wrong.residual(check) > 1e-3
    # SO(2) has more maps than O(2): a rotation-only structure fails under reflections
    so2 = GroupStructure.derive(CliffordAlgebra((1, 1), group=pin_group((1, 1)).even()).sample_action_matrices(8, 0),
                                alg.grades)
    assert so2.linear_basis.shape[0] > 3 and so2.residual(check) > 1e-3


def test_user_group_structure_is_cached_and_foreign_files_are_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("GATR_ALGEBRA_CACHE", str(tmp_path))
    group = pin_group((1, 1), name="O(2)")
    alg = CliffordAlgebra((1, 1), group=group)
    assert alg.linear_basis.shape[0] == 3
    cached = tmp_path / alg.structure_filename
    assert cached.exists()
    # a different group under the same name (here: SO(2) maps saved as "O(2)") must not be trusted
    so2 = CliffordAlgebra((1, 1), group=group.even())
    arrays = dict(so2.derive_structure_arrays())
    arrays["group"] = np.asarray(group_tag(group))
    np.savez(cached, **arrays)
    again = CliffordAlgebra((1, 1), group=group)
    assert again.linear_basis.shape[0] == 3
    assert_commutes(again, again.linear_basis)
    cached.write_bytes(b"corrupted")
    assert CliffordAlgebra((1, 1), group=group).linear_basis.shape[0] == 3


def test_a_signature_without_invertible_vectors_is_refused_not_sampled_forever():
    """G(0,0,2) has no invertible vector: its Pin group is refused with a message instead of a sampling loop
    that never ends (it used to hang the first time the maps were derived)."""
    with pytest.raises(ValueError, match=r"signature \(0, 0\) has no invertible vector"):
        CliffordAlgebra((0, 0), name="null-plane").tensors("cpu", torch.float64).linear_basis
