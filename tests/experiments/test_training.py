"""Training: shipped configs, CLI validation, exact resume, train_run, mixed precision, DDP (2 CPU ranks)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import gatr.nets.gatr as gatr_module

from experiments.rigid_body.dataset import RigidBodyDataset
from experiments.rigid_body.generate import generate_dataset
from experiments.train import main
from experiments.training import BodyDynamicsModule, TrainingDataModule, keypoint_mse, train_run
from experiments.training.callbacks import parameter_checksum
from experiments.training.data import load_cached_arrays

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "experiments" / "configs").glob("*.yaml"))
EXPECTED_CONFIGS = {"gatr_euclidean", "gatr_projective", "gatr_projective_distance", "gatr_conformal",
                    "transformer", "transformer_centred", "transformer_aug", "mlp"}
BODIES = 3


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    # 16 trajectories of 12 frames, 3 bodies: 13 train / 2 val / 1 test... (80/10/10 split)
    return generate_dataset(tmp_path_factory.mktemp("train_data"), 16, bodies=BODIES, seed=0, workers=1,
                            progress=False, frames=12)


@pytest.fixture(autouse=True)
def _plain_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["experiments.train"])  # keep pytest's options away from LightningCLI


def small_args(config: Path, data_dir: Path, *extra: str) -> list[str]:
    """CLI arguments: a shipped config shrunk to a tiny model on the tiny data set."""
    return ["fit", "--config", str(config), "--data.data_dir", str(data_dir), "--data.bodies", str(BODIES),
            "--data.horizon", "2", "--data.batch_size", "8", "--data.auto_generate", "false", "--data.frames", "12",
            "--model.width", "4", "--model.depth", "1", "--model.num_heads", "2", "--model.warmup_steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "1", "--trainer.max_steps", "2",
            "--trainer.log_every_n_steps", "1",
            "--test_after_fit", "false", *extra]


def test_all_configs_shipped():
    assert {c.stem for c in CONFIGS} == EXPECTED_CONFIGS


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_trains(config, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs log to ./runs
    # run=False: parse + instantiate only (no subcommand)
    cli = main(["--config", str(config), "--data.data_dir", str(data_dir), "--data.bodies", "3"], run=False)
    assert isinstance(cli.model, BodyDynamicsModule) and isinstance(cli.datamodule, TrainingDataModule)
    assert cli.model.hparams.num_bodies == 3  # linked from data.bodies
    assert cli.model.hparams.augment == (config.stem == "transformer_aug")
    assert getattr(cli.model.model, "centre", False) == (config.stem == "transformer_centred")

    extra = ["--test_after_fit", "true"] if config.stem == "transformer_aug" else []
    cli = main(small_args(config, data_dir, *extra))
    assert cli.trainer.global_step == 2
    metrics = cli.trainer.callback_metrics  # after the test, only test metrics are left there
    for key in ("test/mse", "test_e3/mse", "test_rotation/mse", "test_translation/mse") if extra else \
            ("train/loss", "val/loss"):
        assert math.isfinite(float(metrics[key])), key
    from experiments.train import run_name

    name = run_name(cli.model.hparams)  # the configs' loggers are named "auto": the model's family and algebra
    assert name == config.stem.replace("projective_distance", "projective-distance")
    run = tmp_path / "runs" / name / "version_0"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    for key in ("train/loss", "val/loss", "perf/tokens_per_s", "perf/train_flops", "lr"):
        values = [float(r[key]) for r in rows if r.get(key)]
        assert values and all(math.isfinite(v) for v in values), key
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "config.yaml").exists()
    assert (run / "checkpoints" / "best-step=2.ckpt").exists()  # top-k by val/loss kept at the final step
    assert list((tmp_path / "runs" / "tensorboard" / name).rglob("events.out.tfevents*"))


def test_algebra_switch_is_one_key(data_dir):
    cfg = REPO / "experiments/configs/gatr_conformal.yaml"
    base = ["--config", str(cfg), "--data.data_dir", str(data_dir), "--data.bodies", "3"]
    assert main(base, run=False).model.hparams.algebra == "conformal"
    for given, canonical in (("euclidean", "euclidean"), ("pga", "projective"), ("projective-distance",
                                                                                   "projective-distance")):
        cli = main([*base, "--model.algebra", given], run=False)
        assert cli.model.hparams.algebra == canonical


@pytest.mark.parametrize("extra, words", [
    (["--model.family", "resnet"], ["unknown model family 'resnet'", "gatr", "transformer", "mlp"]),
    (["--model.algebra", "quaternionic"], ["unknown algebra 'quaternionic'", "euclidean", "projective",
                                           "projective-distance", "conformal"]),
    (["--model.family", "mlp"], ["takes no algebra", "--model.algebra null"]),
    (["--model.algebra", "null"], ["needs an algebra", "conformal"]),
    (["--model.algebra", "os:system"], ["algebra 'os:system' failed"]),  # callable, but builds no algebra
])
def test_invalid_choices_fail_before_training(extra, words, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = REPO / "experiments/configs/gatr_conformal.yaml"
    with pytest.raises(ValueError) as err:
        main(["fit", "--config", str(cfg), "--data.data_dir", str(data_dir), "--data.bodies", "3", *extra])
    for w in words:
        assert w in str(err.value)
    assert not (tmp_path / "runs").exists()  # nothing started


def test_missing_data_dir_message_and_auto_generate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nothing_here"
    cfg = REPO / "experiments/configs/mlp.yaml"
    args = ["fit", "--config", str(cfg), "--data.data_dir", str(missing), "--data.bodies", "2",
            "--trainer.max_steps", "1", "--trainer.logger", "false", "--test_after_fit", "false",
            "--trainer.enable_progress_bar", "false", "--checkpoint.dirpath", str(tmp_path / "ck")]
    with pytest.raises(FileNotFoundError, match="python -m experiments.rigid_body.generate"):
        main([*args, "--data.auto_generate", "false"])
    cli = main([*args, "--data.auto_generate", "true", "--data.auto_generate_trajectories", "10",
                "--data.horizon", "2"])
    assert (missing / "manifest.json").exists() and cli.trainer.global_step == 1


def test_batched_gathering_equals_per_sample_collation(data_dir):
    """Every loader takes one batching path: a batch gathered by one vectorised call
    (RigidBodyDataset.__getitems__) equal to collating its samples one by one, the training batches in
    the order of the resumable sampler."""
    from torch.utils.data import default_collate

    from experiments.rigid_body.dataset import collate_batch

    dm = TrainingDataModule(data_dir, horizon=2, bodies=BODIES, batch_size=4)
    dm.setup("fit")

    def same(fast, slow):
        assert fast.keys() == slow.keys()
        for k in slow:
            torch.testing.assert_close(fast[k], slow[k], rtol=0, atol=0, msg=k)

    for ds in (dm.train, dm.test_e3):  # plain and E(3)-transformed samples
        idx = [5, 0, len(ds) - 1, 3]
        same(ds.__getitems__(idx), default_collate([ds[i] for i in idx]))
    train = dm.train_dataloader()
    order = list(train.sampler)
    assert order != sorted(order)  # shuffled
    same(next(iter(train)), default_collate([dm.train[i] for i in order[:4]]))
    for loader in (train, dm.val_dataloader(), *dm.test_dataloader()):
        assert loader.collate_fn is collate_batch and loader.batch_size == 4


def test_bodies_mismatch_is_explained(data_dir):
    dm = TrainingDataModule(data_dir, bodies=5)
    with pytest.raises(ValueError, match="--data.bodies 3"):
        dm.setup("fit")


@pytest.mark.parametrize("config, split, ckpt_name", [
    ("transformer_aug", 5, "step=5.ckpt"),  # mid-epoch, periodic checkpoint, with augmentation
    ("mlp", 15, "last.ckpt"),               # end of epoch 0 (15 batches of 8), checkpoint written at train end
    ("gatr_projective", 4, "last.ckpt"),    # mid-epoch, checkpoint written at train end
])
def test_resume_from_checkpoint_is_exact(config, split, ckpt_name, data_dir, tmp_path, monkeypatch):
    """N steps + checkpoint + resume to 2N == 2N uninterrupted."""
    monkeypatch.chdir(tmp_path)
    total = 2 * split

    def run(name, steps, ckpt=None):
        args = small_args(REPO / f"experiments/configs/{config}.yaml", data_dir,
                          "--trainer.max_steps", str(steps), "--model.total_steps", str(total),
                          "--model.warmup_steps", "3", "--trainer.logger", "false",
                          "--checkpoint.dirpath", str(tmp_path / name), "--checkpoint.monitor", "null",
                          "--checkpoint.every_n_train_steps", "5", "--checkpoint.save_top_k", "-1",
                          "--checkpoint.filename", "{step}")
        return main(args + (["--ckpt_path", str(ckpt)] if ckpt else []))

    full = run("full", total)
    run("part", split)
    resumed = run("resumed", total, tmp_path / "part" / ckpt_name)
    assert resumed.trainer.global_step == full.trainer.global_step == total
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-7, msg=k)
    torch.testing.assert_close(full.trainer.callback_metrics["train/loss"],
                               resumed.trainer.callback_metrics["train/loss"], rtol=1e-6, atol=0)
    assert full.model.samples_seen == resumed.model.samples_seen


def test_bf16_mixed_precision(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = main(small_args(REPO / "experiments/configs/gatr_euclidean.yaml", data_dir,
                          "--trainer.precision", "bf16-mixed", "--trainer.logger", "false"))
    assert cli.trainer.global_step == 2
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))


REQUIRED = ("params", "flops_per_step", "train_flops", "val_loss", "test_loss", "test_e3_loss", "wall_time_s",
            "tokens_per_s")


@pytest.mark.parametrize("family, algebra, augment", [("mlp", None, False), ("transformer", None, True),
                                                      ("gatr", "projective", False)])
def test_train_run(family, algebra, augment, data_dir, tmp_path):
    spec = {"name": "x", "family": family, "algebra": algebra, "augment": augment, "width": 4, "depth": 1,
            "steps": 3, "train_trajectories": 8, "seed": 1, "bodies": BODIES, "horizon": 2, "batch_size": 8,
            "lr": 1e-3, "weight_decay": 0.0, "num_heads": 2, "eval_batches": 2}
    res = train_run(spec, data_dir, tmp_path / "run")
    for key in REQUIRED:
        assert key in res and math.isfinite(res[key]), key
    assert res["params"] > 0 and res["steps"] == 3
    assert res["flops_per_step"] == pytest.approx(res["flops_per_sample"] * 8)
    assert res["train_flops"] == pytest.approx(res["flops_per_step"] * 3)
    # 8 trajectories x (frames - horizon) start frames, less the contact-free windows beyond half of them
    train = RigidBodyDataset(data_dir, "train", horizon=2, max_trajectories=8, min_contact_fraction=0.5)
    assert res["train_set_size"] == len(train) <= 8 * (12 - 2) and train.contact_fraction >= 0.5
    for key in ("test_loss", "test_contact_loss", "test_rotation_loss", "test_translation_loss"):
        assert math.isfinite(res[key]) and res[key] > 0, key
    assert set(res["references"]) == {"ballistic", "no_motion"}
    json.dumps(res)  # JSON-serialisable for the scaling runner
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # no checkpoint spam
    # same spec, same seed -> same result; the data arrays are cached in-process
    arrays = load_cached_arrays(data_dir)[0]
    again = train_run(spec, data_dir, tmp_path / "run2")
    assert load_cached_arrays(data_dir)[0] is arrays
    assert again["val_loss"] == pytest.approx(res["val_loss"], rel=1e-5)


def test_lr_schedule_warmup_then_cosine(data_dir):
    m = BodyDynamicsModule(family="mlp", algebra=None, width=2, depth=1, num_bodies=3, warmup_steps=10,
                           min_lr_ratio=0.1)
    f = [m.lr_factor(s, 110) for s in range(111)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.55) and f[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


@pytest.mark.slow
def test_ddp_two_cpu_ranks_agree(data_dir, tmp_path):
    """``python -m experiments.train fit ... --trainer.strategy ddp --trainer.devices 2`` on CPU (gloo)."""
    sums = tmp_path / "checksums"
    extra = tmp_path / "checksum.yaml"
    extra.write_text("trainer:\n  callbacks:\n    - class_path: experiments.training.callbacks.ParameterChecksum\n"
                     f"      init_args: {{out_dir: {sums}}}\n")
    cfg = REPO / "experiments/configs/transformer_aug.yaml"
    args = small_args(cfg, data_dir, "--config", str(extra), "--trainer.strategy", "ddp", "--trainer.devices", "2",
                      "--trainer.accelerator", "cpu", "--trainer.max_steps", "3")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    infos = [json.loads((sums / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i["world_size"] == 2 and i["global_step"] == 3 for i in infos)
    assert infos[0]["checksum"] == infos[1]["checksum"]  # gradient-synchronised weights identical
    assert all(math.isfinite(i["train_loss"]) for i in infos)
    run = tmp_path / "runs" / "transformer_aug" / "version_0"
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert losses and all(math.isfinite(v) for v in losses)
    ckpt = BodyDynamicsModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert parameter_checksum(ckpt) == infos[0]["checksum"]  # last.ckpt written at the end of training


def test_datamodule_splits_are_the_split_functions_and_disjoint(data_dir):
    """Train / val / test windows come from exactly the trajectories of split_indices (no leak)."""
    from experiments.rigid_body.dataset import split_indices

    dm = TrainingDataModule(data_dir, horizon=2, bodies=BODIES, max_train_trajectories=10)
    dm.setup("fit")
    split = split_indices(16, seed=0)
    expected = {"train": split["train"][:10], "val": split["val"], "test": split["test"]}
    seen = {}
    for name in ("train", "val", "test", "test_e3", "test_rotation", "test_translation"):
        ds = getattr(dm, name)
        ids = set(ds[torch.arange(len(ds))]["trajectory"].tolist())
        seen[name] = ids
        assert ids == set(expected[name if name in expected else "test"].tolist()), name
    assert not seen["train"] & seen["val"] and not seen["train"] & seen["test"] and not seen["val"] & seen["test"]


def test_keypoint_mse_sums_xyz_and_averages_the_rest():
    pred = torch.zeros(2, 3, 4, 3)
    target = torch.zeros(2, 3, 4, 3)
    target[0, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # one keypoint 5 m off, 24 keypoints in all
    assert float(keypoint_mse(pred, target)) == pytest.approx(25.0 / 24)
    with pytest.raises(ValueError, match="shape"):
        keypoint_mse(pred, target[:, :2])


def test_training_reduces_the_loss_below_free_flight(data_dir, tmp_path):
    """A short run learns: the training loss falls from the free-flight reference's (where an untrained
    model starts) to well below it (measured 2.1e-4 -> 3.9e-5 in 60 steps)."""
    from experiments.training.evaluation import REFERENCES, score, window_errors

    spec = {"name": "x", "family": "transformer", "algebra": None, "width": 8, "depth": 1, "steps": 60,
            "train_trajectories": 13, "seed": 0, "bodies": BODIES, "horizon": 2, "batch_size": 16, "lr": 3e-3,
            "num_heads": 2}
    res = train_run(spec, data_dir, tmp_path / "run")
    dm = TrainingDataModule(data_dir, horizon=2, bodies=BODIES)
    dm.setup("fit")
    start = score(window_errors(REFERENCES["ballistic"], dm.train))["all"]
    assert res["final_train_loss"] < 0.5 * start, (res["final_train_loss"], start)


def test_non_finite_settings_are_refused_and_a_non_finite_loss_stops_training(data_dir, capsys, tmp_path):
    from experiments.rigid_body.generate import main as generate_main
    from experiments.rigid_body.simulate import SimConfig
    from experiments.train import cli_main

    with pytest.raises(ValueError, match="timestep"):
        SimConfig(timestep=float("inf"))
    with pytest.raises(ValueError, match="speed_range must be finite"):
        SimConfig(speed_range=(0.5, float("nan")))
    with pytest.raises(SystemExit) as exit_info:
        generate_main(["--num-trajectories", "2", "--out", "unused", "--timestep", "inf"])
    assert exit_info.value.code == 2 and "positive finite" in capsys.readouterr().err
    for bad in ({"lr": float("inf")}, {"weight_decay": float("nan")}, {"betas": (0.9, float("inf"))}):
        with pytest.raises(ValueError, match="must be finite"):
            BodyDynamicsModule(family="mlp", algebra=None, width=2, depth=1, num_bodies=BODIES, **bad)
    config = REPO / "experiments/configs/mlp.yaml"
    infinite = tmp_path / "inf.yaml"
    infinite.write_text("model:\n  lr: .inf\n")  # YAML's infinity gets past the CLI's float parsing
    assert cli_main(small_args(config, data_dir, "--config", str(infinite))) == 2
    assert "lr must be finite" in capsys.readouterr().err
    # a NaN in the data: training stops at once, naming the step, instead of saving NaN weights
    module = BodyDynamicsModule(family="mlp", algebra=None, width=2, depth=1, num_bodies=BODIES)
    dm = TrainingDataModule(data_dir, horizon=2, bodies=BODIES)
    dm.setup("fit")
    batch = dm.train[torch.arange(4)]
    batch["positions"] = batch["positions"].clone()
    batch["positions"][0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite training loss .* at step 0"):
        module.training_step(batch, 0)


def test_resume_with_other_model_settings_is_refused(data_dir, tmp_path, monkeypatch, capsys):
    """--ckpt_path restores weights, optimiser state and schedule: a new --model.lr or width would be
    dropped silently, so a resume with other model settings stops with the differences named."""
    from experiments.train import cli_main

    monkeypatch.chdir(tmp_path)
    config = REPO / "experiments/configs/mlp.yaml"
    common = ["--trainer.logger", "false", "--checkpoint.dirpath", str(tmp_path / "ck"), "--checkpoint.monitor",
              "null"]
    main(small_args(config, data_dir, *common))
    ckpt = tmp_path / "ck" / "last.ckpt"
    assert ckpt.is_file()
    assert cli_main(small_args(config, data_dir, *common, "--model.lr", "0.5", "--model.width", "8",
                               "--ckpt_path", str(ckpt))) == 2
    err = capsys.readouterr().err
    assert "lr: checkpoint 0.001, requested 0.5" in err and "width: checkpoint 4, requested 8" in err
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:1000])
    assert cli_main(small_args(config, data_dir, *common, "--ckpt_path", str(truncated))) == 2
    assert "unreadable (truncated or not a checkpoint)" in capsys.readouterr().err
    # the same settings resume as before
    assert cli_main(small_args(config, data_dir, *common, "--trainer.max_steps", "4", "--ckpt_path", str(ckpt))) == 0


def test_resume_resolves_aliases_and_may_change_execution_settings(data_dir, tmp_path, monkeypatch, capsys):
    """A euclidean checkpoint resumes with --model.algebra ega (its own alias) and another --model.compile
    (an execution setting, kept as requested): the CLI and the module compare settings one way."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)  # the setting is tested, not the compiler
    monkeypatch.setattr(gatr_module, "_COMPILED_BLOCKS", {})  # nor kept: later tests get really compiled blocks
    config = REPO / "experiments/configs/gatr_euclidean.yaml"
    common = ["--trainer.logger", "false", "--checkpoint.dirpath", str(tmp_path / "ck"), "--checkpoint.monitor",
              "null"]
    last = str(tmp_path / "ck" / "last.ckpt")
    main(small_args(config, data_dir, *common))
    cli = main(small_args(config, data_dir, *common, "--model.compile", "true", "--trainer.max_steps", "4",
                          "--ckpt_path", last))
    assert (cli.trainer.global_step, cli.model.hparams.compile) == (4, True)
    cli = main(small_args(config, data_dir, *common, "--model.algebra", "ega", "--trainer.max_steps", "6",
                          "--ckpt_path", last))
    assert (cli.trainer.global_step, cli.model.hparams.algebra, cli.model.hparams.compile) == (6, "euclidean", False)
    from experiments.train import cli_main

    # a model setting is refused, named alone (a changed compile beside it is not a conflict)
    assert cli_main(small_args(config, data_dir, *common, "--model.compile", "true", "--model.num_heads", "4",
                               "--trainer.max_steps", "8", "--ckpt_path", last)) == 2
    err = capsys.readouterr().err
    assert "other model settings (num_heads: checkpoint 2, requested 4)" in err and "compile" not in err
    from experiments.resume import resume_conflicts

    saved = {"family": "gatr", "algebra": "euclidean", "lr": 1e-3, "compile": False}
    assert resume_conflicts(saved, {**saved, "algebra": "EGA", "compile": True}, step=2) == {}
    assert resume_conflicts(saved, {**saved, "algebra": "pga"}, step=2) == {"algebra": ("euclidean", "projective")}


