"""Values, not only symmetry: the norm, the layer norm and attention against the maths written out.

References here are built from the algebra's products (themselves checked against the ``clifford``
package in tests/algebras) and from formulas in the test, never from the tables the layers use.
"""

import math

import pytest
import torch

from gatr import EquiLayerNorm, GATr
from gatr.primitives.attention import geometric_sdpa

from gatr_test_utils import randn

F64 = torch.float64


def invariant_vectors(alg) -> list[torch.Tensor]:
    """The group's invariant vectors besides 1, written out: e_0 in PGA, e_inf = e_3 + e_4 in CGA; for any
    other (plug-in) algebra solved here from the group action itself: grade-1 v with rho_u(v) = v."""
    def blade(*names):
        v = torch.zeros(alg.dim, dtype=F64)
        for idx in names:
            v[alg.blades.index((idx,))] = 1.0
        return v

    if alg.name == "euclidean":
        return []
    if alg.name in ("projective", "projective-distance"):
        return [blade(0)]
    if alg.name == "conformal":
        return [blade(3, 4)]
    vectors = [alg.blades.index((i,)) for i in range(len(alg.signature))]
    rho = alg.act_matrix(alg.random_versors(6, generator=3))[:, vectors][:, :, vectors]  # (6, n, n)
    _, sv, vt = torch.linalg.svd((rho - torch.eye(len(vectors), dtype=F64)).reshape(-1, len(vectors)))
    out = []
    for row in vt[int((sv > 1e-9).sum()):]:
        v = torch.zeros(alg.dim, dtype=F64)
        v[vectors] = row
        out.append(v)
    return out


def reference_squared_norm(alg, x: torch.Tensor) -> torch.Tensor:
    """sum_k |<x_k~ x_k>_0| + sum_w sum_k |<(w _| x)_k~ (w _| x)_k>_0| from products and projections."""
    def graded(y):
        total = torch.zeros(y.shape[:-1], dtype=F64)
        for k in sorted(set(alg.grades)):
            yk = alg.grade_project(y, k)
            total = total + alg.geometric_product(alg.reverse(yk), yk)[..., 0].abs()
        return total

    out = graded(x)
    for w in invariant_vectors(alg):
        out = out + graded(alg.left_contraction(w.expand_as(x), x))
    return out


def test_squared_norm_is_the_written_out_invariant(alg):
    x = randn(6, alg.dim)
    torch.testing.assert_close(alg.squared_norm(x), reference_squared_norm(alg, x), rtol=1e-12, atol=1e-12)
    # the invariant-vector term is what makes conformal points visible: X = x + x^2/2 e_inf + e_o is null
    # (<X~ X>_0 = 0) and e_inf _| X = -1; in PGA e_0 _| x vanishes identically (e_0 is null and orthogonal)
    if alg.name == "conformal":
        points = alg.embed_point(randn(5, 3))
        torch.testing.assert_close(alg.squared_norm(points), torch.ones(5, dtype=F64), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_layer_norm_normalises_with_eps_inside_the_root(alg, scale):
    """out = x / sqrt(mean_channels N(x_c) + eps): mean_c N(out_c) = m / (m + eps), and the eps term is
    visible at small inputs (scale 1e-3 puts N ~ eps)."""
    eps = 1e-6
    x = scale * randn(4, 5, 3, alg.dim)
    out, _ = EquiLayerNorm(alg, eps=eps)(x)
    m = reference_squared_norm(alg, x).mean(-1, keepdim=True)  # (4, 5, 1): MEAN over the 3 channels
    torch.testing.assert_close(out, x / torch.sqrt(m + eps).unsqueeze(-1), rtol=1e-12, atol=0)
    ratio = reference_squared_norm(alg, out).mean(-1)
    torch.testing.assert_close(ratio, (m / (m + eps)).squeeze(-1), rtol=1e-10, atol=0)
    if scale == 1.0:
        assert torch.allclose(ratio, torch.ones_like(ratio), atol=1e-4)


def _attention_weights(alg, q_mv, k_mv):
    """geometric_sdpa's attention weights: values are one-hot scalars, one per key."""
    n = k_mv.shape[-3]
    v_s = torch.eye(n, dtype=F64).expand(*k_mv.shape[:-3], n, n)
    q_s, k_s = torch.zeros(*q_mv.shape[:-2], 0, dtype=F64), torch.zeros(*k_mv.shape[:-2], 0, dtype=F64)
    _, weights = geometric_sdpa(alg, q_mv, k_mv, torch.zeros_like(k_mv), q_s, k_s, v_s)
    return weights


def test_attention_weights_are_the_written_out_softmax(alg):
    """Logits = sum_c <q_c~ k_c>_0 (+ minus squared point distances in iPGA) / sqrt(feature length)."""
    q, k = randn(1, 3, 2, alg.dim), randn(1, 4, 2, alg.dim)
    logits = alg.geometric_product(alg.reverse(q[:, :, None]), k[:, None])[..., 0].sum(-1)  # (1, 3, 4)
    if alg.name == "projective-distance":
        # points in PGA: weight w = x_{123}, coordinates c from the trivector part; -|w_k c_q - w_q c_k|^2
        tri = [alg.blades.index(b) for b in ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))]
        w_q, w_k = q[..., tri[0]], k[..., tri[0]]
        c_q, c_k = q[..., tri[1:]], k[..., tri[1:]]
        diff = w_k[:, None, :, :, None] * c_q[:, :, None] - w_q[:, :, None, :, None] * c_k[:, None]
        logits = logits - diff.pow(2).sum((-1, -2))
    width = 2 * alg.attention_feature_dim
    expected = torch.softmax(logits / math.sqrt(width), -1)
    torch.testing.assert_close(_attention_weights(alg, q, k), expected, rtol=1e-10, atol=1e-12)


