"""Data efficiency as the change of the equivariance gap with data: a ratio of ratios.

For an equivariant family ``E`` and a baseline ``B`` trained at the same model size and step count
on ``n`` and on ``N`` training trajectories (the data sweep and the main grid),

    gap(n) = L_E(n) / L_B(n),        R = gap(n) / gap(N)

``gap(n) < 1`` only says that ``E`` is better at ``n``; ``R < 1`` says that its advantage *grows* as
data shrink, which is what "equivariance improves data efficiency" means. Losses are test losses
(the whole split, or its contact windows); the interval is a bootstrap that resamples test
trajectories (one draw shared by all four losses, so the ratio is paired) and, per config, seeds
(with the small-sample correction of :func:`experiments.scaling.analysis._inflate`). Epochs differ
between ``n`` and ``N`` at a fixed step count; each row states them.
"""

from __future__ import annotations

import math

import numpy as np

from .analysis import Config, StudyData, _inflate, interval

__all__ = ["sweep_pairs", "ratio_of_ratios", "data_efficiency_gap"]


def _epochs(cfg: Config) -> float:
    v = [r.get("samples_seen", math.nan) / r.get("train_set_size", math.nan)
         if r.get("train_set_size") else math.nan for r in cfg.runs]
    return float(np.nanmean(v)) if v else math.nan


def sweep_pairs(study: StudyData, family: str) -> dict[int, Config]:
    """A family's data-sweep configs by training-set size: the configs at other sizes than the main
    grid's, with the main-grid config of the same (width, depth, steps) as the full-data point.
    Empty when the family has no data sweep."""
    full_n = study.main_ntraj[family]
    small = [c for c in study.configs[family] if c.ntraj != full_n]
    if not small:
        return {}
    arch = {(c.width, c.depth, c.steps) for c in small}
    if len(arch) != 1:  # the sweep runs one size and step count per family
        arch = {max(arch, key=lambda a: sum(c.ntraj == full_n and (c.width, c.depth, c.steps) == a
                                            for c in study.configs[family]))}
    key = arch.pop()
    out = {c.ntraj: c for c in study.configs[family] if (c.width, c.depth, c.steps) == key}
    return out if full_n in out else {}


def _draws(cfg: Config, weights: np.ndarray, contact: bool, rng: np.random.Generator) -> tuple[float, np.ndarray]:
    """(point, (B,) bootstrap draws) of a config's seed-mean test loss."""
    wl = cfg.seed_losses(weights, contact)  # (S, B)
    idx = rng.integers(0, cfg.n_seeds, size=(weights.shape[0], cfg.n_seeds))
    draws = _inflate(np.take_along_axis(wl.T, idx, 1).mean(1), wl.mean(0), cfg.n_seeds)
    return float(cfg.seed_losses(None, contact).mean()), draws


def ratio_of_ratios(eq: dict[int, Config], base: dict[int, Config], n_small: int, n_full: int,
                    weights: np.ndarray, contact: bool, rng: np.random.Generator) -> dict:
    """``gap(n_small) / gap(n_full)`` with its paired bootstrap interval, and both gaps."""
    pts, draws = {}, {}
    for name, cfgs in (("eq", eq), ("base", base)):
        for n in (n_small, n_full):
            pts[name, n], draws[name, n] = _draws(cfgs[n], weights, contact, rng)
    gap = {n: (pts["eq", n] / pts["base", n], draws["eq", n] / draws["base", n]) for n in (n_small, n_full)}
    point = gap[n_small][0] / gap[n_full][0]
    out = {"value": point, **interval(gap[n_small][1] / gap[n_full][1]),
           "gap_small": {"value": gap[n_small][0], **interval(gap[n_small][1])},
           "gap_full": {"value": gap[n_full][0], **interval(gap[n_full][1])}}
    out["n_seeds"] = int(min(c.n_seeds for cfgs in (eq, base) for c in (cfgs[n_small], cfgs[n_full])))
    return out


