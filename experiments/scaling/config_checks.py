"""The study config's schema and its checks: each names the offending key and the valid options.

Used by :class:`experiments.scaling.grid.StudyConfig` while it reads a config; everything here runs
before anything is written.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

#: keys every run spec has (the grid axes and the family description)
SPEC_KEYS = (
    "name",  # family label from the config, e.g. "gatr-pga" or "transformer-aug"
    "family",  # "gatr" | "transformer" | "mlp"
    "algebra",  # canonical algebra name for gatr, None otherwise
    "augment",  # bool: random E(3) augmentation during training
    "width",  # hidden width (gatr: multivector channels; others: hidden features)
    "depth",  # number of blocks / hidden layers
    "steps",  # optimiser steps
    "train_trajectories",  # number of training trajectories used
    "seed",  # seed of the run (init, batches, augmentation)
)
GRID_AXES = ("width", "depth", "steps", "train_trajectories", "seed")

TOP_KEYS = ("name", "description", "families", "model_sizes", "steps", "budgets", "min_steps", "max_steps",
            "train_trajectories",
            "seeds", "data_sweep", "fixed", "data", "pilot")
REQUIRED_TOP_KEYS = ("families", "model_sizes", "train_trajectories")
FAMILY_KEYS = ("name", "family", "algebra", "augment", "hparams", "model_sizes", "steps", "budgets")
SIZE_KEYS = ("width", "depth")
SWEEP_KEYS = ("train_trajectories", "width", "depth", "steps", "budget", "families", "seeds")
PILOT_KEYS = ("lrs", "budget", "steps", "seed", "extend")
#: fewest optimiser steps of a run placed by a compute budget (smaller models at small budgets are dropped)
DEFAULT_MIN_STEPS = 100
DATA_KEYS = ("num_trajectories", "bodies", "horizon", "seed", "workers", "sim")
#: ``horizon`` (prediction horizon in frames) is a training/dataset setting: it goes into every run spec
#: (with ``bodies``); ``sim`` holds extra simulator settings passed to the generator (``frames``, ...).
DATA_DEFAULTS = {"num_trajectories": 512, "bodies": 4, "horizon": None, "seed": 0, "workers": None, "sim": {}}


class ConfigError(ValueError):
    """A study config is invalid; the message names the offending key and the valid options."""


# ----------------------------------------------------------------------------- validation helpers


def _check_keys(d: Any, valid: Iterable[str], where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(d).__name__} ({d!r})")
    valid = tuple(valid)
    for k in d:
        if k not in valid:
            raise ConfigError(f"{where}: unknown key {k!r}; valid keys: {', '.join(valid)}")


def _pos_int(v: Any, where: str, allow_zero: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
        kind = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{where}: expected {kind} integer, got {v!r}")
    return v


def _int_list(v: Any, where: str, allow_zero: bool = False) -> list[int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, (list, tuple)) or not v:
        raise ConfigError(f"{where}: expected a non-empty list of integers, got {v!r}")
    return [_pos_int(x, f"{where}[{i}]", allow_zero) for i, x in enumerate(v)]


def _json_value(v: Any, where: str) -> Any:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: value {v!r} is not JSON-serialisable ({e})") from None
    return v


def _model_sizes(sizes: Any, where: str) -> list[dict]:
    if not isinstance(sizes, list) or not sizes:
        raise ConfigError(f"{where}: expected a non-empty list of {{width, depth}}")
    out = []
    for i, s in enumerate(sizes):
        _check_keys(s, SIZE_KEYS, f"{where}[{i}]")
        for k in SIZE_KEYS:
            if k not in s:
                raise ConfigError(f"{where}[{i}]: missing key {k!r}")
        out.append({k: _pos_int(s[k], f"{where}[{i}].{k}") for k in SIZE_KEYS})
    return out


def _validate_family(entry: Any, i: int, fixed: dict) -> dict:
    where = f"families[{i}]"
    if isinstance(entry, str):  # shorthand: "gatr-pga"? only the bare family names are accepted
        entry = {"family": entry}
    _check_keys(entry, FAMILY_KEYS, where)
    from experiments.models import FAMILIES, validate_family_algebra

    try:  # the check of the training module too (an alias becomes its registry name)
        fam, algebra = validate_family_algebra(entry.get("family"), entry.get("algebra"))
    except ValueError as err:
        key = "algebra" if str(entry.get("family")).strip().lower() in FAMILIES else "family"
        raise ConfigError(f"{where}.{key}: {err}") from None
    out: dict[str, Any] = {"family": fam, "algebra": algebra}
    aug = entry.get("augment", False)
    if not isinstance(aug, bool):
        raise ConfigError(f"{where}.augment: expected true or false, got {aug!r}")
    out["augment"] = aug
    name = entry.get("name")
    if name is None:
        if out["algebra"] is None:
            name = fam
        else:
            from algebras import get_algebra

            name = f"{fam}-{get_algebra(out['algebra']).name}"
        if aug:
            name += "-aug"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
        raise ConfigError(f"{where}.name: expected a short name of letters, digits, '.', '_', '+', '-', "
                          f"got {name!r}")
    out["name"] = name
    hp = entry.get("hparams", {}) or {}
    if not isinstance(hp, dict):
        raise ConfigError(f"{where}.hparams: expected a mapping, got {hp!r}")
    for k, v in hp.items():
        if k in SPEC_KEYS:
            raise ConfigError(f"{where}.hparams: key {k!r} is a grid/family key and cannot be set here")
        _json_value(v, f"{where}.hparams.{k}")
    out["hparams"] = dict(hp)
    out["model_sizes"] = _model_sizes(entry["model_sizes"], f"{where}.model_sizes") if "model_sizes" in entry else None
    out["steps"] = _int_list(entry["steps"], f"{where}.steps") if "steps" in entry else None
    out["budgets"] = _budget_list(entry["budgets"], f"{where}.budgets") if "budgets" in entry else None
    if out["steps"] and out["budgets"]:
        raise ConfigError(f"{where}: give steps or budgets, not both")
    return out


def _budget(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{where}: expected a positive number of training FLOPs (e.g. 1.0e12), got {v!r}")
    return float(v)


def _budget_list(v: Any, where: str) -> list[float]:
    if not isinstance(v, list) or not v:
        raise ConfigError(f"{where}: expected a non-empty list of training FLOPs, got {v!r}")
    return [_budget(x, f"{where}[{i}]") for i, x in enumerate(v)]


def _validate_pilot(p: Any, families: list[dict]) -> dict | None:
    """The learning-rate pilot: per (family, size), lr candidates run at one budget on seed ``seed``;
    the lowest validation loss wins, and an optimum at an edge of the grid extends it (``extend`` times)."""
    if p is None:
        return None
    _check_keys(p, PILOT_KEYS, "pilot")
    lrs = p.get("lrs")
    if not isinstance(lrs, dict) or not lrs:
        raise ConfigError("pilot.lrs: expected a mapping of family name (or model family) -> list of learning rates")
    out_lrs = {}
    for k, v in lrs.items():
        if not isinstance(v, list) or len(v) < 2 or any(isinstance(x, bool) or not isinstance(x, (int, float))
                                                         or not x > 0 for x in v):
            raise ConfigError(f"pilot.lrs.{k}: expected at least 2 positive learning rates, got {v!r}")
        out_lrs[str(k)] = sorted(float(x) for x in v)
    for f in families:
        if f["name"] not in out_lrs and f["family"] not in out_lrs:
            raise ConfigError(f"pilot.lrs: no learning rates for family {f['name']!r}; give them under "
                              f"{f['name']!r} or {f['family']!r}")
    if ("budget" in p) == ("steps" in p):
        raise ConfigError("pilot: give exactly one of budget (training FLOPs per pilot run, or 'middle': each "
                          "size's middle budget) or steps")
    out = {"lrs": out_lrs, "seed": _pos_int(p.get("seed", 0), "pilot.seed", allow_zero=True),
           "extend": _pos_int(p.get("extend", 2), "pilot.extend", allow_zero=True)}
    if p.get("budget") == "middle":
        out["budget"] = "middle"
    elif "budget" in p:
        out["budget"] = _budget(p["budget"], "pilot.budget")
    else:
        out["steps"] = _pos_int(p["steps"], "pilot.steps")
    return out


def _validate_fixed(fixed: Any) -> dict:
    """``fixed``: a mapping of JSON values, none of them a grid or family key."""
    if not isinstance(fixed, dict):
        raise ConfigError(f"fixed: expected a mapping of hyper-parameters, got {fixed!r}")
    for k, v in fixed.items():
        if k in SPEC_KEYS:
            raise ConfigError(f"fixed: key {k!r} is a grid/family key and cannot be fixed here; "
                              f"grid keys: {', '.join(SPEC_KEYS)}")
        _json_value(v, f"fixed.{k}")
    return fixed


def _validate_compute(d: dict, families: list[dict]) -> tuple[list[int], list[float] | None, int, int | None]:
    """The top-level ``steps`` or ``budgets`` (every family needs one or its own), ``min_steps`` and
    ``max_steps``: ``(steps, budgets, min_steps, max_steps)``."""
    if "steps" in d and "budgets" in d:
        raise ConfigError("study config: give steps or budgets, not both")
    steps = _int_list(d["steps"], "steps") if "steps" in d else []
    budgets = _budget_list(d["budgets"], "budgets") if "budgets" in d else None
    for i, f in enumerate(families):
        if not (f["steps"] or f["budgets"] or steps or budgets):
            raise ConfigError(f"families[{i}]: no steps or budgets (give them for the family or at the top level)")
    min_steps = _pos_int(d.get("min_steps", DEFAULT_MIN_STEPS), "min_steps")
    max_steps = _pos_int(d["max_steps"], "max_steps") if d.get("max_steps") is not None else None
    if max_steps is not None and max_steps < min_steps:
        raise ConfigError(f"max_steps ({max_steps}) is below min_steps ({min_steps})")
    return steps, budgets, min_steps, max_steps


def _validate_data(dd: Any) -> dict:
    """``data``: :data:`DATA_DEFAULTS` with the config's values, the simulator settings checked."""
    _check_keys(dd, DATA_KEYS, "data")
    data = {**DATA_DEFAULTS, **dd}
    _pos_int(data["num_trajectories"], "data.num_trajectories")
    _pos_int(data["bodies"], "data.bodies")
    _pos_int(data["seed"], "data.seed", allow_zero=True)
    for k in ("horizon", "workers"):
        if data[k] is not None:
            _pos_int(data[k], f"data.{k}")
    if not isinstance(data["sim"] or {}, dict):
        raise ConfigError(f"data.sim: expected a mapping of simulator settings, got {data['sim']!r}")
    data["sim"] = dict(data["sim"] or {})
    _json_value(data["sim"], "data.sim")
    _check_simulation(data)
    return data


