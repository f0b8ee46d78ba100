"""A training run's settings, defined once: their defaults and their one validator.

Every way of starting a run reads its settings from here:

* the training command line (``python -m experiments.train``): ``--model.*`` are the fields of
  :class:`ModelSettings` (the arguments of :class:`~experiments.training.BodyDynamicsModule`, whose
  signature takes its defaults from :data:`MODEL_DEFAULTS`), ``--data.*`` those of :class:`DataSettings`
  (:class:`~experiments.training.TrainingDataModule`'s, defaults :data:`DATA_DEFAULTS`); the shipped
  YAML files set only what they choose;
* a sweep run's spec (:mod:`experiments.training.run`, :mod:`experiments.scaling`): the same settings
  under the sweep's names (``bodies``, ``steps``, ``train_trajectories``) plus a few of the sweep's own
  (:data:`SWEEP_DEFAULTS`); :data:`SPEC_DEFAULTS` is derived from the two classes above;
* resuming from a checkpoint: :func:`experiments.resume.check_resume` compares the saved settings with
  the requested ones, for the command line and the module alike (:data:`EXECUTION_SETTINGS` may change).

:func:`check_model_settings`, :func:`check_data_settings` and :func:`check_spec` are the validators:
the module and the data module call them when they are built, the sweep runner on every family of a
study before anything runs. Errors are ``ValueError`` naming the setting, the bad value and the valid
ones.

>>> from experiments.settings import check_model_settings
>>> check_model_settings({"family": "gatr", "algebra": "pga"})["algebra"]
'projective'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any, Mapping, Optional

__all__ = ["ModelSettings", "DataSettings", "MODEL_DEFAULTS", "DATA_DEFAULTS", "SCHEDULERS", "EXECUTION_SETTINGS",
           "SWEEP_DEFAULTS", "SPEC_DEFAULTS", "SPEC_KEYS", "WSD_WARMUP_STEPS", "check_model_settings",
           "check_data_settings", "check_spec", "spec_settings", "spec_module_settings", "spec_data_settings",
           "wsd_cooldown_start", "with_parameters"]

#: learning-rate schedules after the warm-up (see :class:`ModelSettings`)
SCHEDULERS = ("cosine", "linear", "constant", "wsd")
#: settings that change how the model runs, not what it computes: a resumed run may change them
EXECUTION_SETTINGS = ("compile",)


def wsd_cooldown_start(total_steps: int, cooldown_fraction: float) -> int:
    """First optimiser step of a WSD run's cooldown: ``total - max(1, round(fraction * total))``."""
    return int(total_steps) - max(1, round(float(cooldown_fraction) * int(total_steps)))


@dataclass(frozen=True)
class ModelSettings:
    """What a run trains and how it optimises (``--model.*``; :class:`~experiments.training.BodyDynamicsModule`).

    Parameters
    ----------
    family : str
        A key of :data:`experiments.models.FAMILIES` (``"gatr"``, ``"transformer"``, ``"mlp"``).
    algebra : str or None
        For ``gatr``: a name from :func:`algebras.available_algebras` (or an alias), or an importable
        factory ``"module:attribute"``; None for the other families.
    width : int
        Model width (:func:`experiments.models.build_model`): GATr's hidden multivector channels (hidden
        scalars: 2 x width), the baselines' hidden size 6 x width; not comparable across families
        (compare at equal FLOPs).
    depth : int
        Blocks (GATr, transformer) or residual MLP blocks (mlp).
    num_heads : int
        Attention heads (gatr, transformer).
    num_bodies : int
        Bodies per scene (tokens per sample); must match the data (the command line links it to
        ``--data.bodies``).
    augment : bool
        A random E(3) transformation (with reflections) of every training batch.
    augment_translation_scale : float
        Standard deviation of the augmentation's translations [m].
    lr : float
        Peak learning rate (AdamW).
    weight_decay : float
        AdamW's weight decay (not applied to biases and gains).
    betas : (float, float)
        AdamW's betas.
    warmup_steps : int
        Linear warm-up from 0 to ``lr``.
    scheduler : str
        After the warm-up (:data:`SCHEDULERS`): ``"cosine"`` or ``"linear"`` to ``min_lr_ratio * lr``,
        ``"constant"``, or ``"wsd"`` (warmup-stable-decay: constant, then a (1 - sqrt) cooldown to the
        same over the last ``cooldown_fraction`` of the run; Hägele et al. 2024, arXiv 2405.18392). A
        WSD run to ``T`` steps equals every longer WSD run with the same warm-up up to its cooldown
        start, so one run can serve many budgets (:func:`experiments.training.run.train_branches`).
    min_lr_ratio : float
        Final learning rate as a fraction of ``lr``.
    cooldown_fraction : float
        For ``"wsd"``: the cooldown's share of ``total_steps`` (rounded, at least one step).
    total_steps : int or None
        Length of the schedule in optimiser steps; None: the trainer's ``estimated_stepping_batches``
        (``max_steps`` when set).
    seed : int
        Seed of the augmentation stream (combined with rank and step, so a resumed run reproduces it).
    model_kwargs : dict or None
        Further keyword arguments of the model (``build_model``), e.g. ``{"centre": true}`` or
        ``{"algebra_options": {"group": "Pin(4,1)"}}``.
    compile : bool
        Run the model through ``torch.compile``, the family's way (:func:`experiments.models.build_model`):
        a GATr family sets its network's own ``GATrConfig.compile`` (the blocks compiled with
        ``fullgraph=True``, inputs checked eagerly, embedding and read-out eager); the baselines compile
        their whole forward. Parameters and checkpoints are the plain model's, and a checkpoint resumes
        with either value (an execution setting).
    """

    family: str = "gatr"
    algebra: Optional[str] = None
    width: int = 16
    depth: int = 2
    num_heads: int = 4
    num_bodies: int = 4
    augment: bool = False
    augment_translation_scale: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    scheduler: str = "cosine"
    min_lr_ratio: float = 0.0
    cooldown_fraction: float = 0.2
    total_steps: Optional[int] = None
    seed: int = 0
    model_kwargs: Optional[dict] = None
    compile: bool = False


