"""Two studies of the same grid side by side: ``python -m experiments.scaling compare A B``.

Runs are matched by (family, width, depth, steps, training-set size, seed), i.e. everything but the
setting the two studies differ in (a schedule, a code version, a machine). For each matched config
the report gives both test losses (seed mean ± sd) and the ratio B / A with a 95% bootstrap interval
over test trajectories and seeds (paired: the same resampled trajectories, and the same seeds where
both ran the same ones); over all configs,
the geometric mean ratio with its interval. Used to show that WSD branches train as well as cosine
runs before making them the default (README, "Scaling laws").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .analysis import _inflate, interval, load_study
from .grid import ConfigError
from .results import collect_results

__all__ = ["compare_studies", "render_comparison"]

def _configs(results: list[dict]) -> dict:
    study = load_study(results)
    return study, {(c.family, c.width, c.depth, c.steps, c.ntraj): c for cs in study.configs.values() for c in cs}


def compare_studies(a_dir: str | Path, b_dir: str | Path, n_boot: int = 500, seed: int = 0) -> dict:
    """Matched configs of two study directories with B / A test-loss ratios (see the module docstring)."""
    ra, rb = collect_results(Path(a_dir)), collect_results(Path(b_dir))
    if not ra or not rb:
        raise ConfigError(f"{a_dir if not ra else b_dir}: no readable result.json under runs/")
    (sa, ca), (sb, cb) = _configs(ra), _configs(rb)
    keys = sorted(set(ca) & set(cb))
    if not keys:
        raise ConfigError(f"{a_dir} and {b_dir} share no config (family, width, depth, steps, training-set size)")
    ts = sa.test_set
    if ts is None or sb.test_set is None or not np.array_equal(ts.trajectory, sb.test_set.trajectory):
        raise ConfigError("the two studies were not scored on the same test trajectories")
    rng = np.random.default_rng(seed)
    n = len(ts.trajectory)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
    rows, log_draws, log_points = [], [], []
    for key in keys:
        draws, points = [], []
        # the same seeds resampled on both sides when both ran the same seeds (same init and data order)
        paired = [r["spec"]["seed"] for r in ca[key].runs] == [r["spec"]["seed"] for r in cb[key].runs]
        shared = rng.integers(0, ca[key].n_seeds, size=(n_boot, ca[key].n_seeds))
        for cfg in (ca[key], cb[key]):
            wl = cfg.seed_losses(weights)  # (S, B)
            idx = shared if paired else rng.integers(0, cfg.n_seeds, size=(n_boot, cfg.n_seeds))
            draws.append(_inflate(np.take_along_axis(wl.T, idx, 1).mean(1), wl.mean(0), cfg.n_seeds))
            points.append(float(cfg.seed_losses().mean()))
        ratio = draws[1] / draws[0]
        rows.append({"family": key[0], "config": ca[key].label, "a": points[0], "b": points[1],
                     "a_sd": float(np.std(ca[key].test, ddof=1)) if ca[key].n_seeds > 1 else math.nan,
                     "b_sd": float(np.std(cb[key].test, ddof=1)) if cb[key].n_seeds > 1 else math.nan,
                     "n_seeds": min(ca[key].n_seeds, cb[key].n_seeds), "ratio": points[1] / points[0],
                     **{k: v for k, v in interval(ratio).items() if k != "median"}})
        log_draws.append(np.log(ratio))
        log_points.append(math.log(points[1] / points[0]))
    overall = {"value": math.exp(float(np.mean(log_points))), **interval(np.exp(np.mean(log_draws, axis=0)))}
    return {"a": str(a_dir), "b": str(b_dir), "rows": rows, "geometric_mean_ratio": overall,
            "unmatched": {"a": len(ca) - len(keys), "b": len(cb) - len(keys)}}


def render_comparison(cmp: dict) -> str:
    """The comparison as a Markdown table."""
    def f(v, fmt=".4g"):
        return format(v, fmt) if v is not None and math.isfinite(v) else "–"

    lines = [f"A = `{cmp['a']}`, B = `{cmp['b']}`: test loss (seed mean ± sd), ratio B / A with its 95% interval "
             "(bootstrap over test trajectories, paired, and seeds).", "",
             "| family | config | seeds | A | B | B / A | 95% interval |", "|---|---|---|---|---|---|---|"]
    for r in cmp["rows"]:
        lines.append(f"| {r['family']} | {r['config']} | {r['n_seeds']} | {f(r['a'])} ± {f(r['a_sd'], '.2g')} | "
                     f"{f(r['b'])} ± {f(r['b_sd'], '.2g')} | {f(r['ratio'], '.3f')} | "
                     f"[{f(r['ci95'][0], '.3f')}, {f(r['ci95'][1], '.3f')}] |")
    g = cmp["geometric_mean_ratio"]
    lines += ["", f"Geometric mean of B / A over {len(cmp['rows'])} configs: **{f(g['value'], '.3f')}** "
                  f"[{f(g['ci95'][0], '.3f')}, {f(g['ci95'][1], '.3f')}] (95%)."]
    return "\n".join(lines) + "\n"
