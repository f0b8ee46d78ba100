"""A study's statistics: seeds, validation-selected frontiers, compute-matched comparison, bootstrap.
(The summary built from them - headline, comparisons, findings - is :mod:`experiments.scaling.findings`.)

Protocol (DESIGN.md, "Evaluation protocol"):

* A **config** is one grid point of a family (width, depth, steps, training-set size); its seeds are
  averaged. Every selection reads VALIDATION loss only: the compute frontier (configs that no
  cheaper config beats on validation), the selected config of a family (lowest validation loss)
  and the config of each training-set size in the data sweep. Reported numbers are TEST losses of
  the selected configs, on the whole test split.
* **Compute-matched comparison**: on each family's frontier, test loss is fitted as a power law in
  training compute (log-linear through the frontier configs) and read at common budgets inside
  every family's frontier range. Above a frontier's largest compute the envelope stays flat (one
  can always spend less); below its smallest it is undefined.
* **Intervals**: a bootstrap that resamples test trajectories (the same draw for every family, so
  comparisons are paired) and, per config, seeds. The seed resampling is inflated by
  ``sqrt(S / (S - 1))`` in log space so that a mean of ``S`` seeds gets an unbiased bootstrap
  variance (the plain bootstrap shrinks it by ``(S - 1) / S``); with one seed, only trajectories
  are resampled and the interval says nothing about seed-to-seed variation.
* Losses relative to the free-flight ("ballistic") reference are ratios of sums over the same
  windows: 1.0 = ballistic, < 1 better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .fit import MIN_POINTS_IRREDUCIBLE, compute_allocation, family_of, fit_power_law, ok_results, pareto_frontier

__all__ = ["Config", "TestSet", "StudyData", "load_study", "compute_matched", "interval", "envelope",
           "common_budgets", "ratio_interval", "selected_config", "selected_scores", "frontier_fit",
           "seed_bootstrap_exponent"]


def interval(samples) -> dict:
    """Median, 68% and 95% percentile intervals of finite samples (NaNs where there are none)."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"median": math.nan, "ci68": [math.nan, math.nan], "ci95": [math.nan, math.nan], "n_boot": 0}
    q = np.percentile(x, [2.5, 16, 50, 84, 97.5])
    return {"median": float(q[2]), "ci68": [float(q[1]), float(q[3])], "ci95": [float(q[0]), float(q[4])],
            "n_boot": int(len(x))}


def _inflate(draw_mean: np.ndarray, full_mean: np.ndarray, n_seeds: int) -> np.ndarray:
    """Bootstrap mean of ``n_seeds`` seeds with the small-sample variance correction, in log space."""
    if n_seeds < 2:
        return full_mean
    c = math.sqrt(n_seeds / (n_seeds - 1))
    return full_mean * np.power(draw_mean / full_mean, c)


@dataclass
class TestSet:
    """The test split's trajectories and the closed-form references on them (per-trajectory sums)."""

    trajectory: np.ndarray  # (T,)
    references: dict  # name -> {"sse_contact", "n_contact", "sse_free", "n_free"}: (T,) arrays

    def loss(self, name: str, weights: np.ndarray | None = None, contact_only: bool = False) -> float:
        return _loss(self.references[name], weights, contact_only)


def _loss(pt: dict, weights, contact_only: bool) -> np.ndarray | float:
    """Mean window MSE from per-trajectory sums; ``weights`` (T,) or (B, T) bootstrap counts."""
    sse = pt["sse_contact"] if contact_only else pt["sse_contact"] + pt["sse_free"]
    n = pt["n_contact"] if contact_only else pt["n_contact"] + pt["n_free"]
    if weights is None:
        return float(sse.sum() / n.sum()) if n.sum() else math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ sse.T) / (weights @ n.T)


