"""Compute-optimal allocation from iso-FLOP profiles: N*(C) ∝ C^a per family.

At each compute budget C the family's model sizes form a profile: validation loss against
parameters N. A parabola in log N through the profile (Hoffmann et al. 2022, "Training
Compute-Optimal Large Language Models", approach 2) puts the compute-optimal size N*(C) at its
vertex; the vertex counts only when the parabola opens upwards, the best size tried is not the
smallest or the largest, and the vertex lies inside the sizes tried (the optimum is bracketed);
otherwise that budget says only "at the edge". The exponent ``a``
is the least-squares slope of log N* on log C over the bracketed budgets (at least three).

Selection reads validation loss only (which size is optimal is a selection). Uncertainty: seeds are
resampled per config (with the small-sample correction) and the whole estimate repeated; the
interval is ``a ± t_q · se`` with Student-t quantiles for ``K (S - 1)`` degrees of freedom (K
bracketed budgets, S seeds), since the standard error itself comes from few seeds. Its coverage on synthetic profiles with a
known exponent is checked by the tests (:func:`synthetic_profiles`).
"""

from __future__ import annotations

import math

import numpy as np

from .analysis import Config, StudyData, _inflate

__all__ = ["profile_vertex", "allocation_exponent", "iso_flop", "synthetic_profiles"]


def profile_vertex(log_n: np.ndarray, log_loss: np.ndarray) -> tuple[float, bool]:
    """(log N*, bracketed) of one iso-FLOP profile: the vertex of the least-squares parabola in log N;
    bracketed when the parabola opens upwards and the vertex lies inside the sizes tried."""
    if len(log_n) < 3 or not np.all(np.isfinite(log_loss)):
        return math.nan, False
    a, b, _ = np.polyfit(log_n, log_loss, 2)
    if not a > 0:
        return math.nan, False
    v = -b / (2 * a)
    # bracketed: the best size tried has a worse one on each side, and the vertex lies between them
    # (a parabola through a monotonic profile can put its vertex just inside the range)
    best = int(np.argmin(log_loss))
    return float(v), bool(0 < best < len(log_n) - 1 and log_n.min() < v < log_n.max())