def _validate_sweep(sweep: Any, data: dict, names: list[str]) -> dict | None:
    """``data_sweep`` (None: no data sweep), its families named by ``names`` (default: all of them)."""
    if sweep is None:
        return None
    _check_keys(sweep, SWEEP_KEYS, "data_sweep")
    if "train_trajectories" not in sweep:
        raise ConfigError("data_sweep: missing key 'train_trajectories'")
    sweep = dict(sweep)
    sweep["train_trajectories"] = _int_list(sweep["train_trajectories"], "data_sweep.train_trajectories")
    if max(sweep["train_trajectories"]) > data["num_trajectories"]:
        raise ConfigError(f"data_sweep.train_trajectories: {max(sweep['train_trajectories'])} "
                          f"exceeds data.num_trajectories={data['num_trajectories']}")
    if ("width" in sweep) != ("depth" in sweep):
        raise ConfigError("data_sweep: give both width and depth, or neither (each family's largest size)")
    for k in ("width", "depth", "steps"):
        if k in sweep:
            _pos_int(sweep[k], f"data_sweep.{k}")
    if "steps" in sweep and "budget" in sweep:
        raise ConfigError("data_sweep: give steps or budget, not both")
    if "budget" in sweep:
        sweep["budget"] = _budget(sweep["budget"], "data_sweep.budget")
    if "seeds" in sweep:
        sweep["seeds"] = _int_list(sweep["seeds"], "data_sweep.seeds", allow_zero=True)
    sf = sweep.get("families")
    if sf is None:
        sweep["families"] = list(names)
    elif not isinstance(sf, list):
        raise ConfigError(f"data_sweep.families: expected a list of family names, got {sf!r}")
    else:
        for n in sf:
            if n not in names:
                raise ConfigError(f"data_sweep.families: unknown family name {n!r}; valid options: {', '.join(names)}")
    return sweep