def test_training_without_checkpoints(data_dir, tmp_path, monkeypatch):
    """--trainer.enable_checkpointing false (a standard Lightning option) trains and writes no checkpoint."""
    monkeypatch.chdir(tmp_path)
    cli = main(small_args(REPO / "experiments/configs/mlp.yaml", data_dir, "--trainer.enable_checkpointing", "false"))
    assert cli.trainer.global_step == 2 and cli.trainer.checkpoint_callback is None
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_truncated_shard_names_the_file_and_the_command_that_regenerates_it(data_dir, tmp_path, capsys,
                                                                             monkeypatch):
    import shlex
    import shutil

    from experiments.rigid_body.generate import main as generate_main
    from experiments.train import cli_main

    monkeypatch.chdir(tmp_path)
    data = shutil.copytree(data_dir, tmp_path / "data")
    shard = data / "shard_00000.npz"
    shard.write_bytes(shard.read_bytes()[:1000])
    args = small_args(REPO / "experiments/configs/mlp.yaml", data, "--trainer.logger", "false")
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    command = (f"python -m experiments.rigid_body.generate --num-trajectories 16 --bodies {BODIES} --seed 0 "
               f"--shard-size 500 --frames 12 --out {data}")
    assert err.startswith(f"error: shard file {shard} is corrupted or truncated") and err.count("\n") == 1
    assert err.rstrip().endswith(command)
    assert generate_main([*shlex.split(command)[3:], "--workers", "1", "--no-progress"]) == 0  # the command works
    assert cli_main(args) == 0


