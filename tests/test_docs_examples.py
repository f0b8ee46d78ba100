"""The documentation's Python examples run as written, and its getting-started commands are the README's."""

import re
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"
EXAMPLE_README = DOCS.parent / "examples" / "spacetime" / "README.md"


def code_blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.S)


def test_three_ways_in_examples_run(monkeypatch):
    from algebras import registry

    for table in ("_FACTORIES", "_ALIASES", "_INSTANCES"):  # the page registers "minkowski": keep it local
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    ns: dict = {}
    blocks = code_blocks(DOCS / "three-ways-in.md", "python")
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, str(DOCS / "three-ways-in.md"), "exec"), ns)  # noqa: S102 - our own docs
    cga = ns["cga"]
    moved = cga.act(cga.geometric_product(ns["T"], ns["R"]), ns["X"])
    torch.testing.assert_close(cga.extract_point(moved), torch.tensor([-2.0, 1.0, 4.0]), atol=1e-4, rtol=0)
    assert tuple(ns["mv_out"].shape) == (8, 10, 1, 32) and tuple(ns["s_out"].shape) == (8, 10, 1)
    assert float((ns["out_mv"] - ns["pga"].act(ns["u"], ns["ref_mv"])).detach().abs().max()) < 1e-12
    assert ns["mink"].linear_basis.shape[0] == 5


def test_getting_started_commands_are_the_readmes():
    readme = code_blocks(README, "bash")[0]
    assert readme in code_blocks(DOCS / "index.md", "bash")


def test_your_own_algebra_examples_run(monkeypatch):
    from algebras import registry

    for table in ("_FACTORIES", "_ALIASES", "_INSTANCES"):  # the page registers "lorentz": keep it local
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    ns: dict = {}
    blocks = code_blocks(DOCS / "your-own-algebra.md", "python")
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, str(DOCS / "your-own-algebra.md"), "exec"), ns)  # noqa: S102 - our own docs
    sta = ns["sta"]
    assert (sta.signature, sta.group.name, sta.dim) == ((1, -1, -1, -1), "SO+(1,3)", 16)
    assert tuple(sta.linear_basis.shape) == (10, 16, 16)
    assert ns["get_algebra"]("SO13").name == "lorentz"
    assert ns["t"] is sta.tensors("cpu", torch.float32) and tuple(ns["t"].invariant_basis.shape) == (2, 16)
    assert sta.attention_feature_dim == 16


def test_the_plugin_example_commands_are_its_readmes():
    assert code_blocks(EXAMPLE_README, "bash")[0] in code_blocks(DOCS / "your-own-algebra.md", "bash")
