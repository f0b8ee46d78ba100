"""End to end: a tiny sweep with a synthetic train function, resume, failures, CLI, analysis."""

import csv
import json
import math
import random
from pathlib import Path

import pytest

from experiments.scaling import __main__ as cli
from experiments.scaling.grid import ConfigError, StudyConfig, run_id
from experiments.scaling.report import analyze
from experiments.scaling.results import collect_results
from experiments.scaling.runner import run_study

ALPHA = {"gatr-pga": 0.30, "tf": 0.20, "tf-aug": 0.25}
CALLS = []


def synthetic_train(spec, data_dir, run_dir):
    """Loss = A * C^-alpha (2% noise), C = 6 * params * steps * batch * bodies; E(3) loss degrades for
    the non-equivariant family without augmentation."""
    CALLS.append(run_id(spec))
    assert Path(data_dir).is_dir() and Path(run_dir).is_dir()
    if spec.get("fail"):
        raise RuntimeError(f"synthetic failure for {spec['name']}")
    params = 10 * spec["width"] ** 2 * spec["depth"]
    flops = 6.0 * params * spec["steps"] * spec["batch_size"] * spec["bodies"]
    rng = random.Random(run_id(spec))
    loss = 1e3 * flops ** -ALPHA.get(spec["name"], 0.25) * math.exp(rng.gauss(0, 0.02))
    loss *= (64 / spec["train_trajectories"]) ** 0.1
    if spec.get("diverge"):
        loss = float("nan")
    e3 = loss * (5.0 if spec["family"] == "transformer" and not spec["augment"] else 1.0)
    return {"params": params, "flops_per_step": flops / spec["steps"], "train_flops": flops,
            "val_loss": loss * 1.01, "test_loss": loss, "test_e3_loss": e3, "extra_metric": 1}


def config(fail_family=None, diverge_family=None):
    fams = [{"name": "gatr-pga", "family": "gatr", "algebra": "projective"},
            {"name": "tf", "family": "transformer"},
            {"name": "tf-aug", "family": "transformer", "augment": True}]
    for f in fams:
        if f["name"] == fail_family:
            f["hparams"] = {"fail": True}
        if f["name"] == diverge_family:
            f["hparams"] = {"diverge": True}
    return StudyConfig.from_dict({
        "name": "tiny",
        "families": fams,
        "model_sizes": [{"width": 4, "depth": 1}, {"width": 8, "depth": 2}, {"width": 16, "depth": 3}],
        "steps": [10, 40, 160],
        "train_trajectories": [64],
        "seeds": [0],
        "data_sweep": {"train_trajectories": [16, 32], "families": ["tf", "tf-aug"]},
        "fixed": {"batch_size": 8},
        "data": {"num_trajectories": 80, "bodies": 4},
    })


def fake_generate(out_dir, num_trajectories, bodies=4, seed=0, workers=1, progress=True):
    out = Path(out_dir) / "rigid_body"
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").write_text(json.dumps({"n": num_trajectories, "bodies": bodies}))
    GEN_CALLS.append(num_trajectories)
    return out


GEN_CALLS = []
THIS = __name__


