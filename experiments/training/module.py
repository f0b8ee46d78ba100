"""Lightning module that trains any model family on rigid-body dynamics.

Task: from the state of ``N`` bodies at frame ``t`` predict the bodies' keypoints (centre and the
three axis tips, see :mod:`experiments.rigid_body.dataset`) at frame ``t + horizon``.

Loss (train / val / test, the same quantity everywhere)::

    loss = mean_{batch, body, keypoint} || pred - target ||^2        [m^2]

i.e. the squared Euclidean distance of each predicted keypoint from its target, summed over x, y, z,
then averaged over keypoints (4), bodies (N) and samples.  ``sqrt(loss)`` is an RMS keypoint error
in metres.

Families (validated in ``__init__``, before any training starts):

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

__all__ = [
    "BodyDynamicsModule",
    "keypoint_mse",
    "valid_families",
    "valid_algebras",
    "validate_family_algebra",
    "SCHEDULERS",
    "wsd_cooldown_start",
    "resume_conflicts",
    "resume_exemptions",
]

SCHEDULERS = ("cosine", "linear", "constant", "wsd")
#: hyper-parameters that change how the model runs, not what it computes: resuming may change them
EXECUTION_SETTINGS = ("compile",)


def wsd_cooldown_start(total_steps: int, cooldown_fraction: float) -> int:
    """First optimiser step of a WSD run's cooldown: ``total - max(1, round(fraction * total))``."""
    return int(total_steps) - max(1, round(float(cooldown_fraction) * int(total_steps)))


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


def validate_family_algebra(family: str, algebra: str | None) -> tuple[str, str | None]:
    """Check ``family`` / ``algebra`` and return them canonicalised (an alias becomes its name; a
    ``"module:attribute"`` factory stays as given, so a checkpoint rebuilds the same algebra).

    Raises
    ------
    ValueError
        Listing the valid values, for an unknown family, an unknown algebra, a family that needs an
        algebra without one, or an algebra given to a family that takes none.
    """
    from experiments.models import FAMILIES, algebra_families

    fam = str(family).lower()
    if fam not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}")
    if not FAMILIES[fam].takes_algebra:
        if algebra not in (None, "", "none", "None"):
            raise ValueError(f"family {fam!r} takes no algebra (got {algebra!r}; pass --model.algebra null); "
                             f"algebras ({', '.join(valid_algebras())}) are for the families {algebra_families()}")
        return fam, None
    if algebra in (None, "", "none", "None"):
        raise ValueError(f"family {fam!r} needs an algebra; valid algebras: {', '.join(valid_algebras())}")
    from algebras import canonical_name, get_algebra

    try:
        name = canonical_name(str(algebra))
        get_algebra(name)  # a factory that fails or returns no algebra: the error names it now
    except (ValueError, TypeError) as err:
        raise ValueError(str(err)) from None
    return fam, name


def _differs(a, b) -> bool:
    """Hyper-parameters compared as saved (tuples and lists alike)."""
    norm = (lambda x: list(x) if isinstance(x, (tuple, list)) else x)  # noqa: E731
    return norm(a) != norm(b)


def _resolved(settings) -> dict:
    """``settings`` with ``family`` and ``algebra`` named as :func:`validate_family_algebra` names them (an
    alias resolved); left as given where they are invalid (building the model then says why)."""
    out = dict(settings)
    if "family" in out:
        try:
            out["family"], out["algebra"] = validate_family_algebra(out["family"], out.get("algebra"))
        except ValueError:
            pass
    return out


def _same_schedule_until(saved, requested, step: int) -> bool:
    """Whether a checkpoint at ``step`` of a WSD run with ``saved`` settings is a branch point of a run with
    ``requested`` settings: both are WSD with the same warm-up, and neither has started its cooldown before
    ``step``."""
    if requested.get("scheduler") != "wsd" or saved.get("scheduler") != "wsd" or saved.get("total_steps") is None \
            or requested.get("total_steps") is None:
        return False
    same = all(not _differs(saved.get(k), requested.get(k)) for k in ("warmup_steps", "cooldown_fraction"))
    fraction = requested["cooldown_fraction"]
    return same and step <= min(wsd_cooldown_start(int(saved["total_steps"]), fraction),
                                wsd_cooldown_start(int(requested["total_steps"]), fraction))


def resume_exemptions(saved, requested, step: int) -> set[str]:
    """The settings a resume may change: the :data:`EXECUTION_SETTINGS`, and ``total_steps`` where the
    checkpoint is a branch point of the requested WSD schedule.

    Parameters
    ----------
    saved : mapping
        The checkpoint's hyper-parameters.
    requested : mapping
        The settings of the resumed run (:class:`BodyDynamicsModule`'s arguments).
    step : int
        The checkpoint's global step.

    Returns
    -------
    set of str
    """
    exempt = set(EXECUTION_SETTINGS)
    if _same_schedule_until(saved, requested, step):
        exempt.add("total_steps")  # a WSD cooldown branch: both schedules agree up to the checkpoint
    return exempt


def resume_conflicts(saved, requested, step: int) -> dict:
    """The settings a resume would silently drop: resuming restores weights, optimiser and schedule, so
    every setting both name must agree, except those of :func:`resume_exemptions`. Family and algebra
    are compared after resolving aliases (``ega`` is ``euclidean``). The one comparison of the training
    CLI (``--ckpt_path``) and :meth:`BodyDynamicsModule.on_load_checkpoint`.

    Parameters
    ----------
    saved : mapping
        The checkpoint's hyper-parameters.
    requested : mapping
        The settings of the resumed run.
    step : int
        The checkpoint's global step.

    Returns
    -------
    dict
        ``{setting: (checkpoint value, requested value)}``, empty when the run may resume.
    """
    exempt = resume_exemptions(saved, requested, step)
    saved, resolved = _resolved(saved), _resolved(requested)
    return {k: (saved[k], resolved[k]) for k in sorted(resolved)
            if k in saved and k not in exempt and _differs(saved[k], resolved[k])}