def allocation_exponent(log_c: np.ndarray, log_n: list[np.ndarray], losses: list[np.ndarray],
                        n_boot: int = 500, seed: int = 0) -> dict:
    """Exponent of N*(C) ∝ C^a from iso-FLOP profiles with its seed-bootstrap interval.

    Parameters
    ----------
    log_c : (K,) log compute of each budget
    log_n : K arrays (M_k,) of log parameters of the sizes at budget k
    losses : K arrays (M_k, S) of validation losses (sizes x seeds) at budget k
    """
    def estimate(mean_losses: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        vs = [profile_vertex(n, np.log(l_)) for n, l_ in zip(log_n, mean_losses)]
        return np.array([v for v, _ in vs]), np.array([ok for _, ok in vs])

    full = [l_.mean(1) for l_ in losses]
    vertex, ok = estimate(full)
    out = {"budgets": np.exp(log_c).tolist(), "log_n_star": vertex.tolist(), "bracketed": ok.tolist(),
           "n_star": [math.exp(v) if ok_ else None for v, ok_ in zip(vertex, ok)], "exponent": None,
           "se": None, "ci68": None, "ci95": None, "n_budgets": int(ok.sum())}
    if ok.sum() < 3:
        out["note"] = (f"{int(ok.sum())} of {len(ok)} budgets have their optimum inside the sizes tried; "
                       "an exponent needs three")
        return out
    point = float(np.polyfit(log_c[ok], vertex[ok], 1)[0])
    seeds = min(l_.shape[1] for l_ in losses)
    out["exponent"] = point
    if seeds < 2:
        out["note"] = "one seed: no interval"
        return out
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        resampled = []
        for l_, m in zip(losses, full):
            idx = rng.integers(0, l_.shape[1], size=l_.shape[1])
            resampled.append(_inflate(l_[:, idx].mean(1), m, l_.shape[1]))
        v, _ = estimate(resampled)
        use = ok & np.isfinite(v)  # the budgets bracketed in the full estimate
        if use.sum() >= 3:
            draws.append(np.polyfit(log_c[use], v[use], 1)[0])
    from scipy.stats import t as student_t

    se = float(np.std(draws, ddof=1)) if len(draws) > 1 else math.nan
    df = int(ok.sum()) * (seeds - 1)
    q68, q95 = student_t.ppf(0.84, df), student_t.ppf(0.975, df)
    out.update(se=se, df=df, n_boot=len(draws), ci68=[point - q68 * se, point + q68 * se],
               ci95=[point - q95 * se, point + q95 * se])
    return out


def iso_flop(study: StudyData, family: str, n_boot: int = 500, seed: int = 0) -> dict:
    """Iso-FLOP profiles of a family's main grid (configs grouped by their spec's ``budget``) and the
    allocation exponent; ``{"exponent": None, "note": ...}`` when the grid is not placed by budgets."""
    by_budget: dict[float, list[Config]] = {}
    for c in study.grid(family):
        b = c.runs[0]["spec"].get("budget")
        if b is not None:
            by_budget.setdefault(float(b), []).append(c)
    levels = sorted(b for b, cs in by_budget.items() if len({(c.width, c.depth) for c in cs}) >= 3)
    profiles = [{"budget": b, "sizes": [{"config": c.label, "params": c.params, "val_loss": float(np.nanmean(c.val)),
                                         "n_seeds": c.n_seeds} for c in sorted(by_budget[b], key=lambda c: c.params)]}
                for b in levels]
    if len(levels) < 3:
        return {"exponent": None, "profiles": profiles, "n_budgets": 0,
                "note": f"{len(levels)} budget(s) with three or more model sizes: an exponent needs three"}
    seeds = min(c.n_seeds for b in levels for c in by_budget[b])
    log_n, losses = [], []
    for b in levels:
        cs = sorted(by_budget[b], key=lambda c: c.params)
        log_n.append(np.log([c.params for c in cs]))
        losses.append(np.array([c.val[:seeds] for c in cs]))
    out = allocation_exponent(np.log(levels), log_n, losses, n_boot, seed)
    out["profiles"] = profiles
    return out


def synthetic_profiles(exponent_data: float = 0.28, exponent_params: float = 0.34, budgets=(1e12, 4e12, 1.6e13, 6.4e13),
                       sizes_per_budget: int = 5, span: float = 16.0, seeds: int = 3, noise: float = 0.02,
                       rng: np.random.Generator | None = None) -> tuple[np.ndarray, list, list, float]:
    """Iso-FLOP profiles of ``L = 1.7 + 400 N^-α + 410 (C / 6N)^-β`` (Chinchilla's form) with
    multiplicative lognormal seed noise, sizes spread over ``span`` around the true optimum, whose
    exponent is ``a = β / (α + β)``. Returns (log C, log N per budget, losses per budget, a)."""
    rng = rng or np.random.default_rng(0)
    alpha, beta = exponent_params, exponent_data
    a_true = beta / (alpha + beta)
    log_c = np.log(np.asarray(budgets, float))
    log_n, losses = [], []
    for c in budgets:
        # the true optimum: dL/dN = 0 -> N* = G (C/6)^a with G = (alpha A / (beta B))^(1/(alpha+beta))
        g = (alpha * 400 / (beta * 410)) ** (1 / (alpha + beta))
        n_opt = g * (c / 6) ** a_true
        n = n_opt * np.geomspace(1 / math.sqrt(span), math.sqrt(span), sizes_per_budget)
        clean = 1.7 + 400 * n ** -alpha + 410 * (c / (6 * n)) ** -beta
        log_n.append(np.log(n))
        losses.append(clean[:, None] * np.exp(noise * rng.standard_normal((len(n), seeds))))
    return log_c, log_n, losses, a_true
