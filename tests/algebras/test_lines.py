"""Lines and rays (Plücker coordinates) in the projective and conformal backends.

References are independent of the embeddings under test: the ``clifford`` package's join / outer
product of points built from its own blades, ``scipy`` rotation matrices, and the rigid motion of a
random group element read off from how it moves points.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from algebra_helpers import clifford_layout
from algebras import CliffordAlgebra, get_algebra

WITH_LINES = ("projective", "projective-distance", "conformal")
N = 6


def t64(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


def close(a, b, atol=1e-10):
    a, b = (x if isinstance(x, torch.Tensor) else t64(x) for x in (a, b))
    torch.testing.assert_close(a, b.to(a.dtype), atol=atol, rtol=1e-10)


@pytest.fixture(params=WITH_LINES)
def alg(request):
    return get_algebra(request.param)


@pytest.fixture
def rays():
    """Points x, y (the ray from x towards y) and their Plücker coordinates."""
    rng = np.random.default_rng(23)
    x, y = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    return x, y, y - x, np.cross(x, y - x)


# ---------------------------------------------------------------------------- against clifford
def clifford_points(key: str, pts: np.ndarray):
    """Points as ``clifford`` multivectors from its own blades; for CGA also ``e_inf``."""
    layout = clifford_layout("projective" if key != "conformal" else "conformal")
    b = layout.blades
    if key == "conformal":
        e_inf, e_o = b["e3"] + b["e4"], 0.5 * (b["e4"] - b["e3"])
        return [p[0] * b["e0"] + p[1] * b["e1"] + p[2] * b["e2"] + 0.5 * (p @ p) * e_inf + e_o for p in pts], e_inf
    # e_123 - x e_023 + y e_013 - z e_012: the meet of the planes x = p_x, y = p_y, z = p_z
    planes = [(b["e1"] - p[0] * b["e0"]) ^ (b["e2"] - p[1] * b["e0"]) ^ (b["e3"] - p[2] * b["e0"]) for p in pts]
    return planes, None


def clifford_line(key, P, Q, e_inf):
    return (P ^ Q ^ e_inf) if key == "conformal" else P.vee(Q)


def test_line_is_the_join_of_two_points_in_clifford(alg, rays):
    x, y, d, m = rays
    P, e_inf = clifford_points(alg.name, x)
    Q, _ = clifford_points(alg.name, y)
    L = alg.embed_line(t64(x), t64(d))
    close(alg.embed_plucker(t64(d), t64(m)), L)
    close(alg.embed_line(t64(y), t64(d)), L)  # any point of the line
    for i in range(N):
        close(L[i], clifford_line(alg.name, P[i], Q[i], e_inf).value, atol=1e-12)
        # swapping the points reverses the ray: the direction sign is kept, not normalised away
        close(alg.embed_line(t64(y[i]), t64(x[i] - y[i])), clifford_line(alg.name, Q[i], P[i], e_inf).value)
    close(alg.embed_line(t64(y), t64(-d)), -L)
    grade = 2 if alg.name != "conformal" else 3
    close(alg.grade_project(L, grade), L)


def test_points_on_the_line_are_incident(alg, rays):
    x, _, d, _ = rays
    L = alg.embed_line(t64(x), t64(d))
    on, off = t64(x + 0.7 * d), t64(x + np.cross(d, [0.3, -1.0, 0.2]))
    if alg.name == "conformal":  # X ^ L = 0 for X on the line
        incident = lambda p: alg.outer_product(alg.embed_point(p), L)  # noqa: E731
    else:  # the join of a point on the line with the line vanishes
        incident = lambda p: alg.join(alg.embed_point(p), L)  # noqa: E731
    assert float(incident(on).abs().max()) < 1e-12
    assert bool((incident(off).abs().amax(-1) > 1e-3).all())


# ---------------------------------------------------------------------------- round trips
def test_round_trip_and_nearest_point(alg, rays):
    x, _, d, m = rays
    for scale in (1.0, 1e-3, 1e3):
        d2, m2 = alg.extract_line(alg.embed_plucker(t64(scale * d), t64(scale * m)))
        close(d2, scale * d, atol=1e-10 * scale)
        close(m2, scale * m, atol=1e-10 * scale)
    d2, m2 = alg.extract_line(alg.embed_line(t64(x), t64(d)))
    foot = x - (x * d).sum(-1, keepdims=True) / (d * d).sum(-1, keepdims=True) * d
    close(torch.linalg.cross(d2, m2) / (d2 * d2).sum(-1, keepdim=True), foot)
    # homogeneous: a scaled line gives scaled coordinates, the same line
    d3, m3 = alg.extract_line(-2.5 * alg.embed_line(t64(x), t64(d)))
    close(d3, -2.5 * d)
    close(m3, -2.5 * m)


def test_shapes_dtypes_and_broadcasting(alg):
    L = alg.embed_line(torch.randn(2, 5, 3), torch.tensor([0.0, 0.0, 1.0]))
    assert L.shape == (2, 5, alg.dim) and L.dtype == torch.float32
    d, m = alg.extract_line(L)
    assert d.shape == m.shape == (2, 5, 3)
    assert alg.embed_line(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1])).dtype == torch.get_default_dtype()
    assert alg.embed_plucker(torch.zeros(3, dtype=torch.float64), torch.zeros(4, 3)).dtype == torch.float64


# ---------------------------------------------------------------------------- equivariance
def moved_ray(R, t, d, m):
    """The ray after x -> R x + t: direction R d, moment det(R) R m + t x R d."""
    Rd = np.einsum("nij,nj->ni", R, d)
    return Rd, np.linalg.det(R)[:, None] * np.einsum("nij,nj->ni", R, m) + np.cross(t, Rd)


def motion_of(alg, u):
    """(R, t) of the versors ``u``, read off from how they move the origin and the unit points."""
    move = lambda p: alg.extract_point(alg.act(u, alg.embed_point(t64(p).expand(len(u), 3)))).numpy()  # noqa: E731
    t = move(np.zeros(3))
    R = np.stack([move(e) - t for e in np.eye(3)], -1)
    return R, t


def known_motions(alg, rng):
    """Versors of rotations, translations, reflections (with offsets) and compositions, with (R, t)."""
    rot = Rotation.random(N, random_state=int(rng.integers(1 << 31)))
    q = rot.as_quat()
    U, R = alg.embed_rotation(t64(np.concatenate([q[:, 3:], q[:, :3]], -1))), rot.as_matrix()
    t = rng.standard_normal((N, 3))
    T = alg.embed_translation(t64(t))
    n, c = rng.standard_normal((N, 3)), rng.standard_normal(N)
    F = alg.embed_reflection(t64(n), t64(c))
    nh, ch = n / np.linalg.norm(n, axis=-1, keepdims=True), c / np.linalg.norm(n, axis=-1)
    M, s = np.eye(3) - 2 * nh[:, :, None] * nh[:, None, :], 2 * ch[:, None] * nh
    zero, eye = np.zeros((N, 3)), np.broadcast_to(np.eye(3), (N, 3, 3))
    gp = alg.geometric_product
    # T R F: x -> R (M x + s) + t
    return [(U, R, zero), (T, eye, t), (F, M, s),
            (gp(T, gp(U, F)), R @ M, np.einsum("nij,nj->ni", R, s) + t)]


def check_equivariance(alg, u, R, t, x, d, m):
    det = 1.0 - 2.0 * alg.parity(u).to(torch.float64)  # det(g) = (-1)^parity(u)
    torch.testing.assert_close(det, t64(np.linalg.det(R)), atol=1e-9, rtol=0)
    sign = torch.where(det < 0, float(alg.embedding_parity["line"]), 1.0)[:, None]
    d2, m2 = moved_ray(R, t, d, m)
    # the moment rule is the cross product of the moved point and direction
    close(m2, np.cross(np.einsum("nij,nj->ni", R, x) + t, d2))
    L = alg.embed_plucker(t64(d), t64(m))
    close(alg.act(u, L), sign * alg.embed_plucker(t64(d2), t64(m2)))
    close(alg.act(u, alg.embed_line(t64(x), t64(d))), sign * alg.embed_line(t64(np.einsum("nij,nj->ni", R, x) + t), t64(d2)))
    ed, em = alg.extract_line(sign * alg.act(u, L))
    close(ed, d2)
    close(em, m2)


def test_lines_follow_rotations_translations_and_reflections(alg, rays):
    x, _, d, m = rays
    rng = np.random.default_rng(5)
    for u, R, t in known_motions(alg, rng):
        check_equivariance(alg, u, R, t, x, d, m)


def test_lines_follow_random_group_elements(alg, rays):
    x, _, d, m = rays
    u = alg.random_versors(N, generator=31)
    assert bool(alg.parity(u).any()) and not bool(alg.parity(u).all())  # both parities
    R, t = motion_of(alg, u)
    check_equivariance(alg, u, R, t, x, d, m)


def test_declared_parity_is_the_joins():
    """PGA lines pick up det(g) like its points (the join is equivariant up to det); CGA lines do not."""
    assert get_algebra("projective").embedding_parity["line"] == -1
    assert get_algebra("projective-distance").embedding_parity["line"] == -1
    assert get_algebra("conformal").embedding_parity["line"] == 1
    # a mirror containing the z axis (x = 0) maps the z axis to itself; in PGA with the opposite sign
    z_axis = (torch.zeros(3, dtype=torch.float64), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    for name, sign in (("projective", -1.0), ("conformal", 1.0)):
        a = get_algebra(name)
        u = a.embed_reflection(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
        close(a.act(u, a.embed_line(*z_axis)), sign * a.embed_line(*z_axis))


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make", [lambda: get_algebra("euclidean"), lambda: CliffordAlgebra((1, -1, -1, -1), "sta")],
                         ids=["euclidean", "plain-signature"])
def test_algebras_without_lines_say_so(make):
    a = make()
    p = torch.zeros(3)
    for call in (lambda: a.embed_line(p, p), lambda: a.embed_plucker(p, p),
                 lambda: a.extract_line(torch.zeros(a.dim))):
        with pytest.raises(ValueError, match=rf"the {a.name} algebra .* cannot represent lines.*'conformal'"):
            call()
    assert "line" not in getattr(a, "embedding_parity", {})


def test_bad_line_coordinates_are_named(alg):
    with pytest.raises(ValueError, match="line direction must have last axis of size 3"):
        alg.embed_line(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="line moment contains non-finite"):
        alg.embed_plucker(torch.zeros(3), torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="line point must have last axis of size 3"):
        alg.embed_line(torch.zeros(2), torch.zeros(3))