def test_distance_aware_attention_prefers_the_nearest_point():
    """iPGA (and CGA) attention sees distances between embedded points; plain PGA does not."""
    from algebras import get_algebra

    target = torch.tensor([[0.0, 0.0, 0.0]], dtype=F64)
    keys = torch.tensor([[0.3, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=F64)
    for name, sees in (("projective-distance", True), ("conformal", True), ("projective", False)):
        alg = get_algebra(name)
        q = alg.embed_point(target)[None, :, None]
        k = alg.embed_point(keys)[None, :, None]
        w = _attention_weights(alg, q, k)[0, 0]
        if sees:
            assert w[0] > w[1] > w[2], (name, w)
        else:
            torch.testing.assert_close(w, torch.full_like(w, 1 / 3), rtol=0, atol=1e-12)


def test_bf16_autocast_close_to_float32(alg):
    """The whole net under bf16 autocast stays within 5% (relative, max entry) of float32 on CPU; measured
    0.3-1.3% on the four algebras (bf16 has an 8-bit mantissa)."""
    torch.manual_seed(0)
    net = GATr(alg, in_mv_channels=2, out_mv_channels=1, hidden_mv_channels=8, in_s_channels=3,
               out_s_channels=1, hidden_s_channels=8, num_blocks=2, num_heads=2)
    mv, s = torch.randn(2, 6, 2, alg.dim), torch.randn(2, 6, 3)
    with torch.no_grad():
        ref_mv, ref_s = net(mv, s)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_mv, low_s = net(mv, s)
    rel_mv = (low_mv.float() - ref_mv).abs().max() / ref_mv.abs().max()
    rel_s = (low_s.float() - ref_s).abs().max() / ref_s.abs().max()
    assert rel_mv < 0.05 and rel_s < 0.05, (float(rel_mv), float(rel_s))
    assert rel_mv > 0  # autocast really ran in bf16


def _coefficients(alg, matrix: torch.Tensor) -> torch.Tensor:
    """Coefficients of ``matrix`` (dim, dim) in the derived basis; asserts it lies in its span."""
    basis = alg.linear_basis  # (n_maps, dim, dim)
    coef = torch.linalg.lstsq(basis.reshape(len(basis), -1).T, matrix.reshape(-1, 1)).solution[:, 0]
    torch.testing.assert_close(torch.einsum("m,mij->ij", coef, basis), matrix, atol=1e-10, rtol=0)
    return coef


def _matrix_of(fn, dim: int) -> torch.Tensor:
    """Matrix of a linear map on multivectors, column j = fn(e_j)."""
    return fn(torch.eye(dim, dtype=F64)).T


def test_equilinear_computes_known_equivariant_maps(alg):
    """EquiLinear with weights solved for a known equivariant map computes that map: grade projections
    (every algebra), x -> w x for an invariant vector w (e_0 in PGA, e_inf in CGA). The maps are built
    from the algebra's projections and products, not from the derived basis or the layer's kernels."""
    from gatr import EquiLinear

    targets = {f"grade {k}": (lambda k: lambda x: alg.grade_project(x, k))(k) for k in sorted(set(alg.grades))}
    for i, w in enumerate(invariant_vectors(alg)):
        targets[f"w{i} x"] = (lambda w: lambda x: alg.geometric_product(w.expand_as(x), x))(w)
    layer = EquiLinear(alg, len(targets), len(targets), bias=False).double()
    with torch.no_grad():
        layer.weight_mv.zero_()
        for c, fn in enumerate(targets.values()):
            layer.weight_mv[c, c] = _coefficients(alg, _matrix_of(fn, alg.dim))
    x = randn(5, len(targets), alg.dim)
    out, _ = layer(x)
    for c, (name, fn) in enumerate(targets.items()):
        torch.testing.assert_close(out[:, c], fn(x[:, c]), atol=1e-10, rtol=0, msg=name)
