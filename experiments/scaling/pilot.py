"""The learning-rate pilot of a study: per (family, model size), the rate is chosen on validation loss,
with the optimum bracketed.

Each (family, size) runs its candidate rates (``pilot.lrs``) for one seed at one budget
(``pilot.budget`` training FLOPs, or ``pilot.steps``). The candidate with the lowest validation loss
wins; when it lies at an edge of the candidates tried, the grid is extended one step beyond that
edge (by the grid's own outermost ratio) and the new rate is run, up to ``pilot.extend`` times per
edge, so the chosen rate has a worse neighbour on both sides ("bracketed") unless the extensions
ran out (then the choice says so). A run that fails or diverges counts as an infinite loss.

Pilot runs live in ``OUT/pilot/runs/<run_id>/result.json`` (apart from the study's runs, so no fit
or table sees them) and the choice in ``OUT/pilot/choice.json``. Everything is derived from the
result files, so an interrupted pilot resumes, and shards that reach it together split its runs
(each waits for the runs another process holds).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from .grid import StudyConfig, pilot_key, run_id
from .results import read_json, write_json

__all__ = ["pilot_dir", "pilot_round", "pilot_choice", "run_pilot"]


def pilot_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "pilot"


def _val(out_dir: Path, spec: dict) -> float | None:
    """Validation loss of a finished pilot run (inf for a failed or non-finite one), None if not run."""
    r = read_json(pilot_dir(out_dir) / "runs" / run_id(spec) / "result.json")
    if not isinstance(r, dict) or r.get("spec") != spec:
        return None
    if r.get("status") != "ok":
        return math.inf
    try:
        v = float(r.get("val_loss"))
    except (TypeError, ValueError):
        return math.inf
    return v if math.isfinite(v) else math.inf


def _candidates(cfg: StudyConfig, fam: dict, size: dict, out_dir: Path) -> tuple[list[float], dict, list[dict]]:
    """The rates of one (family, size) as far as its results decide: (rates, {rate: val or None}, specs
    still to run). The grid grows beyond an edge that holds the best finished rate."""
    grid = cfg.pilot_grid(fam)
    up, down = grid[-1] / grid[-2], grid[0] / grid[1]
    rates = list(grid)
    for _ in range(2 * cfg.pilot["extend"] + 1):
        vals = {lr: _val(out_dir, cfg.pilot_spec(fam, size, lr)) for lr in rates}
        if any(v is None for v in vals.values()):
            break
        best = min(rates, key=lambda lr: (vals[lr], lr))
        if math.isinf(vals[best]):
            break  # every rate failed: nothing to extend towards
        n_low = sum(lr < grid[0] for lr in rates)
        n_high = sum(lr > grid[-1] for lr in rates)
        if best == rates[0] and n_low < cfg.pilot["extend"]:
            rates.insert(0, float(f"{rates[0] * down:.6g}"))
        elif best == rates[-1] and n_high < cfg.pilot["extend"]:
            rates.append(float(f"{rates[-1] * up:.6g}"))
        else:
            break
    vals = {lr: _val(out_dir, cfg.pilot_spec(fam, size, lr)) for lr in rates}
    todo = [cfg.pilot_spec(fam, size, lr) for lr in rates if vals[lr] is None]
    return rates, vals, todo


def pilot_round(cfg: StudyConfig, out_dir: str | Path) -> list[dict]:
    """The pilot runs that can run now (every candidate whose result is missing)."""
    out = []
    for fam, size in cfg.pilot_sizes():
        out.extend(_candidates(cfg, fam, size, Path(out_dir))[2])
    return out


def pilot_choice(cfg: StudyConfig, out_dir: str | Path) -> dict | None:
    """``{pilot_key: {"lr", "val_loss", "candidates": {lr: val}, "bracketed", "run_ids"}}`` once every
    (family, size) is decided; None while runs are missing."""
    choice = {}
    for fam, size in cfg.pilot_sizes():
        rates, vals, todo = _candidates(cfg, fam, size, Path(out_dir))
        if todo:
            return None
        best = min(rates, key=lambda lr: (vals[lr], lr))
        choice[pilot_key(fam["name"], size["width"], size["depth"])] = {
            "lr": best, "val_loss": vals[best], "candidates": {repr(lr): vals[lr] for lr in rates},
            "bracketed": best not in (rates[0], rates[-1]),
            "run_ids": [run_id(cfg.pilot_spec(fam, size, lr)) for lr in rates]}
    return choice


def run_pilot(cfg: StudyConfig, out_dir: str | Path, execute: Callable[[list[dict], Path], None],
              progress: bool = True, poll_s: float = 10.0) -> dict:
    """Run the pilot to its choice (rounds of :func:`pilot_round` given to ``execute(specs, pilot_dir)``)
    and write ``OUT/pilot/choice.json``; returns ``{pilot_key: lr}``."""
    from .execution import _log

    pdir = pilot_dir(out_dir)
    rounds = 0
    while (choice := pilot_choice(cfg, out_dir)) is None:
        todo = pilot_round(cfg, out_dir)
        if progress:
            _log(f"[scaling] pilot round {rounds + 1}: {len(todo)} learning-rate runs -> {pdir}")
        held_before = len(todo)
        execute(todo, pdir)
        rounds += 1
        if len(pilot_round(cfg, out_dir)) >= held_before and pilot_choice(cfg, out_dir) is None:
            time.sleep(poll_s)  # runs held by another process (a parallel shard): wait for their results
    write_json(pdir / "choice.json", choice)
    if progress:
        for key, c in choice.items():
            note = "" if c["bracketed"] else " (NOT bracketed: best at the edge of the extended grid)"
            _log(f"[scaling] pilot: {key} lr={c['lr']:.3g} (val {c['val_loss']:.4g}){note}")
    return {k: c["lr"] for k, c in choice.items()}
