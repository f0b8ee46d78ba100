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
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import torch

__all__ = ["train_run", "build_from_spec", "SPEC_DEFAULTS"]

SPEC_DEFAULTS = {
    "family": "gatr", "algebra": None, "augment": False, "width": 16, "depth": 2, "num_heads": 4,
    "steps": 100, "train_trajectories": None, "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0,
    "warmup_steps": None, "scheduler": "cosine", "min_lr_ratio": 0.0, "seed": 0, "horizon": 5,
    "bodies": 4, "eval_batches": None, "eval_batch_size": 512, "precision": "32-true",
    "gradient_clip_val": None, "model_kwargs": None, "num_threads": 1, "min_contact_fraction": 0.5,
}


def build_from_spec(spec: dict, data_dir: Path):
    """(module, datamodule, settings) for a run spec (unknown spec keys are ignored)."""
    from .data import TrainingDataModule
    from .module import BodyDynamicsModule

    s = {**SPEC_DEFAULTS, **{k: v for k, v in spec.items() if v is not None or k == "algebra"}}
    steps = int(s["steps"])
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    warmup = s["warmup_steps"]
    if warmup is None:  # 5% of the run, at most 100 steps
        warmup = min(100, max(1, steps // 20))
    module = BodyDynamicsModule(
        family=s["family"], algebra=s["algebra"], width=int(s["width"]), depth=int(s["depth"]),
        num_heads=int(s["num_heads"]), num_bodies=int(s["bodies"]), augment=bool(s["augment"]),
        lr=float(s["lr"]), weight_decay=float(s["weight_decay"]), warmup_steps=int(warmup),
        scheduler=s["scheduler"], min_lr_ratio=float(s["min_lr_ratio"]), total_steps=steps,
        seed=int(s["seed"]), model_kwargs=s["model_kwargs"],
    )
    dm = TrainingDataModule(
        data_dir, horizon=int(s["horizon"]), batch_size=int(s["batch_size"]), num_workers=0,
        max_train_trajectories=s["train_trajectories"], seed=0, bodies=int(s["bodies"]),
        shuffle_seed=int(s["seed"]), min_contact_fraction=s["min_contact_fraction"],
    )
    return module, dm, s


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
    threads = spec.get("num_threads", SPEC_DEFAULTS["num_threads"])
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _train_run(spec, Path(data_dir), Path(run_dir), t_start)
    finally:
        torch.set_num_threads(old_threads)


def _train_run(spec: dict, data_dir: Path, run_dir: Path, t_start: float) -> dict:
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(int(spec.get("seed", 0)), workers=True, verbose=False)
    module, dm, s = build_from_spec(spec, Path(data_dir))
    dm.setup("fit")
    steps, batch_size, bodies = int(s["steps"]), int(s["batch_size"]), int(s["bodies"])

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    trainer = L.Trainer(
        max_steps=steps, max_epochs=-1, accelerator="auto", devices=1,
        precision=s["precision"], gradient_clip_val=s["gradient_clip_val"],
        logger=CSVLogger(run_dir, name="log", version=""), log_every_n_steps=max(1, min(50, steps // 10)),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, deterministic=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(does not have many workers|number of training batches"
                                                  "|GPU available but not used|tensorboardX|TPU available|Experiment logs directory"
                                                  "|LeafSpec).*")
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=dm)
        train_time = time.perf_counter() - t0

    from .evaluation import evaluate_splits

    t_eval = time.perf_counter()
    module.eval()
    scores = evaluate_splits(module, dm, int(s["eval_batch_size"] or batch_size), s["eval_batches"])
    eval_time = time.perf_counter() - t_eval
    losses = scores.pop("losses")
    final_train = trainer.callback_metrics.get("train/loss")
    flops_per_sample = float(module.flops_per_sample)
    flops_per_step = flops_per_sample * batch_size
    done_steps = int(trainer.global_step)
    samples = module.samples_seen
    return {
        "params": int(module.num_parameters()),
        "flops_per_sample": flops_per_sample,
        "flops_per_step": flops_per_step,
        "train_flops": flops_per_step * steps,
        **losses,
        **scores,
        "final_train_loss": float(final_train) if final_train is not None else float("nan"),
        "steps": done_steps,
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
    }