@dataclass
class Config:
    """One grid point of a family with all its seeds."""

    family: str
    width: int
    depth: int
    steps: int
    ntraj: int
    runs: list
    compute: float = 0.0
    seconds: float = 0.0  # mean measured training seconds (a dedicated run's, for WSD branches)
    budget: float | None = None  # the grid's nominal budget, when the study is placed by budgets
    params: float = 0.0
    val: np.ndarray = field(default=None)  # (S,)
    test: np.ndarray = field(default=None)  # (S,) whole-split test loss
    per_traj: list = field(default_factory=list)  # S dicts of (T,) arrays, or [] if unavailable

    def __post_init__(self):
        self.runs = sorted(self.runs, key=lambda r: r["spec"].get("seed", 0))
        self.compute = float(np.mean([r["train_flops"] for r in self.runs]))
        self.seconds = float(np.mean([_num(r.get("train_time_s")) for r in self.runs]))
        self.budget = self.runs[0]["spec"].get("budget")
        self.params = float(np.mean([r.get("params") or math.nan for r in self.runs]))
        self.val = np.array([_num(r.get("val_loss")) for r in self.runs])
        self.test = np.array([_num(r.get("test_loss")) for r in self.runs])

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    @property
    def label(self) -> str:
        return f"w{self.width} d{self.depth} s{self.steps} n{self.ntraj}"

    def cost(self, axis: str = "flops") -> float:
        """The config's training cost on an axis: nominal FLOPs ("flops") or measured seconds ("seconds")."""
        return self.compute if axis == "flops" else self.seconds

    def mean(self, key: str) -> float:
        v = [_num(r.get(key)) for r in self.runs]
        return float(np.mean(v)) if v else math.nan

    def seed_losses(self, weights=None, contact_only: bool = False) -> np.ndarray:
        """(S,) test losses (or (S, B) for (B, T) bootstrap weights); scalar test loss without per-trajectory data."""
        if not self.per_traj:
            if contact_only:
                v = np.array([_num(r.get("test_contact_loss")) for r in self.runs])
            else:
                v = self.test
            return v if weights is None else np.repeat(v[:, None], len(weights), 1)
        return np.array([_loss(pt, weights, contact_only) for pt in self.per_traj])


