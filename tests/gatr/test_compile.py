"""torch.compile: the whole network traces forward and backward with zero graph breaks on every backend, with
and without masks, and the compiled network computes what the eager one does (float32 tolerance)."""

import gc

import pytest
import torch
import torch._dynamo as dynamo

from gatr import GATr

from gatr_test_utils import reference_pseudoscalar


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test starts and ends with dynamo's caches empty and garbage collected, so none reads state (cache
    entries, guards on freed objects) left by an earlier test in the same process."""
    dynamo.reset()
    gc.collect()
    yield
    dynamo.reset()
    gc.collect()


def tiny_net(alg, **kw):
    return GATr(alg, 2, 1, 4, 2, 1, 4, num_blocks=1, num_heads=2, **kw)


def _inputs(alg, masked: bool):
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(2, 5, 2, alg.dim, generator=g), torch.randn(2, 5, 2, generator=g)
    kwargs = {"reference_mv": reference_pseudoscalar(alg, 2, torch.float32)}
    if masked:
        kpm = torch.ones(2, 5, dtype=torch.bool)
        kpm[1, -2:] = False
        causal = torch.ones(5, 5, dtype=torch.bool).tril()
        kwargs.update(key_padding_mask=kpm, attention_mask=causal)
    return x, s, kwargs


def _outputs_and_grads(net, run, x, s, kwargs):
    x, s = x.clone().requires_grad_(), s.clone().requires_grad_()
    mv, out = run(x, s, **kwargs)
    (mv.square().sum() + out.square().sum()).backward()
    grads = [x.grad, s.grad] + [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return [mv.detach(), out.detach()], grads


@pytest.mark.parametrize("masked,kernels", [(False, ("auto", "auto")), (True, ("auto", "auto")),
                                            (True, ("sparse", "sparse")), (True, ("sparse", "auto"))])
def test_fullgraph_compile_equals_eager_with_zero_graph_breaks(alg, masked, kernels):
    """Every kernel traces: tiny inputs take the dense linear kernel under "auto", so "sparse" is forced; with
    it, "auto" bilinears run eagerly on the table path and compiled in the label layout (xor shifts)."""
    torch.manual_seed(0)
    net = tiny_net(alg, linear_kernel=kernels[0], bilinear_kernel=kernels[1])
    x, s, kwargs = _inputs(alg, masked)
    explained = dynamo.explain(net)(x, s, **kwargs)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1
    traced = explained.graphs[0].code
    # "auto" bilinears on the sparse linear kernel run in the label layout once compiled: no table GEMM, and
    # the hidden stream enters it once before linear_in, so the sparse maps never permute components
    assert ("outer_gemm" in traced) is (kernels == ("auto", "auto")), "bilinear execution path"
    if kernels == ("sparse", "auto"):
        assert "permute_columns" not in traced and "sector_matmul" in traced, "hidden stream layout"
    dynamo.reset()
    # fullgraph=True raises on any break; aot_eager traces the backward too, without C++ code generation
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    eager_out, eager_grads = _outputs_and_grads(net, net, x, s, kwargs)
    comp_out, comp_grads = _outputs_and_grads(net, compiled, x, s, kwargs)
    for a, b in zip(eager_out + eager_grads, comp_out + comp_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    dynamo.reset()


@pytest.mark.slow
def test_inductor_compiled_network_equals_eager():
    """The real compiler (inductor, C++ code generation) on one backend, through ``GATrConfig.compile``."""
    torch.manual_seed(0)
    net = tiny_net("projective-distance", compile=True, linear_kernel="sparse")  # both custom operators
    x, s, kwargs = _inputs(net.algebra, masked=True)
    comp_out, comp_grads = _outputs_and_grads(net, net, x, s, kwargs)
    net.config.compile = False
    eager_out, eager_grads = _outputs_and_grads(net, net, x, s, kwargs)
    for a, b in zip(eager_out + eager_grads, comp_out + comp_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    dynamo.reset()


def test_compile_option_keeps_the_eager_errors_and_the_state_dict():
    net = tiny_net("conformal", compile=True)
    with pytest.raises(ValueError, match=r"expected input multivectors of shape \(\.\.\., items, 2, 32\)"):
        net(torch.randn(2, 5, 3, 32), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="key_padding_mask"):
        net(torch.randn(2, 5, 2, 32), torch.randn(2, 5, 2), key_padding_mask=torch.ones(2, 4, dtype=torch.bool))
    plain = tiny_net("conformal")
    assert set(net.state_dict()) == set(plain.state_dict())


@pytest.mark.parametrize("checkpoint", [False, True])
def test_compile_option_compiles_one_block_for_every_block(monkeypatch, checkpoint):
    """``GATrConfig(compile=True)`` compiles one block and reuses it: three blocks make one graph, a second
    network of the same shapes makes none, a wider one makes one more; compiled equals eager, with
    gradient checkpointing too."""
    import gatr.nets.gatr as gatr_module
    from torch._dynamo.utils import counters

    monkeypatch.setattr(gatr_module, "BLOCK_COMPILE_OPTIONS", {"fullgraph": True, "backend": "aot_eager"})
    dynamo.reset()
    counters.clear()

    def net(width):
        torch.manual_seed(0)
        return GATr("projective", 2, 1, width, 2, 1, 4, num_blocks=3, num_heads=2, compile=True,
                    checkpoint=checkpoint, linear_kernel="sparse")

    first = net(4)
    x, s, kwargs = _inputs(first.algebra, masked=True)
    comp_out, comp_grads = _outputs_and_grads(first, first, x, s, kwargs)
    assert counters["stats"]["unique_graphs"] == 1
    second = net(4)
    _outputs_and_grads(second, second, x, s, kwargs)
    assert counters["stats"]["unique_graphs"] == 1, "a second network of the same shapes compiled again"
    wider = net(6)
    _outputs_and_grads(wider, wider, x, s, kwargs)
    assert counters["stats"]["unique_graphs"] == 2
    for items in (7, 9):  # a new item count compiles once more (then dynamic), not once per block
        first(torch.randn(2, items, 2, 16), torch.randn(2, items, 2))[0].sum().backward()
        assert counters["stats"]["unique_graphs"] == 3
    first.zero_grad(set_to_none=True)
    first.config.compile = False
    eager_out, eager_grads = _outputs_and_grads(first, first, x, s, kwargs)
    for a, b in zip(eager_out + eager_grads, comp_out + comp_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    dynamo.reset()


def test_compile_option_gives_each_kind_of_block_its_own_recompile_limit(monkeypatch):
    """Networks of several settings in one process (a sweep's worker trains every family) each compile their
    blocks, train and eval, without running into dynamo's per-function recompile limit (here lowered to 2,
    which a single shared compiled function would exceed at the second network)."""
    import gatr.nets.gatr as gatr_module

    monkeypatch.setattr(gatr_module, "BLOCK_COMPILE_OPTIONS", {"fullgraph": True, "backend": "aot_eager"})
    limit = "recompile_limit" if "recompile_limit" in dynamo.config._config else "cache_size_limit"  # torch 2.5
    dynamo.reset()
    with dynamo.config.patch(**{limit: 2}):
        for alg, width in (("projective", 4), ("projective", 6), ("euclidean", 4)):
            net = GATr(alg, 1, 1, width, 1, 1, 4, num_blocks=2, num_heads=2, compile=True)
            x, s = torch.randn(2, 5, 1, net.algebra.dim), torch.randn(2, 5, 1)
            net(x, s)[0].sum().backward()
            with torch.no_grad():
                net.eval()(x, s)
    dynamo.reset()
