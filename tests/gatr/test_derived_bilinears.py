"""``bilinears="derived"``: each bilinear a learned combination of every equivariant bilinear map of the group.

At initialisation the network equals the fixed one; with any coefficients it stays equivariant (float64,
random group elements of both parities, every registered algebra, plug-ins included); the table gradients
of the dense kernel are right; the path compiles with zero graph breaks.
"""

import pytest
import torch
import torch._dynamo as dynamo

from gatr import GATr, GeometricBilinear
from gatr.kernels.bilinear import dense_bilinear

from gatr_test_utils import assert_equivariant, randn, reference_pseudoscalar


def _net(alg, **kw):
    torch.manual_seed(3)
    return GATr(alg, 2, 1, 4, 2, 3, 4, num_blocks=2, num_heads=2, **kw).double()


def test_derived_network_starts_as_the_fixed_one_and_stays_equivariant(alg):
    """Same seed, same parameters plus the coefficients: equal outputs at initialisation. Then the
    coefficients are randomised (any element of the span is equivariant) and the network is checked on
    random group elements, the reference transformed with them."""
    fixed, derived = _net(alg), _net(alg, bilinears="derived")
    assert {k for k in derived.state_dict()} - {k for k in fixed.state_dict()} == {
        f"blocks.{i}.mlp.bilinear.coefficients" for i in range(2)}
    x, s, ref = randn(4, 5, 2, alg.dim), randn(4, 5, 2), reference_pseudoscalar(alg, 4)
    for a, b in zip(fixed(x, s, reference_mv=ref), derived(x, s, reference_mv=ref)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6 * float(a.detach().abs().max()))
    with torch.no_grad():
        for module in derived.modules():
            if isinstance(module, GeometricBilinear):
                module.coefficients.normal_()
    out, _ = assert_equivariant(alg, lambda a, b, r: derived(a, b, reference_mv=r), [x], [s, ref],
                                rtol=1e-10, transform_reference=1)
    assert not torch.allclose(out, fixed(x, s, reference_mv=ref)[0])  # the coefficients changed the map


def test_dense_kernel_gradients_of_learned_tables():
    """The opaque table kernel's gradients (operands and the tables) equal those of the einsum definition."""
    from algebras import get_algebra

    alg = get_algebra("projective")
    tables = randn(2, 16, 16, 16).requires_grad_()
    x, y = randn(7, 2, 16).requires_grad_(), randn(7, 2, 16).requires_grad_()
    z = dense_bilinear(alg, x, y, tables)
    expected = torch.einsum("nbi,nbj,bijk->nbk", x, y, tables)
    torch.testing.assert_close(z, expected, rtol=1e-12, atol=1e-12)
    g = randn(7, 2, 16)
    for a, b in zip(torch.autograd.grad(z, [x, y, tables], g), torch.autograd.grad(expected, [x, y, tables], g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_derived_path_compiles_with_zero_graph_breaks():
    from algebras import get_algebra

    alg = get_algebra("projective")
    net = GATr(alg, 2, 1, 4, 2, 1, 4, num_blocks=1, num_heads=2, bilinears="derived", linear_kernel="sparse")
    x, s, ref = torch.randn(2, 40, 2, 16), torch.randn(2, 40, 2), reference_pseudoscalar(alg, 2, torch.float32)
    explained = dynamo.explain(net)(x, s, reference_mv=ref)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    dynamo.reset()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    results = []
    for run in (net, compiled):
        mv, out = run(x, s, reference_mv=ref)
        grads = torch.autograd.grad(mv.square().sum() + out.square().sum(), list(net.parameters()))
        results.append([mv, out, *grads])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    dynamo.reset()


def test_layers_with_derived_bilinears_plan_the_dense_kernel():
    """A block or bilinear layer called on its own plans the dense table kernel for learned tables, so it
    never takes the label layout (where they cannot run), whatever its kernel attribute says."""
    from gatr import GATrBlock

    block = GATrBlock("projective", 4, 4, num_heads=2, bilinears="derived")
    assert block.kernel_names() == ("auto", "dense")
    assert GeometricBilinear("conformal", 2, 2, kernel="auto", bilinears="derived").kernel_names()[1] == "dense"
    assert GATrBlock("projective", 4, 4, num_heads=2).kernel_names() == ("auto", "auto")


def test_derived_bilinears_refuse_bad_settings():
    with pytest.raises(ValueError, match="bilinears must be 'fixed' or 'derived', got 'learned'"):
        GATr("projective", 1, 1, 4, bilinears="learned")
    with pytest.raises(ValueError, match="dense table kernel, not 'xor'"):
        GATr("projective", 1, 1, 4, bilinears="derived", bilinear_kernel="xor")
    with pytest.raises(ValueError, match="dense table kernel, not 'sparse'"):
        GeometricBilinear("projective", 1, 1, kernel="sparse", bilinears="derived")
