"""The plug-in route end to end with the shipped example (examples/spacetime), no edit to the project:
entry-point discovery, the factory route, equivariance of a GATr on it, training through the CLI and a
two-run sweep through the scaling CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import algebras.registry as registry
from algebras import available_algebras, get_algebra
from gatr import GATr

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "spacetime"
FACTORY = "examples.spacetime.gatr_spacetime:spacetime"


def _fake_install(site: Path) -> Path:
    """What `pip install examples/spacetime` leaves for importlib.metadata: a dist-info with the entry point."""
    info = site / "gatr_spacetime-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gatr-spacetime\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[gatr.algebras]\nspacetime = gatr_spacetime:spacetime\n")
    return site


@pytest.fixture
def scratch_registry(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    monkeypatch.setattr(registry, "_INSTANCES", dict(registry._INSTANCES))
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)


def test_entry_point_registers_the_example(tmp_path, monkeypatch, scratch_registry):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(_fake_install(tmp_path / "site")))
    assert "spacetime" in available_algebras()
    alg = get_algebra("spacetime")
    assert alg.signature == (1, -1, -1, -1) and alg.group.name == "SO+(1,3)"
    assert alg.linear_basis.shape == (10, 16, 16)  # derived, not typed in


def test_a_broken_plugin_only_warns(tmp_path, monkeypatch, scratch_registry):
    site = tmp_path / "site"
    info = site / "broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[gatr.algebras]\nbroken = no_such_module_xyz:factory\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(UserWarning, match="broken"):
        names = available_algebras()
    assert "broken" not in names and "conformal" in names


def test_factory_route_and_gatr_equivariance_in_float64():
    alg = get_algebra(FACTORY)
    torch.manual_seed(0)
    net = GATr(alg, 2, 1, 4, 1, 1, 4, num_blocks=2, num_heads=2).double()
    u = alg.random_versors(3, generator=0)  # SO+(1,3): rotations and boosts
    x = alg.embed_four_vector(torch.randn(3, 5, 2, 4, dtype=torch.float64))
    s = torch.randn(3, 5, 1, dtype=torch.float64)
    rho = alg.act_matrix(u)  # (3, 16, 16)
    act = lambda m: torch.einsum("nab,n...b->n...a", rho, m)  # noqa: E731
    with torch.no_grad():
        y, ys = net(x, s)
        y2, ys2 = net(act(x), s)
    torch.testing.assert_close(act(y), y2, rtol=0, atol=1e-11 * float(y.abs().max()))
    torch.testing.assert_close(ys, ys2, rtol=0, atol=1e-11 * float(ys.abs().max()))
    with pytest.raises(ValueError, match="no attribute 'nope'"):
        get_algebra("examples.spacetime.gatr_spacetime:nope")


def _run(args: list[str], env_path: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *map(str, env_path)]))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_example_trains_through_the_cli_and_sweeps(tmp_path):
    from experiments.rigid_body.generate import generate_dataset

    data = generate_dataset(tmp_path / "data", 12, bodies=3, seed=0, workers=1, progress=False, frames=12)
    site = _fake_install(tmp_path / "site")
    # training through `python -m experiments.train`, the algebra named by its entry point
    done = _run(["-m", "experiments.train", "fit", "--config", str(EXAMPLE / "train.yaml"),
                 "--model.algebra", "spacetime", "--data.data_dir", str(data), "--data.bodies", "3",
                 "--data.horizon", "2", "--data.batch_size", "8", "--data.auto_generate", "false",
                 "--model.width", "4", "--model.depth", "1", "--model.num_heads", "2", "--model.warmup_steps", "1",
                 "--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "1",
                 "--trainer.enable_progress_bar", "false", "--test_after_fit", "false"], [EXAMPLE, site], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    config = (tmp_path / "runs" / "gatr_spacetime" / "version_0" / "config.yaml").read_text()
    assert "algebra: spacetime" in config, config
    # the example's two-run sweep through `python -m experiments.scaling`, the algebra named as a factory
    done = _run(["-m", "experiments.scaling", "run", "--config", str(EXAMPLE / "sweep.yaml"), "--out",
                 str(tmp_path / "study"), "--no-progress", "--jobs", "1"], [], REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    results = sorted((tmp_path / "study" / "runs").glob("*/result.json"))
    assert len(results) == 2
    for path in results:
        result = json.loads(path.read_text())
        assert result["status"] == "ok" and result["spec"]["algebra"] == FACTORY
        assert result["spec"]["name"] == "gatr-spacetime"
