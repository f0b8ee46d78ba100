"""Component selections whose gradients are gathers: values, adjoints, gradients of gradients, errors."""

import pytest
import torch

from algebras.components import component_index, select, spread


@pytest.mark.parametrize("index, runs", [
    ([5, 0, 3], ((5, 0, 1), (0, 1, 1), (3, 2, 1))),  # unsorted single components
    ([2, 3, 4], ((2, 0, 3),)),  # one run: eagerly a slice
    ([0, 1, 4, 5, 6], ((0, 0, 2), (4, 2, 3))),  # runs: eagerly zeros with the runs copied in
])
def test_select_and_spread_are_adjoint_and_differentiate_to_each_other(index, runs):
    ci = component_index(torch.tensor(index), 7)
    assert ci.runs == runs
    k = len(index)
    x = torch.randn(4, 7, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, k, 2, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(select(x, ci, 1), x.index_select(1, ci.index))
    expected = torch.zeros(4, 7, 2, dtype=torch.float64).index_copy(1, ci.index, y)
    torch.testing.assert_close(spread(y, ci, 1), expected)
    # <select(x), y> == <x, spread(y)>
    torch.testing.assert_close((select(x, ci, 1) * y).sum(), (x * spread(y, ci, 1)).sum())
    assert torch.autograd.gradcheck(lambda a: select(a, ci, 1), (x,))
    assert torch.autograd.gradcheck(lambda b: spread(b, ci, -2), (y,))
    assert torch.autograd.gradgradcheck(lambda a: select(a, ci, 1).square(), (x,))
    assert torch.autograd.gradgradcheck(lambda b: spread(b, ci, 1).square(), (y,))


def test_the_identity_selection_returns_its_input():
    ci = component_index(torch.arange(4), 4)
    x = torch.randn(3, 4)
    assert ci.identity and select(x, ci) is x and spread(x, ci) is x


def test_compiled_selection_gradient_has_no_scatter_add():
    """The point of the module: the compiled backward reads a gather, never index_add / index_put."""
    ci = component_index(torch.tensor([2, 0]), 4)
    graphs = []

    def backend(gm, inputs):
        from functorch.compile import make_boxed_func
        from torch._functorch.aot_autograd import aot_module_simplified

        def fw(g, _):
            graphs.append(g)
            return make_boxed_func(g)

        return aot_module_simplified(gm, inputs, fw_compiler=fw, bw_compiler=fw)

    x = torch.randn(3, 4, requires_grad=True)
    torch.compile(lambda a: select(a, ci).sin().sum(), backend=backend, fullgraph=True)(x).backward()
    code = "\n".join(str(g.code) for g in graphs)
    assert "index_select" in code and "index_add" not in code and "index_put" not in code
    # the gathers give the eager (slice-and-copy) gradient
    compiled_grad, x.grad = x.grad, None
    select(x, ci).sin().sum().backward()
    torch.testing.assert_close(compiled_grad, x.grad)


@pytest.mark.parametrize("index", [[1, 1], [0, 4]])
def test_repeated_or_out_of_range_components_are_refused(index):
    with pytest.raises(ValueError, match="distinct entries in \\[0, 4\\)"):
        component_index(torch.tensor(index), 4)