@dataclass(frozen=True)
class DataSettings:
    """The data a run trains on and how it is batched (``--data.*``; :class:`~experiments.training.TrainingDataModule`).

    Parameters
    ----------
    data_dir : str
        Generated dataset directory.
    horizon : int
        Prediction horizon in frames.
    batch_size : int
        Samples per training batch and process.
    num_workers : int
        DataLoader worker processes.
    max_train_trajectories : int or None
        Train on the first this many training trajectories only (nested subsets).
    seed : int
        Split seed (the E(3) test set draws its transformations with ``seed + 1``).
    split_fractions : (float, float, float)
        (train, val, test) shares of the trajectories.
    translation_scale : float
        Standard deviation of the E(3) test set's translations [m].
    bodies : int
        Bodies per scene expected in the data (checked against the dataset); also of ``auto_generate``.
    auto_generate : bool
        Generate a small dataset into ``data_dir`` when there is none.
    auto_generate_trajectories : int
        Trajectories of that dataset.
    frames : int or None
        Frames per trajectory expected of the dataset (a mismatch is an error naming both) and of an
        auto-generated one; None accepts any existing dataset and generates 16 (the benchmark's task).
    drop_last : bool
        Drop the last incomplete training batch of each epoch.
    shuffle_seed : int or None
        Seed of the training order (None: ``seed``).
    min_contact_fraction : float or None
        Contact windows' minimum share of every split
        (:func:`experiments.rigid_body.dataset.select_windows`; None keeps every window).
    """

    data_dir: str = "data/rigid_body"
    horizon: int = 5
    batch_size: int = 64
    num_workers: int = 0
    max_train_trajectories: Optional[int] = None
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    translation_scale: float = 1.0
    bodies: int = 4
    auto_generate: bool = False
    auto_generate_trajectories: int = 200
    frames: Optional[int] = None
    drop_last: bool = False
    shuffle_seed: Optional[int] = None
    min_contact_fraction: Optional[float] = 0.5


MODEL_DEFAULTS = ModelSettings()
DATA_DEFAULTS = DataSettings()


def with_parameters(doc: str, settings: type) -> str:
    """``doc`` with its numpy ``Parameters`` section replaced by that of the settings class ``settings``
    (for the command line's ``--help``, which reads a class's docstring; the descriptions stay written once).

    Parameters
    ----------
    doc : str
        A class docstring with a ``Parameters`` section as its last section.
    settings : type
        :class:`ModelSettings` or :class:`DataSettings`.

    Returns
    -------
    str
    """
    head = doc[:doc.index("Parameters\n")]
    own = settings.__doc__
    return head + own[own.index("Parameters\n"):]


# ----------------------------------------------------------------------------- checks of single values


