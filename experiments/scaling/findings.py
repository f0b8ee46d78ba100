"""A study's summary: selected configs, compute-matched headline, algebra comparisons, data
efficiency and the scaling paper's three findings, each with a verdict read off its interval.

Built on :mod:`experiments.scaling.analysis` (selection on validation, bootstrap over seeds and test
trajectories).
"""

from __future__ import annotations

import math

import numpy as np

from .analysis import (StudyData, _loss, compute_matched, frontier_fit, load_study, ratio_interval,
                       selected_config, selected_scores)

__all__ = ["analyze_results", "data_efficiency"]


def data_efficiency(study: StudyData, family: str, n_boot: int = 500, seed: int = 0) -> list[dict]:
    """Per training-set size: the config selected by validation loss, its test scores and intervals."""
    by_n: dict = {}
    for c in study.configs[family]:
        by_n.setdefault(c.ntraj, []).append(c)
    rows = []
    for n in sorted(by_n):
        cfg = selected_config(by_n[n])
        if cfg is not None:
            rows.append({"train_trajectories": n, "epochs": cfg.mean("epochs"),
                         **selected_scores(study, cfg, n_boot, seed)})
    return rows


def _is_equivariant(meta: dict) -> bool:
    return meta.get("family") == "gatr"


def _verdict(ratio: dict, better_means: str) -> str:
    """'supported' if the 95% interval of the ratio lies below 1, 'contradicted' above 1, else 'not resolved'."""
    lo, hi = ratio.get("ci95", [math.nan, math.nan])
    if not math.isfinite(lo):
        return "not resolved"
    if hi < 1:
        return "supported" if better_means == "below" else "contradicted"
    if lo > 1:
        return "contradicted" if better_means == "below" else "supported"
    return "not resolved"


def analyze_results(results: list[dict], n_boot: int = 500, seed: int = 0) -> dict:
    """Full analysis of a study's result records (JSON-ready)."""
    study = load_study(results)
    failed = [r for r in results if r.get("status") != "ok"]
    ok_ids = {r["run_id"] for c in study.configs.values() for cfg in c for r in cfg.runs}
    unusable = [{"run_id": r.get("run_id"), "test_loss": r.get("test_loss"), "train_flops": r.get("train_flops")}
                for r in results if r.get("status") == "ok" and r.get("run_id") not in ok_ids]
    ts = study.test_set
    out = {"n_results": len(results), "n_ok": len(ok_ids), "unusable": unusable,
           "failed": [{"run_id": r.get("run_id"), "error_type": r.get("error_type"),
                       "error_message": r.get("error_message")} for r in failed],
           "family_meta": study.meta, "n_boot": n_boot}
    if ts is not None:
        out["ballistic_mse"] = ts.loss("ballistic")
        out["no_motion_mse"] = ts.loss("no_motion")
        out["ballistic_mse_contact"] = ts.loss("ballistic", None, True)
        out["no_motion_mse_contact"] = ts.loss("no_motion", None, True)
        out["ballistic_mse_free"] = _loss({**ts.references["ballistic"],
                                           "sse_contact": ts.references["ballistic"]["sse_free"],
                                           "n_contact": ts.references["ballistic"]["n_free"]}, None, True)
        n_c = ts.references["ballistic"]["n_contact"].sum()
        out["test_windows"] = int(n_c + ts.references["ballistic"]["n_free"].sum())
        out["test_contact_windows"] = int(n_c)
        out["test_trajectories"] = int(len(ts.trajectory))
    else:
        out["ballistic_mse"] = out["no_motion_mse"] = None
    families = {}
    for fam in sorted(study.configs):
        sel = selected_config(study.grid(fam))
        scores = selected_scores(study, sel, n_boot, seed) if sel is not None else {}
        families[fam] = {
            **study.meta[fam], "n_seeds": scores.get("n_seeds", 0), "selected": scores,
            "rel_ballistic": scores.get("rel_ballistic"), "rel_ballistic_contact": scores.get("rel_ballistic_contact"),
            "rel_ballistic_interval": scores.get("rel_ballistic_interval"),
            "rel_ballistic_contact_interval": scores.get("rel_ballistic_contact_interval"),
            "configs": [{"config": c.label, "train_flops": c.compute, "params": c.params, "n_seeds": c.n_seeds,
                         "val_loss": float(np.nanmean(c.val)), "test_loss": float(np.nanmean(c.test)),
                         "test_contact_loss": c.mean("test_contact_loss"), "ntraj": c.ntraj, "steps": c.steps,
                         "width": c.width, "depth": c.depth}
                        for c in sorted(study.configs[fam], key=lambda c: (c.ntraj, c.compute))],
            "scaling": frontier_fit(study, fam, n_boot, seed),
            "data_efficiency": data_efficiency(study, fam, n_boot, seed),
        }
    out["families"] = families
    cm = compute_matched(study, n_boot, seed)
    samples = cm.pop("samples")
    out["compute_matched"] = cm
    out["comparisons"] = _comparisons(study, cm, samples)
    out["findings"] = _findings(study, out, samples)
    return out


