"""``train_run``: one run of a scaling sweep (see :mod:`experiments.scaling.runner`).

Made for many short runs in one process: no progress bar, no checkpoints, no model summary, a
single CSV logger in ``run_dir``, no validation during training (the WHOLE validation split and
the whole test split, plain and transformed, are scored once at the end; ``eval_batches`` may
cap that for smoke tests only), ``num_workers=0`` and the dataset arrays cached across runs with
the same data directory.

Threads: a run uses ``spec["num_threads"]`` intra-op threads (default 1; 0 = leave torch's
setting), restored afterwards.  Sweep models are small, and on a shared 2-core CPU two threads
were measured up to 10x SLOWER than one (spin-waiting under contention); run shards in parallel
processes to use more cores.

``train_branches``: with ``scheduler: wsd`` (warmup-stable-decay), runs that differ only in their
step budget share one run: its constant-rate trunk is checkpointed at each budget's cooldown start
and each budget is a short cooldown branch from there. A branch equals the dedicated run to its
budget bit for bit (same seed, same data order, same schedule up to the branch point; tested), so
the results are those of separate runs at a fraction of the cost.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import torch

from experiments.settings import SPEC_DEFAULTS, SPEC_KEYS, WSD_WARMUP_STEPS, check_spec, spec_data_settings, \
    spec_module_settings, spec_settings, wsd_cooldown_start

__all__ = ["train_run", "train_branches", "branch_key", "build_from_spec", "SPEC_DEFAULTS", "SPEC_KEYS",
           "WSD_WARMUP_STEPS"]


def build_from_spec(spec: dict, data_dir: Path):
    """(module, datamodule, settings) for a run spec (its settings: :func:`experiments.settings.spec_settings`;
    unknown spec keys are ignored)."""
    from .data import TrainingDataModule
    from .module import BodyDynamicsModule

    s = spec_settings(spec)
    module = BodyDynamicsModule(**spec_module_settings(s))
    dm = TrainingDataModule(data_dir, **spec_data_settings(s))
    return module, dm, s


class _Threads:
    """``spec["num_threads"]`` intra-op threads inside the block (0: torch's setting), restored after."""

    def __init__(self, spec: dict):
        self.threads = spec.get("num_threads", SPEC_DEFAULTS["num_threads"])

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(int(self.threads))

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def train_run(spec: dict, data_dir: Path, run_dir: Path) -> dict:
    """Train and evaluate one run of a scaling sweep.

    Parameters
    ----------
    spec : run spec (see :mod:`experiments.scaling.runner`); used keys and defaults in
        :data:`SPEC_DEFAULTS`.  The data split seed is fixed (0) so every run of a study uses the
        same splits; ``seed`` drives initialisation, shuffling order and augmentation.
    data_dir : generated dataset directory
    run_dir : where the CSV log (``run_dir/log``) goes

    Returns
    -------
    dict with ``params`` (trainable parameters), ``flops_per_sample`` (nominal forward+backward
    FLOPs of one sample), ``flops_per_step`` (= flops_per_sample * batch_size), ``train_flops``
    (= flops_per_step * steps); keypoint MSEs [m^2] ``val_loss``, ``test_loss``,
    ``test_contact_loss``, ``test_free_loss``, ``test_e3_loss``, ``test_rotation_loss``,
    ``test_translation_loss`` (whole splits); ``test_per_trajectory`` and, for the closed-form
    references, ``references`` = ``{name: {"test": scores, "val": scores, "per_trajectory": ...}}``
    (see :mod:`experiments.training.evaluation`); ``test_windows``, ``test_contact_fraction``;
    ``final_train_loss``, ``steps``, ``samples_seen``, ``wall_time_s`` (whole call),
    ``train_time_s``, ``eval_time_s``, ``samples_per_s``, ``tokens_per_s`` (training only),
    ``train_set_size`` (samples), ``epochs``, ``num_threads``, ``finite`` (every loss finite).
    """
    t_start = time.perf_counter()
    with _Threads(spec):
        module, dm, s, trainer, train_time = _fit(spec, Path(data_dir), Path(run_dir) / "log")
        return _result(module, dm, s, trainer, train_time, t_start)


def branch_key(spec: dict) -> str:
    """What runs sharing one WSD trunk have in common: the spec without its step budget (JSON)."""
    import json

    return json.dumps({k: v for k, v in spec.items() if k not in ("steps", "budget", "run_id")}, sort_keys=True,
                      default=str)


def train_branches(specs: list[dict], data_dir: Path, run_dirs: list[Path], trunk_dir: Path):
    """Train WSD runs that differ only in ``steps`` as one trunk with a cooldown branch per budget.

    The trunk (constant rate after the warm-up) is checkpointed in ``trunk_dir`` at each budget's
    cooldown start ``T - round(cooldown_fraction * T)``; each budget resumes from there with its own
    cooldown and is evaluated like :func:`train_run`. Budgets are served smallest first; an
    interrupted call resumes from the checkpoints already in ``trunk_dir``.

    Parameters
    ----------
    specs : run specs with ``scheduler: "wsd"`` and equal :func:`branch_key`
    data_dir : dataset directory
    run_dirs : one directory per spec (its branch's log)
    trunk_dir : the trunk's checkpoints and log

    Yields
    ------
    (spec, result) per budget as it finishes: :func:`train_run`'s result, whose ``train_time_s`` and
    ``wall_time_s`` are those of a dedicated run (trunk segments up to the branch point + the branch),
    plus ``branch`` = {``trunk_steps``, ``trunk_time_s``, ``cooldown_time_s``}.
    """
    if not specs:
        return
    keys = {branch_key(sp) for sp in specs}
    if len(keys) != 1 or any(spec_settings(sp)["scheduler"] != "wsd" for sp in specs):
        raise ValueError("train_branches takes WSD runs (scheduler 'wsd') that differ only in 'steps'")
    order = sorted(range(len(specs)), key=lambda i: int(specs[i]["steps"]))
    total = max(int(sp["steps"]) for sp in specs)
    trunk_dir = Path(trunk_dir)
    trunk_dir.mkdir(parents=True, exist_ok=True)
    trunk_spec = {**specs[order[-1]], "steps": total}
    frac = float(spec_settings(trunk_spec)["cooldown_fraction"])
    times = _read_times(trunk_dir)
    with _Threads(trunk_spec):
        for i in order:
            spec, steps = specs[i], int(specs[i]["steps"])
            point = wsd_cooldown_start(steps, frac)
            ckpt = trunk_dir / f"step-{point}.ckpt"
            if point > 0 and not ckpt.exists():
                prev = max((k for k in _trunk_points(trunk_dir) if k < point), default=0)
                t0 = time.perf_counter()
                _fit({**trunk_spec}, Path(data_dir), trunk_dir / "log", max_steps=point, save_at=ckpt,
                     ckpt_path=trunk_dir / f"step-{prev}.ckpt" if prev else None)
                times[str(point)] = times.get(str(prev), 0.0) + time.perf_counter() - t0
                _write_times(trunk_dir, times)
            t0 = t_start = time.perf_counter()  # the trunk's time up to here is counted from its segments
            module, dm, s, trainer, cooldown = _fit(spec, Path(data_dir), Path(run_dirs[i]) / "log",
                                                    ckpt_path=ckpt if point > 0 else None)
            trunk_time = times.get(str(point), 0.0) if point > 0 else 0.0
            out = _result(module, dm, s, trainer, trunk_time + cooldown, t_start)
            out["wall_time_s"] += trunk_time
            out["branch"] = {"trunk_steps": point, "trunk_time_s": trunk_time, "cooldown_time_s": cooldown}
            yield spec, out


train_run.branches = train_branches  # the runner groups WSD runs that differ only in budget into one trunk
train_run.spec_keys = SPEC_KEYS  # the runner refuses settings that no run would read
train_run.check_spec = check_spec  # and values this validator refuses, before anything runs


def _trunk_points(trunk_dir: Path) -> list[int]:
    return [int(p.stem.split("-")[1]) for p in Path(trunk_dir).glob("step-*.ckpt")]


def _read_times(trunk_dir: Path) -> dict:
    from experiments.scaling.results import read_json

    return read_json(Path(trunk_dir) / "times.json") or {}


def _write_times(trunk_dir: Path, times: dict) -> None:
    from experiments.scaling.results import write_json

    write_json(Path(trunk_dir) / "times.json", times)


def _fit(spec: dict, data_dir: Path, log_dir: Path, max_steps: int | None = None, save_at: Path | None = None,
         ckpt_path: Path | None = None):
    """Build the run of ``spec`` and train it to ``max_steps`` (default: its ``steps``), from
    ``ckpt_path`` if given; with ``save_at``, checkpoint (atomically) at the last step.

    Returns (module, datamodule, settings, trainer, training seconds).
    """
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    from .callbacks import SaveAtStep

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(spec.get("seed", 0)), workers=True, verbose=False)
    module, dm, s = build_from_spec(spec, Path(data_dir))
    dm.setup("fit")
    steps = int(s["steps"]) if max_steps is None else int(max_steps)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_steps=steps, max_epochs=-1, accelerator="auto", devices=1,
        precision=s["precision"], gradient_clip_val=s["gradient_clip_val"],
        logger=CSVLogger(log_dir.parent, name=log_dir.name, version=""),
        log_every_n_steps=max(1, min(50, steps // 10)),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=False,
        callbacks=[SaveAtStep(save_at, steps)] if save_at is not None else None,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|number of training batches"
                                                  "|GPU available but not used|tensorboardX|TPU available|Experiment logs directory"
                                                  "|LeafSpec|checkpoint callback|is not None).*")
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path is not None else None)
        train_time = time.perf_counter() - t0
    return module, dm, s, trainer, train_time


