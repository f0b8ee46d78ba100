"""Lightning module that trains any model family on rigid-body dynamics.

Task: from the state of ``N`` bodies at frame ``t`` predict the bodies' keypoints (centre and the
three axis tips, see :mod:`experiments.rigid_body.dataset`) at frame ``t + horizon``.

Loss (train / val / test, the same quantity everywhere)::

    loss = mean_{batch, body, keypoint} || pred - target ||^2        [m^2]

i.e. the squared Euclidean distance of each predicted keypoint from its target, summed over x, y, z,
then averaged over keypoints (4), bodies (N) and samples.  ``sqrt(loss)`` is an RMS keypoint error
in metres.

Settings: the fields of :class:`experiments.settings.ModelSettings`, defined there with their defaults and
checked in ``__init__`` by :func:`experiments.settings.check_model_settings` (before any training starts):

* the families of :data:`experiments.models.FAMILIES`; ``gatr`` takes an ``algebra`` from
  :func:`algebras.available_algebras` (plug-ins included; aliases are canonicalised) or an importable
  factory ``"module:attribute"``,
* ``transformer`` and ``mlp`` (``algebra`` must be ``None``); ``augment=True`` adds random E(3)
  augmentation (rotations, reflections, translations) of every training batch.

Before training (``setup("fit")``) the model's input/output statistics are set from the training
split (:meth:`BodyModel.fit_normalization`: baselines standardise their features and scale their
outputs, GATr standardises its invariant scalars) and saved with the model's buffers.

Logged metrics: ``train/loss``, ``val/loss``, ``test/mse`` (plain test set), ``test_e3/mse``
(E(3)-transformed test set), ``test_rotation/mse`` (rotations and reflections only),
``test_translation/mse`` (translations only), ``lr``, and per training step ``perf/samples_per_s``,
``perf/tokens_per_s`` (tokens = bodies) and ``perf/train_flops`` (nominal training FLOPs so far =
forward+backward FLOPs per sample x samples seen).  Rates are timed from batch start to batch end
(forward, backward, optimiser step; data loading excluded); all ``perf`` values count all ranks.
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch

from experiments.models import validate_family_algebra
from experiments.resume import check_resume, resume_conflicts, resume_exemptions
from experiments.settings import (EXECUTION_SETTINGS, MODEL_DEFAULTS as D, SCHEDULERS, ModelSettings,
                                  check_model_settings, with_parameters, wsd_cooldown_start)

__all__ = [
    "BodyDynamicsModule",
    "keypoint_mse",
    "valid_families",
    "valid_algebras",
    "validate_family_algebra",
    "SCHEDULERS",
    "EXECUTION_SETTINGS",
    "wsd_cooldown_start",
    "resume_conflicts",
    "resume_exemptions",
]


def keypoint_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared keypoint distance [m^2]: sum over xyz, mean over everything else.

    Parameters
    ----------
    pred, target : Tensor, shape (B, N, 4, 3)
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    return (pred.float() - target.float()).pow(2).sum(-1).mean()


def valid_families() -> tuple[str, ...]:
    """Model families known to :func:`experiments.models.build_model` (its registry)."""
    from experiments.models import FAMILIES

    return tuple(FAMILIES)


def valid_algebras() -> tuple[str, ...]:
    """Names of the registered algebras, plug-ins included (usable with families that take an algebra)."""
    from algebras import available_algebras

    return tuple(available_algebras())


class BodyDynamicsModule(L.LightningModule):
    """Train a keypoint-prediction model of any family.

    Parameters
    ----------
    family, algebra, width, depth, num_heads, num_bodies, augment, augment_translation_scale, lr, weight_decay, \
