"""Registry, error messages, dtypes / constant caching, and loading the shipped tables without deriving."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import algebras
from algebras import CliffordAlgebra, available_algebras, get_algebra, register_algebra
from algebras import registry

from algebra_helpers import random_mv


# ---------------------------------------------------------------------------- registry
def test_names_aliases_and_passthrough():
    built_in = ["conformal", "euclidean", "projective", "projective-distance"]
    assert [n for n in available_algebras() if n in built_in] == built_in  # sorted; installed plug-ins may add more
    for alias, name in {"ega": "euclidean", "pga": "projective", "ipga": "projective-distance",
                        "cga": "conformal"}.items():
        assert get_algebra(alias) is get_algebra(name)
        assert get_algebra(alias.upper()).name == name
    alg = get_algebra("conformal")
    assert get_algebra(alg) is alg
    assert get_algebra("  Conformal ") is alg  # cached: one object per name and options
    with pytest.raises(ValueError, match="options"):
        get_algebra(alg, group="SE(3)")
    expected = {"euclidean": (1, 1, 1), "projective": (0, 1, 1, 1), "projective-distance": (0, 1, 1, 1),
                "conformal": (1, 1, 1, 1, -1)}
    for name, signature in expected.items():
        a = get_algebra(name)
        assert (a.name, a.signature, a.dim) == (name, signature, 2 ** len(signature))
        assert a.grades == tuple(len(b) for b in a.blades)
        assert list(a.blades) == sorted(a.blades, key=lambda b: (len(b), b))


def test_options_select_the_group_and_are_cached_separately():
    default = get_algebra("conformal")
    full = get_algebra("cga", group="Pin(4,1)")
    assert full is get_algebra("conformal", group="Pin(4,1)") and full is not default
    assert (default.group.name, full.group.name) == ("E(3)", "Pin(4,1)")
    assert get_algebra("pga", group="SE(3)").group.even_only
    assert get_algebra("ega", group="SO(3)").random_versors(3, generator=0).shape == (3, 8)
    with pytest.raises(ValueError, match="no odd elements"):
        get_algebra("ega", group="SO(3)").random_versors(2, parity="odd")


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        get_algebra("hyperbolic")
    for name in available_algebras() + ["cga", "pga"]:
        assert name in str(info.value)
    with pytest.raises(TypeError):
        get_algebra(3)


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test do not leak into the others."""
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    monkeypatch.setattr(registry, "_INSTANCES", dict(registry._INSTANCES))


def test_register_user_algebra(scratch_registry):
    calls = []

    def factory(**options):
        calls.append(options)
        return CliffordAlgebra((1, -1, -1, -1), name="minkowski")

    register_algebra("minkowski", factory, aliases=("sta",))
    assert "minkowski" in available_algebras()
    sta = get_algebra("sta")
    assert sta is get_algebra("minkowski") and len(calls) == 1
    assert sta.dim == 16 and sta.linear_basis.shape[0] == 5  # Pin(1,3) by default, derived on demand
    with pytest.raises(ValueError, match="already registered"):
        register_algebra("minkowski", factory)
    with pytest.raises(ValueError, match="already registered"):
        register_algebra("other", factory, aliases=("cga",))
    with pytest.raises(TypeError):
        register_algebra("broken", None)
    register_algebra("minkowski", factory, overwrite=True)  # replaces and drops the cached instance
    assert get_algebra("minkowski") is not sta


def test_a_failing_factory_path_is_named_and_not_listed(scratch_registry):
    """A ``"module:attribute"`` factory joins the listing only once it has built an algebra."""
    with pytest.raises(TypeError, match=r"algebra 'json:loads' failed: loads\(\) missing"):
        get_algebra("json:loads")
    with pytest.raises(TypeError, match="algebra .builtins:dict. returned dict, not an algebra the network can use"):
        get_algebra("builtins:dict")
    assert not {"json:loads", "builtins:dict"} & set(available_algebras())
    with pytest.raises(ValueError, match="valid names: .*'conformal'") as info:
        get_algebra("nope")
    assert "json:loads" not in str(info.value)
    get_algebra("algebras:EuclideanAlgebra")
    assert "algebras:EuclideanAlgebra" in available_algebras()


