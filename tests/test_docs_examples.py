"""The documentation's Python examples run as written, and its getting-started commands are the README's."""

import re
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"
README = DOCS.parent / "README.md"
EXAMPLE_README = DOCS.parent / "examples" / "spacetime" / "README.md"


def code_blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.S)


def run_blocks(page: Path) -> list[dict]:
    """Each Python block of ``page`` run in a fresh namespace, as a reader who copies one block would."""
    out = []
    for block in code_blocks(page, "python"):
        ns: dict = {}
        exec(compile(block, str(page), "exec"), ns)  # noqa: S102 - our own docs
        out.append(ns)
    return out


def _keep_registry_local(monkeypatch):
    from algebras import registry

    for table in ("_FACTORIES", "_ALIASES", "_INSTANCES"):  # pages register algebras: keep them local
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))


def test_three_ways_in_examples_run(monkeypatch):
    _keep_registry_local(monkeypatch)
    spaces = run_blocks(DOCS / "three-ways-in.md")
    assert len(spaces) >= 4
    ns = spaces[0]
    cga = ns["cga"]
    moved = cga.act(cga.geometric_product(ns["T"], ns["R"]), ns["X"])
    torch.testing.assert_close(cga.extract_point(moved), torch.tensor([-2.0, 1.0, 4.0]), atol=1e-4, rtol=0)
    assert spaces[1]["mink"].linear_basis.shape[0] == 5
    assert tuple(spaces[2]["mv_out"].shape) == (8, 10, 1, 32) and tuple(spaces[2]["s_out"].shape) == (8, 10, 1)
    ns = spaces[3]
    assert float((ns["out_mv"] - ns["pga"].act(ns["u"], ns["ref_mv"])).detach().abs().max()) < 1e-12


def test_readme_examples_run_alone(monkeypatch):
    _keep_registry_local(monkeypatch)
    spaces = run_blocks(README)
    assert len(spaces) >= 2
    assert tuple(spaces[1]["mv_out"].shape) == (8, 10, 1, 32)


def test_getting_started_commands_are_the_readmes():
    readme = code_blocks(README, "bash")[0]
    assert readme in code_blocks(DOCS / "index.md", "bash")


def test_your_own_algebra_examples_run(monkeypatch):
    _keep_registry_local(monkeypatch)
    spaces = run_blocks(DOCS / "your-own-algebra.md")
    assert len(spaces) >= 3
    ns = {k: v for space in spaces for k, v in space.items()}
    sta = ns["sta"]
    assert (sta.signature, sta.group.name, sta.dim) == ((1, -1, -1, -1), "SO+(1,3)", 16)
    assert tuple(sta.linear_basis.shape) == (10, 16, 16)
    assert ns["get_algebra"]("SO13").name == "lorentz"
    assert ns["t"] is sta.tensors("cpu", torch.float32) and tuple(ns["t"].invariant_basis.shape) == (2, 16)
    assert sta.attention_feature_dim == 16


def test_mathematics_examples_run():
    """The mathematics page's line and ray example runs alone and ends with the PGA line of a ray."""
    spaces = run_blocks(DOCS / "mathematics.md")
    assert len(spaces) >= 1
    ns = spaces[0]
    direction, moment = ns["pga"].extract_line(ns["L"])
    torch.testing.assert_close(direction, torch.tensor([0.0, 3.0, 0.0]))
    torch.testing.assert_close(moment, torch.tensor([-6.0, 0.0, 3.0]))


def test_the_plugin_example_commands_are_its_readmes():
    assert code_blocks(EXAMPLE_README, "bash")[0] in code_blocks(DOCS / "your-own-algebra.md", "bash")


def test_the_figure_script_regenerates_the_mathematics_figures(tmp_path):
    """`python docs/scripts/make_figures.py` (named on the mathematics page) runs and draws both figures;
    it called a method the algebras no longer have."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", DOCS / "scripts" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.equivariant_maps(tmp_path / "maps.png")
    mod.product_table(tmp_path / "table.png")
    for name in ("maps.png", "table.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / name).stat().st_size > 10_000
