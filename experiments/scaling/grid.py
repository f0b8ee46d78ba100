"""Study configuration: validation, presets and expansion into a deterministic grid of run specs.

A study config is a YAML mapping::

    name: quick                       # free text, used in the report
    families:                         # one entry per compared model family
      - {name: gatr-pga, family: gatr, algebra: projective}
      - {name: transformer-aug, family: transformer, augment: true}
      - {name: mlp, family: mlp, hparams: {lr: 3.0e-3}}   # per-family hyper-parameter overrides
      - {name: gatr-cga, family: gatr, algebra: conformal,  # per-family grid axes (to cover one
         model_sizes: [{width: 8, depth: 1}], steps: [140, 550]}   # compute range with every family)
    model_sizes: [{width: 8, depth: 1}, {width: 16, depth: 2}]
    steps: [100, 300]                 # training steps
    train_trajectories: [256]         # training-set sizes (number of trajectories)
    seeds: [0]
    data_sweep:                       # optional extra runs varying only the training-set size
      train_trajectories: [32, 64, 128]
      width: 16                       # default: the family's largest model size (by width * depth)
      depth: 2
      steps: 300                      # default: the family's largest number of steps
      families: [gatr-pga]            # default: all families (names from `families`)
      seeds: [0]                      # default: the top-level seeds
    fixed: {batch_size: 64, lr: 1.0e-3}   # fixed hyper-parameters copied into every run spec
    data: {num_trajectories: 512, bodies: 4, horizon: 5, seed: 0, sim: {frames: 51}}

The main grid is the Cartesian product families x model_sizes x steps x train_trajectories x seeds,
where a family's own ``model_sizes`` / ``steps`` replace the top-level ones;
``data.horizon`` and ``data.bodies`` are copied into every spec (the training code needs them);
``data.sim`` is passed to the data generator only. The data sweep adds families x
data_sweep.train_trajectories x seeds at one model size and step count per family (by default its
largest size and step count); duplicates (same spec) are dropped. The order is deterministic.

Every run spec is a flat JSON-serialisable dict with the keys in :data:`SPEC_KEYS` plus the keys of
``fixed`` (and per-family ``hparams``). Its id is readable plus a short hash of the whole spec, e.g.
``gatr-pga_w16_d2_s300_n256_seed0-1a2b3c4d``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config_checks import (DEFAULT_MIN_STEPS, REQUIRED_TOP_KEYS, SPEC_KEYS, TOP_KEYS, ConfigError, _check_keys,
                            _int_list, _model_sizes, _validate_compute, _validate_data, _validate_family,
                            _validate_fixed, _validate_pilot, _validate_sweep)
from .flops import estimate_flops

PRESET_DIR = Path(__file__).resolve().parent / "presets"


@dataclass
class StudyConfig:
    """A validated study config (see the module docstring for the YAML schema)."""

    name: str
    families: list[dict]
    model_sizes: list[dict]
    steps: list[int]
    train_trajectories: list[int]
    seeds: list[int]
    fixed: dict
    data: dict
    data_sweep: dict | None = None
    description: str = ""
    budgets: list[float] | None = None
    min_steps: int = DEFAULT_MIN_STEPS
    max_steps: int | None = None
    pilot: dict | None = None
    raw: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict, default_name: str = "study") -> "StudyConfig":
        """Validate a study config (the module docstring's schema); every check names the key and the valid
        options (:class:`ConfigError`)."""
        if not isinstance(d, dict):
            raise ConfigError(f"study config: expected a mapping at the top level, got {type(d).__name__}")
        _check_keys(d, TOP_KEYS, "study config")
        for k in REQUIRED_TOP_KEYS:
            if k not in d:
                raise ConfigError(f"study config: missing required key {k!r}")
        fixed = _validate_fixed(d.get("fixed", {}) or {})
        fams = d["families"]
        if not isinstance(fams, list) or not fams:
            raise ConfigError("families: expected a non-empty list")
        families = [_validate_family(f, i, fixed) for i, f in enumerate(fams)]
        names = [f["name"] for f in families]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f"families: duplicate family names {sorted(dup)}; give each a unique 'name'")
        model_sizes = _model_sizes(d["model_sizes"], "model_sizes")
        steps, budgets, min_steps, max_steps = _validate_compute(d, families)
        pilot = _validate_pilot(d.get("pilot"), families)
        ntraj = _int_list(d["train_trajectories"], "train_trajectories")
        seeds = _int_list(d.get("seeds", [0]), "seeds", allow_zero=True)
        data = _validate_data(d.get("data", {}) or {})
        if max(ntraj) > data["num_trajectories"]:
            raise ConfigError(f"train_trajectories: {max(ntraj)} exceeds data.num_trajectories="
                              f"{data['num_trajectories']}")
        sweep = _validate_sweep(d.get("data_sweep"), data, names)
        return cls(name=str(d.get("name", default_name)), families=families, model_sizes=model_sizes, steps=steps,
                   train_trajectories=ntraj, seeds=seeds, fixed=dict(fixed), data=data,
                   data_sweep=sweep, description=str(d.get("description", "") or ""),
                   budgets=budgets, min_steps=min_steps, max_steps=max_steps, pilot=pilot, raw=copy.deepcopy(d))

    def family_axes(self, fam: dict) -> tuple[list[dict], list[int]]:
        """A family's model sizes and step counts (its own, or the top-level ones; with budgets, every
        size's step counts)."""
        sizes = fam.get("model_sizes") or self.model_sizes
        return sizes, sorted({st for size in sizes for st, _ in self.size_runs(fam, size)})

    def family_budgets(self, fam: dict) -> list[float] | None:
        """A family's compute budgets (training FLOPs), or None when it is placed by step counts."""
        if fam.get("steps"):
            return None
        return fam.get("budgets") or self.budgets

    def budget_steps(self, fam: dict, size: dict, budget: float) -> int:
        """Optimiser steps that spend ``budget`` nominal training FLOPs with ``size`` (rounded)."""
        spec = self._spec(fam, size["width"], size["depth"], 1, max(self.train_trajectories), 0)
        return max(1, round(budget / estimate_flops(spec)))

    def family_spec(self, fam: dict) -> dict:
        """A run spec of the family ``fam`` (its first model size, one step, the first seed): its settings,
        which its runs share but for the grid axes (for checks before anything runs)."""
        size = (fam.get("model_sizes") or self.model_sizes)[0]
        return self._spec(fam, size["width"], size["depth"], 1, max(self.train_trajectories), self.seeds[0])

    def size_runs(self, fam: dict, size: dict) -> list[tuple[int, float | None]]:
        """``(steps, budget)`` of one model size of a family: its step counts (budget None), or the
        budgets it reaches in at least ``min_steps`` and at most ``max_steps`` steps (a small model
        far past its compute-optimal budget adds steps, not information)."""
        budgets = self.family_budgets(fam)
        if budgets is None:
            return [(st, None) for st in (fam.get("steps") or self.steps)]
        runs = [(self.budget_steps(fam, size, b), b) for b in budgets]
        return [(st, b) for st, b in runs if st >= self.min_steps and (self.max_steps is None or st <= self.max_steps)]

    def to_dict(self) -> dict:
        """The validated config as a plain dict (can be fed back to :meth:`from_dict`)."""
        fams = []
        for f in self.families:
            e = {"name": f["name"], "family": f["family"], "augment": f["augment"]}
            if f["algebra"] is not None:
                e["algebra"] = f["algebra"]
            if f["hparams"]:
                e["hparams"] = dict(f["hparams"])
            for k in ("model_sizes", "steps"):
                if f.get(k):
                    e[k] = copy.deepcopy(f[k])
            fams.append(e)
        d = {"name": self.name, "description": self.description, "families": fams,
             "model_sizes": [dict(s) for s in self.model_sizes],
             "train_trajectories": list(self.train_trajectories), "seeds": list(self.seeds),
             "fixed": dict(self.fixed), "data": dict(self.data)}
        if self.steps:
            d["steps"] = list(self.steps)
        if self.data_sweep is not None:
            d["data_sweep"] = copy.deepcopy(self.data_sweep)
        for f, e in zip(self.families, fams):
            if f.get("budgets"):
                e["budgets"] = list(f["budgets"])
        if self.budgets is not None or any(f.get("budgets") for f in self.families):
            if self.budgets is not None:
                d["budgets"] = list(self.budgets)
            d["min_steps"] = self.min_steps
            if self.max_steps is not None:
                d["max_steps"] = self.max_steps
        if self.pilot is not None:
            d["pilot"] = copy.deepcopy(self.pilot)
        return d

    # ------------------------------------------------------------------ expansion
    def _spec(self, fam: dict, width: int, depth: int, steps: int, ntraj: int, seed: int,
              budget: float | None = None, lrs: dict | None = None) -> dict:
        spec = {"name": fam["name"], "family": fam["family"], "algebra": fam["algebra"],
                "augment": fam["augment"], "width": width, "depth": depth, "steps": steps,
                "train_trajectories": ntraj, "seed": seed}
        if budget is not None:
            spec["budget"] = budget
        extra = dict(self.fixed)
        extra.update(fam["hparams"])
        if lrs is not None:  # the pilot's choice for this (family, size)
            extra["lr"] = lrs[pilot_key(fam["name"], width, depth)]
        extra.setdefault("bodies", self.data["bodies"])
        if self.data.get("horizon") is not None:
            extra.setdefault("horizon", self.data["horizon"])
        for k in sorted(extra):
            spec[k] = extra[k]
        return spec

    def expand(self, lrs: dict | None = None) -> list[dict]:
        """All run specs, deterministic order, without duplicates. Each has ``run_id`` removed;
        use :func:`run_id` for the id. A study with a pilot needs its choice of learning rates
        (``lrs``: :func:`pilot_key` -> lr, from :func:`experiments.scaling.pilot.pilot_choice`)."""
        if self.pilot is not None and lrs is None:
            raise ConfigError("this study chooses its learning rates in a pilot stage: expand(lrs) needs the "
                              "pilot's choice (experiments.scaling.pilot)")
        specs: list[dict] = []
        seen: set[str] = set()

        def add(spec: dict) -> None:
            rid = run_id(spec)
            if rid not in seen:
                seen.add(rid)
                specs.append(spec)

        for fam in self.families:
            sizes = fam.get("model_sizes") or self.model_sizes
            for size in sizes:
                for st, budget in self.size_runs(fam, size):
                    for n in self.train_trajectories:
                        for seed in self.seeds:
                            add(self._spec(fam, size["width"], size["depth"], st, n, seed, budget, lrs))
        if self.data_sweep is not None:
            sw = self.data_sweep
            for fam in self.families:
                if fam["name"] not in sw["families"]:
                    continue
                sizes, steps = self.family_axes(fam)
                largest = max(sizes, key=lambda s: (s["width"] * s["depth"], s["width"]))
                size = {"width": sw.get("width", largest["width"]), "depth": sw.get("depth", largest["depth"])}
                budget = sw.get("budget")
                st = self.budget_steps(fam, size, budget) if budget is not None else sw.get("steps", max(steps))
                for n in sw["train_trajectories"]:
                    for seed in sw.get("seeds", self.seeds):
                        add(self._spec(fam, size["width"], size["depth"], st, n, seed, budget, lrs))
        return specs

    def pilot_sizes(self) -> list[tuple[dict, dict]]:
        """(family, size) pairs whose learning rate the pilot chooses: every size of the main grid and
        the data sweep."""
        out, seen = [], set()
        for fam in self.families:
            sizes = list(fam.get("model_sizes") or self.model_sizes)
            sw = self.data_sweep
            if sw is not None and fam["name"] in sw["families"] and "width" in sw:
                sizes.append({"width": sw["width"], "depth": sw["depth"]})
            for size in sizes:
                key = pilot_key(fam["name"], size["width"], size["depth"])
                if key not in seen:
                    seen.add(key)
                    out.append((fam, size))
        return out

    def pilot_spec(self, fam: dict, size: dict, lr: float) -> dict:
        """The pilot run of one (family, size) at learning rate ``lr`` (main training-set size)."""
        p = self.pilot
        budget = p.get("budget")
        if budget == "middle":  # the middle of the budgets this size trains at
            runs = sorted(self.size_runs(fam, size), key=lambda r: r[0])
            if not runs or runs[0][1] is None:
                raise ConfigError("pilot.budget 'middle' needs families placed by budgets")
            budget = runs[len(runs) // 2][1]
        steps = self.budget_steps(fam, size, budget) if budget is not None else p["steps"]
        spec = self._spec(fam, size["width"], size["depth"], max(steps, self.min_steps),
                          max(self.train_trajectories), p["seed"], budget)
        spec["lr"] = float(lr)
        spec["stage"] = "pilot"
        return spec

    def pilot_grid(self, fam: dict) -> list[float]:
        """The pilot's learning-rate candidates of a family (by its name, else its model family)."""
        lrs = self.pilot["lrs"]
        return list(lrs.get(fam["name"]) or lrs[fam["family"]])


def pilot_key(name: str, width: int, depth: int) -> str:
    """Key of a (family, size) in a pilot's choice of learning rates."""
    return f"{name}_w{width}_d{depth}"


# ----------------------------------------------------------------------------- ids, shards, presets


def spec_hash(spec: dict, length: int = 8) -> str:
    """Short stable hash of a spec (key order does not matter)."""
    blob = json.dumps({k: v for k, v in spec.items() if k != "run_id"}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:length]


def run_id(spec: dict) -> str:
    """Readable, filesystem-safe, stable id: ``<name>_w<width>_d<depth>_s<steps>_n<ntraj>_seed<seed>-<hash>``."""
    readable = (f"{spec['name']}_w{spec['width']}_d{spec['depth']}_s{spec['steps']}"
                f"_n{spec['train_trajectories']}_seed{spec['seed']}")
    readable = re.sub(r"[^A-Za-z0-9._+-]", "_", readable)
    return f"{readable}-{spec_hash(spec)}"


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """Parse ``"i/n"`` (0 <= i < n) into ``(i, n)``; None stays None."""
    if shard is None:
        return None
    if isinstance(shard, tuple):
        i, n = shard
    else:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
        if not m:
            raise ConfigError(f"shard: expected 'i/n' with integers 0 <= i < n (e.g. '0/4'), got {shard!r}")
        i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard: expected 0 <= i < n and n >= 1, got {i}/{n}")
    return i, n


def shard_specs(specs: list[dict], shard: str | tuple[int, int] | None) -> list[dict]:
    """Specs of shard ``i/n``: those at index ``k`` with ``k % n == i`` in the grid order."""
    sh = parse_shard(shard)
    if sh is None:
        return list(specs)
    i, n = sh
    return [s for k, s in enumerate(specs) if k % n == i]


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(preset: str | None = None, config: str | Path | dict | None = None) -> StudyConfig:
    """Load a study config from a preset name, a YAML file or a dict (exactly one of them)."""
    if isinstance(config, StudyConfig):
        return config
    if (preset is None) == (config is None):
        raise ConfigError("give exactly one of a preset name or a config (file or dict)")
    if preset is not None:
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r}; valid options: {', '.join(available_presets())}")
        with open(path) as f:
            return StudyConfig.from_dict(yaml.safe_load(f), default_name=preset)
    if isinstance(config, dict):
        return StudyConfig.from_dict(config)
    path = Path(config)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    with open(path) as f:
        return StudyConfig.from_dict(yaml.safe_load(f), default_name=path.stem)