def test_broken_plugins_are_not_listed_and_their_errors_name_them(scratch_registry, monkeypatch):
    """Entry points that cannot be loaded, are not callable, or fail to build their algebra: each error names
    the plug-in (entry point name and value), and none of them is listed."""
    from types import SimpleNamespace

    def missing():
        raise ImportError("No module named 'no_such_module'")

    plugins = [SimpleNamespace(name="answer", value="pkg.mod:ANSWER", load=lambda: 42),
               SimpleNamespace(name="loads", value="json:loads", load=lambda: json.loads),
               SimpleNamespace(name="missing", value="no_such_module:f", load=missing)]
    monkeypatch.setattr(registry, "entry_points", lambda group: plugins if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    with pytest.warns(UserWarning) as caught:
        names = available_algebras()
    assert sorted(str(w.message).split(" failed to load: ")[0] for w in caught) == [
        "algebra plug-in 'answer' (pkg.mod:ANSWER)", "algebra plug-in 'missing' (no_such_module:f)"]
    assert "answer" not in names and "missing" not in names and "conformal" in names
    with pytest.raises(ValueError, match=r"'answer' \(pkg.mod:ANSWER\) is broken: .*not callable \(got int\)"):
        get_algebra("answer")
    with pytest.raises(ValueError, match=r"plug-in 'missing' \(no_such_module:f\) is broken: .*no_such_module"):
        get_algebra("missing")
    with pytest.raises(TypeError, match=r"plug-in 'loads' \(json:loads\) failed: loads\(\) missing"):
        get_algebra("loads")  # callable, so listed until it fails to build its algebra
    assert "loads" not in available_algebras()
    with pytest.raises(ValueError, match=r"plug-in 'loads' \(json:loads\) is broken"):
        get_algebra("loads")


# ---------------------------------------------------------------------------- errors
def test_wrong_last_axis_names_the_expected_size():
    pga = get_algebra("projective")
    with pytest.raises(ValueError, match="size 16"):
        pga.geometric_product(torch.zeros(4, 32), torch.zeros(4, 16))
    with pytest.raises(ValueError, match="size 16"):
        pga.reverse(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="size 16"):
        pga.act(torch.zeros(16), torch.zeros(2, 15))
    with pytest.raises(ValueError, match="size 3"):
        pga.embed_point(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="size 4"):
        pga.embed_rotation(torch.zeros(2, 3))
    with pytest.raises(TypeError):
        pga.check(np.zeros(16))


def test_zero_quaternion_and_zero_normal():
    for alg in (get_algebra("euclidean"), get_algebra("conformal")):
        with pytest.raises(ValueError, match="zero quaternion"):
            alg.embed_rotation(torch.tensor([[1.0, 0, 0, 0], [0.0, 0, 0, 0]]))
        with pytest.raises(ValueError, match="zero plane normal"):
            alg.embed_reflection(torch.zeros(3))


def test_non_invertible_versors():
    cga, pga = get_algebra("conformal"), get_algebra("projective")
    x = random_mv(cga, 2)
    e_inf = torch.as_tensor(cga.invariant_basis[1])  # null vector e_3 + e_4
    with pytest.raises(ValueError, match="not invertible"):
        cga.act(e_inf, x)
    e0 = torch.zeros(16, dtype=torch.float64)
    e0[1] = 1.0
    with pytest.raises(ValueError, match="not invertible"):
        pga.act(e0, random_mv(pga, 2))
    with pytest.raises(ValueError, match="not invertible"):
        pga.versor_inverse(torch.zeros(16))


def test_mixed_parity_and_non_versors():
    ega = get_algebra("euclidean")
    u = torch.zeros(8, dtype=torch.float64)
    u[0], u[1] = 1.0, 1.0  # 1 + e_0: even and odd parts
    with pytest.raises(ValueError, match="both even and odd"):
        ega.act(u, random_mv(ega, 1))
    v = torch.zeros(8, dtype=torch.float64)
    v[0], v[4] = 1.0, 1.0  # 1 + e_01 is a rotor (times a scale): fine
    ega.act(v, random_mv(ega, 1))
    # in G(3) every even element is a scaled rotor; in CGA a generic even multivector is no versor
    cga = get_algebra("conformal")
    w = random_mv(cga, seed=3) * (cga.tensors(dtype=torch.float64).involution > 0)
    with pytest.raises(ValueError, match="not a versor"):
        cga.act(w, random_mv(cga, 1))


def test_grade_out_of_range():
    pga = get_algebra("projective")
    with pytest.raises(ValueError, match="grade 5 out of range"):
        pga.grade_project(random_mv(pga), 5)
    with pytest.raises(ValueError, match="out of range"):
        pga.grade_project(random_mv(pga), [0, -1])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_embedding_inputs(bad):
    for alg in (get_algebra("euclidean"), get_algebra("projective"), get_algebra("conformal")):
        p = torch.tensor([[0.0, 1.0, bad]])
        for embed in (alg.embed_point, alg.embed_direction, alg.embed_axial_vector, alg.embed_plane):
            with pytest.raises(ValueError, match="non-finite"):
                embed(p)
        with pytest.raises(ValueError, match="non-finite"):
            alg.embed_scalar(torch.tensor([bad]))
        with pytest.raises(ValueError, match="non-finite"):
            alg.embed_rotation(torch.tensor([1.0, 0.0, 0.0, bad]))
    with pytest.raises(ValueError, match="non-finite"):
        get_algebra("conformal").embed_sphere(torch.zeros(3), torch.tensor(bad))


@pytest.mark.parametrize("signature", [(), (1, 2), (1, 1, 1, 1, 1, 1, 1, 1, 1), ("a",)])
def test_bad_signature(signature):
    with pytest.raises(ValueError):
        CliffordAlgebra(signature)


def test_unknown_group_option_and_bad_parity():
    for name in ("euclidean", "projective", "conformal"):
        with pytest.raises(ValueError, match="unknown group 'Lorentz'"):
            get_algebra(name, group="Lorentz")
    with pytest.raises(ValueError, match="parity"):
        get_algebra("pga").random_versors(2, parity="both")


def test_euclidean_translation_points_to_center():
    ega = get_algebra("euclidean")
    with pytest.raises(ValueError, match=r"center\(\)"):
        ega.embed_translation(torch.zeros(3))
    with pytest.raises(ValueError, match="through the origin"):
        ega.embed_plane(torch.tensor([1.0, 0, 0]), 1.0)


def test_dual_in_degenerate_algebra():
    with pytest.raises(ValueError, match="degenerate"):
        get_algebra("projective").dual(torch.zeros(16))


# ---------------------------------------------------------------------------- dtypes and constants
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64(backend, dtype):
    alg = backend
    u = alg.random_versors(4, generator=1, dtype=dtype)
    x = random_mv(alg, 4, seed=2, dtype=dtype)
    y = alg.act(u, alg.geometric_product(x, x))
    assert y.dtype == dtype and u.dtype == dtype
    assert alg.squared_norm(x).dtype == dtype and alg.query_features(x).dtype == dtype
    ref = alg.act(u.double(), alg.geometric_product(x.double(), x.double()))
    tol = 1e-3 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(y.double(), ref, atol=tol * float(ref.abs().max()), rtol=tol)
    p = alg.embed_point(torch.randn(5, 3, dtype=dtype))
    assert p.dtype == dtype


def test_constants_are_cached_per_device_and_dtype():
    alg = get_algebra("conformal")
    a = alg.tensors("cpu", torch.float32)
    assert alg.tensors("cpu", torch.float32) is a and a.geometric is a.geometric
    assert alg.tensors(None, torch.float32) is a
    assert alg.tensors(torch.device("cpu"), torch.float32) is a
    b = alg.tensors("cpu", torch.float64)
    assert b is not a and b.geometric.dtype == torch.float64 and a.geometric.dtype == torch.float32
    assert alg.linear_basis is alg.linear_basis
    assert a.linear_basis.shape == alg.linear_basis.shape and a.linear_basis.dtype == torch.float32
    calls = []
    assert a.derived(lambda t: calls.append(1) or t.dtype) == torch.float32
    build = lambda t: calls.append(1) or t.geometric.sum()  # noqa: E731
    assert a.derived(build) is a.derived(build) and len(calls) == 2  # built once per build function


# ---------------------------------------------------------------------------- import budget
BUDGET_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    calls = []
    _svd = np.linalg.svd
    def counting_svd(*args, **kwargs):  # the derivation's null spaces are SVDs; shipped bases need none
        calls.append(1)
        return _svd(*args, **kwargs)
    np.linalg.svd = counting_svd
    import torch
    t1 = time.perf_counter()
    import algebras
    algs = [algebras.get_algebra(n) for n in ("euclidean", "projective", "projective-distance", "conformal")]
    for a in algs:
        a.linear_basis
    t2 = time.perf_counter()
    print(json.dumps({"build": t2 - t1, "svd_calls": len(calls), "clifford_imported": "clifford" in sys.modules}))
    """
)


def test_built_in_algebras_load_shipped_tables_without_deriving():
    """``import algebras`` + the four backends load shipped tables and bases: no ``clifford`` import, no
    null-space SVD (what made a cold start slow). The time is printed, not asserted: a wall-clock bound
    is flaky on a shared machine (README: ~0.05 s on a quiet core)."""
    out = subprocess.run([sys.executable, "-c", BUDGET_SCRIPT], capture_output=True, text=True, check=True,
                         timeout=120)
    timing = json.loads(out.stdout.strip().splitlines()[-1])
    assert not timing["clifford_imported"], "built-in algebras must use the shipped tables"
    assert timing["svd_calls"] == 0, timing
    print(timing)