def _num(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return math.nan
    return v


@dataclass
class StudyData:
    configs: dict  # family -> list[Config] (all training-set sizes)
    main_ntraj: dict  # family -> main-grid training-set size
    meta: dict  # family -> {"family", "algebra", "augment"}
    test_set: TestSet | None

    def grid(self, family: str) -> list[Config]:
        """The family's configs at its main training-set size, by compute."""
        return sorted((c for c in self.configs[family] if c.ntraj == self.main_ntraj[family]), key=lambda c: c.compute)


def _per_traj_arrays(pt: dict, order: np.ndarray) -> dict | None:
    ids = np.asarray(pt.get("trajectory", []))
    if len(ids) != len(order) or not np.array_equal(np.sort(ids), order):
        return None
    pos = np.argsort(ids)
    return {k: np.asarray(pt[k], dtype=float)[pos] for k in ("sse_contact", "n_contact", "sse_free", "n_free")}


def load_study(results: list[dict]) -> StudyData:
    """Group ok runs into families and configs; attach per-trajectory sums where every run has them."""
    ok = ok_results(results)
    test_set = None
    ref_run = next((r for r in ok if r.get("references") and r.get("test_per_trajectory")), None)
    if ref_run is not None:
        order = np.sort(np.asarray(ref_run["test_per_trajectory"]["trajectory"]))
        refs = {name: _per_traj_arrays(v["per_trajectory"], order) for name, v in ref_run["references"].items()}
        if all(v is not None for v in refs.values()):
            test_set = TestSet(trajectory=order, references=refs)
    groups: dict = {}
    meta = {}
    for r in ok:
        s = r["spec"]
        fam = family_of(r)
        meta.setdefault(fam, {k: s.get(k) for k in ("family", "algebra", "augment")})
        key = (s["width"], s["depth"], s["steps"], s["train_trajectories"])
        groups.setdefault(fam, {}).setdefault(key, []).append(r)
    configs = {}
    for fam, by_key in groups.items():
        configs[fam] = []
        for (w, d, st, n), runs in sorted(by_key.items()):
            cfg = Config(fam, w, d, st, n, runs)
            if test_set is not None:
                arrays = [_per_traj_arrays(r.get("test_per_trajectory") or {}, test_set.trajectory) for r in runs]
                cfg.per_traj = arrays if all(a is not None for a in arrays) else []
            configs[fam].append(cfg)
    main = {}
    for fam, cs in configs.items():
        counts: dict = {}
        for c in cs:
            counts[c.ntraj] = counts.get(c.ntraj, 0) + len(c.runs)
        main[fam] = max(counts, key=lambda n: (counts[n], n))
    return StudyData(configs=configs, main_ntraj=main, meta=meta, test_set=test_set)


# ----------------------------------------------------------------------------- frontier and budgets


#: a grid budget and its runs' compute differ by the rounding of the step count (< 1% at >= 100 steps)
BUDGET_RTOL = 0.02


def envelope(compute: np.ndarray, val: np.ndarray, test: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Compute-optimal test loss at ``budgets`` from configs selected on validation loss.

    The frontier holds the configs that no cheaper config beats on validation; their test losses
    are fitted as ``log L = -alpha log C + b`` and read at each budget inside the frontier's compute
    range, held flat above it, NaN below it (one frontier point: its loss, from its compute on).
    """
    fr = pareto_frontier(compute, val)
    out = np.full(len(budgets), math.nan)
    if len(fr) == 0:
        return out
    c, l_ = compute[fr], test[fr]
    if len(fr) >= 2 and np.all(l_ > 0):
        fit = fit_power_law(c, l_)
        inside = (budgets >= c.min() * (1 - BUDGET_RTOL)) & (budgets <= c.max() * (1 + BUDGET_RTOL))
        out[inside] = fit.predict(budgets[inside])
    above = budgets > c.max() * (1 + BUDGET_RTOL)
    out[above] = l_[-1]
    if len(fr) == 1:
        out[np.isclose(budgets, c[0], rtol=BUDGET_RTOL)] = l_[0]
    return out


def common_budgets(ranges: list[tuple[float, float]], max_budgets: int = 3) -> list[float]:
    """Up to ``max_budgets`` log-spaced budgets inside every (lo, hi) compute range ([] if none)."""
    if not ranges:
        return []
    lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo * (1 - 1e-9):
        return []
    if hi <= lo * 1.05:
        return [float(lo)]
    n = max_budgets if hi >= 2 * lo else 2
    return [float(v) for v in np.geomspace(lo, hi, n)]


def seed_bootstrap_exponent(compute, losses, n_boot: int = 500, seed: int = 0) -> dict:
    """Power-law exponent of seed-averaged losses with its seed-bootstrap interval.

    The bootstrap gives the exponent's standard error (seeds resampled per config, with the
    small-sample correction of :func:`_inflate`); the intervals are ``alpha +- t_q se`` with Student-t
    quantiles for ``K (S - 1)`` degrees of freedom, since that standard error is itself estimated from
    few seeds (percentile intervals covered the truth ~62% of the time at a nominal 68% with 3 seeds).

    Parameters
    ----------
    compute : (K,) compute of each config
    losses : (K, S) loss of each config and seed
    """
    from scipy.stats import t as student_t

    compute = np.asarray(compute, float)
    losses = np.asarray(losses, float)
    k, s = losses.shape
    full = losses.mean(1)
    point = float(fit_power_law(compute, full).alpha)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s, size=(n_boot, k, s))
    draws = np.take_along_axis(np.broadcast_to(losses, (n_boot, k, s)), idx, 2).mean(2)
    draws = _inflate(draws, full, s)
    logc = np.log(compute) - np.log(compute).mean()
    y = np.log(draws)
    alphas = -((y - y.mean(1, keepdims=True)) @ logc) / (logc @ logc)
    se = float(np.std(alphas, ddof=1))
    df = max(1, k * (s - 1))
    q68, q95 = student_t.ppf(0.84, df), student_t.ppf(0.975, df)
    return {"alpha": point, "median": float(np.median(alphas)), "se": se, "df": df, "n_boot": n_boot,
            "ci68": [point - q68 * se, point + q68 * se], "ci95": [point - q95 * se, point + q95 * se]}


# ----------------------------------------------------------------------------- compute-matched comparison


def compute_matched(study: StudyData, n_boot: int = 500, seed: int = 0, max_budgets: int = 3,
                    axis: str = "flops") -> dict:
    """Budgets, and per family the test loss (all windows and contact windows) at each budget with
    seed mean +- sd, bootstrap intervals, and the losses relative to ballistic on the same samples.

    ``axis``: "flops" compares at equal nominal training FLOPs (at every grid budget level that two or
    more families reach when the study is placed by budgets, else ``max_budgets`` log-spaced ones inside
    every family's range); "seconds" at equal measured
    training time on the machine that ran the study (``max_budgets`` log-spaced times).

    Returns a dict with ``axis``, ``budgets`` and ``families`` -> {``loss``, ``loss_contact``,
    ``rel_ballistic``, ``rel_ballistic_contact``: per budget {value, seed_mean, seed_sd, n_seeds,
    median, ci68, ci95}}, and ``samples`` (the bootstrap draws, for paired comparisons; not serialised).
    """
    fams = [f for f in study.configs if len(study.grid(f)) >= 1]
    budgets = _matched_budgets(study, fams, axis, max_budgets)
    ts = study.test_set
    rng = np.random.default_rng(seed)
    n_traj = len(ts.trajectory) if ts is not None else 0
    weights = rng.multinomial(n_traj, np.full(n_traj, 1.0 / n_traj), size=n_boot).astype(float) if n_traj else None
    ref = {}
    if ts is not None:
        for contact in (False, True):
            ref[contact] = (ts.loss("ballistic", None, contact), _loss(ts.references["ballistic"], weights, contact))
    out = {"axis": axis, "budgets": budgets.tolist(), "families": {}, "samples": {}}
    if len(budgets) == 0:
        return out
    for f in fams:
        g = study.grid(f)
        compute = np.array([x.cost(axis) for x in g])
        seeds = min(x.n_seeds for x in g)
        res, samples = {}, {}
        for contact in (False, True):
            key = "loss_contact" if contact else "loss"
            per_seed = [x.seed_losses(None, contact) for x in g]  # K x (S_k,)
            val = [x.val for x in g]
            point = envelope(compute, np.array([v.mean() for v in val]), np.array([p.mean() for p in per_seed]), budgets)
            by_seed = np.array([envelope(compute, np.array([v[s] for v in val]), np.array([p[s] for p in per_seed]),
                                         budgets) for s in range(seeds)])
            boot = _bootstrap_envelope(g, compute, budgets, weights, contact, rng, n_boot)
            samples[key] = boot
            res[key] = _summary(point, by_seed, boot)
            if ts is not None:
                base, base_boot = ref[contact]
                rel_key = "rel_ballistic_contact" if contact else "rel_ballistic"
                samples[rel_key] = boot / base_boot[:, None]
                res[rel_key] = _summary(point / base, by_seed / base, samples[rel_key])
        out["families"][f] = res
        out["samples"][f] = samples
    return out


def _matched_budgets(study: StudyData, fams: list[str], axis: str, max_budgets: int) -> np.ndarray:
    """The budgets of :func:`compute_matched`: every grid budget that two or more families reach (a family
    is compared where its frontier is defined: NaN below its cheapest frontier config, flat above its
    largest), or ``max_budgets`` log-spaced ones inside every family's range."""
    ranges = []
    for f in fams:
        g = study.grid(f)
        c = np.array([x.cost(axis) for x in g])
        fr = pareto_frontier(c, np.array([np.nanmean(x.val) for x in g]))
        ranges.append((float(c[fr].min()), float(c.max())) if len(fr) else (math.inf, -math.inf))
    levels = sorted({x.budget for f in fams for x in study.grid(f) if x.budget is not None})
    if axis == "flops" and levels and ranges:
        def reached(b):
            return sum(lo * (1 - BUDGET_RTOL) <= b for lo, _ in ranges)
        return np.array([b for b in levels if reached(b) >= 2])
    return np.array(common_budgets(ranges, max_budgets))


def _bootstrap_envelope(g: list, compute: np.ndarray, budgets: np.ndarray, weights: np.ndarray | None,
                        contact: bool, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap draws ``(n_boot, budgets)`` of a family's envelope: test trajectories resampled (``weights``)
    and seeds resampled per config (draws from ``rng``); NaN when there is nothing to resample."""
    boot = np.full((n_boot, len(budgets)), math.nan)
    if weights is None and not any(x.n_seeds > 1 for x in g):
        return boot
    w_losses = [x.seed_losses(weights, contact) if weights is not None else
                np.repeat(x.seed_losses(None, contact)[:, None], n_boot, 1) for x in g]  # K x (S, B)
    draws_t, draws_v = [], []
    for x, wl in zip(g, w_losses):
        idx = rng.integers(0, x.n_seeds, size=(n_boot, x.n_seeds))
        full_t = wl.mean(0)  # (B,)
        draw_t = np.take_along_axis(wl.T, idx, 1).mean(1)
        draws_t.append(_inflate(draw_t, full_t, x.n_seeds))
        draws_v.append(_inflate(x.val[idx].mean(1), np.full(n_boot, x.val.mean()), x.n_seeds))
    draws_t, draws_v = np.array(draws_t), np.array(draws_v)  # (K, B)
    for b in range(n_boot):
        boot[b] = envelope(compute, draws_v[:, b], draws_t[:, b], budgets)
    return boot


def _summary(point: np.ndarray, by_seed: np.ndarray, boot: np.ndarray) -> list[dict]:
    rows = []
    for j in range(len(point)):
        s = by_seed[:, j] if by_seed.size else np.array([])
        s = s[np.isfinite(s)]
        rows.append({"value": float(point[j]), "seed_mean": float(s.mean()) if len(s) else math.nan,
                     "seed_sd": float(s.std(ddof=1)) if len(s) > 1 else math.nan, "n_seeds": int(len(s)),
                     **interval(boot[:, j])})
    return rows


def ratio_interval(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired bootstrap interval of ``a / b`` (same resamples), and whether its 95% interval excludes 1."""
    out = interval(np.asarray(a) / np.asarray(b))
    lo, hi = out["ci95"]
    out["excludes_one"] = bool(math.isfinite(lo) and (hi < 1 or lo > 1))
    return out


def selected_config(configs: list[Config]) -> Config | None:
    """The config with the lowest mean validation loss (never test)."""
    cands = [c for c in configs if np.isfinite(np.nanmean(c.val))]
    return min(cands, key=lambda c: (np.nanmean(c.val), c.compute)) if cands else None


def selected_scores(study: StudyData, cfg: Config, n_boot: int = 500, seed: int = 0) -> dict:
    """Test losses of one config (seed mean +- sd) and relative to ballistic, with bootstrap intervals."""
    ts = study.test_set
    out = {"config": cfg.label, "run_ids": [r["run_id"] for r in cfg.runs], "n_seeds": cfg.n_seeds,
           "train_flops": cfg.compute, "params": cfg.params, "val_loss": float(np.nanmean(cfg.val))}
    for key in ("test_loss", "test_contact_loss", "test_free_loss", "test_e3_loss", "test_rotation_loss",
                "test_translation_loss"):
        v = np.array([_num(r.get(key)) for r in cfg.runs])
        out[key] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
        out[key + "_sd"] = float(np.nanstd(v, ddof=1)) if np.isfinite(v).sum() > 1 else math.nan
    if ts is None:
        out["rel_ballistic"] = out["rel_ballistic_contact"] = None
        return out
    rng = np.random.default_rng(seed)
    n_traj = len(ts.trajectory)
    weights = rng.multinomial(n_traj, np.full(n_traj, 1.0 / n_traj), size=n_boot).astype(float)
    for contact, key in ((False, "rel_ballistic"), (True, "rel_ballistic_contact")):
        base = ts.loss("ballistic", None, contact)
        point = cfg.seed_losses(None, contact).mean() / base
        wl = cfg.seed_losses(weights, contact)  # (S, B)
        idx = rng.integers(0, cfg.n_seeds, size=(n_boot, cfg.n_seeds))
        draws = _inflate(np.take_along_axis(wl.T, idx, 1).mean(1), wl.mean(0), cfg.n_seeds)
        out[key] = float(point)
        out[key + "_interval"] = interval(draws / _loss(ts.references["ballistic"], weights, contact))
    return out


def frontier_fit(study: StudyData, family: str, n_boot: int = 500, seed: int = 0) -> dict:
    """Power-law fit of test loss on the validation-selected frontier, with a seed-bootstrap exponent
    interval; the saturating form only when the frontier has enough points to identify it."""
    g = study.grid(family)
    compute = np.array([c.compute for c in g])
    fr = pareto_frontier(compute, np.array([np.nanmean(c.val) for c in g]))
    front = [g[i] for i in fr]
    out = {"frontier": [c.label for c in front], "frontier_runs": [r["run_id"] for c in front for r in c.runs],
           "n_points": len(front)}
    if len(front) < 2:
        out.update(fit=None, alpha=None, note=f"{len(front)} frontier point(s): no power law can be fitted")
        return out
    seeds = min(c.n_seeds for c in front)
    losses = np.array([c.test[:seeds] for c in front])
    sat = len(front) >= MIN_POINTS_IRREDUCIBLE + 1
    # alpha and its interval are the pure power law's (the interval is a bootstrap of that fit); the
    # saturating form, where identified, is reported beside it with its own exponent
    fit = fit_power_law([c.compute for c in front], losses.mean(1))
    out["fit"] = fit.to_dict()
    out["alpha"] = fit.alpha
    out["alpha_interval"] = seed_bootstrap_exponent([c.compute for c in front], losses, n_boot, seed) \
        if seeds > 1 else None
    out["saturating"] = sat
    out["fit_saturating"] = fit_power_law([c.compute for c in front], losses.mean(1), irreducible=True).to_dict() \
        if sat else None
    # compute-optimal allocation along the frontier: N_opt ~ C^a (params), D_opt ~ C^b (tokens seen)
    out["allocation"] = compute_allocation([c.runs[0] for c in front])
    out["note"] = (f"pure power law; the saturating form a C^-alpha + L_inf gives alpha = "
                   f"{out['fit_saturating']['alpha']:.3g}, L_inf = {out['fit_saturating']['l_inf']:.3g}" if sat else
                   f"pure power law: {len(front)} frontier points do not identify the saturating form "
                   f"(needs >= {MIN_POINTS_IRREDUCIBLE + 1})")
    return out