class BodyDynamicsModule(L.LightningModule):
    """Train a keypoint-prediction model of any family.

    Parameters
    ----------
    family : a key of :data:`experiments.models.FAMILIES` ("gatr", "transformer", "mlp")
    algebra : for ``gatr``: a name from :func:`algebras.available_algebras` (or an alias), or an
        importable factory ``"module:attribute"``; must be None for the other families
    width, depth, num_heads : model size (see :func:`experiments.models.build_model`)
    num_bodies : bodies per scene (tokens per sample); must match the data
    augment : apply a random E(3) transformation (with reflections) to every training batch
    augment_translation_scale : std of the augmentation translations [m]
    lr : peak learning rate (AdamW)
    weight_decay : AdamW weight decay
    betas : AdamW betas
    warmup_steps : linear warm-up from 0 to ``lr``
    scheduler : after warm-up: "cosine" (to ``min_lr_ratio * lr``), "linear" (to the same),
        "constant", or "wsd" (warmup-stable-decay: constant, then a (1 - sqrt) cooldown to the same over
        the last ``cooldown_fraction`` of the run; Hägele et al. 2024, arXiv 2405.18392). A WSD run to
        ``T`` steps equals, up to its cooldown start, every longer WSD run with the same warm-up, so
        one run can serve many budgets (:func:`experiments.training.run.train_branches`)
    min_lr_ratio : final learning rate as a fraction of ``lr``
    cooldown_fraction : for "wsd": the cooldown's share of ``total_steps`` (rounded, at least one step)
    total_steps : length of the schedule in optimiser steps; default: the trainer's
        ``estimated_stepping_batches`` (``max_steps`` when set)
    seed : seed of the augmentation stream (combined with rank and step, so resuming from a
        checkpoint reproduces it exactly)
    model_kwargs : further keyword arguments for ``build_model``
    compile : run the model through ``torch.compile`` (an execution setting: a checkpoint resumes with
        either value)
    """

    def __init__(
        self,
        family: str = "gatr",
        algebra: str | None = None,
        width: int = 16,
        depth: int = 2,
        num_heads: int = 4,
        num_bodies: int = 4,
        augment: bool = False,
        augment_translation_scale: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 100,
        scheduler: str = "cosine",
        min_lr_ratio: float = 0.0,
        cooldown_fraction: float = 0.2,
        total_steps: int | None = None,
        seed: int = 0,
        model_kwargs: dict | None = None,
        compile: bool = False,
    ):
        super().__init__()
        family, algebra = validate_family_algebra(family, algebra)
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {scheduler!r}; valid schedulers: {', '.join(SCHEDULERS)}")
        for name, v in (("width", width), ("depth", depth), ("num_heads", num_heads), ("num_bodies", num_bodies)):
            if int(v) < 1:
                raise ValueError(f"{name} must be a positive integer, got {v}")
        numbers = {"lr": lr, "weight_decay": weight_decay, "min_lr_ratio": min_lr_ratio,
                   "augment_translation_scale": augment_translation_scale, "betas": tuple(betas)}
        for name, value in numbers.items():
            if not all(math.isfinite(float(v)) for v in (value if isinstance(value, tuple) else (value,))):
                raise ValueError(f"{name} must be finite, got {value}")
        if not 0 < float(cooldown_fraction) <= 1:
            raise ValueError(f"cooldown_fraction must be in (0, 1], got {cooldown_fraction}")
        if warmup_steps < 0 or lr <= 0 or weight_decay < 0 or not 0 <= min_lr_ratio <= 1:
            raise ValueError(f"need warmup_steps >= 0, lr > 0, weight_decay >= 0, 0 <= min_lr_ratio <= 1; got "
                             f"warmup_steps={warmup_steps}, lr={lr}, weight_decay={weight_decay}, "
                             f"min_lr_ratio={min_lr_ratio}")
        self.save_hyperparameters()
        self.hparams.family, self.hparams.algebra = family, algebra

        from experiments.models import build_model

        self.model = build_model(family, algebra, width=width, depth=depth, num_heads=num_heads,
                                 num_bodies=num_bodies, **(model_kwargs or {}))
        # compiled forward kept out of the module tree: the state dict and checkpoints stay the model's own
        self.__dict__["_run_model"] = torch.compile(self.model) if compile else self.model
        self.flops_per_sample = float(self.model.nominal_flops_per_sample(num_bodies))
        self.samples_seen = 0  # training samples over all ranks (persisted in checkpoints)
        self._t_batch = None

    # ------------------------------------------------------------------ model

    def forward(self, batch: dict) -> torch.Tensor:
        return self._run_model(batch)

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
        saved = checkpoint.get("hyper_parameters") or {}
        changed = resume_conflicts(saved, self.hparams, int(checkpoint.get("global_step", 0)))
        if changed:  # resuming restores weights, optimiser and schedule: new settings would be dropped silently
            detail = ", ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"the checkpoint was trained with other model settings ({detail}); resume with the "
                             "checkpoint's settings, or start a new run")
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
        opt = torch.optim.AdamW(groups, lr=h.lr, betas=tuple(h.betas))
        total = h.total_steps
        if total is None:
            est = self.trainer.estimated_stepping_batches if self._trainer is not None else float("inf")
            total = int(est) if math.isfinite(est) else max(1, h.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.lr_factor(s, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