def _whole(name: str, value: Any, minimum: int = 1, optional: bool = False) -> None:
    """``value`` must be an integer >= ``minimum`` (or None when ``optional``)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}{' or null' if optional else ''}, got {value!r}")


def _finite(name: str, value: Any) -> None:
    """``value`` (a number or a tuple of numbers) must be finite."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    if not all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v)) for v in values):
        raise ValueError(f"{name} must be finite, got {value}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _known(settings: Mapping, defaults, what: str) -> dict:
    """``defaults`` (a settings object) with ``settings`` over it; unknown keys refused by name."""
    valid = [f.name for f in fields(defaults)]
    unknown = sorted(set(settings) - set(valid))
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}")
    return {**asdict(defaults), **settings}


# ----------------------------------------------------------------------------- the validators


def check_model_settings(settings: Mapping[str, Any]) -> dict:
    """Validate a run's model settings: the one check of the training module, the sweep and resume.

    Parameters
    ----------
    settings : mapping
        Fields of :class:`ModelSettings`; the missing ones take their defaults.

    Returns
    -------
    dict
        Every field, family and algebra canonical (:func:`experiments.models.validate_family_algebra`:
        an alias becomes its registry name), ``betas`` a tuple.

    Raises
    ------
    ValueError
        Naming the setting, the bad value and the valid ones.
    """
    from experiments.models import validate_family_algebra

    s = _known(settings, MODEL_DEFAULTS, "model")
    s["family"], s["algebra"] = validate_family_algebra(s["family"], s["algebra"])
    if s["scheduler"] not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {s['scheduler']!r}; valid schedulers: {', '.join(SCHEDULERS)}")
    for name in ("width", "depth", "num_heads", "num_bodies"):
        _whole(name, s[name])
    _whole("warmup_steps", s["warmup_steps"], minimum=0)
    _whole("total_steps", s["total_steps"], optional=True)
    _whole("seed", s["seed"], minimum=-(2**63))
    if not isinstance(s["betas"], (tuple, list)) or len(s["betas"]) != 2:
        raise ValueError(f"betas must be two numbers, got {s['betas']!r}")
    s["betas"] = tuple(s["betas"])
    for name in ("lr", "weight_decay", "min_lr_ratio", "augment_translation_scale", "betas", "cooldown_fraction"):
        _finite(name, s[name])
    if not 0 < s["cooldown_fraction"] <= 1:
        raise ValueError(f"cooldown_fraction must be in (0, 1], got {s['cooldown_fraction']}")
    if s["lr"] <= 0 or s["weight_decay"] < 0 or not 0 <= s["min_lr_ratio"] <= 1:
        raise ValueError(f"need lr > 0, weight_decay >= 0, 0 <= min_lr_ratio <= 1; got lr={s['lr']}, "
                         f"weight_decay={s['weight_decay']}, min_lr_ratio={s['min_lr_ratio']}")
    _flag("augment", s["augment"])
    _flag("compile", s["compile"])
    kwargs = s["model_kwargs"]
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise ValueError(f"model_kwargs must be a mapping of model arguments or null, got {kwargs!r}")
    if kwargs and "compile" in kwargs:
        raise ValueError("model_kwargs: give compile as a setting of its own (--model.compile), not a model argument")
    return s


def check_data_settings(settings: Mapping[str, Any]) -> dict:
    """Validate a run's data settings (the data module's arguments, the sweep's data keys).

    Parameters
    ----------
    settings : mapping
        Fields of :class:`DataSettings`; the missing ones take their defaults.

    Returns
    -------
    dict
        Every field.

    Raises
    ------
    ValueError
        Naming the setting and the bad value.
    """
    s = _known(settings, DATA_DEFAULTS, "data")
    for name in ("horizon", "batch_size", "bodies", "auto_generate_trajectories"):
        _whole(name, s[name])
    for name in ("max_train_trajectories", "frames"):
        _whole(name, s[name], optional=True)
    _whole("num_workers", s["num_workers"], minimum=0)
    _whole("seed", s["seed"], minimum=0)
    _whole("shuffle_seed", s["shuffle_seed"], minimum=0, optional=True)
    _finite("translation_scale", s["translation_scale"])
    fractions = s["split_fractions"]
    _finite("split_fractions", tuple(fractions) if isinstance(fractions, (tuple, list)) else fractions)
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split_fractions must be three shares >= 0 (train, val, test), got {fractions!r}")
    f = s["min_contact_fraction"]
    if f is not None and (isinstance(f, bool) or not isinstance(f, Real) or not 0 <= f <= 1):
        raise ValueError(f"min_contact_fraction must be in [0, 1] or null, got {f!r}")
    _flag("auto_generate", s["auto_generate"])
    _flag("drop_last", s["drop_last"])
    return s