def test_end_to_end(tmp_path):
    CALLS.clear()
    GEN_CALLS.clear()
    cfg = config()
    n = len(cfg.expand())
    assert n == 27 + 4
    recs = run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=fake_generate, progress=False)
    assert len(recs) == n and len(CALLS) == n and GEN_CALLS == [80]
    assert all(r["status"] == "ok" for r in recs)
    r0 = json.loads((tmp_path / "runs" / recs[0]["run_id"] / "result.json").read_text())
    for k in ("spec", "seed", "params", "train_flops", "test_loss", "test_e3_loss", "wall_time_s", "host",
              "timestamp", "extra_metric"):
        assert k in r0
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == n and {r["status"] for r in rows} == {"ok"}
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == n

    an = analyze(tmp_path, n_boot=100, progress=False)
    for name, alpha in ALPHA.items():
        fa = an["families"][name]
        assert fa["scaling"]["alpha"] == pytest.approx(alpha, abs=0.03), name
        assert fa["scaling"]["alpha_interval"] is None  # one seed: no seed interval is claimed
    # no per-trajectory scores from this train function: no references, no relative losses
    assert an["ballistic_mse"] is None and an["families"]["tf"]["rel_ballistic"] is None
    assert len(an["compute_matched"]["budgets"]) == 3
    eff = an["families"]["tf"]["data_efficiency"]
    assert [r["train_trajectories"] for r in eff] == [16, 32, 64]
    assert eff[0]["test_loss"] > eff[-1]["test_loss"]
    assert eff[0]["test_e3_loss"] > 4 * eff[0]["test_loss"]
    for f in ("report.md", "analysis.json", "plots/loss_vs_compute.png", "plots/contact_vs_compute.png",
              "plots/loss_vs_data.png", "plots/symmetry.png"):
        assert (tmp_path / f).is_file() and (tmp_path / f).stat().st_size > 0, f
    report = (tmp_path / "report.md").read_text()
    assert "gatr-pga" in report and "plots/loss_vs_compute.png" in report and "None." in report

    # resume: nothing is redone, data are not regenerated
    CALLS.clear()
    run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=fake_generate, progress=False)
    assert CALLS == [] and GEN_CALLS == [80]

    # an interrupted run (spec.json but no result.json) is redone, and only it
    victim = recs[5]["run_id"]
    (tmp_path / "runs" / victim / "result.json").unlink()
    assert (tmp_path / "runs" / victim / "spec.json").is_file()
    run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=fake_generate, progress=False)
    assert CALLS == [victim]


def test_failed_runs_recorded(tmp_path):
    CALLS.clear()
    cfg = config(fail_family="tf-aug")
    n = len(cfg.expand())
    recs = run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    assert len(recs) == n == len(CALLS)
    failed = [r for r in recs if r["status"] == "failed"]
    assert len(failed) == 9 + 2 and all(r["spec"]["name"] == "tf-aug" for r in failed)
    f = json.loads((tmp_path / "runs" / failed[0]["run_id"] / "result.json").read_text())
    assert f["error_type"] == "RuntimeError" and "synthetic failure" in f["error_message"]
    assert "Traceback" in f["traceback"]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert sum(r["status"] == "failed" for r in rows) == 11 and len(rows) == n
    an = analyze(tmp_path, n_boot=20, progress=False)
    assert "tf-aug" not in an["families"] and len(an["failed"]) == 11
    assert failed[0]["run_id"] in (tmp_path / "report.md").read_text()
    # failed runs are retried on the next invocation, ok runs are not
    CALLS.clear()
    run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    assert sorted(CALLS) == sorted(r["run_id"] for r in failed)


def test_diverged_runs_reported(tmp_path):
    cfg = config(diverge_family="tf")
    recs = run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    assert all(r["status"] == "ok" for r in recs)
    an = analyze(tmp_path, n_boot=10, progress=False)
    assert "tf" not in an["families"] and len(an["unusable"]) == 11
    assert "left out of the fits" in (tmp_path / "report.md").read_text()


def test_bad_result_is_a_failure(tmp_path):
    cfg = config()

    def bad(spec, data_dir, run_dir):
        return {"params": 3}

    recs = run_study(cfg, tmp_path, shard="0/10", train_fn=bad, generate_fn=None, progress=False)
    assert recs and all(r["status"] == "failed" and r["error_type"] == "KeyError" for r in recs)


def test_shards_cover_grid(tmp_path):
    cfg = config()
    n = len(cfg.expand())
    ids = []
    for i in range(3):
        CALLS.clear()
        recs = run_study(cfg, tmp_path, shard=f"{i}/3", train_fn=synthetic_train, generate_fn=None, progress=False)
        ids += [r["run_id"] for r in recs]
        assert sorted(CALLS) == sorted(r["run_id"] for r in recs)
    assert len(ids) == len(set(ids)) == n
    assert len(collect_results(tmp_path)) == n
    assert len(list(csv.DictReader(open(tmp_path / "results.csv")))) == n


