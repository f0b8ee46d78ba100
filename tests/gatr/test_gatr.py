"""The whole network: equivariance, depth, masking, broadcasting, state, gradients, autocast, config."""

import dataclasses
import json
import re

import pytest
import torch

from algebras import ConformalAlgebra, available_algebras, get_algebra
from gatr import EquiLinear, GATr, GATrConfig
from gatr import flops as F
from gatr.diagnostics import equivariance_error
from gatr.kernels.label_layout import label_layout
from gatr_test_utils import assert_equivariant, randn, reference_pseudoscalar

#: the group options of the built-in algebras: each gives other equivariant maps, hence other parameters
GROUP_OPTIONS = [("euclidean", "SO(3)"), ("projective", "SE(3)"), ("conformal", "SE(3)"), ("conformal", "Pin(4,1)"),
                 ("conformal", "Spin(4,1)")]


def small_net(alg, **kw):
    args = dict(in_mv_channels=2, out_mv_channels=1, hidden_mv_channels=4, in_s_channels=2, out_s_channels=3,
                hidden_s_channels=4, num_blocks=2, num_heads=2)
    args.update(kw)
    return GATr(alg, **args)


def has_layout(alg) -> bool:
    return alg.tensors("cpu", torch.float64).derived(label_layout) is not None


@pytest.mark.parametrize("kernels", [("dense", "auto"), ("sparse", "dense"), ("sparse", "auto"), ("sparse", "xor")])
def test_gatr_equivariant_with_masks(alg, kernels):
    """Eagerly, "auto" bilinears run the table GEMM: in blade order on the dense linear kernel, in the label
    layout (tables permuted to label order) on the sparse one; "xor" runs xor shifts in the label layout."""
    net = small_net(alg, linear_kernel=kernels[0], bilinear_kernel=kernels[1], multi_query=True).double()
    plan = net.execution_plan(randn(1, 1, 2, alg.dim))
    assert (plan.labels is not None) is (has_layout(alg) and kernels in (("sparse", "auto"), ("sparse", "xor")))
    assert plan.bilinear == ("xor" if has_layout(alg) and kernels[1] == "xor" else "dense")
    ref = reference_pseudoscalar(alg, 4)
    kpm = torch.ones(4, 6, dtype=torch.bool)
    kpm[:, 4:] = False
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    mv, s = assert_equivariant(
        alg, lambda x, s, r: net(x, s, attention_mask=causal, key_padding_mask=kpm, reference_mv=r),
        [randn(4, 6, 2, alg.dim)], [randn(4, 6, 2), ref], transform_reference=1)
    assert mv.shape == (4, 6, 1, alg.dim) and s.shape == (4, 6, 3)
    # default reference (mean of the inputs) transforms with them automatically
    assert_equivariant(alg, lambda x, s: net(x, s, key_padding_mask=kpm), [randn(4, 6, 2, alg.dim)],
                       [randn(4, 6, 2)])


@pytest.mark.parametrize("depth", [1, 4, 16])
def test_equivariance_error_vs_depth_float32(alg, depth):
    assert equivariance_error(alg, depth, torch.float32) < 2e-5  # measured 1.5e-7 .. 1.3e-6 (README)


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_masked_items_have_no_influence(alg, kernel):
    net = small_net(alg, linear_kernel=kernel).double()
    x, s = randn(2, 6, 2, alg.dim), randn(2, 6, 2)
    kpm = torch.ones(2, 6, dtype=torch.bool)
    kpm[:, 4:] = False
    out, out_s = net(x, s, key_padding_mask=kpm)
    x2, s2 = x.clone(), s.clone()
    x2[:, 4:] = 100 * randn(2, 2, 2, alg.dim)
    s2[:, 4:] = -50.0
    out2, out_s2 = net(x2, s2, key_padding_mask=kpm)
    torch.testing.assert_close(out[:, :4], out2[:, :4])
    torch.testing.assert_close(out_s[:, :4], out_s2[:, :4])
    # same as running on the unpadded items alone
    out3, out_s3 = net(x[:, :4], s[:, :4])
    torch.testing.assert_close(out[:, :4], out3)
    torch.testing.assert_close(out_s[:, :4], out_s3)


