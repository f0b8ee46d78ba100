"""Embeddings of 3D geometry transform as the geometry says, in every backend.

Reference motions come from ``scipy.spatial.transform.Rotation`` matrices and plain linear algebra;
the algebra only supplies versors via ``embed_rotation`` / ``embed_translation`` / ``embed_reflection``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from algebras import get_algebra
from algebras.euclidean import EuclideanAlgebra

GEOMETRIC = ("euclidean", "projective", "conformal")
WITH_TRANSLATIONS = ("projective", "conformal")
N = 6


def t64(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


@pytest.fixture(params=GEOMETRIC)
def alg(request):
    return get_algebra(request.param)


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    rot = Rotation.random(N, random_state=12)
    quat_xyzw = rot.as_quat()
    return {
        "p": rng.standard_normal((N, 3)),
        "v": rng.standard_normal((N, 3)),
        "t": rng.standard_normal((N, 3)),
        "R": rot.as_matrix(),
        "quat": np.concatenate([quat_xyzw[:, 3:], quat_xyzw[:, :3]], -1),  # (w, x, y, z)
        "normal": rng.standard_normal((N, 3)) * 2.0,  # deliberately not unit length
        "offset": rng.standard_normal(N),
    }


def motion_versor(alg, d, translate: bool):
    """Versor of p -> R p (+ t) and the expected (R, t)."""
    u = alg.embed_rotation(t64(d["quat"]))
    t = d["t"] if translate else np.zeros_like(d["t"])
    if translate:
        u = alg.geometric_product(alg.embed_translation(t64(t)), u)
    return u, d["R"], t


def reflection(d):
    """Reflection in {p : n . p = c}: p -> M p + 2 c n_hat, with M = I - 2 n_hat n_hat^T."""
    n = d["normal"] / np.linalg.norm(d["normal"], axis=-1, keepdims=True)
    c = d["offset"] / np.linalg.norm(d["normal"], axis=-1)
    M = np.eye(3) - 2 * n[:, :, None] * n[:, None, :]
    return M, 2 * c[:, None] * n


def apply(M, x):
    return np.einsum("nij,nj->ni", M, x)


def close(a, b, atol=1e-10):
    a, b = (x if isinstance(x, torch.Tensor) else t64(x) for x in (a, b))
    torch.testing.assert_close(a, b.to(a.dtype), atol=atol, rtol=1e-10)


# ---------------------------------------------------------------------------- rigid motions
@pytest.mark.parametrize("translate", [False, True])
def test_points_follow_rigid_motions(alg, data, translate):
    if translate and alg.name == "euclidean":
        with pytest.raises(ValueError, match="center"):  # translations are handled by centring
            alg.embed_translation(t64(data["t"]))
        return
    u, R, t = motion_versor(alg, data, translate)
    assert not bool(alg.parity(u).any())
    P = alg.embed_point(t64(data["p"]))
    close(alg.act(u, P), alg.embed_point(t64(apply(R, data["p"]) + t)))


def test_rotor_is_right_handed_about_the_quaternion_axis(alg):
    # 90 degrees about z sends x to y
    q = torch.tensor([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)], dtype=torch.float64)
    x_axis = alg.embed_direction(torch.tensor([1.0, 0, 0], dtype=torch.float64))
    close(alg.act(alg.embed_rotation(q), x_axis), alg.embed_direction(torch.tensor([0.0, 1, 0], dtype=torch.float64)))


def test_points_follow_reflections_with_declared_parity(alg, data):
    u = alg.embed_reflection(t64(data["normal"]), t64(data["offset"]) if alg.name != "euclidean" else 0.0)
    assert bool(alg.parity(u).all())
    M, shift = reflection(data)
    if alg.name == "euclidean":
        shift = np.zeros_like(shift)
    sign = alg.embedding_parity["point"]
    assert sign == (-1 if alg.name == "projective" else 1)
    expected = alg.embed_point(t64(apply(M, data["p"]) + shift))
    close(alg.act(u, alg.embed_point(t64(data["p"]))), sign * expected)
    # either way it is the same point
    close(alg.extract_point(alg.act(u, alg.embed_point(t64(data["p"])))), apply(M, data["p"]) + shift)
    # points on the mirror are fixed (up to the declared sign)
    if alg.name != "euclidean":
        n = t64(data["normal"])
        on_plane = t64(data["offset"])[:, None] * n / (n**2).sum(-1, keepdim=True)
        close(alg.act(u, alg.embed_point(on_plane)), sign * alg.embed_point(on_plane))


def test_directions_rotate_and_ignore_translations(alg, data):
    D = alg.embed_direction(t64(data["v"]))
    u, R, _ = motion_versor(alg, data, translate=False)
    close(alg.act(u, D), alg.embed_direction(t64(apply(R, data["v"]))))
    if alg.name != "euclidean":
        T = alg.embed_translation(t64(data["t"]))
        close(alg.act(T, D), D)
    u = alg.embed_reflection(t64(data["normal"]), t64(data["offset"]) if alg.name != "euclidean" else 0.0)
    M, _ = reflection(data)
    close(alg.act(u, D), alg.embedding_parity["direction"] * alg.embed_direction(t64(apply(M, data["v"]))))


def test_axial_vectors_transform_with_det_R(alg, data):
    W = alg.embed_axial_vector(t64(data["v"]))
    u, R, _ = motion_versor(alg, data, translate=False)
    close(alg.act(u, W), alg.embed_axial_vector(t64(apply(R, data["v"]))))
    if alg.name != "euclidean":
        close(alg.act(alg.embed_translation(t64(data["t"])), W), W)
    u = alg.embed_reflection(t64(data["normal"]), t64(data["offset"]) if alg.name != "euclidean" else 0.0)
    M, _ = reflection(data)  # det M = -1
    expected = alg.embed_axial_vector(t64(-apply(M, data["v"])))
    close(alg.act(u, W), alg.embedding_parity["axial_vector"] * expected)
    assert alg.embedding_parity["axial_vector"] == 1


def test_angular_velocity_axial_vector_matches_cross_product_rule(alg, data):
    # for a reflection M, (M a) x (M b) = det(M) M (a x b): axial vectors must follow that rule
    a, b = data["p"], data["v"]
    M, _ = reflection(data)
    u = alg.embed_reflection(t64(data["normal"]))
    W = alg.embed_axial_vector(t64(np.cross(a, b)))
    moved = alg.extract_axial_vector(alg.act(u, W)) * alg.embedding_parity["axial_vector"]
    close(moved, np.cross(apply(M, a), apply(M, b)))


def test_planes_follow_motions(alg, data):
    n, d = data["normal"], data["offset"] if alg.name != "euclidean" else np.zeros(N)
    plane = alg.embed_plane(t64(n), t64(d))
    translate = alg.name != "euclidean"
    u, R, t = motion_versor(alg, data, translate)
    n2 = apply(R, n)
    normal, offset = alg.extract_plane(alg.act(u, plane))
    close(normal, n2)
    close(offset, d + (n2 * t).sum(-1))
    # a point on the plane stays on the moved plane
    p_on = d[:, None] * n / (n**2).sum(-1, keepdims=True)
    moved_point = apply(R, p_on) + t
    close(((normal.numpy() * moved_point).sum(-1)), offset.numpy())
    # reflections: plane -> {(M n) . p = d + (M n) . shift}
    u = alg.embed_reflection(t64(data["normal"]), t64(data["offset"]) if translate else 0.0)
    M, shift = reflection(data)
    if not translate:
        shift = np.zeros_like(shift)
    normal, offset = alg.extract_plane(alg.act(u, plane) * alg.embedding_parity["plane"])
    close(normal, apply(M, n))
    close(offset, d + (apply(M, n) * shift).sum(-1))


def test_plane_membership_via_inner_product():
    pga, cga = get_algebra("projective"), get_algebra("conformal")
    n = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    p_on = torch.tensor([[5.0, -3.0, 1.5]], dtype=torch.float64)  # z = 1.5 <=> 2 z = 3
    p_off = torch.tensor([[5.0, -3.0, 2.5]], dtype=torch.float64)
    # CGA: X . plane = n . p - d
    plane = cga.embed_plane(n, torch.tensor([3.0], dtype=torch.float64))
    assert float(cga.inner_product(cga.embed_point(p_on), plane)[0, 0]) == pytest.approx(0.0, abs=1e-12)
    assert float(cga.inner_product(cga.embed_point(p_off), plane)[0, 0]) == pytest.approx(2.0)
    # PGA: the join / meet incidence: plane ^ point = 0 for incidence
    plane = pga.embed_plane(n, torch.tensor([3.0], dtype=torch.float64))
    assert float(pga.outer_product(plane, pga.embed_point(p_on)).abs().max()) < 1e-12
    assert float(pga.outer_product(plane, pga.embed_point(p_off)).abs().max()) > 0.5


# ---------------------------------------------------------------------------- spheres (conformal)
def test_conformal_spheres(data):
    cga = get_algebra("conformal")
    centre, radius = t64(data["p"]), t64(np.abs(data["offset"]) + 0.5)
    S = cga.embed_sphere(centre, radius)
    dirs = data["v"] / np.linalg.norm(data["v"], axis=-1, keepdims=True)
    X = cga.embed_point(centre + radius[:, None] * t64(dirs))
    close(cga.scalar_product(X, S), torch.zeros(N, dtype=torch.float64))
    close(cga.scalar_product(S, S), radius**2)
    c2, r2 = cga.extract_sphere(S)
    close(c2, centre)
    close(r2, radius)
    # after a rigid motion, the moved points lie on the moved sphere, which is the expected sphere
    u, R, t = motion_versor(cga, data, translate=True)
    S2, X2 = cga.act(u, S), cga.act(u, X)
    close(cga.scalar_product(X2, S2), torch.zeros(N, dtype=torch.float64))
    close(S2, cga.embed_sphere(t64(apply(R, data["p"]) + t), radius))
    # points off the sphere: X . S = (r^2 - |x - c|^2) / 2
    Y = cga.embed_point(centre)
    close(cga.scalar_product(Y, S), radius**2 / 2)


def test_conformal_dot_product_is_minus_half_squared_distance(data):
    cga = get_algebra("conformal")
    X, Y = cga.embed_point(t64(data["p"])), cga.embed_point(t64(data["v"]))
    close(cga.scalar_product(X, Y), -0.5 * ((data["p"] - data["v"]) ** 2).sum(-1))
    close(cga.inner_product(X, Y)[..., 0], -0.5 * ((data["p"] - data["v"]) ** 2).sum(-1))
    e_inf = t64(cga.invariant_basis[1])
    close(cga.scalar_product(X, e_inf.expand_as(X)), -torch.ones(N, dtype=torch.float64))


# ---------------------------------------------------------------------------- round trips
def test_round_trips(alg, data):
    p, v = t64(data["p"]), t64(data["v"])
    close(alg.extract_point(alg.embed_point(p)), p)
    close(alg.extract_direction(alg.embed_direction(v)), v)
    close(alg.extract_axial_vector(alg.embed_axial_vector(v)), v)
    s = t64(data["offset"])
    close(alg.extract_scalar(alg.embed_scalar(s)), s)
    close(alg.extract_pseudoscalar(alg.embed_pseudoscalar(s)), s)
    assert alg.embed_scalar(s)[..., 1:].abs().max() == 0
    q = alg.extract_rotation(alg.embed_rotation(t64(data["quat"]) * 3.0))
    expected = t64(data["quat"] * np.where(data["quat"][:, :1] < 0, -1, 1))
    close(q, expected)
    close(alg.extract_rotation(alg.embed_rotation(-t64(data["quat"]))), expected)  # q and -q: same rotation
    if alg.name == "euclidean":
        normal, offset = alg.extract_plane(alg.embed_plane(v))
        close(normal, v)
        close(offset, torch.zeros(N, dtype=torch.float64))
    else:
        normal, offset = alg.extract_plane(alg.embed_plane(v, s))
        close(normal, v)
        close(offset, s)
        t = t64(data["t"])
        close(alg.extract_translation(alg.embed_translation(t)), t)
        # extraction is scale-invariant for homogeneous points
        close(alg.extract_point(3.5 * alg.embed_point(p)), p)


def test_embeddings_keep_batch_shape_and_dtype(alg):
    p = torch.randn(2, 5, 3)
    for x in (alg.embed_point(p), alg.embed_direction(p), alg.embed_axial_vector(p)):
        assert x.shape == (2, 5, alg.dim) and x.dtype == torch.float32
    assert alg.embed_rotation(torch.randn(2, 5, 4)).shape == (2, 5, alg.dim)
    assert alg.embed_scalar(torch.randn(2, 5)).shape == (2, 5, alg.dim)


def test_translators_compose_and_invert():
    for alg in (get_algebra("projective"), get_algebra("conformal")):
        a, b = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
        Ta, Tb = alg.embed_translation(a), alg.embed_translation(b)
        close(alg.geometric_product(Ta, Tb), alg.embed_translation(a + b))
        close(alg.versor_inverse(Ta), alg.embed_translation(-a))


# ---------------------------------------------------------------------------- euclidean centring
def test_euclidean_centring_restores_points_and_removes_translations(data):
    ega = get_algebra("euclidean")
    points = t64(np.random.default_rng(3).standard_normal((2, 7, 3)))
    centred, centre = EuclideanAlgebra.center(points, dim=-2)
    assert centre.shape == (2, 1, 3)
    close(centred + centre, points)
    close(centred.mean(-2), torch.zeros(2, 3, dtype=torch.float64))
    shift = t64([[1.0, -2.0, 3.0]])
    moved, _ = EuclideanAlgebra.center(points + shift, dim=-2)
    close(ega.embed_point(moved), ega.embed_point(centred))
    # masked mean ignores padded items
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 5:] = False
    padded = points.clone()
    padded[:, 5:] = 1e3
    centred_m, centre_m = EuclideanAlgebra.center(padded, dim=-2, mask=mask)
    close(centre_m, points[:, :5].mean(-2, keepdim=True))
    # rotations commute with centring: the network then sees E(3) = O(3) x translations
    u, R, _ = motion_versor(ega, {**data, "quat": data["quat"][:1], "t": data["t"][:1], "R": data["R"][:1]}, False)
    rotated = points @ t64(R[0]).T
    rc, _ = EuclideanAlgebra.center(rotated, dim=-2)
    close(ega.embed_point(rc), ega.act(u, ega.embed_point(centred)))


@pytest.mark.parametrize("name", ["euclidean", "projective", "conformal"])
def test_rotation_from_huge_tiny_and_integer_quaternions(name):
    """float32 quaternions of norm ~1e20 (whose squared norm overflows) and ~1e-30, and integer ones, give
    the same rotor as the unit quaternion; the zero quaternion is an error."""
    alg = get_algebra(name)
    unit = alg.embed_rotation(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    for scale in (1e20, 1e-30):
        q = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float32) * scale
        torch.testing.assert_close(alg.embed_rotation(q), unit)
    torch.testing.assert_close(alg.embed_rotation(torch.tensor([1, 1, 1, 1])), unit)
    with pytest.raises(ValueError, match="zero quaternion"):
        alg.embed_rotation(torch.zeros(4))