def test_interrupted_automatic_generation_resumes(tmp_path, capsys):
    """A dataset whose generation was interrupted (manifest says incomplete) is resumed by auto_generate,
    and otherwise named as incomplete with the command that resumes it."""
    import json as _json

    data = tmp_path / "auto"
    generate_dataset(data, 6, bodies=BODIES, seed=0, workers=1, progress=False, frames=16)  # the auto-generation's settings
    manifest = _json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(_json.dumps({**manifest, "complete": False}))  # as if interrupted
    (data / "shard_00000.npz").unlink()
    off = TrainingDataModule(data, horizon=2, bodies=BODIES, auto_generate=False)
    with pytest.raises(FileNotFoundError, match="incomplete .*interrupted.*experiments.rigid_body.generate"):
        off.prepare_data()
    with pytest.raises(FileNotFoundError, match="incomplete"):
        off.setup("fit")
    on = TrainingDataModule(data, horizon=2, bodies=BODIES, auto_generate=True, auto_generate_trajectories=6)
    on.prepare_data()
    assert (data / "shard_00000.npz").is_file() and _json.loads((data / "manifest.json").read_text())["complete"]
    on.setup("fit")
    assert len(on.train) > 0


def test_one_compile_switch_with_the_family_s_meaning(data_dir, monkeypatch):
    """--model.compile true: a GATr family sets its network's own GATrConfig.compile (the blocks compiled with
    fullgraph=True, the inputs checked eagerly); a baseline compiles its whole forward. Either way the state
    dict (checkpoints) is the plain model's, and compile is an execution setting a resumed run may change."""
    from experiments.training.module import EXECUTION_SETTINGS

    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: calls.append(kwargs) or fn)  # the switch, not inductor
    base = ["--data.data_dir", str(data_dir), "--data.bodies", "3", "--model.width", "4", "--model.depth", "1"]
    gatr = [*base, "--config", str(REPO / "experiments/configs/gatr_projective.yaml")]
    compiled, plain = main([*gatr, "--model.compile", "true"], run=False).model, main(gatr, run=False).model
    assert compiled.model.net.config.compile and not plain.model.net.config.compile and calls == []
    assert set(compiled.state_dict()) == set(plain.state_dict())
    dm = TrainingDataModule(data_dir, horizon=5, bodies=BODIES)
    dm.setup("fit")
    batch = dm.train[torch.arange(2)]
    compiled(batch)  # (the fake compiler runs the forward eagerly)
    assert calls == [{"fullgraph": True}]  # GATr's own compile, on its first call
    tf = [*base, "--config", str(REPO / "experiments/configs/transformer.yaml")]
    compiled, plain = main([*tf, "--model.compile", "true"], run=False).model, main(tf, run=False).model
    assert calls[1:] == [{}] and compiled.model._compiled_call_impl is not None  # nn.Module.compile
    assert plain.model._compiled_call_impl is None and set(compiled.state_dict()) == set(plain.state_dict())
    assert "compile" in EXECUTION_SETTINGS