def test_batch_axes_broadcast(alg):
    net = small_net(alg).double()
    x, s = randn(2, 3, 5, 2, alg.dim), randn(2, 3, 5, 2)
    ref = reference_pseudoscalar(alg, 2).unsqueeze(1)  # (2, 1, 1, 1, dim)
    out, out_s = net(x, s, reference_mv=ref)
    assert out.shape == (2, 3, 5, 1, alg.dim) and out_s.shape == (2, 3, 5, 3)
    single, single_s = net(x[1, 2], s[1, 2], reference_mv=ref[1, 0])
    torch.testing.assert_close(out[1, 2], single)
    torch.testing.assert_close(out_s[1, 2], single_s)


def test_state_dict_round_trip_and_config(alg):
    net = small_net(alg, dropout=0.1)
    config = dataclasses.asdict(net.config)
    assert config["algebra"] == alg.name
    clone = GATr.from_config(GATrConfig(**config))
    clone.load_state_dict(net.state_dict())
    net.eval(), clone.eval()
    x, s = torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2)
    for a, b in zip(net(x, s), clone(x, s)):
        torch.testing.assert_close(a, b)
    assert GATr.from_config(config).config == net.config


@pytest.mark.parametrize("name, options", [(n, {}) for n in available_algebras()]
                         + [(n, {"group": g}) for n, g in GROUP_OPTIONS])
