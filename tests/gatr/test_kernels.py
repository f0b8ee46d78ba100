"""Execution kernels, selected by name: every kernel computes the map it executes (float64, 1e-12), names
are checked, ``"auto"`` picks by size and device, and kernel data is cached with the algebra's tensors."""

import pytest
import torch

from algebras import get_algebra

from gatr import EquiLinear, GATr, GeometricBilinear
from gatr.kernels import BILINEAR_KERNELS, LINEAR_KERNELS, SPARSE_MIN_TOKENS, select_linear_kernel
from gatr.kernels.linear import dense_linear
from gatr.kernels.sparse_linear import sector_structure, sparse_linear

from gatr_test_utils import assert_equivariant, randn

B, N = 4, 5


@pytest.mark.parametrize("kernel", sorted(LINEAR_KERNELS))
@pytest.mark.parametrize("in_s,out_s", [(0, 0), (2, 0), (0, 3), (2, 3)])
def test_linear_kernels_compute_the_dense_matrix(alg, kernel, in_s, out_s):
    """Each kernel equals F.linear with the layer's dense matrix (the map's definition), and is equivariant."""
    layer = EquiLinear(alg, 3, 4, in_s, out_s, kernel=kernel).double()
    with torch.no_grad():
        layer.bias_mv.normal_()
        if layer.bias_s is not None:
            layer.bias_s.normal_()
    x, s = randn(B, N, 3, alg.dim), (randn(B, N, in_s) if in_s else None)
    mv, out = layer(x, s)
    matrix, bias = layer.dense()
    flat = torch.cat([x.flatten(-2), s], -1) if in_s else x.flatten(-2)
    y = torch.nn.functional.linear(flat, matrix, bias)
    torch.testing.assert_close(mv, y[..., : 4 * alg.dim].unflatten(-1, (4, alg.dim)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, y[..., 4 * alg.dim :], rtol=1e-12, atol=1e-12)
    assert_equivariant(alg, layer, [x], [s] if in_s else [])


def test_sparse_kernel_gradients_equal_dense(alg):
    layer = EquiLinear(alg, 3, 2, 2, 2).double()
    x, s = randn(7, 3, alg.dim).requires_grad_(), randn(7, 2).requires_grad_()
    grads = []
    for kernel in (dense_linear, sparse_linear):
        mv, out = kernel(alg, x, s, layer.weight_mv, layer.weight_s2mv, layer.weight_mv2s, layer.weight_s,
                         layer.bias_mv, layer.bias_s)
        grads.append(torch.autograd.grad((mv.square().sum() + out.square().sum()), [x, s, *layer.parameters()]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel", sorted(LINEAR_KERNELS))
def test_linear_kernels_give_gradients_of_gradients(kernel):
    """create_graph=True through every kernel (forces from an energy, trained on): the second derivatives
    equal those of the dense matrix (float64, 1e-12); the opaque sparse backward used to refuse them."""
    from algebras import get_algebra

    alg = get_algebra("projective")
    layer = EquiLinear(alg, 3, 2, 2, 2, kernel="dense").double()
    x, s = randn(70, 3, 16).requires_grad_(), randn(70, 2)
    results = []
    for fn in (dense_linear, LINEAR_KERNELS[kernel]):
        mv, out = fn(alg, x, s, layer.weight_mv, layer.weight_s2mv, layer.weight_mv2s, layer.weight_s,
                     layer.bias_mv, layer.bias_s)
        (force,) = torch.autograd.grad(mv.square().sum() + out.square().sum(), x, create_graph=True)
        results.append(torch.autograd.grad(force.square().sum(), [x, *layer.parameters()]))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_auto_choice_and_unknown_names():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert select_linear_kernel("auto", SPARSE_MIN_TOKENS, cpu) == "sparse"
    assert select_linear_kernel("auto", SPARSE_MIN_TOKENS - 1, cpu) == "dense"
    assert select_linear_kernel("auto", 10**6, gpu) == "dense"
    assert select_linear_kernel("auto", 10**6, cpu, sector_size=1) == "dense"  # G(3,0,0): thin sectors
    # ... unless compiled, where the sparse map (and the bilinears' label layout) measured faster for them too
    picked = torch.compile(lambda: select_linear_kernel("auto", 10**6, cpu, sector_size=1) == "sparse",
                           fullgraph=True, backend="eager")
    assert picked()
    with pytest.raises(ValueError, match=r"unknown linear kernel 'fast'; valid: \['auto', 'dense', 'sparse'\]"):
        EquiLinear("pga", 1, 1, kernel="fast")
    with pytest.raises(ValueError, match="unknown bilinear kernel 'fast'"):
        GeometricBilinear("pga", 1, 1, kernel="fast")
    with pytest.raises(ValueError, match="unknown linear kernel"):
        GATr("pga", 1, 1, 4, linear_kernel="fast")
    assert set(BILINEAR_KERNELS) >= {"dense"}


def test_kernels_are_set_network_wide_and_kernel_data_is_cached(alg):
    net = GATr(alg, 1, 1, 4, num_blocks=1, num_heads=2, linear_kernel="sparse")
    kernels = {m.kernel for m in net.modules() if isinstance(m, EquiLinear)}
    assert kernels == {"sparse"} and net.config.linear_kernel == "sparse"
    net.set_kernels(linear="dense")
    assert {m.kernel for m in net.modules() if isinstance(m, EquiLinear)} == {"dense"}
    t = alg.tensors("cpu", torch.float32)
    assert t.derived(sector_structure) is t.derived(sector_structure)
    st = t.derived(sector_structure)
    # the sectors partition the components and hold every nonzero of the maps
    assert sorted(st.order.tolist()) == list(range(alg.dim))
    assert torch.equal(st.order[st.position], torch.arange(alg.dim))
    rebuilt, offset = torch.zeros_like(t.linear_basis), 0
    for (k, p), sectors in zip(st.groups, st.sector_bases):
        members = st.order[offset : offset + k * p].view(k, p)
        rebuilt[:, members[:, :, None], members[:, None, :]] = sectors
        offset += k * p
    torch.testing.assert_close(rebuilt, t.linear_basis)


class _BlockAlgebra:
    """An algebra stand-in whose maps have blocks of three sizes ({0}, {1, 4}, {2, 3, 5}) in scrambled
    component order: every shipped algebra has equal blocks, so this is what exercises several groups."""

    dim = 6

    def __init__(self):
        from types import SimpleNamespace

        g = torch.Generator().manual_seed(0)
        basis = torch.zeros(3, 6, 6, dtype=torch.float64)
        for block in ([0], [1, 4], [2, 3, 5]):
            idx = torch.tensor(block)
            basis[:, idx[:, None], idx[None, :]] = torch.randn(3, len(block), len(block), generator=g, dtype=torch.float64)
        self.t = SimpleNamespace(linear_basis=basis, device=torch.device("cpu"), constants=SimpleNamespace(blades=None),
                                 invariant_basis=torch.eye(6, dtype=torch.float64)[[0, 4]] * 2,
                                 invariant_functionals=torch.eye(6, dtype=torch.float64)[[0]])
        self.t.derived = lambda build: build(self.t)

    def tensors(self, device, dtype):
        return self.t


def test_sparse_kernel_with_blocks_of_several_sizes_equals_dense():
    """Several groups of blocks (one batched GEMM each) and a scrambled block order: the sparse kernel equals
    the dense matrix, values and gradients (float64, 1e-12)."""
    alg = _BlockAlgebra()
    st = sector_structure(alg.t)
    assert st.groups == ((1, 1), (1, 2), (1, 3))
    w = [randn(4, 3, 3), randn(4, 2, 2), randn(5, 3, 1), randn(5, 2), randn(4, 2), randn(5)]
    w = [x.requires_grad_() for x in w]
    x, s = randn(7, 3, 6).requires_grad_(), randn(7, 2).requires_grad_()
    results = []
    for kernel in (dense_linear, sparse_linear):
        mv, out = kernel(alg, x, s, *w)
        results.append((mv, out, torch.autograd.grad(mv.square().sum() + out.sin().sum(), [x, s, *w])))
    for a, b in zip(results[0][:2] + tuple(results[0][2]), results[1][:2] + tuple(results[1][2])):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_custom_operators_pass_opcheck():
    """The opaque kernels (what the compiler sees): fake kernels, autograd and schema agree with the real ones."""
    from algebras import get_algebra
    from gatr.kernels.bilinear import outer_gemm, product_matrices
    from gatr.kernels.ops import permute_columns, sector_matmul, sector_matmul_backward
    from gatr.kernels.sparse_linear import _sector_major

    alg = get_algebra("projective")
    t = alg.tensors("cpu", torch.float64)
    m = t.derived(product_matrices)
    x, y = randn(6, 2, 16).requires_grad_(), randn(6, 2, 16).requires_grad_()
    torch.library.opcheck(outer_gemm, (x, y, m["forward"], m["grad_left"], m["grad_right"]))
    st = t.derived(sector_structure)
    xs = randn(3 * 16, 7).t().requires_grad_()  # non-contiguous token rows
    ws = [randn(k, p * 3, p * 5).requires_grad_() for k, p in st.groups]
    (to_in, from_in), (to_out, from_out) = _sector_major(st, 3), _sector_major(st, 5)
    torch.library.opcheck(permute_columns, (xs, to_in, from_in))
    torch.library.opcheck(sector_matmul, (xs, ws, from_out, to_out))
    torch.library.opcheck(sector_matmul_backward, (randn(7, 5 * 16), xs.detach(), [w.detach() for w in ws], to_out))


RELOAD_SCRIPT = """
import importlib, torch
from torch._library.custom_ops import OPDEF_TO_LIB
import gatr.kernels.bilinear as bilinear, gatr.kernels.ops as ops
from algebras import get_algebra
names = ["gatr::outer_gemm", "gatr::permute_columns", "gatr::sector_matmul", "gatr::sector_matmul_backward"]
before = {n: OPDEF_TO_LIB[n] for n in names}
held = bilinear.outer_gemm
importlib.reload(ops)
importlib.reload(bilinear)
assert all(OPDEF_TO_LIB[n] is before[n] for n in names), "an operator was registered again"
assert bilinear.outer_gemm is held and bilinear.outer_gemm.register_fake is not None
m = get_algebra("projective").tensors("cpu", torch.float64).derived(bilinear.product_matrices)
x, y = torch.randn(5, 2, 16, dtype=torch.float64), torch.randn(5, 2, 16, dtype=torch.float64)
torch.library.opcheck(held, (x.requires_grad_(), y.requires_grad_(), m["forward"], m["grad_left"], m["grad_right"]))
print("ok")
"""


def test_reloading_the_kernel_modules_keeps_their_operators():
    """Executing a kernel module again (importlib.reload, IPython's autoreload) used to define its custom
    operators again: torch redefines by destroying the first registration, so the operators the rest of the
    process held read freed memory. In a fresh process, so the reloaded modules do not reach other tests."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


def _user_algebra():
    from algebras import CliffordAlgebra

    return CliffordAlgebra((1, -1, 0), name="user-G(1,1,1)")  # a degenerate signature nobody ships


@pytest.mark.parametrize("which", ["fixture", "user"])
def test_sparse_bilinear_equals_the_table_product(alg, which):
    """The gather (monomial) and xor-shift kernels equal sum_ij x_i y_j T[i, j, k] to 1e-12 in float64, gradients
    too, for every backend and a user-registered signature; a bilinear layer on them stays equivariant."""
    from gatr.kernels.bilinear import dense_bilinear, sparse_bilinear, xor_bilinear
    from gatr.kernels.label_layout import label_layout

    alg = alg if which == "fixture" else _user_algebra()
    t = alg.tensors("cpu", torch.float64)
    assert t.derived(label_layout) is not None  # so xor_bilinear runs its own path, not the dense fallback
    tables = t.bilinear_tables
    x, y = randn(9, tables.shape[0], alg.dim).requires_grad_(), randn(9, tables.shape[0], alg.dim).requires_grad_()
    expected = torch.einsum("nbi,nbj,bijk->nbk", x, y, tables)
    for kernel in (sparse_bilinear, xor_bilinear, dense_bilinear):
        z = kernel(alg, x, y)
        torch.testing.assert_close(z, expected, rtol=1e-12, atol=1e-12)
        grads = torch.autograd.grad(z.square().sum(), [x, y])
        reference = torch.autograd.grad(expected.square().sum(), [x, y], retain_graph=True)
        for g, r in zip(grads, reference):
            torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    # the table GEMM on operands in label order (what an eager plan in the label layout runs)
    order = t.derived(label_layout).order
    z = dense_bilinear(alg, x[..., order], y[..., order], labels=True)
    torch.testing.assert_close(z, expected[..., order], rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(z.square().sum(), [x, y])
    for g, r in zip(grads, torch.autograd.grad(expected.square().sum(), [x, y])):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)
    ref = torch.zeros(B, 1, 1, alg.dim, dtype=torch.float64)
    ref[..., -1] = 1.0
    ref = ref + 0.3 * randn(B, 1, 1, alg.dim)
    for kernel in ("sparse", "xor"):
        layer = GeometricBilinear(alg, 3, 4, 2, 3, kernel=kernel).double()
        assert_equivariant(alg, lambda a, s, r: layer(a, s, reference_mv=r), [randn(B, N, 3, alg.dim)],
                           [randn(B, N, 2), ref], transform_reference=1)


def test_xor_bilinear_gives_gradients_of_gradients():
    """Its backward is xor products again, run as differentiable operations: second derivatives hold
    (``gradgradcheck``, float64) on a degenerate and a mixed-signature algebra."""
    from gatr.kernels.bilinear import xor_bilinear

    for name in ("projective", "conformal"):
        alg = get_algebra(name)
        nb = alg.tensors("cpu", torch.float64).bilinear_tables.shape[0]
        x, y = randn(3, nb, alg.dim).requires_grad_(), randn(3, nb, alg.dim).requires_grad_()
        assert torch.autograd.gradgradcheck(lambda a, b: xor_bilinear(alg, a, b), (x, y))


@pytest.mark.parametrize("reference", ["default", "batch", "item", "shared", "channel"])
def test_bilinear_layer_in_the_label_layout_equals_the_table_path(alg, reference):
    """GeometricBilinear with kernel "xor" runs in the label layout (operands emitted sector-major, products
    as xor shifts, the output map reading them), and eagerly with "auto" on the sparse linear kernel too (the
    table GEMM with tables in label order): values and the gradients of inputs and parameters equal the
    table path's to 1e-12 (float64), for a default reference and references per batch entry, per item,
    shared and per operand channel."""
    layer = GeometricBilinear(alg, 5, 6, 3, 4).double()
    mv, s = randn(2, 40, 5, alg.dim).requires_grad_(), randn(2, 40, 3).requires_grad_()  # 80 tokens: sparse maps
    shapes = {"default": None, "batch": (2, 1, 1), "item": (2, 40, 1), "shared": (),
              "channel": (2, 40, layer.hidden_mv_channels)}
    ref = None if shapes[reference] is None else randn(*shapes[reference], alg.dim)
    results = []
    for kernel in ("dense", "xor", "auto"):  # "auto" eagerly: the table GEMM in the label layout
        layer.kernel = kernel
        plan = layer.own_plan(mv)
        assert (plan.labels is not None) is (kernel == "xor" or (kernel == "auto" and plan.linear == "sparse"))
        assert plan.bilinear == ("xor" if kernel == "xor" else "dense")
        out_mv, out_s = layer(mv, s, reference_mv=ref)
        grads = torch.autograd.grad(out_mv.square().sum() + out_s.sin().sum(), [mv, s, *layer.parameters()])
        results.append([out_mv, out_s, *grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
