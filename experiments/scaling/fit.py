"""Power-law primitives: compute-optimal frontier, power-law fits, allocation exponents.

Power law: ``L(C) = a * C^(-alpha) [+ L_inf]``. Fits are least squares in log space (on log L);
compute is normalised by its geometric mean internally so the optimiser sees O(1) numbers.
The study's statistics (seeds, validation selection, bootstrap intervals) are in
:mod:`experiments.scaling.analysis`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

#: fewest frontier points for the fit with an irreducible term (3 parameters) before falling back
MIN_POINTS_IRREDUCIBLE = 4


@dataclass
class PowerLawFit:
    a: float  # L = a * C^-alpha + l_inf  (in the original compute units)
    alpha: float
    l_inf: float = 0.0
    method: str = "loglinear"  # "loglinear" | "curve_fit" | "insufficient"
    n: int = 0

    def predict(self, c: Any) -> np.ndarray:
        c = np.asarray(c, dtype=float)
        return self.a * np.power(c, -self.alpha) + self.l_inf

    def to_dict(self) -> dict:
        return asdict(self)


def _clean(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    return x[ok], y[ok]


def pareto_frontier(compute: Sequence[float], loss: Sequence[float]) -> np.ndarray:
    """Indices of the compute-optimal frontier (lower envelope), sorted by compute: a run is on it
    when no other run with less or equal compute reaches a lower loss. Non-finite entries are ignored."""
    c = np.asarray(compute, dtype=float)
    l_ = np.asarray(loss, dtype=float)
    idx = [i for i in range(len(c)) if np.isfinite(c[i]) and np.isfinite(l_[i])]
    idx.sort(key=lambda i: (c[i], l_[i]))
    out, best = [], math.inf
    for i in idx:
        if l_[i] < best:
            out.append(i)
            best = l_[i]
    return np.asarray(out, dtype=int)


def fit_loglinear(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept of log y = slope * log x + intercept (least squares)."""
    x, y = _clean(x, y)
    if len(x) < 2 or np.ptp(np.log(x)) == 0:
        raise ValueError(f"need at least 2 points with distinct x for a log-log fit, got {len(x)}")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def fit_power_law(compute: Sequence[float], loss: Sequence[float], irreducible: bool = False) -> PowerLawFit:
    """Fit ``L = a C^-alpha (+ l_inf)``. Without the irreducible term this is the log-log linear fit;
    with it, scipy.optimize.curve_fit on log L (l_inf >= 0, below the smallest loss), falling back
    to the log-log linear fit with too few points (< MIN_POINTS_IRREDUCIBLE) or when it fails."""
    c, l_ = _clean(compute, loss)
    n = len(c)
    if n < 2 or np.ptp(np.log(c)) == 0:
        return PowerLawFit(a=math.nan, alpha=math.nan, l_inf=0.0, method="insufficient", n=n)
    slope, intercept = fit_loglinear(c, l_)
    lin = PowerLawFit(a=math.exp(intercept), alpha=-slope, l_inf=0.0, method="loglinear", n=n)
    if not irreducible or n < MIN_POINTS_IRREDUCIBLE:
        return lin
    from scipy.optimize import curve_fit

    c0 = float(np.exp(np.mean(np.log(c))))
    x = c / c0
    ymin = float(np.min(l_))

    def model(xx, log_A, alpha, l_inf):
        return np.log(np.exp(log_A) * np.power(xx, -alpha) + l_inf)

    def jac(xx, log_A, alpha, l_inf):
        t = np.exp(log_A) * np.power(xx, -alpha)
        d = t + l_inf
        return np.stack([t / d, -t * np.log(xx) / d, 1.0 / d], axis=1)

    logy = np.log(l_)
    logx = np.log(x)
    # starting point: profile over l_inf on a grid (log-log linear fit of L - l_inf for each value)
    best_p0, best_r = None, math.inf
    for frac in np.concatenate([[0.0], 1.0 - np.geomspace(1.0, 1e-3, 24)[1:]]):
        linf = frac * ymin
        slope, icpt = np.polyfit(logx, np.log(l_ - linf), 1)
        p = (float(icpt), float(np.clip(-slope, -9.9, 9.9)), float(linf))
        r = float(np.sum((model(x, *p) - logy) ** 2))
        if np.isfinite(r) and r < best_r:
            best_p0, best_r = p, r
    best = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            upper = ymin * (1 - 1e-9)
            p0 = [best_p0[0], best_p0[1], min(max(best_p0[2], 1e-6 * ymin), upper * (1 - 1e-6))]
            popt, _ = curve_fit(model, x, logy, p0=p0, jac=jac,
                                bounds=([-np.inf, -10.0, 0.0], [np.inf, 10.0, upper]), maxfev=5000)
        resid = float(np.sum((model(x, *popt) - logy) ** 2))
        if np.all(np.isfinite(popt)) and resid <= best_r * (1 + 1e-6):
            best = (resid, popt)
    except Exception:  # noqa: BLE001 - fall back to the profiled start below
        pass
    if best is None and best_p0 is not None:
        best = (best_r, np.asarray(best_p0))
    if best is None:
        return lin
    log_A, alpha, l_inf = (float(v) for v in best[1])
    return PowerLawFit(a=math.exp(log_A) * c0 ** alpha, alpha=alpha, l_inf=l_inf, method="curve_fit", n=n)


def fit_exponent(x: Sequence[float], y: Sequence[float]) -> dict:
    """Log-log slope of y against x with its standard error (>= 3 points), as used for allocation."""
    x, y = _clean(x, y)
    if len(x) < 2 or np.ptp(np.log(x)) == 0:
        return {"exponent": None, "stderr": None, "n": int(len(x)), "note": "insufficient points"}
    slope, intercept = fit_loglinear(x, y)
    if len(x) < 3:
        return {"exponent": slope, "stderr": None, "n": int(len(x)), "intercept": intercept,
                "note": "insufficient points (need >= 3 for an uncertainty)"}
    from scipy.stats import linregress

    res = linregress(np.log(x), np.log(y))
    return {"exponent": float(res.slope), "stderr": float(res.stderr), "n": int(len(x)),
            "intercept": float(res.intercept), "r2": float(res.rvalue ** 2), "note": ""}


def tokens_of(r: dict) -> float:
    """Training samples*tokens seen: steps * batch_size * bodies (bodies are the tokens)."""
    s = r["spec"]
    return float(s["steps"]) * float(s.get("batch_size", 1)) * float(s.get("bodies", 1))


def compute_allocation(frontier_runs: list[dict]) -> dict:
    """How optimal params and data (tokens seen) scale with compute along the frontier:
    ``N_opt ∝ C^a``, ``D_opt ∝ C^b`` (slopes in log-log with standard errors when >= 3 points)."""
    c = [r["train_flops"] for r in frontier_runs]
    n = [r["params"] for r in frontier_runs]
    d = [tokens_of(r) for r in frontier_runs]
    return {"params": fit_exponent(c, n), "tokens": fit_exponent(c, d)}


def ok_results(results: list[dict]) -> list[dict]:
    out = []
    for r in results:
        if r.get("status") != "ok":
            continue
        try:
            if all(math.isfinite(float(r[k])) and float(r[k]) > 0 for k in ("train_flops", "test_loss")):
                out.append(r)
        except (KeyError, TypeError, ValueError):
            continue
    return out


def family_of(r: dict) -> str:
    return r["spec"].get("name") or r["spec"]["family"]