# ----------------------------------------------------------------------------- a sweep run's spec

#: warm-up of a WSD sweep run whose spec sets none: a constant, so that runs to different budgets share
#: their schedule up to each cooldown (a warm-up that grew with the budget would break the branches)
WSD_WARMUP_STEPS = 50
#: spec keys of the model settings (the spec's ``bodies`` and ``steps`` give ``num_bodies`` and ``total_steps``)
_SPEC_MODEL = tuple(f.name for f in fields(ModelSettings) if f.name not in ("num_bodies", "total_steps"))
#: spec keys of the data settings: spec name -> data setting
_SPEC_DATA = {"train_trajectories": "max_train_trajectories", "batch_size": "batch_size", "horizon": "horizon",
              "bodies": "bodies", "min_contact_fraction": "min_contact_fraction"}
#: the settings of a sweep run only. ``warmup_steps`` None: 5% of the run, at most 100 steps (cosine,
#: linear, constant) or :data:`WSD_WARMUP_STEPS` (wsd); ``eval_batches`` caps the final evaluation (smoke
#: tests only); ``eval_batch_size`` None: ``batch_size``; ``num_threads`` 0: torch's setting
SWEEP_DEFAULTS = {"steps": 100, "warmup_steps": None, "eval_batches": None, "eval_batch_size": 512,
                  "precision": "32-true", "gradient_clip_val": None, "num_threads": 1}
#: every setting of a run spec with its default (the model's and the data's from the classes above)
SPEC_DEFAULTS = {**{k: getattr(MODEL_DEFAULTS, k) for k in _SPEC_MODEL},
                 **{k: getattr(DATA_DEFAULTS, v) for k, v in _SPEC_DATA.items()}, **SWEEP_DEFAULTS}
#: every spec key a run reads (its settings, the grid's labels): the runner refuses others before anything runs
SPEC_KEYS = frozenset(SPEC_DEFAULTS) | {"name", "budget", "stage"}


def spec_settings(spec: Mapping[str, Any]) -> dict:
    """A run spec's settings: :data:`SPEC_DEFAULTS` with the spec's values over them (a None value keeps
    the default, except ``algebra``), the warm-up resolved (see :data:`SWEEP_DEFAULTS`)."""
    s = {**SPEC_DEFAULTS, **{k: v for k, v in spec.items() if v is not None or k == "algebra"}}
    _whole("steps", s["steps"])
    if s["warmup_steps"] is None:
        s["warmup_steps"] = WSD_WARMUP_STEPS if s["scheduler"] == "wsd" else min(100, max(1, int(s["steps"]) // 20))
    return s


def spec_module_settings(s: Mapping[str, Any]) -> dict:
    """The model settings (:class:`ModelSettings`) of a run's :func:`spec_settings`."""
    out = {k: s[k] for k in _SPEC_MODEL}
    out.update(num_bodies=s["bodies"], total_steps=s["steps"])
    return out


def spec_data_settings(s: Mapping[str, Any]) -> dict:
    """The data settings (:class:`DataSettings`, without ``data_dir``) of a run's :func:`spec_settings`: the
    split seed is fixed (0) so every run of a study uses the same splits; the spec's ``seed`` orders the
    training batches."""
    return {**{v: s[k] for k, v in _SPEC_DATA.items()}, "num_workers": 0, "seed": 0, "shuffle_seed": s["seed"]}


def check_spec(spec: Mapping[str, Any]) -> dict:
    """Validate a run spec: its model and data settings (:func:`check_model_settings`,
    :func:`check_data_settings`) and the sweep's own (:data:`SWEEP_DEFAULTS`).

    Parameters
    ----------
    spec : mapping
        A run spec (:mod:`experiments.scaling.grid`).

    Returns
    -------
    dict
        Its :func:`spec_settings`.

    Raises
    ------
    ValueError
        Naming the setting and the bad value.
    """
    s = spec_settings(spec)
    check_model_settings(spec_module_settings(s))
    check_data_settings(spec_data_settings(s))
    _whole("eval_batches", s["eval_batches"], optional=True)
    _whole("eval_batch_size", s["eval_batch_size"], optional=True)
    _whole("num_threads", s["num_threads"], minimum=0)
    clip = s["gradient_clip_val"]
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, Real) or not 0 <= clip < math.inf):
        raise ValueError(f"gradient_clip_val must be a finite number >= 0 or null, got {clip!r}")
    return s