def _check_simulation(data: dict) -> None:
    """The data settings as the generator will see them: bodies and ``sim`` keys checked against
    :class:`experiments.rigid_body.simulate.SimConfig`, and enough frames for the horizon."""
    from dataclasses import fields

    from experiments.rigid_body.simulate import SimConfig

    valid = [f.name for f in fields(SimConfig) if f.name != "bodies"]
    for k in data["sim"]:
        if k not in valid:
            raise ConfigError(f"data.sim: unknown key {k!r}; valid keys: {', '.join(valid)}")
    try:
        sim = SimConfig(bodies=data["bodies"], **data["sim"])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"data: {err}") from None
    horizon = data["horizon"] or 5
    if sim.frames <= horizon:
        raise ConfigError(f"data.sim.frames: {sim.frames} frames hold no window of data.horizon={horizon} frames; "
                          f"give frames > {horizon}")


def check_spec_keys(cfg, known: Iterable[str] | None) -> None:
    """Every key of ``fixed`` and of each family's ``hparams`` of the study config ``cfg`` (a
    :class:`~experiments.scaling.grid.StudyConfig`) must be one the train function reads
    (``known``, e.g. :data:`experiments.settings.SPEC_KEYS`); None: the train function declares none."""
    if known is None:
        return
    known = sorted(set(known))
    places = [("fixed", cfg.fixed)] + [(f"families[{i}].hparams", f["hparams"]) for i, f in enumerate(cfg.families)]
    for where, d in places:
        for k in d:
            if k not in known:
                raise ConfigError(f"{where}: unknown setting {k!r} (the train function would ignore it); valid "
                                  f"settings: {', '.join(known)}")


def check_specs(cfg, train_fn) -> None:
    """Check a study's settings against its train function before anything runs: the keys
    (:func:`check_spec_keys`, with ``train_fn.spec_keys``) and, where the train function has a validator
    ``train_fn.check_spec`` (:func:`experiments.settings.check_spec` for the default one), the values of
    every family's runs (their settings differ only in the grid axes, checked above).

    Parameters
    ----------
    cfg : StudyConfig
    train_fn : callable
        The train function; ``spec_keys`` and ``check_spec`` are optional attributes.

    Raises
    ------
    ConfigError
        Naming the family and the setting.
    """
    check_spec_keys(cfg, getattr(train_fn, "spec_keys", None))
    check = getattr(train_fn, "check_spec", None)
    if check is None:
        return
    for i, fam in enumerate(cfg.families):
        try:
            check(cfg.family_spec(fam))
        except ValueError as err:
            raise ConfigError(f"families[{i}] ({fam['name']}): {err}") from None
