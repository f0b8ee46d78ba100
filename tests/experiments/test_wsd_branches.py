"""WSD schedule and cooldown branches: one trunk serves every budget, each branch equal to its dedicated run."""

from __future__ import annotations

import math

import pytest

from experiments.rigid_body.generate import generate_dataset
from experiments.training import BodyDynamicsModule, train_branches, train_run
from experiments.training.module import wsd_cooldown_start

BODIES = 3


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("wsd_data"), 16, bodies=BODIES, seed=0, workers=1,
                            progress=False, frames=12)


def test_wsd_schedule_shape():
    m = BodyDynamicsModule(family="mlp", algebra=None, width=2, depth=1, num_bodies=3, warmup_steps=10,
                           scheduler="wsd", cooldown_fraction=0.2, min_lr_ratio=0.0)
    f = [m.lr_factor(s, 100) for s in range(100)]
    assert wsd_cooldown_start(100, 0.2) == 80
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(v == 1.0 for v in f[10:80])  # stable phase
    # (1 - sqrt) cooldown over the last 20 steps
    assert f[80] == 1.0 and f[85] == pytest.approx(1 - math.sqrt(5 / 20)) and f[99] == pytest.approx(1 - math.sqrt(19 / 20))
    assert all(a > b for a, b in zip(f[80:], f[81:]))
    # the first 80 steps are those of every longer WSD run with the same warm-up
    assert [m.lr_factor(s, 1000) for s in range(80)] == f[:80]


def _spec(steps: int, **kw) -> dict:
    spec = {"name": "x", "family": "gatr", "algebra": "projective", "augment": False, "width": 4, "depth": 1,
            "steps": steps, "train_trajectories": 8, "seed": 3, "bodies": BODIES, "horizon": 2, "batch_size": 8,
            "lr": 3e-3, "num_heads": 2, "eval_batches": 2, "scheduler": "wsd", "warmup_steps": 4}
    spec.update(kw)
    return spec


@pytest.mark.parametrize("family, algebra, augment", [("gatr", "projective", False), ("transformer", None, True)])
def test_branch_equals_dedicated_run_bit_for_bit(family, algebra, augment, data_dir, tmp_path):
    """Budgets 13 and 22 steps from one trunk (branch points 10 and 18, both mid-epoch) against
    dedicated WSD runs to 13 and 22 steps from scratch: the same parameters and the same losses."""
    budgets = (22, 13)
    specs = [_spec(t, family=family, algebra=algebra, augment=augment) for t in budgets]
    branched = dict()
    for spec, out in train_branches(specs, data_dir, [tmp_path / f"b{t}" for t in budgets], tmp_path / "trunk"):
        branched[spec["steps"]] = out
    assert list(branched) == [13, 22]  # smallest budget first
    assert sorted(int(p.stem.split("-")[1]) for p in (tmp_path / "trunk").glob("step-*.ckpt")) == [10, 18]
    for t in budgets:
        dedicated = train_run(_spec(t, family=family, algebra=algebra, augment=augment), data_dir, tmp_path / f"d{t}")
        got = branched[t]
        per_epoch = math.ceil(got["train_set_size"] / 8)
        assert got["branch"]["trunk_steps"] % per_epoch, "branch points mid-epoch: the data order must resume"
        assert got["steps"] == dedicated["steps"] == t
        assert got["param_checksum"] == dedicated["param_checksum"]
        for key in ("val_loss", "test_loss", "test_e3_loss", "final_train_loss"):
            assert got[key] == dedicated[key], key
        assert got["test_per_trajectory"] == dedicated["test_per_trajectory"]
        assert got["branch"]["trunk_steps"] == wsd_cooldown_start(t, 0.2)
        assert got["train_time_s"] == got["branch"]["trunk_time_s"] + got["branch"]["cooldown_time_s"]
        # a dedicated run's wall time: trunk + cooldown + evaluation, no segment counted twice
        assert got["train_time_s"] + got["eval_time_s"] <= got["wall_time_s"] < got["train_time_s"] + got["eval_time_s"] + 5


def test_branches_resume_from_trunk_checkpoints(data_dir, tmp_path):
    """An interrupted call (only the first budget served) resumes from the trunk's checkpoints."""
    budgets = (13, 22)
    dirs = [tmp_path / f"b{t}" for t in budgets]
    gen = train_branches([_spec(t) for t in budgets], data_dir, dirs, tmp_path / "trunk")
    first = next(gen)[1]
    gen.close()  # interrupted after the first branch
    assert [p.name for p in (tmp_path / "trunk").glob("step-*.ckpt")] == ["step-10.ckpt"]
    (spec, second), = list(train_branches([_spec(22)], data_dir, dirs[1:], tmp_path / "trunk"))
    dedicated = train_run(_spec(22), data_dir, tmp_path / "d22")
    assert second["param_checksum"] == dedicated["param_checksum"] and second["val_loss"] == dedicated["val_loss"]
    assert first["steps"] == 13


def test_branches_refuse_mixed_specs(data_dir, tmp_path):
    with pytest.raises(ValueError, match="differ only in 'steps'"):
        list(train_branches([_spec(13), _spec(22, lr=1e-3)], data_dir, [tmp_path / "a", tmp_path / "b"], tmp_path / "t"))
    with pytest.raises(ValueError, match="WSD"):
        list(train_branches([_spec(13, scheduler="cosine")], data_dir, [tmp_path / "a"], tmp_path / "t"))
