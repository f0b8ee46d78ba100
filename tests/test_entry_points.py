"""The console scripts of pyproject.toml: each target imports, returns an exit code, and its --help
(exit 0) names the program as started and shows an example command. The scripts need not be on PATH."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
MODULES = {"gatr-train": "experiments.train", "gatr-scaling": "experiments.scaling",
           "gatr-generate": "experiments.rigid_body.generate", "gatr-benchmark": "experiments.benchmark"}


def target(script: str):
    module, _, attr = SCRIPTS[script].partition(":")
    return getattr(importlib.import_module(module), attr)


def test_every_command_has_a_script():
    assert set(SCRIPTS) == set(MODULES)


@pytest.mark.parametrize("script", sorted(MODULES))
def test_help_as_the_installed_script(script, monkeypatch, capsys):
    """What `gatr-x --help` runs: sys.argv[0] is the script, the target is called and exits 0."""
    monkeypatch.setattr(sys, "argv", [f"/venv/bin/{script}", "--help"])
    with pytest.raises(SystemExit) as exit_:
        sys.exit(target(script)())
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert f"usage: {script} " in out
    assert "examples:" in out and f"\n  {script} " in out.split("examples:")[-1], out[-600:]


@pytest.mark.parametrize("script", sorted(MODULES))
def test_help_as_python_m_names_the_module(script):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", MODULES[script], "--help"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"usage: python -m {MODULES[script]} " in proc.stdout
    assert f"\n  python -m {MODULES[script]} " in proc.stdout.split("examples:")[-1]


def test_exit_codes_are_returned_not_swallowed(tmp_path, capsys, monkeypatch):
    """The script form returns what `python -m` exits with: 0, and 2 with one line for bad input."""
    monkeypatch.setattr(sys, "argv", ["gatr-scaling"])
    assert target("gatr-scaling")(["list", "--preset", "quick"]) == 0
    assert target("gatr-scaling")(["list", "--preset", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown preset")
    (tmp_path / "file").write_text("")
    assert target("gatr-generate")(["--num-trajectories", "2", "--out", str(tmp_path / "file" / "x"),
                                    "--no-progress", "--workers", "1"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: cannot write the dataset")
    with pytest.raises(SystemExit) as exit_:  # argparse's own errors: exit 2, as with python -m
        target("gatr-generate")(["--num-trajectories", "2", "--out", str(tmp_path / "d"), "--seed", "-1"])
    assert exit_.value.code == 2
