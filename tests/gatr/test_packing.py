"""gatr.packing: sets of different sizes padded or packed give each set the result it gets alone."""

import pytest
import torch

from gatr import GATr
from gatr.diagnostics import act_on
from gatr.packing import block_diagonal_mask, pack, pad, segment_ids

LENGTHS = (1, 4, 9, 2, 6)


def tiny_net(algebra, **kw):
    args = dict(in_mv_channels=2, out_mv_channels=2, hidden_mv_channels=6, in_s_channels=3, out_s_channels=2,
                hidden_s_channels=8, num_blocks=2, num_heads=2)
    args.update(kw)
    return GATr(algebra, **args).double()


def random_sets(dim, lengths=LENGTHS, mv_channels=2, s_channels=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    mvs = [torch.randn(n, mv_channels, dim, generator=g, dtype=torch.float64) for n in lengths]
    scalars = [torch.randn(n, s_channels, generator=g, dtype=torch.float64) for n in lengths]
    return mvs, scalars


def run_packed(net, p):
    return net(p.mv, p.scalars, attention_mask=p.attention_mask, reference_mv=p.reference_mv)


def assert_sets_close(a, b, scale, rtol=1e-12):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape
        torch.testing.assert_close(x, y, rtol=0, atol=rtol * float(scale.detach()))


@pytest.mark.parametrize("algebra", ["projective", "conformal", "euclidean"])
def test_packed_equals_padded_and_each_set_alone(algebra):
    net = tiny_net(algebra)
    mvs, scalars = random_sets(net.algebra.dim)
    packed, padded = pack(mvs, scalars), pad(mvs, scalars)
    assert packed.mv.shape == (1, sum(LENGTHS), 2, net.algebra.dim) and packed.attention_mask.shape == (22, 22)
    out_mv, out_s = run_packed(net, packed)
    pad_mv, pad_s = net(padded.mv, padded.scalars, key_padding_mask=padded.key_padding_mask)
    scale = out_mv.abs().max()
    assert_sets_close(packed.unpack(out_mv), padded.unpack(pad_mv), scale)
    assert_sets_close(packed.unpack(out_s), padded.unpack(pad_s), out_s.abs().max())
    alone = [net(m[None], s[None])[0][0] for m, s in zip(mvs, scalars)]
    assert_sets_close(packed.unpack(out_mv), alone, scale)


def test_the_packed_reference_is_each_sets_default():
    """Without the per-item reference the packed projective result differs (the join sees the mean of all
    sets): the reference is what makes packing exact."""
    net = tiny_net("projective")
    mvs, scalars = random_sets(16)
    packed = pack(mvs, scalars)
    for i, ref in enumerate(packed.unpack(packed.reference_mv)):
        torch.testing.assert_close(ref, mvs[i].mean(dim=(0, 1)).expand(LENGTHS[i], 1, 16), rtol=0, atol=1e-15)
    exact, _ = run_packed(net, packed)
    pooled, _ = net(packed.mv, packed.scalars, attention_mask=packed.attention_mask)
    assert float((exact - pooled).detach().abs().max()) > 1e-6


@pytest.mark.parametrize("algebra", ["projective", "conformal"])
def test_packed_sets_are_each_equivariant_under_their_own_group_element(algebra):
    net = tiny_net(algebra)
    alg = net.algebra
    mvs, scalars = random_sets(alg.dim)
    versors = alg.random_versors(len(mvs), generator=3)
    moved = [act_on(alg, u[None].expand(n, -1), m) for u, m, n in zip(versors, mvs, LENGTHS)]
    out, out_s = run_packed(net, pack(mvs, scalars))
    out2, out_s2 = run_packed(net, pack(moved, scalars))
    p = pack(mvs, scalars)
    expected = [act_on(alg, u[None].expand(o.shape[0], -1), o) for u, o in zip(versors, p.unpack(out))]
    assert_sets_close(p.unpack(out2), expected, out.abs().max(), rtol=1e-11)
    torch.testing.assert_close(out_s2, out_s, rtol=0, atol=1e-11 * float(out_s.detach().abs().max()))


def test_given_references_per_set_equal_the_padded_reference():
    net = tiny_net("projective")
    mvs, scalars = random_sets(16)
    g = torch.Generator().manual_seed(5)
    refs = [torch.randn(16, generator=g, dtype=torch.float64) for _ in LENGTHS]
    packed, padded = pack(mvs, scalars, reference_mv=refs), pad(mvs, scalars)
    out, _ = run_packed(net, packed)
    ref_padded = torch.stack(refs)[:, None, None, :]  # (sets, 1, 1, dim)
    pad_mv, _ = net(padded.mv, padded.scalars, key_padding_mask=padded.key_padding_mask, reference_mv=ref_padded)
    assert_sets_close(packed.unpack(out), padded.unpack(pad_mv), out.abs().max())


def test_packed_gradients_equal_padded_gradients():
    """Training on packed batches: the same loss over the real items gives the same parameter gradients."""
    mvs, scalars = random_sets(32)
    packed_net, padded_net = tiny_net("conformal"), tiny_net("conformal")
    padded_net.load_state_dict(packed_net.state_dict())
    p, q = pack(mvs, scalars), pad(mvs, scalars)
    out_p, _ = run_packed(packed_net, p)
    out_q, _ = padded_net(q.mv, q.scalars, key_padding_mask=q.key_padding_mask)
    for out, sets in ((out_p, p), (out_q, q)):
        sum(o.square().sum() for o in sets.unpack(out)).backward()
    padded_grads = dict(padded_net.named_parameters())
    for name, param in packed_net.named_parameters():
        torch.testing.assert_close(param.grad, padded_grads[name].grad, rtol=1e-10, atol=1e-12, msg=name)


def test_masks_and_segment_ids():
    assert segment_ids((2, 3)).tolist() == [0, 0, 1, 1, 1]
    expected = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1]])
    assert torch.equal(block_diagonal_mask((2, 3)), expected.bool())
    padded = pad([torch.zeros(2, 1, 8), torch.ones(3, 1, 8)])
    assert padded.key_padding_mask.tolist() == [[True, True, False], [True, True, True]]
    assert float(padded.mv[0, 2].abs().max()) == 0.0 and padded.scalars is None
    with pytest.raises(ValueError, match=r"positive integers, got \[2, 0\]"):
        segment_ids((2, 0))