def test_config_and_state_dict_rebuild_the_network(name, options):
    """``GATr.from_config(net.config)`` (in the plain form a YAML file or checkpoint holds) rebuilds a network
    that loads ``net.state_dict()`` and computes the same, for every registered algebra and group option,
    built from the algebra object or from its name and options."""
    alg = get_algebra(name, **options)
    sizes = dict(in_mv_channels=2, out_mv_channels=1, hidden_mv_channels=4, in_s_channels=2, out_s_channels=1,
                 hidden_s_channels=4, num_blocks=1, num_heads=2)
    x, s = torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2)
    for net in (GATr(alg, **sizes), GATr(name, algebra_options=options or None, **sizes)):
        config = json.loads(json.dumps(dataclasses.asdict(net.config)))
        assert (config["algebra"], config["algebra_options"] or {}) == (name, options)
        clone = GATr.from_config(config)
        assert clone.algebra is alg
        clone.load_state_dict(net.state_dict())
        for a, b in zip(net(x, s), clone(x, s)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_config_of_an_algebra_built_outside_the_registry_holds_the_algebra():
    """The registry cannot name an algebra constructed directly: the config keeps the object, so that
    ``from_config`` still rebuilds the same maps (not those of the registry's default group)."""
    alg = ConformalAlgebra(group="Pin(4,1)")
    net = GATr(alg, 1, 1, 4, num_blocks=1, num_heads=2)
    assert net.config.algebra is alg and net.config.algebra_options is None
    GATr.from_config(net.config).load_state_dict(net.state_dict())


@pytest.mark.parametrize("setting, value, expected", [
    ("multi_query", "false", "multi_query must be a boolean"), ("compile", "false", "compile must be a boolean"),
    ("checkpoint", 0, "checkpoint must be a boolean"), ("dropout", "0.1", "dropout must be a number"),
    ("num_heads", "2", "num_heads must be an integer"), ("num_blocks", True, "num_blocks must be an integer"),
    ("head_mv_channels", 2.0, "head_mv_channels must be an integer or null"),
    ("activation", None, "activation must be a string"),
    ("algebra_options", "Pin(4,1)", "algebra_options must be a mapping"),
])
def test_settings_of_the_wrong_type_are_refused_by_name(setting, value, expected):
    with pytest.raises(TypeError, match=rf"{expected}.*got {re.escape(repr(value))}"):
        GATr.from_config({"algebra": "euclidean", setting: value})


def test_unknown_settings_are_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown setting 'multi_querry'; valid settings: .*multi_query"):
        GATr.from_config({"algebra": "euclidean", "multi_querry": True})
    with pytest.raises(ValueError, match=r"unknown setting 'dropuot'; valid settings: .*dropout"):
        GATr("euclidean", dropuot=0.1)


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_gradients_reach_every_parameter_and_checkpoint_matches(alg, kernel):
    net = small_net(alg, linear_kernel=kernel)
    x, s = torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2)
    ref = reference_pseudoscalar(alg, 2, torch.float32)
    out, out_s = net(x, s, reference_mv=ref)
    (out.square().sum() + out_s.square().sum()).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    missing = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not missing, missing
    net.zero_grad()
    net.config.checkpoint = True
    out2, out_s2 = net(x, s, reference_mv=ref)
    (out2.square().sum() + out_s2.square().sum()).backward()
    for n, p in net.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_bfloat16_autocast(alg, kernel):
    net = small_net(alg, linear_kernel=kernel)
    x, s = torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, out_s = net(x, s, reference_mv=reference_pseudoscalar(alg, 2, torch.float32))
        loss = out.float().square().mean() + out_s.float().square().mean()
    loss.backward()
    assert torch.isfinite(out.float()).all() and torch.isfinite(out_s.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_wrong_inputs_raise(alg):
    net = small_net(alg)
    with pytest.raises(ValueError, match=rf"\(\.\.\., items, 2, {alg.dim}\)"):
        net(torch.randn(2, 5, 3, alg.dim), torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="got None"):
        net(torch.randn(2, 5, 2, alg.dim))
    with pytest.raises(ValueError, match="key_padding_mask"):
        net(torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2), key_padding_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown algebra"):
        GATr("nope", 1, 1, 4)


def test_nominal_flops(alg):
    net = small_net(alg)
    dim = alg.dim
    # input/output EquiLinear are counted as dense matrices, and the total scales linearly in items
    # only through attention
    f64, f128 = net.nominal_flops_per_token(64), net.nominal_flops_per_token(128)
    attention = 2 * F.TRAINING_MULTIPLIER * 2 * 64 * (  # blocks x fwd+bwd x 2 FLOPs/MAC ...
        2 * (net.head_mv_channels * alg.attention_feature_dim + net.head_s_channels)  # heads x qk
        + 2 * (net.head_mv_channels * dim + net.head_s_channels))  # heads x v
    assert f128 - f64 == attention
    assert EquiLinear(alg, 2, 4, 2, 4).flops_per_token(64) == 2 * (2 * dim + 2) * (4 * dim + 4)
    # the network is the sum of its layers: in, blocks (attention + MLP), out
    layers = [net.linear_in, *net.blocks, net.linear_out]
    assert f64 == F.TRAINING_MULTIPLIER * sum(layer.flops_per_token(64) for layer in layers)
    block = net.blocks[0]
    assert block.flops_per_token(64) == block.attention.flops_per_token(64) + block.mlp.flops_per_token(64)
    products = block.mlp.bilinear.own_flops_per_token(64)
    nnz = sum(int((torch.as_tensor(b.table) != 0).sum()) for b in alg.bilinears)
    assert products == 2 * block.mlp.bilinear.hidden_mv_channels * nnz


def test_integer_masks_mean_attend_and_padded_items_never_reach_real_ones(alg):
    """0/1 integer attention masks act like bool ones (not as additive zeros); NaN or inf in padded items
    leaves the real items' outputs exactly as with zeros there."""
    net = GATr(alg, in_mv_channels=2, out_mv_channels=1, hidden_mv_channels=4, in_s_channels=2,
               out_s_channels=1, hidden_s_channels=4, num_blocks=2, num_heads=2).double()
    mv, s = randn(3, 6, 2, alg.dim), randn(3, 6, 2)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    with torch.no_grad():
        ref = net(mv, s, attention_mask=causal)
        for dtype in (torch.int64, torch.uint8, torch.int32):
            out = net(mv, s, attention_mask=causal.to(dtype))
            torch.testing.assert_close(out[0], ref[0], rtol=0, atol=0)
            torch.testing.assert_close(out[1], ref[1], rtol=0, atol=0)
        real = torch.ones(3, 6, dtype=torch.bool)
        real[:, 4:] = False
        clean_mv, clean_s = mv.clone(), s.clone()
        clean_mv[:, 4:], clean_s[:, 4:] = 0.0, 0.0
        dirty_mv, dirty_s = mv.clone(), s.clone()
        dirty_mv[:, 4:], dirty_s[:, 4] = float("nan"), float("inf")
        a = net(clean_mv, clean_s, key_padding_mask=real)
        b = net(dirty_mv, dirty_s, key_padding_mask=real)
    for x, y in zip(a, b):
        assert torch.isfinite(y[:, :4]).all()
        torch.testing.assert_close(y[:, :4], x[:, :4], rtol=1e-12, atol=1e-12)
    # a block used on its own (no GATr boundary to zero the padding first): its attention keeps padded
    # keys and values away from real items itself (weight 0 alone lets 0 * NaN through)
    block = net.blocks[0]
    hidden_mv, hidden_s = randn(3, 6, 4, alg.dim), randn(3, 6, 4)
    reference = hidden_mv[:, :4].mean(dim=(1, 2))[:, None, None, :]  # of the real items (the caller's job)
    with torch.no_grad():
        clean = block(torch.where(real[..., None, None], hidden_mv, 0.0), torch.where(real[..., None], hidden_s, 0.0),
                      key_padding_mask=real, reference_mv=reference)
        dirty = block(torch.where(real[..., None, None], hidden_mv, float("nan")),
                      torch.where(real[..., None], hidden_s, float("inf")), key_padding_mask=real,
                      reference_mv=reference)
    for x, y in zip(clean, dirty):
        assert torch.isfinite(y[:, :4]).all()
        torch.testing.assert_close(y[:, :4], x[:, :4], rtol=1e-12, atol=1e-12)


def test_nan_in_padded_items_reaches_no_gradient(alg):
    """NaN or inf in padded items (inputs, scalars, a per-item reference) leave the real items' outputs and
    every parameter gradient exactly as zeros there do, with right and left padding under a causal mask."""
    net = small_net(alg).double()
    real = torch.ones(3, 6, dtype=torch.bool)
    real[0, 4:], real[1, :2] = False, False
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    mv, s, ref = randn(3, 6, 2, alg.dim), randn(3, 6, 2), randn(3, 6, 1, alg.dim)

    def run(fill):
        padded = [t.clone() for t in (mv, s, ref)]
        for t in padded:
            t[~real] = fill
        net.zero_grad()
        out_mv, out_s = net(padded[0], padded[1], attention_mask=causal, key_padding_mask=real,
                            reference_mv=padded[2])
        (out_mv[real].square().sum() + out_s[real].square().sum()).backward()
        return [out_mv[real], out_s[real], *(p.grad.clone() for p in net.parameters())]

    zeros = run(0.0)
    for fill in (float("nan"), float("inf")):
        for a, b in zip(run(fill), zeros):
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_user_mistakes_get_clear_errors(alg):
    """Bad sizes, mismatched dtypes and mask shapes: one clear error each, not a crash deep inside."""
    with pytest.raises(ValueError, match="num_heads must be an integer >= 1, got 0"):
        GATr(alg, in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=4, num_heads=0)
    with pytest.raises(ValueError, match="num_blocks"):
        GATr(alg, in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=4, num_blocks=0)
    net = GATr(alg, in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=4, in_s_channels=1, out_s_channels=1,
               hidden_s_channels=4, num_blocks=1, num_heads=2)
    mv, s = torch.randn(2, 5, 1, alg.dim), torch.randn(2, 5, 1)
    for dtype in (torch.float64, torch.float16):
        with pytest.raises(TypeError, match=f"{dtype}.*weights are torch.float32"):
            net(mv.to(dtype), s.to(dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision stays allowed
        net(mv.to(torch.bfloat16), s)
    with pytest.raises(ValueError, match=r"attention_mask of shape \(5, 4\) does not broadcast"):
        net(mv, s, attention_mask=torch.ones(5, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_padding_mask"):
        net(mv, s, key_padding_mask=torch.ones(3, 5, dtype=torch.bool))


def test_inputs_are_checked_once_at_the_network_boundary(alg, monkeypatch):
    """A 4-block forward validates its inputs once (the layers inside trust the network), and a layer used
    on its own still validates its own."""
    import gatr.layers._checks as checks

    calls = []
    original = checks.check_inputs

    def counting(*args, **kwargs):
        calls.append(type(args[0]).__name__)
        return original(*args, **kwargs)

    for module in ("gatr.nets.gatr", "gatr.layers.linear", "gatr.layers.attention", "gatr.layers.bilinear",
                   "gatr.layers.block"):
        monkeypatch.setattr(f"{module}.check_inputs", counting)
    net = small_net(alg, num_blocks=4)
    net(torch.randn(2, 5, 2, alg.dim), torch.randn(2, 5, 2))
    assert calls == ["GATr"]
    calls.clear()
    from gatr import GATrBlock

    GATrBlock(alg, 4, 4, num_heads=2)(torch.randn(2, 5, 4, alg.dim), torch.randn(2, 5, 4))
    assert calls == ["GATrBlock"]



@pytest.mark.parametrize("linear", ["sparse", "dense"])
def test_label_layout_network_equals_blade_order(alg, linear):
    """The hidden stream in the label layout (bilinear kernel "xor", and eagerly "auto" on the sparse linear
    kernel with the table GEMM in label order: every layer reads and writes ``(..., dim, channels)`` in
    label order) computes what the blade-ordered network does: outputs and the gradients of inputs and
    parameters to 1e-12 (float64), with masks, multi-query attention, a default reference and gradient
    checkpointing."""
    net = small_net(alg, linear_kernel=linear, multi_query=True, checkpoint=True).double()
    kpm = torch.ones(3, 6, dtype=torch.bool)
    kpm[1, 4:] = False
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    mv, s = randn(3, 6, 2, alg.dim).requires_grad_(), randn(3, 6, 2).requires_grad_()
    results = []
    for bilinear in ("dense", "xor", "auto"):
        net.set_kernels(bilinear=bilinear)
        labels = net.execution_plan(mv).labels is not None
        assert labels is (has_layout(alg) and (bilinear == "xor" or (bilinear == "auto" and linear == "sparse")))
        out_mv, out_s = net(mv, s, attention_mask=causal, key_padding_mask=kpm)
        grads = torch.autograd.grad(out_mv.square().sum() + out_s.sin().sum(), [mv, s, *net.parameters()])
        results.append([out_mv, out_s, *grads])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_dropout_in_the_label_layout_drops_whole_multivectors():
    from gatr.layers.block import mv_dropout

    x = torch.ones(50, 16, 8)  # (items, dim, channels) in the label layout
    y = mv_dropout(x, 0.5, True, component_axis=-2)
    kept = y[:, 0, :] != 0  # one decision per (item, channel), shared by all 16 components
    assert torch.equal((y != 0), kept[:, None, :].expand_as(y)) and 0 < kept.float().mean() < 1


def test_state_dicts_of_bilinear_version_1_load_to_the_same_network():
    """Version 1 ordered the bilinear layer's operand channels (left/right, hidden, bilinear) and its product
    channels (hidden, bilinear); version 2 orders them (.., bilinear, hidden). A version-1 state dict (its
    channels in the old order, metadata version 1) loads into the same function: equal outputs (float64)."""
    from gatr import GeometricBilinear

    torch.manual_seed(0)
    net = small_net(get_algebra("projective")).double()
    old = net.state_dict()
    for name, module in net.named_modules():
        if not isinstance(module, GeometricBilinear):
            continue
        nb, h = module.num_bilinears, module.hidden_mv_channels
        assert nb == 2  # geometric product and join: the orders differ
        # old channel (s, c, b) holds new channel (s, b, c)
        operand = torch.arange(2 * nb * h).view(2, nb, h).transpose(1, 2).reshape(-1)
        product = torch.arange(nb * h).view(nb, h).t().reshape(-1)
        for key, axis, index in (("operands.weight_mv", 0, operand), ("operands.weight_s2mv", 0, operand),
                                 ("operands.bias_mv", 0, operand), ("output.weight_mv", 1, product),
                                 ("output.weight_mv2s", 1, product)):
            old[f"{name}.{key}"] = old[f"{name}.{key}"].index_select(axis, index)
        old._metadata[name]["version"] = 1
    loaded = small_net(get_algebra("projective")).double()
    loaded.load_state_dict(old)
    x, s = randn(2, 5, 2, 16), randn(2, 5, 2)
    ref = reference_pseudoscalar(get_algebra("projective"), 2)
    for a, b in zip(net(x, s, reference_mv=ref), loaded(x, s, reference_mv=ref)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert not torch.equal(old["blocks.0.mlp.bilinear.operands.weight_mv"],
                           net.state_dict()["blocks.0.mlp.bilinear.operands.weight_mv"])