def test_the_run_folder_follows_the_algebra_and_configs_train_on_the_benchmark_task(data_dir, tmp_path, monkeypatch):
    """`--model.algebra euclidean` on the conformal config logs to runs/gatr_euclidean (it wrote to
    runs/gatr_conformal); the shipped configs expect and generate 16-frame data and refuse other data by name."""
    from experiments.train import run_name

    monkeypatch.chdir(tmp_path)
    cli = main(small_args(REPO / "experiments/configs/gatr_conformal.yaml", data_dir, "--model.algebra", "euclidean")[1:],
               run=False)  # parse and instantiate only: no subcommand
    assert [lg.name for lg in cli.trainer.loggers] == ["gatr_euclidean", "gatr_euclidean"]
    assert run_name({"family": "transformer", "model_kwargs": {"centre": True}, "augment": False}) == "transformer_centred"
    for cfg in (REPO / "experiments/configs").glob("*.yaml"):
        text = cfg.read_text()
        assert "frames: 16" in text and "logger" not in yaml.safe_load(text)["trainer"], cfg.name  # named "auto"
    dm = TrainingDataModule(data_dir, horizon=2, bodies=BODIES, frames=16)  # the fixture has 12 frames
    with pytest.raises(ValueError, match="has 12 frames per trajectory but frames=16; pass --data.frames 12"):
        dm.setup("fit")
