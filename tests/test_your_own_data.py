"""The "Your own data" guide (docs/your-own-data.md): its examples run alone and say what they compute,
its benchmark script runs, and its claims about the reference GATr's and L-GATr's layouts hold."""

import importlib.util
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "your-own-data.md"


def guide_blocks() -> list[dict]:
    """Each Python block of the guide run in a fresh namespace, as a reader who copies one block would."""
    spaces = []
    for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S):
        ns: dict = {}
        exec(compile(block, str(GUIDE), "exec"), ns)  # noqa: S102 - our own docs
        spaces.append(ns)
    return spaces


def val(t) -> float:
    return float(t.detach()) if isinstance(t, torch.Tensor) else float(t)


@pytest.fixture(scope="module")
def blocks():
    torch.manual_seed(0)
    return guide_blocks()


def test_padding_example(blocks):
    ns = blocks[0]
    assert [tuple(x.shape) for x in ns["per_set"]] == [(5, 1, 16), (2, 1, 16), (7, 1, 16)]
    assert tuple(ns["batch"].mv.shape) == (3, 7, 1, 16) and tuple(ns["batch"].key_padding_mask.shape) == (3, 7)
    assert val(ns["leak"]) == 0.0  # NaN in the padding changes no output
    assert val(ns["gap"]) < 1e-5 and val(ns["per_set"][1].abs().max()) > 1e-2


def test_packing_example(blocks):
    ns = blocks[1]
    p = ns["packed"]
    assert tuple(p.mv.shape) == (1, 14, 1, 32) and tuple(p.attention_mask.shape) == (14, 14)
    assert tuple(p.reference_mv.shape) == (1, 14, 1, 32) and tuple(p.segment_ids.shape) == (14,)
    assert [tuple(x.shape) for x in ns["per_set"]] == [(5, 1, 32), (2, 1, 32), (7, 1, 32)]
    assert val(ns["gap"]) < 1e-12


def test_reference_example(blocks):
    ns = blocks[2]
    assert val(ns["same"]) == 0.0
    assert val(ns["differs"]) > 1e-6
    assert ns["e0123"].tolist() == [0.0] * 15 + [1.0]


def test_save_and_load_example_round_trips_exactly(blocks):
    ns = blocks[3]
    assert val(ns["gap"]) == 0.0
    assert ns["saved"]["config"]["algebra"] == "conformal"


def test_checkpoint_example_loads_the_trained_network(blocks):
    from gatr import GATr

    ns = blocks[4]
    checkpoint = torch.load(ns["ckpt_path"], weights_only=True, map_location="cpu")
    net = ns["net"]
    assert isinstance(net, GATr) and not ns["module"].training
    assert ns["module"].hparams.algebra == "projective" and net.config.num_blocks == 1
    for name, value in net.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"]["model.net." + name]), name
    assert tuple(ns["out_mv"].shape) == (1, 4, net.config.out_mv_channels, 16)
    saved = torch.load(Path(ns["ckpt_path"]).parent / "gatr.pt", weights_only=True)
    again = GATr.from_config(saved["config"])
    again.load_state_dict(saved["state_dict"])
    mv, s = torch.randn(2, 3, net.config.in_mv_channels, 16), torch.randn(2, 3, net.config.in_s_channels)
    assert torch.equal(again(mv, s)[0], net(mv, s)[0])


def test_autocast_example(blocks):
    ns = blocks[5]
    assert ns["out_mv"].dtype == torch.bfloat16 and ns["full"].dtype == torch.float32
    assert 0 < ns["rel"] < 0.05


def test_the_guide_has_six_runnable_blocks_and_is_linked():
    assert len(re.findall(r"```python\n", GUIDE.read_text())) == 6
    assert "your-own-data.md" in (REPO / "mkdocs.yml").read_text()
    assert "docs/your-own-data.md" in (REPO / "README.md").read_text()
    for page in ("index.md", "three-ways-in.md"):
        assert "(your-own-data.md" in (REPO / "docs" / page).read_text(), page


def test_the_benchmark_script_runs(capsys):
    """The script the guide's timing table comes from, on a tiny problem."""
    spec = importlib.util.spec_from_file_location("pack_vs_pad", REPO / "docs" / "scripts" / "pack_vs_pad.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(["--algebras", "euclidean", "--sets", "3", "--min-items", "2", "--max-items", "5", "--width", "2",
              "--blocks", "1", "--reps", "1", "--backward"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| euclidean | 3 |")]
    assert len(rows) == 1 and float(rows[0].split("|")[-2]) > 0


def test_the_reference_gatr_and_lgatr_layouts_are_ours():
    """The guide's mapping table says their data feeds in unchanged: the same 16 blades in the same order,
    the reference GATr's point embedding (e123 = 1, x -> -e023, y -> e013, z -> -e012), and L-GATr's
    four-vectors in components 1..4 (t, x, y, z)."""
    from algebras import get_algebra

    order = ("1", "e0", "e1", "e2", "e3", "e01", "e02", "e03", "e12", "e13", "e23", "e012", "e013", "e023", "e123",
             "e0123")
    pga = get_algebra("projective")
    assert tuple(pga.blade_names) == order
    x = torch.tensor([[0.3, -1.2, 2.5]])
    expected = torch.zeros(1, 16)
    expected[:, 14], expected[:, 13], expected[:, 12], expected[:, 11] = 1.0, -x[:, 0], x[:, 1], -x[:, 2]
    torch.testing.assert_close(pga.embed_point(x), expected, rtol=0, atol=0)
    sta = get_algebra("examples.spacetime.gatr_spacetime:spacetime")
    assert tuple(sta.blade_names) == order and sta.signature == (1, -1, -1, -1)
    v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert sta.embed_four_vector(v)[1:5].tolist() == v.tolist()
    assert sta.linear_basis.shape[0] == 10  # SO+(1,3): L-GATr's use_fully_connected_subgroup=True