def test_cli(tmp_path, capsys):
    cfg_file = tmp_path / "tiny.yaml"
    import yaml

    d = config().to_dict()
    d["model_sizes"] = d["model_sizes"][:2]
    d["steps"] = d["steps"][:2]
    cfg_file.write_text(yaml.safe_dump(d))
    out = tmp_path / "study"
    assert cli.main(["list", "--config", str(cfg_file)]) == 0
    listing = capsys.readouterr().out
    assert "gatr-pga_w4_d1_s10_n64_seed0-" in listing
    rc = cli.main(["run", "--config", str(cfg_file), "--out", str(out), "--train-fn", f"{THIS}.synthetic_train",
                   "--generate-fn", "none", "--no-progress", "--shard", "1/2"])
    assert rc == 0
    rc = cli.main(["run", "--config", str(cfg_file), "--out", str(out), "--train-fn", f"{THIS}.synthetic_train",
                   "--generate-fn", "none", "--no-progress", "--shard", "0/2"])
    assert rc == 0
    assert cli.main(["analyze", str(out), "--n-boot", "20"]) == 0
    assert (out / "report.md").is_file() and (out / "plots" / "loss_vs_compute.png").is_file()
    assert cli.main(["list", "--preset", "quick", "--shard", "2/2"]) == 2
    assert "shard" in capsys.readouterr().err
    assert cli.main(["list", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no_such_module"):
        run_study(config(), tmp_path / "x", train_fn="no_such_module.train", generate_fn=None, progress=False)
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_real_generator_integration(tmp_path):
    """The default data generator is called once per study directory with the config's settings."""
    from experiments.rigid_body import generate as gen  # a broken install fails here, never skips
    d = config().to_dict()
    d["data"] = {"num_trajectories": 6, "bodies": 2, "seed": 1, "workers": 1, "horizon": 2, "sim": {"frames": 5}}
    d["train_trajectories"] = [4]
    d["data_sweep"] = None
    d["model_sizes"] = d["model_sizes"][:1]
    d["steps"] = d["steps"][:2]
    seen = []

    def train(spec, data_dir, run_dir):
        seen.append(data_dir)
        assert spec["horizon"] == 2 and spec["bodies"] == 2
        return synthetic_train(spec, data_dir, run_dir)

    cfg = StudyConfig.from_dict(d)
    recs = run_study(cfg, tmp_path, train_fn=train, generate_fn=gen.generate_dataset, progress=False)
    assert all(r["status"] == "ok" for r in recs), recs
    assert len(set(seen)) == 1 and (Path(seen[0]) / "manifest.json").is_file()
    assert (tmp_path / "data" / ".scaling_data.json").is_file() and not (tmp_path / "data" / ".lock").exists()


def test_stale_data_lock_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": p.pid}))
    GEN_CALLS.clear()
    d = config().to_dict()
    d["model_sizes"], d["steps"], d["data_sweep"] = d["model_sizes"][:1], d["steps"][:1], None
    recs = run_study(StudyConfig.from_dict(d), tmp_path, train_fn=synthetic_train, generate_fn=fake_generate,
                     progress=False)
    assert GEN_CALLS == [80] and all(r["status"] == "ok" for r in recs)


def test_parallel_jobs_match_sequential(tmp_path):
    """``jobs=2`` trains in worker processes; every run is recorded once, with the same results."""
    d = config().to_dict()
    d["model_sizes"] = d["model_sizes"][:2]
    cfg = StudyConfig.from_dict(d)
    seq = run_study(cfg, tmp_path / "seq", train_fn=f"{THIS}.synthetic_train", generate_fn=None, progress=False)
    par = run_study(cfg, tmp_path / "par", train_fn=f"{THIS}.synthetic_train", generate_fn=None, progress=False,
                    jobs=2)
    assert len(par) == len(seq) == len(cfg.expand())
    by_id = {r["run_id"]: r for r in seq}
    assert sorted(by_id) == sorted(r["run_id"] for r in par)
    for r in par:
        assert r["status"] == "ok" and r["test_loss"] == by_id[r["run_id"]]["test_loss"]
    assert len(collect_results(tmp_path / "par")) == len(seq)
    with pytest.raises(ValueError, match="jobs"):
        run_study(cfg, tmp_path / "bad", train_fn=synthetic_train, generate_fn=None, progress=False, jobs=0)


def test_a_different_grid_is_refused_and_old_runs_stay_out_of_the_fits(tmp_path, capsys):
    """Rerunning a changed config into a study directory would mix two grids in the fits: refused with a
    message naming the differing keys (CLI exit 2). Runs of another grid already there are left out."""
    cfg = config()
    run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    changed = cfg.to_dict()
    changed["steps"] = [10, 40]
    with pytest.raises(ConfigError, match=r"different config \(differing keys: steps\)"):
        run_study(StudyConfig.from_dict(changed), tmp_path, train_fn=synthetic_train, generate_fn=None,
                  progress=False)
    yaml_path = tmp_path / "changed.yaml"
    import yaml

    yaml_path.write_text(yaml.safe_dump(changed))
    assert cli.main(["run", "--config", str(yaml_path), "--out", str(tmp_path), "--generate-fn", "none",
                     "--train-fn", f"{THIS}.synthetic_train", "--no-progress"]) == 2
    assert "different config" in capsys.readouterr().err
    # the same config (a rerun or another shard) passes
    run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    # a directory already holding another grid's runs (an older study): those are named and left out
    foreign = tmp_path / "runs" / "old-run-from-another-grid"
    foreign.mkdir()
    rec = json.loads((tmp_path / "runs" / run_id(cfg.expand()[0]) / "result.json").read_text())
    rec["run_id"], rec["spec"] = foreign.name, {**rec["spec"], "steps": 99999}
    (foreign / "result.json").write_text(json.dumps(rec))
    an = analyze(tmp_path, n_boot=10, progress=False)
    assert an["not_in_grid"] == [foreign.name] and an["n_results"] == len(cfg.expand())
    assert foreign.name in (tmp_path / "report.md").read_text()


def test_analyze_names_unreadable_results_and_refuses_empty_studies(tmp_path, capsys):
    cfg = config()
    recs = run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    victim = tmp_path / "runs" / recs[3]["run_id"] / "result.json"
    victim.write_text(victim.read_text()[:40])  # truncated
    an = analyze(tmp_path, n_boot=10, progress=False)
    rel = str(victim.relative_to(tmp_path))
    assert an["unreadable"] == [f"{rel} (not readable JSON)"] and an["n_results"] == len(recs) - 1
    assert rel in (tmp_path / "report.md").read_text() and rel in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    with pytest.raises(ConfigError, match="no readable result.json"):
        analyze(empty, progress=False)
    assert cli.main(["analyze", str(tmp_path / "missing")]) == 2
    assert "no runs/ directory" in capsys.readouterr().err
    # the truncated run counts as not done: the next invocation redoes it (and only it)
    CALLS.clear()
    run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    assert CALLS == [recs[3]["run_id"]]


def test_run_locks_keep_concurrent_sweeps_from_training_a_run_twice(tmp_path):
    """A run locked by a live process is left to it; a lock of a dead process is taken over; two sweep
    processes on one directory train every run exactly once."""
    import os
    import subprocess
    import sys
    import textwrap

    cfg = config()
    specs = cfg.expand()
    held, stale = (tmp_path / "runs" / run_id(s) for s in specs[:2])
    held.mkdir(parents=True)
    stale.mkdir(parents=True)
    (held / ".lock").write_text(json.dumps({"host": __import__("socket").gethostname(), "pid": os.getpid()}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (stale / ".lock").write_text(json.dumps({"host": __import__("socket").gethostname(),
                                             "pid": int(dead.stdout)}))
    CALLS.clear()
    recs = run_study(cfg, tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    by_id = {r["run_id"]: r for r in recs}
    assert by_id[held.name]["status"] == "skipped" and held.name not in CALLS
    assert by_id[stale.name]["status"] == "ok" and stale.name in CALLS and not (stale / ".lock").exists()
    assert not (held / "result.json").exists()

    # two real processes on a fresh directory: every run trained once (each call leaves a marker file)
    (tmp_path / "counting_train.py").write_text(textwrap.dedent("""
        import os, time, uuid
        def train(spec, data_dir, run_dir):
            open(os.path.join(run_dir, "call-" + uuid.uuid4().hex), "w").close()
            time.sleep(0.3)
            return {"params": 1, "train_flops": 1.0 + spec["steps"], "val_loss": 1.0, "test_loss": 1.0,
                    "test_e3_loss": 1.0}
    """))
    out = tmp_path / "shared"
    script = (f"from experiments.scaling.runner import run_study\n"
              f"run_study({cfg.to_dict()!r}, {str(out)!r}, train_fn='counting_train.train', generate_fn=None, "
              f"progress=False)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    calls = {d.name: len(list(d.glob("call-*"))) for d in (out / "runs").iterdir()}
    assert len(calls) == len(specs) and set(calls.values()) == {1}, calls


LR_OPT = {"gatr-pga": 0.05, "tf": 10.0}


def lr_train(spec, data_dir, run_dir):
    """Validation loss with its optimum at LR_OPT[name] (a parabola in log lr); pilot runs are counted."""
    CALLS.append(run_id(spec))
    val = 1e-3 * (1 + math.log(spec["lr"] / LR_OPT[spec["name"]]) ** 2) * (1 + 0.01 * spec["width"])
    return {"params": 100 * spec["width"], "train_flops": 1e9 * spec["steps"], "val_loss": val, "test_loss": val,
            "test_e3_loss": val}


def test_pilot_brackets_the_learning_rate_and_the_grid_uses_it(tmp_path):
    """The optimum of gatr-pga (0.05) lies above its grid: the pilot extends the grid once past the best
    rate and keeps it (bracketed); tf's (10) lies beyond every extension: chosen at the edge and said so.
    The main grid trains at the choice; pilot runs stay out of the study's results."""
    cfg = StudyConfig.from_dict({
        "name": "pilot", "families": [{"name": "gatr-pga", "family": "gatr", "algebra": "projective"},
                                      {"name": "tf", "family": "transformer"}],
        "model_sizes": [{"width": 4, "depth": 1}], "steps": [10, 20], "train_trajectories": [8], "seeds": [0, 1],
        "pilot": {"lrs": {"gatr": [1e-3, 3e-3, 1e-2], "transformer": [1e-3, 1e-2]}, "steps": 10, "extend": 2},
        "fixed": {"batch_size": 8}, "data": {"num_trajectories": 16, "bodies": 3}})
    CALLS.clear()
    recs = run_study(cfg, tmp_path, train_fn=lr_train, generate_fn=None, progress=False)
    choice = json.loads((tmp_path / "pilot" / "choice.json").read_text())
    g, t = choice["gatr-pga_w4_d1"], choice["tf_w4_d1"]
    assert g["lr"] == pytest.approx(1 / 30) and g["bracketed"]
    assert sorted(map(float, g["candidates"])) == pytest.approx([1e-3, 3e-3, 1e-2, 1 / 30, 1 / 9])
    assert t["lr"] == pytest.approx(1.0) and not t["bracketed"]  # 1e-2 -> 1e-1 -> 1: extensions spent
    assert {(r["spec"]["name"], r["spec"]["lr"]) for r in recs} == {("gatr-pga", g["lr"]), ("tf", t["lr"])}
    assert len(collect_results(tmp_path)) == 8  # 2 families x 2 steps x 2 seeds: no pilot run among them
    n_calls = len(CALLS)
    assert n_calls == 8 + 5 + 4
    run_study(cfg, tmp_path, train_fn=lr_train, generate_fn=None, progress=False)  # resumes: nothing to redo
    assert len(CALLS) == n_calls


@pytest.mark.parametrize("content", ["", "{", '{"host": "x"}', "[]"])
def test_an_unreadable_lock_is_stale(tmp_path, content):
    """An empty or truncated lock (a process killed while creating it, a full disk) is taken over:
    it used to make every rerun skip the run as 'held by another process' and exit 0."""
    import os
    import socket

    from experiments.scaling.execution import try_lock

    lock = tmp_path / ".lock"
    lock.write_text(content)
    assert try_lock(lock) is None
    assert json.loads(lock.read_text()) == {"host": socket.gethostname(), "pid": os.getpid()}
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # no temporary file left behind


def test_a_lock_held_on_another_host_is_left_alone(tmp_path):
    """The holder's liveness can only be checked on its own host: a lock from another host (a shared
    file system) is respected whatever its pid, and one of a live process here too."""
    import os

    from experiments.scaling.execution import try_lock

    lock = tmp_path / ".lock"
    other = {"host": "some-other-node", "pid": 999999999}
    lock.write_text(json.dumps(other))
    assert try_lock(lock) == other and json.loads(lock.read_text()) == other
    mine = {"host": __import__("socket").gethostname(), "pid": os.getppid()}
    lock.write_text(json.dumps(mine))
    assert try_lock(lock) == mine


@pytest.mark.parametrize("edit, reason", [
    (lambda r: r.update(test_loss=str(r["test_loss"])), "test_loss is '"),
    (lambda r: r.pop("run_id"), "no run_id"),
    (lambda r: r["spec"].pop("width"), "spec.width is None"),
    (lambda r: r.update(spec="gatr"), "spec is str"),
])
def test_analyze_skips_a_hand_edited_result_and_names_it(tmp_path, capsys, edit, reason):
    recs = run_study(config(), tmp_path, train_fn=synthetic_train, generate_fn=None, progress=False)
    victim = tmp_path / "runs" / recs[2]["run_id"] / "result.json"
    r = json.loads(victim.read_text())
    edit(r)
    victim.write_text(json.dumps(r))
    assert cli.main(["analyze", str(tmp_path), "--n-boot", "10"]) == 0
    err = capsys.readouterr().err
    assert str(victim.relative_to(tmp_path)) in err and reason in err
    an = json.loads((tmp_path / "analysis.json").read_text())
    assert an["n_results"] == len(recs) - 1 and reason in an["unreadable"][0]


def _write_yaml(path, d):
    import yaml

    path.write_text(yaml.safe_dump(d))
    return str(path)


@pytest.mark.parametrize("change, message", [
    ({"fixed": {"batch_size": 8, "learnng_rate": 0.5}}, "fixed: unknown setting 'learnng_rate'"),
    # values: the training module's own validator, on every family before anything runs
    ({"fixed": {"batch_size": 8, "lr": -0.1}}, "families[0] (gatr-pga): need lr > 0"),
    ({"fixed": {"batch_size": 8, "scheduler": "wsdd"}}, "families[0] (gatr-pga): unknown scheduler 'wsdd'; valid"),
    ({"fixed": {"batch_size": 0}}, "families[0] (gatr-pga): batch_size must be a positive integer, got 0"),
    ({"data_sweep": None, "families": [{"name": "tf", "family": "transformer",
                                        "hparams": {"model_kwargs": {"compile": True}}}]},
     "families[0] (tf): model_kwargs: give compile as a setting of its own"),
    ({"data": {"num_trajectories": 80, "bodies": 1}}, "bodies must be between 2 and 16"),
    ({"data": {"num_trajectories": 80, "bodies": 4, "sim": {"framez": 16}}}, "data.sim: unknown key 'framez'"),
    ({"data": {"num_trajectories": 80, "bodies": 4, "sim": {"frames": 1}}}, "frames"),
])
def test_invalid_sweeps_fail_before_anything_is_written(tmp_path, capsys, change, message):
    """A misspelt setting used to train with the default silently; bad data settings wrote study.json
    and then failed with a traceback, after which the corrected config was refused as 'a different
    config'. Now: exit 2, one line, nothing written, and the corrected config runs."""
    d = config().to_dict()
    d.update(change)
    out = tmp_path / "study"
    assert cli.main(["run", "--config", _write_yaml(tmp_path / "bad.yaml", d), "--out", str(out),
                     "--train-fn", "experiments.training.train_run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], "--jobs: expected a positive"),
    (["--train-fn", "no_such_module.train"], "train function (--train-fn): cannot import module 'no_such_module'"),
    (["--generate-fn", "no_such_module.generate"], "data generator (--generate-fn): cannot import"),
])
def test_bad_run_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    cfg = _write_yaml(tmp_path / "c.yaml", config().to_dict())
    assert cli.main(["run", "--config", cfg, "--out", str(tmp_path / "o"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert cli.main(["analyze", str(tmp_path / "o"), "--n-boot", "-5"]) == 2
    assert "--n-boot: expected a positive" in capsys.readouterr().err