def _verdict(r: dict, seeds: int) -> str:
    lo, hi = r.get("ci95", [math.nan, math.nan])
    if seeds < 2 or not math.isfinite(lo):
        return "not resolved"
    return "supported" if hi < 1 else "contradicted" if lo > 1 else "not resolved"


def data_efficiency_gap(study: StudyData, equivariant: list[str], baselines: list[str], n_boot: int = 500,
                        seed: int = 0) -> dict:
    """Finding (1): the gap's change with data against every swept baseline, the verdict against the
    best one (lowest validation loss at full data: selection reads validation only), and whether
    augmentation narrows the gap (augmented / plain baseline at the smallest training set).

    Returns a dict with ``rows`` (one per (equivariant, baseline, small size): the ratio of ratios on
    all windows and on contact windows, epochs at both sizes), ``best_baseline``, ``verdict``,
    ``augmentation``.
    """
    ts = study.test_set
    out = {"rows": [], "verdict": "not resolved", "best_baseline": None, "augmentation": None,
           "note": None}
    sweeps = {f: sweep_pairs(study, f) for f in equivariant + baselines}
    eqs = [f for f in equivariant if sweeps[f]]
    bases = [f for f in baselines if sweeps[f]]
    if ts is None or not eqs or not bases:
        out["note"] = "needs a data sweep with an equivariant and a baseline family (and per-trajectory test scores)"
        return out
    rng = np.random.default_rng(seed)
    n_traj = len(ts.trajectory)
    weights = rng.multinomial(n_traj, np.full(n_traj, 1.0 / n_traj), size=n_boot).astype(float)
    full = {f: study.main_ntraj[f] for f in eqs + bases}
    best = min(bases, key=lambda f: float(np.nanmean(sweeps[f][full[f]].val)))
    out["best_baseline"] = best
    for e in eqs:
        for b in bases:
            if full[e] != full[b]:
                continue
            for n in sorted(set(sweeps[e]) & set(sweeps[b]) - {full[e]}):
                row = {"equivariant": e, "baseline": b, "n_small": n, "n_full": full[e],
                       "epochs": {f: {"small": _epochs(sweeps[f][n]), "full": _epochs(sweeps[f][full[f]])}
                                  for f in (e, b)},
                       "config": {f: sweeps[f][n].label for f in (e, b)}}
                for contact, key in ((False, "all"), (True, "contact")):
                    row[key] = ratio_of_ratios(sweeps[e], sweeps[b], n, full[e], weights, contact, rng)
                row["verdict"] = _verdict(row["all"], row["all"]["n_seeds"])
                out["rows"].append(row)
    headline = [r for r in out["rows"] if r["baseline"] == best and r["equivariant"] == eqs[0]]
    if headline:
        smallest = min(headline, key=lambda r: r["n_small"])
        out["headline"] = smallest
        out["verdict"] = smallest["verdict"]
    plain = [f for f in bases if not study.meta[f].get("augment")]
    aug = [f for f in bases if study.meta[f].get("augment")]
    if plain and aug:
        p = min(plain, key=lambda f: float(np.nanmean(sweeps[f][full[f]].val)))
        n = min(set(sweeps[p]) & set(sweeps[aug[0]]) - {full[p]}, default=None)
        if n is not None:
            (pa, da), (pp, dp) = (_draws(sweeps[aug[0]][n], weights, False, rng),
                                  _draws(sweeps[p][n], weights, False, rng))
            r = {"value": pa / pp, **interval(da / dp)}
            seeds = min(sweeps[aug[0]][n].n_seeds, sweeps[p][n].n_seeds)
            out["augmentation"] = {"augmented": aug[0], "plain": p, "n": n, "ratio": r,
                                   "epochs": _epochs(sweeps[aug[0]][n]), "verdict": _verdict(r, seeds)}
    return out
