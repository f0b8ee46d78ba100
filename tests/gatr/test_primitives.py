"""The stateless primitives against the maths written out: the equivariant linear map's block matrix, the
bilinear products, the gated nonlinearity and the scalar layer norm (float64)."""

import torch

from gatr.primitives import (bilinear_products, equi_bias, equi_matrix, gated_nonlinearity, get_activation,
                             scalar_layer_norm)

from gatr_test_utils import randn


def test_equi_matrix_is_the_block_matrix_of_the_module_docstring(alg):
    """[[sum_m W B_m, sum_k V v_k], [sum_k U f_k^T, S]] assembled entry by entry, and the bias."""
    t = alg.tensors("cpu", torch.float64)
    basis, inv, fun = t.linear_basis, t.invariant_basis, t.invariant_functionals
    out_mv, in_mv, in_s, out_s, dim = 2, 3, 2, 4, alg.dim
    w_mv, w_s2mv = randn(out_mv, in_mv, basis.shape[0]), randn(out_mv, in_s, inv.shape[0])
    w_mv2s, w_s = randn(out_s, in_mv, fun.shape[0]), randn(out_s, in_s)
    matrix = equi_matrix(alg, w_mv, w_s2mv, w_mv2s, w_s)
    expected = torch.zeros(out_mv * dim + out_s, in_mv * dim + in_s, dtype=torch.float64)
    for o in range(out_mv):
        for i in range(in_mv):
            expected[o * dim:(o + 1) * dim, i * dim:(i + 1) * dim] = sum(w_mv[o, i, m] * basis[m]
                                                                          for m in range(basis.shape[0]))
        for s in range(in_s):
            expected[o * dim:(o + 1) * dim, in_mv * dim + s] = w_s2mv[o, s] @ inv
    for p in range(out_s):
        for i in range(in_mv):
            expected[out_mv * dim + p, i * dim:(i + 1) * dim] = w_mv2s[p, i] @ fun
        expected[out_mv * dim + p, in_mv * dim:] = w_s[p]
    torch.testing.assert_close(matrix, expected, rtol=1e-13, atol=1e-13)
    b_mv, b_s = randn(out_mv, inv.shape[0]), randn(out_s)
    torch.testing.assert_close(equi_bias(alg, b_mv, b_s), torch.cat([(b_mv @ inv).flatten(), b_s]))
    assert equi_matrix(alg, w_mv).shape == (out_mv * dim, in_mv * dim)


def test_bilinear_products_match_tables(alg):
    nb = len(alg.bilinears)
    x, y = randn(3, 2, nb, alg.dim, dtype=torch.float64), randn(3, 2, nb, alg.dim)
    ref = randn(alg.dim)
    z = bilinear_products(alg, x, y, ref)
    for b, bil in enumerate(alg.bilinears):
        expected = torch.einsum("...i,...j,ijk->...k", x[..., b, :], y[..., b, :], torch.as_tensor(bil.table))
        if bil.reference_component is not None:
            expected = expected * ref[bil.reference_component]
        torch.testing.assert_close(z[..., b, :], expected)
    torch.testing.assert_close(z[..., 0, :], alg.geometric_product(x[..., 0, :], y[..., 0, :]))


def test_bilinear_gradcheck(alg):
    nb = len(alg.bilinears)
    x = randn(2, nb, alg.dim).requires_grad_()
    y = randn(2, nb, alg.dim).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: bilinear_products(alg, a, b, torch.ones(alg.dim, dtype=a.dtype)),
                                    (x, y))


def test_gated_nonlinearity_and_scalar_layer_norm_values():
    x, s = randn(4, 3, 16), randn(4, 5)
    mv, out_s = gated_nonlinearity(x, s, "relu")
    torch.testing.assert_close(mv, x[..., :1].clamp_min(0) * x)  # act(<x>_0) * x
    torch.testing.assert_close(out_s, s.clamp_min(0))
    gelu = get_activation("gelu")
    torch.testing.assert_close(gated_nonlinearity(x, s)[0], gelu(x[..., :1]) * x)
    normed = scalar_layer_norm(s)
    torch.testing.assert_close(normed, (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, unbiased=False,
                                                                                       keepdim=True) + 1e-5))
    assert scalar_layer_norm(randn(4, 0)).shape == (4, 0)
