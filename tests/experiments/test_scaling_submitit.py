"""A two-run sweep through ``--launcher submitit`` with submitit's local executor, end to end: the runs
train in job processes, write the records and tables the local launcher writes, and a second
invocation skips both. Bad launcher options end with one line and exit code 2."""

import csv
import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

import experiments
from experiments.scaling import __main__ as cli
from experiments.scaling.grid import StudyConfig, run_id
from experiments.scaling.launchers import LauncherError, SubmititOptions
from experiments.scaling.runner import run_study

REPO = Path(experiments.__file__).resolve().parents[1]
TRAIN_MODULE = "fake_train_submitit"
FAKE_TRAIN = """
    import os, uuid

    def train(spec, data_dir, run_dir):
        open(os.path.join(run_dir, "call-" + uuid.uuid4().hex), "w").close()  # one marker per training
        loss = 1.0 / spec["steps"]
        return {"params": 10, "train_flops": 1e6 * spec["steps"], "val_loss": loss, "test_loss": loss,
                "test_e3_loss": loss, "pid": os.getpid()}
"""


def two_runs() -> dict:
    return {"name": "two", "families": [{"name": "tf", "family": "transformer"}],
            "model_sizes": [{"width": 4, "depth": 1}], "steps": [10, 20], "train_trajectories": [16],
            "seeds": [0], "fixed": {"batch_size": 8}, "data": {"num_trajectories": 20, "bodies": 4}}


@pytest.fixture
def fake_train(tmp_path, monkeypatch):
    """The fake train function as an importable module, here and in the job processes."""
    code = tmp_path / "code"
    code.mkdir()
    (code / f"{TRAIN_MODULE}.py").write_text(textwrap.dedent(FAKE_TRAIN))
    monkeypatch.syspath_prepend(str(code))
    paths = [str(code), str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(two_runs()))
    return config


def run_args(config: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--config", str(config), "--out", str(out), "--train-fn", f"{TRAIN_MODULE}.train",
            "--generate-fn", "none", "--no-progress", "--launcher", "submitit", "--submitit-executor", "local",
            "--timeout-min", "5", *extra]


def test_two_run_sweep_through_the_local_executor(fake_train, tmp_path, capsys):
    out = tmp_path / "study"
    assert cli.main(run_args(fake_train, out)) == 0
    specs = StudyConfig.from_dict(two_runs()).expand()
    assert len(specs) == 2
    records = [json.loads((out / "runs" / run_id(s) / "result.json").read_text()) for s in specs]
    assert [r["status"] for r in records] == ["ok", "ok"]
    assert all(r["pid"] != os.getpid() for r in records)  # trained in the job processes
    assert {len(list((out / "runs" / run_id(s)).glob("call-*"))) for s in specs} == {1}
    assert not any((out / "runs").glob("*/.lock"))
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert sorted(r["run_id"] for r in rows) == sorted(run_id(s) for s in specs)
    assert len((out / "results.jsonl").read_text().splitlines()) == 2
    assert not (out / "submitit" / "%j").exists()  # no empty folder named after the unreplaced pattern
    submitted = json.loads((out / "submitit" / "submitted.json").read_text())
    assert sorted(s["run_id"] for s in submitted) == sorted(run_id(s) for s in specs)

    # the records are the local launcher's, field for field
    local = run_study(two_runs(), tmp_path / "local", train_fn=f"{TRAIN_MODULE}.train", generate_fn=None,
                      progress=False)
    assert {k for r in local for k in r} == {k for r in records for k in r}

    # a second invocation skips both runs and submits nothing
    capsys.readouterr()
    assert cli.main(run_args(fake_train, out)) == 0
    assert "2 already done, 0 to run" in capsys.readouterr().err
    assert {len(list((out / "runs" / run_id(s)).glob("call-*"))) for s in specs} == {1}

    # --force trains them again, as with the local launcher
    assert cli.main(run_args(fake_train, out, "--force")) == 0
    assert {len(list((out / "runs" / run_id(s)).glob("call-*"))) for s in specs} == {2}


@pytest.mark.parametrize("extra, message", [
    (["--timeout-min", "0"], "--timeout-min: expected a positive integer"),
    (["--mem-gb", "inf"], "--mem-gb: expected a positive number"),
    (["--gpus-per-run", "x"], "--gpus-per-run: expected a non-negative integer"),
    (["--array-parallelism", "2.5"], "--array-parallelism: expected a positive integer"),
    (["--submitit-executor", "pbs"], "--submitit-executor: expected one of slurm, local"),
    (["--partition", "gpu"], "apply to --submitit-executor slurm only"),
    (["--jobs", "2"], "--jobs applies to --launcher local only"),
    (["--no-wait", "--analyze"], "--analyze needs the runs finished"),
])
def test_bad_launcher_options_are_one_line_errors(fake_train, tmp_path, capsys, extra, message):
    out = tmp_path / "study"
    assert cli.main(run_args(fake_train, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not (out / "runs").exists()


def test_launcher_options_need_the_submitit_launcher_and_slurm_needs_sbatch(fake_train, tmp_path, capsys,
                                                                            monkeypatch):
    args = run_args(fake_train, tmp_path / "study")
    local = [a for a in args if a not in ("submitit", "local", "--submitit-executor")]
    local[local.index("--launcher")] = "--launcher=local"
    assert cli.main(local) == 2
    assert "--timeout-min apply to --launcher submitit only" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    slurm = [a if a != "local" else "slurm" for a in args]
    assert cli.main(slurm) == 2
    err = capsys.readouterr().err.strip()
    assert "needs SLURM's sbatch on PATH" in err and "\n" not in err
    assert not (tmp_path / "study" / "data").exists()  # refused before any data generation
    with pytest.raises(LauncherError, match="KEY=VALUE"):
        SubmititOptions.parse_slurm_params(["account"])