def test_unpack_refuses_a_tensor_of_other_items():
    p = pack([torch.zeros(2, 1, 8), torch.zeros(3, 1, 8)])
    with pytest.raises(ValueError, match=r"\(1, 5, \.\.\.\).*got \(5, 1, 8\)"):
        p.unpack(torch.zeros(5, 1, 8))
    q = pad([torch.zeros(2, 1, 8), torch.zeros(3, 1, 8)])
    with pytest.raises(ValueError, match=r"\(2, 3, '\.\.\.'\).*got \(5, 1, 8\)"):
        q.unpack(torch.zeros(5, 1, 8))


@pytest.mark.parametrize("make", [pack, pad])
def test_bad_sets_are_refused_by_name(make):
    a = torch.zeros(2, 1, 8)
    with pytest.raises(TypeError, match="non-empty list of tensors.*an empty list"):
        make([])
    with pytest.raises(TypeError, match="one per set.*got Tensor"):
        make(a)
    with pytest.raises(ValueError, match=r"mv\[1\] must have 3 axes.*like mv\[0\] \(2, 1, 8\); got \(2, 2, 8\)"):
        make([a, torch.zeros(2, 2, 8)])
    with pytest.raises(ValueError, match=r"mv\[1\] is torch.float64.*mv\[0\] is torch.float32"):
        make([a, a.double()])
    with pytest.raises(ValueError, match=r"mv\[1\] has no items"):
        make([a, torch.zeros(0, 1, 8)])
    with pytest.raises(ValueError, match=r"scalars\[1\] has 4 items but mv\[1\] has 2"):
        make([a, a], [torch.zeros(2, 3), torch.zeros(4, 3)])


def test_bad_references_are_refused_by_name():
    a = torch.zeros(2, 1, 8)
    with pytest.raises(ValueError, match="list of 2 tensors"):
        pack([a, a], reference_mv=[torch.zeros(8)])
    with pytest.raises(ValueError, match=r"reference_mv\[1\] of shape \(3, 1, 8\) does not broadcast.*\(2, 1, 8\)"):
        pack([a, a], reference_mv=[torch.zeros(8), torch.zeros(3, 1, 8)])


def test_packed_inputs_pass_the_networks_own_checks():
    """The mask broadcasts to (1, heads, items, items) and the reference to (1, items, 1, dim)."""
    net = GATr("euclidean", in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=4, num_blocks=1, num_heads=4)
    p = pack([torch.randn(3, 1, 8), torch.randn(4, 1, 8)])
    out, s = net(p.mv, attention_mask=p.attention_mask, reference_mv=p.reference_mv)
    assert out.shape == (1, 7, 1, 8) and s.shape == (1, 7, 0)


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch says why the 3-axis call gets no fused kernel
def test_packed_attention_runs_on_a_fused_kernel():
    """With only the fused (flash) kernel allowed, the packed forward runs (a 3-axis sequence without the
    leading batch axis would fall back to the math kernel) and gives the result of the default kernels."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    net = GATr("conformal", in_mv_channels=1, out_mv_channels=1, hidden_mv_channels=4, num_blocks=1, num_heads=2)
    p = pack([torch.randn(3, 1, 32), torch.randn(5, 1, 32)])
    args = (p.mv,)
    kwargs = dict(attention_mask=p.attention_mask, reference_mv=p.reference_mv)
    with torch.no_grad():
        expected, _ = net(*args, **kwargs)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            fused, _ = net(*args, **kwargs)
        with pytest.raises(RuntimeError, match="No available kernel"), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            net(p.mv[0], **{**kwargs, "reference_mv": p.reference_mv[0]})
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
