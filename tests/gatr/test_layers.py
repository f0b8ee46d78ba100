"""Equivariance (float64, 1e-12 relative; measured ~1e-15) of every layer on every backend, shapes and init."""

import pytest
import torch

from gatr import (EquiLayerNorm, EquiLinear, GATrBlock, GeometricAttention, GeometricBilinear,
                  GeometricCrossAttention, ScalarGatedNonlinearity)

from gatr_test_utils import assert_equivariant, randn, reference_pseudoscalar

B, N = 4, 5  # batch (one versor per batch entry), items


def test_equilinear_equivariant(alg):
    layer = EquiLinear(alg, 3, 4, 2, 5).double()
    with torch.no_grad():  # non-zero biases too
        layer.bias_mv.normal_()
        layer.bias_s.normal_()
    s = randn(B, N, 2)
    assert_equivariant(alg, layer, [randn(B, N, 3, alg.dim)], [s])


def test_equilinear_dense_matches_basis(alg):
    layer = EquiLinear(alg, 2, 3, 1, 2).double()
    x, s = randn(N, 2, alg.dim), randn(N, 1)
    mv, out_s = layer(x, s)
    basis = alg.linear_basis
    expected = torch.einsum("oim,mab,nib->noa", layer.weight_mv, basis, x)
    expected = expected + torch.einsum("osk,ka,ns->noa", layer.weight_s2mv,
                                       torch.as_tensor(alg.invariant_basis), s)
    expected = expected + layer.bias_mv @ torch.as_tensor(alg.invariant_basis)
    torch.testing.assert_close(mv, expected)
    assert out_s.shape == (N, 2)


def test_bilinear_equivariant(alg):
    layer = GeometricBilinear(alg, 3, 4, 2, 3).double()
    ref = reference_pseudoscalar(alg, B)
    assert_equivariant(alg, lambda x, s, r: layer(x, s, reference_mv=r), [randn(B, N, 3, alg.dim)],
                       [randn(B, N, 2), ref], transform_reference=1)


def test_norm_and_nonlinearity_equivariant(alg):
    x, s = randn(B, N, 3, alg.dim), randn(B, N, 2)
    mv, _ = assert_equivariant(alg, EquiLayerNorm(alg), [x], [s])
    assert torch.isfinite(mv).all()
    assert_equivariant(alg, ScalarGatedNonlinearity("gelu"), [x], [s])


@pytest.mark.parametrize("multi_query", [False, True])
def test_attention_equivariant_with_masks(alg, multi_query):
    layer = GeometricAttention(alg, 3, 2, 2, 3, num_heads=2, hidden_mv_channels=2, hidden_s_channels=3,
                               multi_query=multi_query).double()
    causal = torch.ones(N, N, dtype=torch.bool).tril()
    kpm = torch.ones(B, N, dtype=torch.bool)
    kpm[:, -2:] = False
    assert_equivariant(alg, lambda x, s: layer(x, s, attention_mask=causal, key_padding_mask=kpm),
                       [randn(B, N, 3, alg.dim)], [randn(B, N, 2)])
    additive = randn(N, N)
    assert_equivariant(alg, lambda x, s: layer(x, s, attention_mask=additive), [randn(B, N, 3, alg.dim)],
                       [randn(B, N, 2)])


def test_cross_attention_equivariant(alg):
    layer = GeometricCrossAttention(alg, 2, 3, 2, 1, 2, 2, num_heads=2, hidden_mv_channels=2,
                                    hidden_s_channels=2).double()
    kpm = torch.ones(B, 7, dtype=torch.bool)
    kpm[:, 0] = False
    mv, s = assert_equivariant(
        alg, lambda q, kv, qs, kvs: layer(q, qs, kv, kvs, key_padding_mask=kpm),
        [randn(B, N, 2, alg.dim), randn(B, 7, 3, alg.dim)], [randn(B, N, 1), randn(B, 7, 2)])
    assert mv.shape == (B, N, 2, alg.dim) and s.shape == (B, N, 2)


def test_block_equivariant(alg):
    block = GATrBlock(alg, 4, 4, num_heads=2).double()
    ref = reference_pseudoscalar(alg, B)
    kpm = torch.ones(B, N, dtype=torch.bool)
    kpm[0, -1] = False
    assert_equivariant(alg, lambda x, s, r: block(x, s, key_padding_mask=kpm, reference_mv=r),
                       [randn(B, N, 4, alg.dim)], [randn(B, N, 4), ref], transform_reference=1)


def test_equilinear_init_variance(alg):
    for in_mv, out_mv, in_s, out_s in [(16, 16, 0, 0), (16, 16, 32, 32), (4, 32, 64, 8)]:
        layer = EquiLinear(alg, in_mv, out_mv, in_s, out_s)
        x, s = torch.randn(4096, in_mv, alg.dim), torch.randn(4096, in_s)
        with torch.no_grad():
            mv, out = layer(x, s if in_s else None)
        assert 0.5 < mv.var().item() < 2.0, (alg.name, in_mv, out_mv, in_s, mv.var())
        per_component = mv.var(dim=(0, 1))
        assert (per_component > 0.25).all() and (per_component < 4).all(), per_component
        if out_s:
            assert 0.5 < out.var().item() < 2.0


def test_bilinear_init_variance(alg):
    layer = GeometricBilinear(alg, 16, 16, 16, 16)
    ref = torch.zeros(alg.dim)
    ref[-1] = 1.0
    with torch.no_grad():
        mv, s = layer(torch.randn(1024, 16, alg.dim), torch.randn(1024, 16), reference_mv=ref)
    assert 0.2 < mv.var().item() < 5.0 and 0.2 < s.var().item() < 5.0


def test_wrong_shapes_raise(alg):
    layer = EquiLinear(alg, 3, 4, 2, 1)
    with pytest.raises(ValueError, match=rf"\(\.\.\., items, 3, {alg.dim}\)"):
        layer(torch.randn(2, 5, 3, alg.dim + 1), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="3 channels"):
        layer(torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match=r"scalars of shape \(\.\.\., items, 2\)"):
        layer(torch.randn(2, 5, 3, alg.dim), torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="got None"):
        layer(torch.randn(2, 5, 3, alg.dim))
    attn = GeometricAttention(alg, 3, 3, 0, 0, num_heads=2, hidden_mv_channels=1, hidden_s_channels=0)
    with pytest.raises(ValueError, match="expected input multivectors"):
        attn(torch.randn(5, 4, alg.dim))
    mv, s = attn(torch.randn(5, 3, alg.dim))  # no scalars: None in, empty tensor out
    assert mv.shape == (5, 3, alg.dim) and s.shape == (5, 0)