def _result(module, dm, s: dict, trainer, train_time: float, t_start: float) -> dict:
    """The evaluated result of a trained run (see :func:`train_run`)."""
    from .callbacks import parameter_checksum
    from .evaluation import evaluate_splits

    batch_size, bodies, steps = int(s["batch_size"]), int(s["bodies"]), int(s["steps"])
    t_eval = time.perf_counter()
    module.eval()
    scores = evaluate_splits(module, dm, int(s["eval_batch_size"] or batch_size), s["eval_batches"])
    eval_time = time.perf_counter() - t_eval
    losses = scores.pop("losses")
    final_train = trainer.callback_metrics.get("train/loss")
    flops_per_sample = float(module.flops_per_sample)
    flops_per_step = flops_per_sample * batch_size
    samples = module.samples_seen
    return {
        "params": int(module.num_parameters()),
        "flops_per_sample": flops_per_sample,
        "flops_per_step": flops_per_step,
        "train_flops": flops_per_step * steps,
        **losses,
        **scores,
        "final_train_loss": float(final_train) if final_train is not None else float("nan"),
        "steps": int(trainer.global_step),
        "samples_seen": int(samples),
        "train_set_size": len(dm.train),
        "epochs": int(trainer.current_epoch),
        "train_time_s": train_time,
        "eval_time_s": eval_time,
        "samples_per_s": samples / train_time if train_time > 0 else float("nan"),
        "tokens_per_s": samples * bodies / train_time if train_time > 0 else float("nan"),
        "wall_time_s": time.perf_counter() - t_start,
        "num_threads": torch.get_num_threads(),
        "finite": all(math.isfinite(v) for k, v in losses.items() if k not in ("test_contact_loss", "test_free_loss")),
        "param_checksum": parameter_checksum(module.model),
    }