def _comparisons(study: StudyData, cm: dict, samples: dict) -> list[dict]:
    """Paired ratios at each budget: every pair of GATr algebras, and best equivariant vs best baseline."""
    rows = []
    gatr = [f for f in cm["families"] if _is_equivariant(study.meta[f])]
    for key in ("loss", "loss_contact"):
        for j, budget in enumerate(cm["budgets"]):
            for a_i, a in enumerate(gatr):
                for b in gatr[a_i + 1:]:
                    r = ratio_interval(samples[a][key][:, j], samples[b][key][:, j])
                    rows.append({"kind": "algebras", "metric": key, "budget": budget, "a": a, "b": b, **r})
    return rows


def _best_at(cm: dict, names: list[str], key: str, j: int) -> str | None:
    vals = {f: cm["families"][f][key][j]["value"] for f in names}
    vals = {f: v for f, v in vals.items() if math.isfinite(v)}
    return min(vals, key=vals.get) if vals else None


def _findings(study: StudyData, out: dict, samples: dict) -> dict:
    """The three findings of the scaling paper, each with numbers and a verdict."""
    cm = out["compute_matched"]
    fams = out["families"]
    eq = [f for f in fams if _is_equivariant(fams[f])]
    neq = [f for f in fams if not _is_equivariant(fams[f])]
    findings = {}

    # 2. power law in compute, equivariant models better at every budget
    per_budget = []
    for j, budget in enumerate(cm["budgets"]):
        a, b = _best_at(cm, eq, "loss", j), _best_at(cm, neq, "loss", j)
        if a is None or b is None:
            continue
        r = ratio_interval(samples[a]["loss"][:, j], samples[b]["loss"][:, j])
        per_budget.append({"budget": budget, "equivariant": a, "baseline": b, **r, "verdict": _verdict(r, "below")})
    verdicts = {p["verdict"] for p in per_budget}
    verdict = verdicts.pop() if len(verdicts) == 1 else "not resolved"
    alphas = {f: (fams[f]["scaling"].get("alpha"), (fams[f]["scaling"].get("alpha_interval") or {}).get("ci68"))
              for f in fams}
    findings["compute"] = {
        "claim": "loss follows a power law in compute, and equivariant models are better at every compute budget",
        "verdict": verdict if per_budget else "not resolved", "per_budget": per_budget, "alphas": alphas}

    # 1. data efficiency with / without augmentation
    def smallest(f):
        rows = fams[f]["data_efficiency"]
        return rows[0] if len(rows) > 1 else None

    swept = [f for f in fams if smallest(f) is not None]
    de = {"claim": "equivariance improves data efficiency; augmentation narrows the gap given enough epochs",
          "verdict": "not resolved", "detail": None}
    eq_s, raw_s = [f for f in swept if f in eq], [f for f in swept if f in neq and not fams[f].get("augment")]
    aug_s = [f for f in swept if f in neq and fams[f].get("augment")]
    if eq_s and raw_s:
        a, b = eq_s[0], raw_s[0]
        ra, rb = smallest(a), smallest(b)
        ci = _ratio_of_intervals(ra, rb)
        de["detail"] = {"n": ra["train_trajectories"], "equivariant": a, "baseline": b,
                        "equivariant_rel_contact": ra.get("rel_ballistic_contact"),
                        "baseline_rel_contact": rb.get("rel_ballistic_contact"), "ratio": ci,
                        "augmented": {f: smallest(f).get("rel_ballistic_contact") for f in aug_s}}
        seeds = min(ra.get("n_seeds", 0), rb.get("n_seeds", 0))
        de["detail"]["n_seeds"] = seeds
        # one seed: the interval holds test-trajectory noise only, not seed-to-seed variation
        de["verdict"] = _verdict(ci, "below") if ci and seeds >= 2 else "not resolved"
        # second half: does augmentation bring the baseline closer to the equivariant model? (aug / raw < 1)
        if aug_s:
            rc = smallest(aug_s[0])
            ci_aug = _ratio_of_intervals(rc, rb)
            enough = min(seeds, rc.get("n_seeds", 0)) >= 2
            de["augmentation"] = {"family": aug_s[0], "ratio_to_raw": ci_aug,
                                  "verdict": _verdict(ci_aug, "below") if ci_aug and enough else "not resolved"}
    findings["data_efficiency"] = de

    # 3. compute-optimal allocation differs: params exponent along the frontier, best GATr vs best baseline
    sizes = {f: len({(c["width"], c["depth"]) for c in fams[f]["configs"]}) for f in fams}
    alloc = {"claim": "the compute-optimal split between model size and training steps differs between equivariant "
                      "and non-equivariant models", "verdict": "not resolved", "model_sizes_per_family": sizes,
             "exponents": {}}
    last = len(cm["budgets"]) - 1
    pick = {"equivariant": _best_at(cm, eq, "loss", last), "baseline": _best_at(cm, neq, "loss", last)} \
        if last >= 0 else {}
    for role, fam in pick.items():
        if fam is not None:
            alloc["exponents"][role] = {"family": fam, **(fams[fam]["scaling"].get("allocation") or {}).get("params", {})}
    e = alloc["exponents"]
    if len(e) == 2 and all(v.get("stderr") is not None for v in e.values()):
        gap = e["equivariant"]["exponent"] - e["baseline"]["exponent"]
        se = math.hypot(e["equivariant"]["stderr"], e["baseline"]["stderr"])
        alloc["difference"] = {"value": gap, "stderr": se}
        alloc["verdict"] = "supported" if abs(gap) > 2 * se else "not resolved"
    findings["allocation"] = alloc
    return findings


def _ratio_of_intervals(a: dict, b: dict) -> dict | None:
    """Approximate interval of ``a / b`` from two rows' contact-window rel-ballistic intervals (independent
    seeds; normal approximation in log space from the 68% intervals)."""
    ia, ib = a.get("rel_ballistic_contact_interval"), b.get("rel_ballistic_contact_interval")
    va, vb = a.get("rel_ballistic_contact"), b.get("rel_ballistic_contact")
    if not ia or not ib or not va or not vb:
        return None
    sa = (math.log(ia["ci68"][1]) - math.log(ia["ci68"][0])) / 2
    sb = (math.log(ib["ci68"][1]) - math.log(ib["ci68"][0])) / 2
    m, s = math.log(va / vb), math.hypot(sa, sb)
    return {"value": math.exp(m), "ci68": [math.exp(m - s), math.exp(m + s)],
            "ci95": [math.exp(m - 1.96 * s), math.exp(m + 1.96 * s)], "n_boot": ia.get("n_boot", 0)}