betas, warmup_steps, scheduler, min_lr_ratio, cooldown_fraction, total_steps, seed, model_kwargs, compile
        The fields of :class:`experiments.settings.ModelSettings`, where they are defined with their defaults
        and checked (:func:`~experiments.settings.check_model_settings`; an invalid value fails here, before
        any training). The command line's ``--model.*``; ``--help`` shows the descriptions.
    """

    def __init__(
        self,
        family: str = D.family,
        algebra: str | None = D.algebra,
        width: int = D.width,
        depth: int = D.depth,
        num_heads: int = D.num_heads,
        num_bodies: int = D.num_bodies,
        augment: bool = D.augment,
        augment_translation_scale: float = D.augment_translation_scale,
        lr: float = D.lr,
        weight_decay: float = D.weight_decay,
        betas: tuple[float, float] = D.betas,
        warmup_steps: int = D.warmup_steps,
        scheduler: str = D.scheduler,
        min_lr_ratio: float = D.min_lr_ratio,
        cooldown_fraction: float = D.cooldown_fraction,
        total_steps: int | None = D.total_steps,
        seed: int = D.seed,
        model_kwargs: dict | None = D.model_kwargs,
        compile: bool = D.compile,
    ):
        super().__init__()
        checked = check_model_settings({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        self.save_hyperparameters()
        self.hparams.family, self.hparams.algebra = checked["family"], checked["algebra"]

        from experiments.models import build_model

        # compile: the family's own way (GATr: its network's GATrConfig.compile), see ModelSettings
        self.model = build_model(checked["family"], checked["algebra"], width=width, depth=depth,
                                 num_heads=num_heads, num_bodies=num_bodies, compile=compile, **(model_kwargs or {}))
        self.flops_per_sample = float(self.model.nominal_flops_per_sample(num_bodies))
        self.samples_seen = 0  # training samples over all ranks (persisted in checkpoints)
        self._t_batch = None

    # ------------------------------------------------------------------ model

    def forward(self, batch: dict) -> torch.Tensor:
        return self.model(batch)

    def num_parameters(self) -> int:
        n = getattr(self.model, "num_parameters", None)
        return int(n()) if callable(n) else sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def augmentation_generator(self, step: int | None = None) -> torch.Generator:
        """Generator of the augmentation of one step: a function of (seed, rank, step) only."""
        step = self.global_step if step is None else step
        rank = self.global_rank if self._trainer is not None else 0
        seed = (int(self.hparams.seed) * 1_000_003 + rank * 7_919 + int(step) * 104_729 + 1) % (2**63 - 1)
        return torch.Generator(device="cpu").manual_seed(seed)

    def _augment(self, batch: dict) -> dict:
        from experiments.models.augmentation import augment_batch

        return augment_batch(batch, self.augmentation_generator(),
                             translation_scale=self.hparams.augment_translation_scale)

    def setup(self, stage: str) -> None:
        if stage != "fit" or self._trainer is None:
            return
        dm = getattr(self.trainer, "datamodule", None)
        train = getattr(dm, "train", None)
        if train is not None and len(train):
            self.fit_normalization(train)

    @torch.no_grad()
    def fit_normalization(self, dataset, max_samples: int = 50_000) -> None:
        """The model's training-set statistics from (an evenly spaced subset of) ``dataset``."""
        n = len(dataset)
        idx = torch.linspace(0, n - 1, min(n, max_samples)).round().long().unique()
        self.model.fit_normalization(dataset[idx])

    def _check_bodies(self, batch: dict) -> None:
        n = batch["positions"].shape[-2]
        if n != self.hparams.num_bodies:
            raise ValueError(f"data has {n} bodies per scene but the model was built for num_bodies="
                             f"{self.hparams.num_bodies}; set --data.bodies / num_bodies to {n}")

    # ------------------------------------------------------------------ steps

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0:
            self._check_bodies(batch)
        if self.hparams.augment:
            batch = self._augment(batch)
        loss = keypoint_mse(self(batch), batch["target_keypoints"])
        if not bool(torch.isfinite(loss)):  # stop, never train on (and checkpoint) NaN weights
            raise FloatingPointError(f"non-finite training loss ({float(loss)}) at step {self.global_step}; "
                                     "lower --model.lr, or check the data for NaN or inf")
        bs = batch["positions"].shape[0]
        # counted here (not in on_train_batch_end) so that checkpoints written by callbacks in
        # on_train_batch_end already include this batch
        self.samples_seen += bs * (self.trainer.world_size if self._trainer is not None else 1)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if self._trainer is not None and self.trainer.optimizers:
            self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=bs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = keypoint_mse(self(batch), batch["target_keypoints"])
        self.log("val/loss", loss, prog_bar=True, batch_size=batch["positions"].shape[0], sync_dist=True)
        return loss

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        from experiments.rigid_body.dataset import EVAL_SETS

        loss = keypoint_mse(self(batch), batch["target_keypoints"])
        name = f"{list(EVAL_SETS)[dataloader_idx]}/mse"
        self.log(name, loss, batch_size=batch["positions"].shape[0], sync_dist=True, add_dataloader_idx=False)
        return loss

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        return self(batch)

    # ------------------------------------------------------------------ throughput / FLOPs

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._t_batch = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        bs = batch["positions"].shape[0]
        n = batch["positions"].shape[-2]
        world = self.trainer.world_size if self._trainer is not None else 1
        if self._t_batch is None:
            return
        dt = max(time.perf_counter() - self._t_batch, 1e-9)
        self.log_dict({
            "perf/samples_per_s": bs * world / dt,
            "perf/tokens_per_s": bs * n * world / dt,
            "perf/train_flops": self.flops_per_sample * self.samples_seen,
        }, batch_size=bs, on_step=True, on_epoch=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["samples_seen"] = self.samples_seen

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # resuming restores weights, optimiser and schedule: new settings would be dropped silently
        check_resume(checkpoint.get("hyper_parameters") or {}, self.hparams, int(checkpoint.get("global_step", 0)))
        self.samples_seen = int(checkpoint.get("samples_seen", 0))

    # ------------------------------------------------------------------ optimiser

    def lr_factor(self, step: int, total: int) -> float:
        """Learning-rate multiplier at optimiser step ``step`` of ``total``."""
        h = self.hparams
        if h.warmup_steps > 0 and step < h.warmup_steps:
            return (step + 1) / h.warmup_steps
        if h.scheduler == "constant":
            return 1.0
        if h.scheduler == "wsd":
            start = wsd_cooldown_start(total, h.cooldown_fraction)
            if step < start:
                return 1.0
            # (1 - sqrt) cooldown: 1 at its first step, ->  min_lr_ratio at ``total``
            progress = min(1.0, (step - start) / max(1, total - start))
            return h.min_lr_ratio + (1.0 - h.min_lr_ratio) * (1.0 - math.sqrt(progress))
        decay = max(1, total - h.warmup_steps)
        progress = min(1.0, (step - h.warmup_steps) / decay)
        if h.scheduler == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:  # linear
            shape = 1.0 - progress
        return h.min_lr_ratio + (1.0 - h.min_lr_ratio) * shape

    def configure_optimizers(self):
        h = self.hparams
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": h.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        # fused: one kernel for every parameter instead of ~10 operations per parameter tensor (measured on the
        # quick preset's width-8 GATr, 67 tensors: 4-14 ms -> 0.8 ms per step on 2 CPU cores; README, speed)
        fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
        opt = torch.optim.AdamW(groups, lr=h.lr, betas=tuple(h.betas), **({"fused": True} if fused else {}))
        total = h.total_steps
        if total is None:
            est = self.trainer.estimated_stepping_batches if self._trainer is not None else float("inf")
            total = int(est) if math.isfinite(est) else max(1, h.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.lr_factor(s, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


# the command line's --help reads each option's description from the class docstring: the settings' own
BodyDynamicsModule.__doc__ = with_parameters(BodyDynamicsModule.__doc__, ModelSettings)
